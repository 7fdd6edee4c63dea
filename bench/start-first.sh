#!/usr/bin/env bash
# Start-first switches through real dockhook: UPDATES consecutive updates of
# one site behind a network alias, each triggered by a Docker Hub webhook,
# under a probe that resolves the alias for every request, as a reverse
# proxy would. Prints, per update and in total, the requests that failed at
# the first try, those that failed again when retried at once, those
# answered only after 0.5 s, and the longest gap between successes.
#
#   bench/start-first.sh                  # 20 updates, release build
#   UPDATES=5 PROFILE=debug bench/start-first.sh
#   WAIT=3 bench/start-first.sh           # a probe that waits 3 s, not 1 (whole s)
#   DOCKHOOK_BIN=PATH bench/start-first.sh  # measure that binary; no build
#   BENCH_LOGS=DIR bench/start-first.sh   # keep the probe log and dockhook's
#
# Needs a Docker engine, Debian's docker-registry, busybox-static, curl,
# python3 and cargo (.ci/run installs them all). Everything is local: a
# throwaway registry on 127.0.0.1, FROM scratch busybox httpd sites. Every
# container, the network, the images, the registry, dockhook and temp files
# are removed on exit, even on failure or Ctrl-C.
#
# The probe: a container on the site's network runs, about 20 times a
# second, `timeout $WAIT wget http://web:8080/`; a failed request is
# retried once at once and both outcomes are logged. WAIT=1 gives up
# exactly when TCP sends a lost SYN again; a proxy's connect timeout is
# longer (nginx: 60 s). Times are /proc/uptime (CLOCK_BOOTTIME, shared with
# the host), so the host's marks around each update and the probe's
# requests are on one clock.
set -Eeuo pipefail
trap 'printf "bench: failed (status %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$BENCH_REPO"
UPDATES=${UPDATES:-20}
PROFILE=${PROFILE:-release}
# The health gate of a site without healthcheck; only the time before the
# switch depends on it.
GRACE=${GRACE:-2s}
WAIT=${WAIT:-1}
[[ $WAIT =~ ^[1-9][0-9]*$ ]] || { echo "bench: WAIT must be whole seconds" >&2; exit 1; }
# After a deployment is final, the probe keeps counting this long: a request
# sent just before the end may fail only when its timeout runs out.
TAIL=$((WAIT + 1))

need_tools docker /usr/bin/docker-registry /bin/busybox curl python3 cargo
need_docker_and_static_busybox
case $PROFILE in release | debug) ;; *) die "PROFILE must be release or debug" ;; esac

ID="dhsf$$$(random_hex 3)"
LABEL="dockhook.bench.run=$ID"
WORK=$(mktemp -d /tmp/dockhook-start-first.XXXXXX)
NET="$ID-net"
SITE="$ID-site"
PROBE="$ID-probe"
BASE="dockhook-bench-base:$ID"
MARKS="$WORK/marks"
: >"$WORK/images" >"$MARKS"
REG_PID=""
HOOK_PID=""

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM ERR
	say "cleaning up"
	stop_pid "$HOOK_PID"
	remove_labelled "$LABEL" "$WORK/images"
	stop_pid "$REG_PID"
	if [ -n "${BENCH_LOGS:-}" ]; then
		mkdir -p "$BENCH_LOGS"
		cp "$WORK"/*.log "$MARKS" "$BENCH_LOGS"/ 2>/dev/null
		say "logs kept in $BENCH_LOGS"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t PORTS < <(free_ports 2)
REGISTRY="127.0.0.1:${PORTS[0]}"
HOOK="http://127.0.0.1:${PORTS[1]}"
IMAGE="$REGISTRY/bench/site:latest"

# --- registry and dockhook ------------------------------------------------------
start_registry "$REGISTRY" "$WORK/registry"
build_dockhook "$PROFILE" "$WORK/cargo.log"
TOKEN=$(random_hex 16)
API_TOKEN=$(random_hex 16)
HOOK_TOKEN=$(hook_token "$BIN" "$TOKEN" dockerhub)
mkdir -p "$WORK/data"
# The strategy is dockhook's default, auto: a site without published ports
# is updated start-first. What the caller's shell has set must not leak in.
env -u RUST_LOG -u DOCKHOOK_LOG -u DOCKHOOK_STRATEGY -u DOCKHOOK_CONFIG \
	DOCKHOOK_LISTEN="${HOOK#http://}" DOCKHOOK_TOKEN="$TOKEN" DOCKHOOK_API_TOKEN="$API_TOKEN" OWNER=bench \
	DOCKHOOK_DOCKERHUB_REGISTRY="$REGISTRY" DOCKHOOK_DATA_DIR="$WORK/data" \
	DOCKHOOK_GRACE="$GRACE" "$BIN" serve 2>"$WORK/dockhook.log" &
HOOK_PID=$!
python3 bench/probe.py wait "$HOOK/healthz" 30 || { cat "$WORK/dockhook.log" >&2; exit 1; }

# --- images ---------------------------------------------------------------------
# One base with busybox; each version adds only its page, so a build is
# one quick step. --network none: the RUN step needs no network, and the
# default bridge may be missing on a shared engine.
build_busybox_base "$BASE" "$WORK/base" "$LABEL" "$WORK/images"
mkdir -p "$WORK/site"
# sh as PID 1, so that docker stop's TERM ends the site at once (busybox
# httpd as PID 1 ignores it, and each stop would wait 10 s).
cat >"$WORK/site/Dockerfile" <<EOF
FROM $BASE
COPY index.html /www/index.html
EXPOSE 8080
CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
EOF
push_version() { # $1: version number
	echo "$ID v$1" >"$WORK/site/index.html"
	DOCKER_BUILDKIT=0 docker build --network none -q -t "$IMAGE" "$WORK/site" >>"$WORK/images" 2>>"$WORK/build.log" ||
		{ cat "$WORK/build.log" >&2; exit 1; }
	docker push "$IMAGE" >>"$WORK/push.log" 2>&1 || { tail "$WORK/push.log" >&2; exit 1; }
}

# --- site and probe -------------------------------------------------------------
docker network create --label "$LABEL" "$NET" >/dev/null
push_version 0
docker run -d --name "$SITE" --label "$LABEL" --network "$NET" --network-alias web "$IMAGE" >/dev/null
# One line per request: sent, done (seconds since boot), wget's status and
# message; for a failed one, then "|" and the retry's status and message.
docker run -d --name "$PROBE" --label "$LABEL" --network "$NET" "$BASE" sh -c '
while :; do
	read a _ </proc/uptime
	m=$(timeout '"$WAIT"' wget -q -O- http://web:8080/ 2>&1); r=$?
	read z _ </proc/uptime
	if [ $r = 0 ]; then echo "$a $z 0 $m"; else
		m2=$(timeout '"$WAIT"' wget -q -O- http://web:8080/ 2>&1); r2=$?
		echo "$a $z $r $m|$r2 $m2" | tr "\n" " "; echo
	fi
	sleep 0.05
done' >/dev/null
mark() { printf '%s %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*" >>"$MARKS"; }
seen() { # waits until the probe has seen version $1 answer
	for _ in $(seq 100); do
		docker logs --since 2s "$PROBE" 2>/dev/null | grep -q " 0 $ID v$1\$" && return 0
		sleep 0.1
	done
	return 1
}
seen 0 || die "the probe never reached the site through its alias"

# --- updates --------------------------------------------------------------------
payload='{"repository":{"repo_name":"bench/site","namespace":"bench","name":"site"},"push_data":{"tag":"latest","pusher":"bench"}}'
for i in $(seq "$UPDATES"); do
	push_version "$i"
	mark "update $i webhook"
	answer=$(curl -sS --noproxy '*' -X POST -H 'Content-Type: application/json' --data "$payload" \
		"$HOOK/hooks/dockerhub/$HOOK_TOKEN")
	dep=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["deployments"][0])' "$answer") ||
		die "update $i: unexpected webhook answer: $answer"
	state=""
	for _ in $(seq 600); do
		state=$(curl -sS --noproxy '*' -H "Authorization: Bearer $API_TOKEN" "$HOOK/api/deployments/$dep" |
			python3 -c 'import json,sys; print(json.load(sys.stdin).get("state", "?"))')
		case $state in succeeded | skipped | failed | rolled_back) break ;; esac
		sleep 0.2
	done
	mark "update $i final"
	curl -sS --noproxy '*' -H "Authorization: Bearer $API_TOKEN" "$HOOK/api/deployments/$dep" >"$WORK/deployment-$i.json"
	sleep "$TAIL"
	mark "update $i end"
	seen "$i" || say "update $i: the probe did not see v$i"
	say "update $i: deployment $dep $state"
done
docker logs "$PROBE" >"$WORK/probe.log" 2>&1

# --- report ---------------------------------------------------------------------
if [ -n "${DOCKHOOK_BIN:-}" ]; then built="binary $DOCKHOOK_BIN"; else
	built="$PROFILE build of git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')"
fi
echo "bench/start-first.sh: UPDATES=$UPDATES WAIT=$WAIT GRACE=$GRACE, $built, docker $(docker version --format '{{.Server.Version}}'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "probe: container on the site's network, timeout $WAIT wget http://web:8080/ every ~50 ms, a failure retried once at once"
python3 - "$WORK" "$UPDATES" "$ID" <<'EOF'
import json, sys, time
from datetime import datetime, timezone
work, updates, run_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# Wall clock to boottime, for dockhook's step times (UTC, milliseconds).
offset = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)

reqs = []
for line in open(f"{work}/probe.log"):
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 3:
        continue
    try:
        sent, done, rc = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        continue
    rest = parts[3] if len(parts) > 3 else ""
    first, _, retry = rest.partition("|")
    retry_rc = int(retry.split(" ", 1)[0]) if rc and retry.strip() else 0
    reqs.append((sent, done, rc, first.strip(), retry_rc))

def kind(rc, msg):
    if rc == 143: return "timeout"
    if "refused" in msg: return "refused"
    if "bad address" in msg: return "dns"
    if "reset" in msg: return "reset"
    return "other"

marks = {}
for line in open(f"{work}/marks"):
    t, _, what = line.rstrip("\n").partition(" ")
    marks[what] = float(t)

def boot(at):
    return datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() - offset

print(f"{'update':>6}  {'state':10} {'strategy':11} {'requests':>8} {'failed':>6} {'after retry':>11} {'slow':>4} {'longest gap':>11}  failures (kind, sent s after the old one began to leave)")
tot_n = tot_f = tot_r = tot_s = 0
SLOW = 0.5
worst_gap = 0.0
states = []
for i in range(1, updates + 1):
    b, e = marks.get(f"update {i} webhook"), marks.get(f"update {i} end")
    if b is None or e is None:
        continue
    d = json.load(open(f"{work}/deployment-{i}.json"))
    steps = {s["state"]: boot(s["at"]) for s in d.get("steps", [])}
    detail = " ".join(s.get("detail") or "" for s in d.get("steps", []))
    strategy = "start-first" if "start-first replaced" in detail else "?"
    states.append((d.get("state"), strategy))
    inside = [r for r in reqs if b <= r[0] <= e]
    failed = [r for r in inside if r[2] != 0]
    twice = [r for r in failed if r[4] != 0]
    ok = [r[1] for r in inside if r[2] == 0]
    # Answered, but only after TCP sent the SYN again (1 s).
    slow = sum(1 for r in inside if r[2] == 0 and r[1] - r[0] > SLOW)
    gap = max((y - x for x, y in zip(ok, ok[1:])), default=e - b)
    leave = steps.get("stopping")
    notes = ", ".join(f"{kind(r[2], r[3])} {r[0] - leave:+.2f}" if leave else kind(r[2], r[3]) for r in failed)
    print(f"{i:6}  {d.get('state', '?'):10} {strategy:11} {len(inside):8} {len(failed):6} {len(twice):11} {slow:4} {gap:10.2f}s  {notes}")
    tot_n += len(inside); tot_f += len(failed); tot_r += len(twice); tot_s += slow; worst_gap = max(worst_gap, gap)
good = sum(1 for s in states if s == ("succeeded", "start-first"))
print(f"{'total':>6}  {f'{good}/{len(states)} ok':10} {'start-first':11} {tot_n:8} {tot_f:6} {tot_r:11} {tot_s:4} {worst_gap:10.2f}s")
print(f"failed: at the first try; after retry: failed again when retried at once; slow: answered after more than {SLOW} s")
EOF
