#!/usr/bin/env bash
# Soak: dockhook (the release build) for DURATION under mixed load, killed
# with kill -9 every KILL_EVERY and restarted on the same data dir, while
# RSS, open fds, SQLite size and the latency of a steady probe client are
# recorded into a CSV and plotted into a PNG. Then the checks: nothing grew
# without bound, every deployment ended in a final state, and no webhook
# answered 202 was lost. Exits non-zero, saying why, if one fails.
#
#   bench/soak.sh                           # one hour, a kill -9 every 270 s
#   DURATION=480 KILL_EVERY=120 bench/soak.sh   # a short run
#   DOCKHOOK_BIN=target/release/dockhook bench/soak.sh   # that binary; no build
#   OUT=DIR bench/soak.sh                   # where soak.csv, soak.png, the summary
#                                           # and the logs go (default target/soak/<time>)
#
# The load, all at once:
#   pushes   a new version of one of two images (FROM scratch busybox httpd
#            with a HEALTHCHECK) pushed to a throwaway registry every
#            PUSH_MIN..PUSH_MAX s, then its webhook: image A runs in two
#            containers and comes by the Docker Hub hook (token in the path),
#            image B in one and comes by the GitHub hook (HMAC signature,
#            delivery ID). Real deployments, start-first.
#   probe    PROBE_RATE/s authenticated webhooks for an image no container
#            runs, each on a new connection: the latency in the CSV.
#   ignored  FLOOD_RATE/s of the same on kept-alive connections.
#   hostile  HOSTILE_RATE/s: wrong token, bad or missing signature,
#            malformed JSON, a 2 MiB body, a foreign owner, hostile image
#            names, a wrong API bearer.
#   api      API_RATE/s: GET /api/deployments, /api/targets, /metrics.
# Every other kill -9 lands 0.5-4 s after a push's webhook, while its
# deployments run; the others at a random moment.
#
# Other settings: SAMPLE (s between CSV rows, 10), WARMUP (s before the
# first window the checks compare, 120), WINDOW (the windows' length, 600;
# shrunk to a third of the run after warm-up for a short run), RSS_TOLERANCE
# (0.25: the last window's median RSS may be 25 % above the first's, plus
# 4 MiB), FD_SLACK (8 more fds), SQLITE_MAX_MIB (64), DRAIN (s for open
# deployments to end after the final restart, 300).
#
# Needs a Docker engine, Debian's docker-registry and python3-matplotlib
# (/usr/bin/python3), busybox-static, curl, python3 and cargo. Every
# container, image, network, the registry, dockhook and the load are removed
# on exit, even on failure or Ctrl-C.
set -Eeuo pipefail
# set -e stops silently; say where.
trap 'printf "bench: failed (status %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$BENCH_REPO"

DURATION=${DURATION:-3600}
KILL_EVERY=${KILL_EVERY:-270}
PUSH_MIN=${PUSH_MIN:-20}
PUSH_MAX=${PUSH_MAX:-40}
SAMPLE=${SAMPLE:-10}
WARMUP=${WARMUP:-120}
WINDOW=${WINDOW:-600}
PROBE_RATE=${PROBE_RATE:-10}
FLOOD_RATE=${FLOOD_RATE:-50}
HOSTILE_RATE=${HOSTILE_RATE:-10}
API_RATE=${API_RATE:-2}
RSS_TOLERANCE=${RSS_TOLERANCE:-0.25}
FD_SLACK=${FD_SLACK:-8}
SQLITE_MAX_MIB=${SQLITE_MAX_MIB:-64}
DRAIN=${DRAIN:-300}
OUT=${OUT:-$BENCH_REPO/target/soak/$(date -u +%Y%m%dT%H%M%SZ)}
for v in DURATION KILL_EVERY PUSH_MIN PUSH_MAX SAMPLE WARMUP WINDOW DRAIN; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a whole number of seconds, not '${!v}'"
done
((PUSH_MIN <= PUSH_MAX)) || die "PUSH_MIN ($PUSH_MIN) is above PUSH_MAX ($PUSH_MAX)"
((WARMUP < DURATION)) || die "WARMUP ($WARMUP s) must be shorter than DURATION ($DURATION s)"

need_tools docker /usr/bin/docker-registry /bin/busybox curl python3 cargo /usr/bin/python3
need_docker_and_static_busybox
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || die "matplotlib is missing: apt-get install python3-matplotlib"

ID="dhsoak$$$(random_hex 3)"
LABEL="dockhook.bench.run=$ID"
WORK=$(mktemp -d /tmp/dockhook-soak.XXXXXX)
DATA="$WORK/data"
NET="$ID-net"
BASE="dockhook-bench-base:$ID"
LOAD="$BENCH_DIR/soak_load.py"
mkdir -p "$OUT" "$DATA"
for f in "$WORK/images" "$OUT/pushes.jsonl" "$OUT/kills.jsonl" "$OUT/dockhook.log"; do : >"$f"; done
REG_PID=""
HOOK_PID=""
LOAD_PID=""

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM ERR
	say "cleaning up"
	[ -n "$LOAD_PID" ] && { touch "$WORK/stop"; kill -TERM "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; }
	stop_pid "$HOOK_PID"
	remove_labelled "$LABEL" "$WORK/images"
	stop_pid "$REG_PID"
	cp "$WORK"/*.log "$OUT"/ 2>/dev/null
	rm -rf "$WORK"
	say "results in $OUT"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t PORTS < <(free_ports 2)
REGISTRY="127.0.0.1:${PORTS[0]}"
HOOK_PORT=${PORTS[1]}
HOOK="http://127.0.0.1:$HOOK_PORT"
TOKEN=$(random_hex 16)
API_TOKEN=$(random_hex 16)
SECRET=$(random_hex 16)

start_registry "$REGISTRY" "$WORK/registry"
build_dockhook release "$WORK/cargo.log"
HOOK_TOKEN=$(hook_token "$BIN" "$TOKEN" dockerhub)
say "registry on $REGISTRY; dockhook $BIN"

# --- images and targets -----------------------------------------------------------
build_busybox_base "$BASE" "$WORK/base" "$LABEL" "$WORK/images"
# sh as PID 1, so that docker stop's TERM ends a site at once (busybox
# httpd as PID 1 ignores it). The HEALTHCHECK is dockhook's health gate.
mkdir -p "$WORK/site"
cat >"$WORK/site/Dockerfile" <<EOF
FROM $BASE
COPY index.html /www/index.html
EXPOSE 8080
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
EOF
# Image A by the Docker Hub hook, B by the GitHub hook; both named
# <registry>/bench/<name>, so the owner is "bench" for both.
declare -A REPO=([a]=bench/site-a [b]=bench/site-b) SOURCE=([a]=dockerhub [b]=github) LATEST=()
declare -A N=([a]=0 [b]=0)
# Builds and pushes the next version of image $1 (a or b); sets LATEST[$1]
# to its image ID and DIGEST to its manifest digest in the registry.
build_push() {
	local which=$1 image="$REGISTRY/${REPO[$1]}:latest"
	N[$which]=$((N[$which] + 1))
	VERSION="${which}v${N[$which]}"
	echo "$ID $VERSION" >"$WORK/site/index.html"
	LATEST[$which]=$(DOCKER_BUILDKIT=0 docker build --network none -q -t "$image" "$WORK/site" 2>>"$WORK/build.log") ||
		{ cat "$WORK/build.log" >&2; exit 1; }
	echo "${LATEST[$which]}" >>"$WORK/images"
	docker push "$image" >>"$WORK/push.log" 2>&1 || { tail "$WORK/push.log" >&2; exit 1; }
	DIGEST=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$image" |
		grep -m1 "^$REGISTRY/${REPO[$which]}@" | cut -d@ -f2)
}
# Pushes the next version of $1 and sends its webhook (retried while
# dockhook is down); the answer goes to pushes.jsonl.
push_and_hook() {
	local built_from
	built_from=$(date +%s.%N)
	build_push "$1"
	python3 "$LOAD" push --built-from "$built_from" --port "$HOOK_PORT" --token "$HOOK_TOKEN" --github-secret "$SECRET" \
		--source "${SOURCE[$1]}" --repo "${REPO[$1]}" --version "$VERSION" --digest "$DIGEST" \
		--out "$OUT/pushes.jsonl" >>"$WORK/hooks.log" 2>&1
	say "pushed $VERSION: $(tail -1 "$WORK/hooks.log")"
}

docker network create --label "$LABEL" "$NET" >/dev/null
declare -A TARGETS
TARGETS=([a]="$ID-a1 $ID-a2" [b]="$ID-b1")
for which in a b; do
	build_push "$which"
	for name in ${TARGETS[$which]}; do
		docker run -d --name "$name" --label "$LABEL" --label dockhook.enable=true --network "$NET" \
			"$REGISTRY/${REPO[$which]}:latest" >/dev/null
	done
done

# --- dockhook -------------------------------------------------------------------
LIVES=0
# Starts dockhook on the data dir and waits until /healthz answers. The log
# level and strategy are its defaults: the caller's shell must not leak in.
# On a shared engine it must see only this run's containers: other people's
# are neither its targets nor in /api/targets (DOCKHOOK_LABEL_ENABLE), and
# reconcile, which at every start would ask the registries about every
# container it may update, is off, as in the end-to-end tests.
start_dockhook() {
	LIVES=$((LIVES + 1))
	printf '\n==== life %d, %s\n' "$LIVES" "$(date -u +%FT%TZ)" >>"$OUT/dockhook.log"
	env -u RUST_LOG -u DOCKHOOK_LOG -u DOCKHOOK_STRATEGY -u DOCKHOOK_CONFIG NO_COLOR=1 \
		DOCKHOOK_LISTEN="127.0.0.1:$HOOK_PORT" DOCKHOOK_TOKEN="$TOKEN" DOCKHOOK_API_TOKEN="$API_TOKEN" OWNER=bench \
		DOCKHOOK_DOCKERHUB_REGISTRY="$REGISTRY" DOCKHOOK_GITHUB_REGISTRY="$REGISTRY" \
		DOCKHOOK_GITHUB_SECRET="$SECRET" DOCKHOOK_DATA_DIR="$DATA" DOCKHOOK_GRACE=2s \
		DOCKHOOK_LABEL_ENABLE=true DOCKHOOK_RECONCILE_INTERVAL=0 \
		"$BIN" serve >>"$OUT/dockhook.log" 2>&1 &
	HOOK_PID=$!
	echo "$HOOK_PID" >"$WORK/dockhook.pid"
	for _ in $(seq 600); do
		curl -s -o /dev/null --noproxy '*' "$HOOK/healthz" && return 0
		kill -0 "$HOOK_PID" 2>/dev/null || { tail -20 "$OUT/dockhook.log" >&2; die "dockhook exited at start-up"; }
		sleep 0.05
	done
	tail -20 "$OUT/dockhook.log" >&2
	die "dockhook did not answer /healthz within 30 s"
}
START=$(date +%s.%N)
elapsed() { awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }'; }
# kill -9 and a restart on the same data dir; $1 says when it came.
kill_restart() {
	local pid=$HOOK_PID t0 t
	t0=$(date +%s.%N)
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || true
	start_dockhook
	t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	printf '{"t_s": %s, "unix": %s, "pid": %s, "when": "%s", "restart_s": %s}\n' \
		"$(awk -v s="$START" -v n="$t0" 'BEGIN { printf "%.1f", n - s }')" "$t0" "$pid" "$1" "$t" >>"$OUT/kills.jsonl"
	say "kill -9 of pid $pid ($1); up again as pid $HOOK_PID after $t s"
}

start_dockhook
say "dockhook on $HOOK (pid $HOOK_PID); load for $DURATION s, kill -9 every $KILL_EVERY s"
python3 "$LOAD" run --port "$HOOK_PORT" --token "$HOOK_TOKEN" --api-token "$API_TOKEN" --github-secret "$SECRET" \
	--pidfile "$WORK/dockhook.pid" --data "$DATA" --csv "$OUT/soak.csv" --counts "$OUT/counts.json" \
	--probes "$OUT/probe.tsv" --stop "$WORK/stop" --sample "$SAMPLE" --probe-rate "$PROBE_RATE" --flood-rate "$FLOOD_RATE" \
	--hostile-rate "$HOSTILE_RATE" --api-rate "$API_RATE" 2>"$WORK/load.log" &
LOAD_PID=$!

# --- the run --------------------------------------------------------------------
now() { date +%s; }
END=$(($(now) + DURATION))
next_push=$(($(now) + PUSH_MIN + RANDOM % (PUSH_MAX - PUSH_MIN + 1)))
next_kill=$(($(now) + KILL_EVERY))
kills=0
while (($(now) < END)); do
	kill -0 "$LOAD_PID" 2>/dev/null || { cat "$WORK/load.log" >&2; die "the load generator stopped"; }
	if (($(now) >= next_kill)); then
		kills=$((kills + 1))
		if ((kills % 2)); then
			# Mid-deployment: right after a push's webhook.
			which=$([ $((RANDOM % 2)) = 0 ] && echo a || echo b)
			push_and_hook "$which"
			sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.5 + 3.5 * r / 32767 }')"
			kill_restart "during the deployment of $VERSION"
			next_push=$(($(now) + PUSH_MIN + RANDOM % (PUSH_MAX - PUSH_MIN + 1)))
		else
			kill_restart "at a random moment"
		fi
		next_kill=$((next_kill + KILL_EVERY))
	elif (($(now) >= next_push)); then
		push_and_hook "$([ $((RANDOM % 2)) = 0 ] && echo a || echo b)"
		next_push=$(($(now) + PUSH_MIN + RANDOM % (PUSH_MAX - PUSH_MIN + 1)))
	else
		sleep 1
	fi
done
touch "$WORK/stop"
wait "$LOAD_PID" || { cat "$WORK/load.log" >&2; die "the load generator failed"; }
LOAD_PID=""
say "load stopped after $(elapsed) s"

# --- the end: a clean restart, one more push of each, the drain -----------------
stop_pid "$HOOK_PID"
start_dockhook
for which in a b; do push_and_hook "$which"; done
say "draining: waiting up to $DRAIN s for every deployment to end"
drained=ok
python3 "$LOAD" drain --port "$HOOK_PORT" --api-token "$API_TOKEN" --timeout "$DRAIN" || drained=FAILED
# After the drain, every target runs the newest version pushed: dockhook
# still deploys after all the kills, and the last 202s were carried out.
stale=()
for which in a b; do
	for name in ${TARGETS[$which]}; do
		running=$(docker inspect --format '{{.Image}}' "$name" 2>/dev/null || echo "no container")
		[ "$running" = "${LATEST[$which]}" ] || stale+=("$name runs $running, not the newest ${LATEST[$which]}")
	done
done
stop_pid "$HOOK_PID"
HOOK_PID=""

# --- checks, summary, plot ----------------------------------------------------------
{
	echo "bench/soak.sh: DURATION=$DURATION KILL_EVERY=$KILL_EVERY PUSH=$PUSH_MIN..$PUSH_MAX s SAMPLE=$SAMPLE" \
		"rates/s probe $PROBE_RATE ignored $FLOOD_RATE hostile $HOSTILE_RATE api $API_RATE"
	echo "dockhook: $BIN ($("$BIN" --version 2>/dev/null || echo '?')), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)');" \
		"docker $(docker version --format '{{.Server.Version}}'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "targets: ${TARGETS[a]} (image A, Docker Hub hook), ${TARGETS[b]} (image B, GitHub hook); dockhook lives: $LIVES"
	echo "drain after the final clean restart: $drained"
	if ((${#stale[@]})); then
		for s in "${stale[@]}"; do echo "after the drain: $s"; done
	else
		echo "after the drain: every target runs the newest version pushed"
	fi
} >"$OUT/summary.txt"
checked=0
python3 "$LOAD" check --csv "$OUT/soak.csv" --counts "$OUT/counts.json" --probes "$OUT/probe.tsv" --pushes "$OUT/pushes.jsonl" \
	--kills "$OUT/kills.jsonl" --db "$DATA/dockhook.db" --sample "$SAMPLE" --warmup "$WARMUP" \
	--window "$WINDOW" --rss-tolerance "$RSS_TOLERANCE" --fd-slack "$FD_SLACK" \
	--sqlite-max-mib "$SQLITE_MAX_MIB" >>"$OUT/summary.txt" || checked=$?
/usr/bin/python3 "$BENCH_DIR/soak_plot.py" "$OUT/soak.csv" "$OUT/kills.jsonl" "$OUT/pushes.jsonl" "$OUT/soak.png" ||
	warn "the plot failed"
cp "$DATA/dockhook.db" "$OUT/" 2>/dev/null || true
cat "$OUT/summary.txt"
echo "csv: $OUT/soak.csv  plot: $OUT/soak.png"
[ "$drained" = ok ] || die "deployments were still open $DRAIN s after the final restart (listed above)"
((${#stale[@]} == 0)) || die "a target does not run the newest version pushed (see the summary)"
((checked == 0)) || die "a check failed (see FAILED in the summary)"
