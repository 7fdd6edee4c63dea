#!/usr/bin/env bash
# Update benchmark: how fast and how smoothly a container is replaced on
# this machine, by dockhook start-first (A), dockhook stop-first (B) and the
# old way, docker stop; rm; compose pull; up -d (C); plus what a webhook
# costs under load and dockhook's memory and sizes. One table, with targets.
#
#   bench/updates.sh                 # progress on stderr, header + table on stdout
#   RUNS=5 bench/updates.sh          # runs per method (default 3)
#   SKIP_IMAGE=1 bench/updates.sh    # skip the static build and FROM scratch image
#   BENCH_LOGS=DIR bench/updates.sh  # also keep logs, wrk output, per-request traces
#
# Needs a Docker engine, docker-compose v1, Debian's docker-registry,
# busybox-static, wrk, curl, python3 and cargo (.ci/run installs them all).
#
# Everything is local: a throwaway registry on 127.0.0.1, FROM scratch
# busybox sites with 30 MiB of fresh random padding per version, so every
# update really pulls ~30 MiB. All containers, the network, images, the
# registry, dockhook and temp files are removed on exit, even on failure or
# Ctrl-C.
set -Eeuo pipefail
# set -e stops silently; say where.
trap 'printf "bench: failed (status %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
REPO=$(pwd)
PROBE="$REPO/bench/probe.py"
RUNS=${RUNS:-3}
SKIP_IMAGE=${SKIP_IMAGE:-0}
GRACE=5s       # dockhook's default; A and B are measured with it
LOAD_GRACE=10s # long enough that the update spans the whole 10 s load
WRK_ARGS="-t2 -c32 -d10s --latency"


# Fail before touching anything when a tool is missing; saying which beats
# a half-run that dies in the middle.
missing=()
for tool in docker docker-compose /usr/bin/docker-registry /bin/busybox wrk curl python3 cargo; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (.ci/run installs them; or apt-get install docker-registry docker-compose busybox-static wrk)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker engine does not answer"
# A dynamic busybox cannot run in a FROM scratch image.
if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is dynamically linked; install busybox-static"; fi

# Unique per invocation, so parallel runs or other people's containers and
# images on the same engine are never touched.
ID="dhb$$$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK=$(mktemp -d "/tmp/dockhook-bench.XXXXXX")
LABEL_KEY=dockhook.bench.run
NET="$ID-net"
SITE_A="$ID-site-startfirst"
SITE_B="$ID-site-stopfirst"
SITE_C="$ID-site-oldway"
DOCKHOOK_IMAGE="dockhook-bench:$ID"
PROBE_IMAGE="dockhook-bench-probe:$ID"
RESULTS="$WORK/results.jsonl"
EXTRAS="$WORK/extras.tsv"
HEADER="$WORK/header.txt"
: >"$RESULTS" >"$EXTRAS" >"$HEADER" >"$WORK/images"
REG_PID=""
HOOK_PID=""

extra() { printf '%s\t%s\n' "$1" "$2" >>"$EXTRAS"; }
head_line() { printf '%s\n' "$*" >>"$HEADER"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

stop_dockhook() {
	[ -n "$HOOK_PID" ] || return 0
	kill -TERM "$HOOK_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$HOOK_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$HOOK_PID" 2>/dev/null || true
	wait "$HOOK_PID" 2>/dev/null || true
	HOOK_PID=""
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM ERR
	say "cleaning up"
	stop_dockhook
	# Other people's test suites restart dockerd on this machine; wait for it
	# (bounded) rather than leave our containers behind.
	for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
	docker version >/dev/null 2>&1 ||
		warn "Docker does not answer; left behind: whatever carries label $LABEL_KEY=$ID"
	if [ -f "$WORK/compose/docker-compose.yml" ]; then
		(cd "$WORK/compose" && docker-compose down --remove-orphans) >/dev/null 2>&1
	fi
	# Every container from the site and probe images carries the run's
	# label, including any that dockhook parked or created mid-update if we
	# were interrupted.
	docker ps -aq --filter "label=$LABEL_KEY=$ID" | xargs -r docker rm -f >/dev/null 2>&1
	docker rm -f "$SITE_A" "$SITE_B" "$SITE_C" >/dev/null 2>&1
	# Only once no container is attached to it.
	docker network ls -q --filter "label=$LABEL_KEY=$ID" | xargs -r docker network rm >/dev/null 2>&1
	# Newest first, so children go before the parents they were built on.
	tac "$WORK/images" | xargs -r docker rmi -f >/dev/null 2>&1
	for _ in 1 2 3; do
		docker images -aq --filter "label=$LABEL_KEY=$ID" | xargs -r docker rmi -f >/dev/null 2>&1
	done
	# By tag only: the build cache may have made it an alias of someone
	# else's identical image, which must survive.
	docker rmi "$DOCKHOOK_IMAGE" >/dev/null 2>&1
	if [ -n "$REG_PID" ]; then
		kill -TERM "$REG_PID" 2>/dev/null
		wait "$REG_PID" 2>/dev/null
	fi
	if [ -n "${BENCH_LOGS:-}" ]; then
		mkdir -p "$BENCH_LOGS"
		cp "$WORK"/*.log "$WORK"/*.jsonl "$WORK"/trace-* "$WORK"/*.tsv "$WORK"/*.lua "$BENCH_LOGS"/ 2>/dev/null
		say "logs and traces kept in $BENCH_LOGS"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t PORTS < <(python3 "$PROBE" freeport 4)
REG_PORT=${PORTS[0]} HOOK_PORT=${PORTS[1]} SITE_B_PORT=${PORTS[2]} SITE_C_PORT=${PORTS[3]}
REGISTRY="127.0.0.1:$REG_PORT"
# One repository per method: dockhook updates every running container of a
# pushed repo:tag, so A's site must not follow B's pushes or the reverse.
IMAGE_A="$REGISTRY/bench/site-startfirst:latest"
IMAGE_B="$REGISTRY/bench/site-stopfirst:latest"
IMAGE_C="$REGISTRY/bench/site-oldway:latest"
HOOK="http://127.0.0.1:$HOOK_PORT"

# --- versions -----------------------------------------------------------------
START_SECONDS=$SECONDS
head_line "dockhook update bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (src modified)')"
head_line "command:  bench/updates.sh   (RUNS=$RUNS SKIP_IMAGE=$SKIP_IMAGE)"
head_line "host:     $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(docker info --format '{{.Driver}}' 2>/dev/null) storage"
head_line "versions: docker server $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), $(/usr/bin/docker-registry --version | awk '{print "docker-registry", $NF}'), $({ busybox || true; } | head -1 | awk '{print "busybox", $2}'), $({ wrk -v 2>&1 || true; } | head -1 | awk '{print "wrk", $2}'), $(rustc --version | awk '{print "rustc", $2}'), $(python3 --version)"
# Shared machine: what else ran is part of the result. Other engineers' test
# suites run containers and even restart dockerd.
dockerd_pid() { pidof dockerd 2>/dev/null || echo '?'; }
DOCKERD_PID=$(dockerd_pid)
NOISE_START="load avg $(loadavg) at start, $(docker ps -q | wc -l) other containers running"

# --- local registry -----------------------------------------------------------
start_registry "$REGISTRY" "$WORK/registry"
say "registry on $REGISTRY"

# --- builds -------------------------------------------------------------------
# The Dockerfile copies the static binary from target/, so build there
# whatever the caller's CARGO_TARGET_DIR says.
export CARGO_TARGET_DIR="$REPO/target"
say "cargo build --release"
t=$SECONDS
cargo build --release >"$WORK/cargo.log" 2>&1 || { tail -30 "$WORK/cargo.log" >&2; exit 1; }
build_note="cargo build --release ($((SECONDS - t)) s)"
BIN="$REPO/target/release/dockhook"
extra "release binary size (target/release/dockhook)" "$(mib "$(stat -c %s "$BIN")")"

if [ "$SKIP_IMAGE" = 1 ]; then
	extra "static binary size (crt-static, x86_64-unknown-linux-gnu)" "skipped (SKIP_IMAGE=1)"
	extra "FROM scratch dockhook image (docker image inspect .Size)" "skipped (SKIP_IMAGE=1)"
elif [ -f "$REPO/Dockerfile" ]; then
	say "static build + FROM scratch image"
	t=$SECONDS
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu \
		>"$WORK/cargo-static.log" 2>&1 || { tail -30 "$WORK/cargo-static.log" >&2; exit 1; }
	build_note="$build_note; RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu ($((SECONDS - t)) s); DOCKER_BUILDKIT=0 docker build -t $DOCKHOOK_IMAGE ."
	STATIC="$REPO/target/x86_64-unknown-linux-gnu/release/dockhook"
	extra "static binary size (crt-static, x86_64-unknown-linux-gnu)" "$(mib "$(stat -c %s "$STATIC")")"
	DOCKER_BUILDKIT=0 docker build -q -t "$DOCKHOOK_IMAGE" "$REPO" >/dev/null 2>>"$WORK/build.log" ||
		{ cat "$WORK/build.log" >&2; exit 1; }
	extra "FROM scratch dockhook image (docker image inspect .Size)" \
		"$(mib "$(docker image inspect --format '{{.Size}}' "$DOCKHOOK_IMAGE")")"
else
	extra "static binary size (crt-static, x86_64-unknown-linux-gnu)" "n/a (no Dockerfile)"
	extra "FROM scratch dockhook image (docker image inspect .Size)" "n/a (no Dockerfile)"
fi
head_line "builds:   $build_note"

# --- the site and probe images ------------------------------------------------
SITE="$WORK/site"
mkdir -p "$SITE/www"
cp /bin/busybox "$SITE/busybox"
# The label comes first so the classic builder's cache only ever matches this
# run's own layers; an identical "COPY busybox" from someone else's image on
# this engine would otherwise become our parent and tie the two together.
# sh as PID 1 with a TERM trap: busybox httpd as PID 1 ignores SIGTERM and
# docker stop would wait its full 10 s, which would measure the image, not
# the update method.
cat >"$SITE/Dockerfile" <<EOF
FROM scratch
LABEL $LABEL_KEY=$ID
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY pad /pad
COPY www /www
EXPOSE 8080
CMD ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
EOF

# The in-network probe: the same busybox, no padding; probe.py gives it its
# loop as the command.
mkdir -p "$WORK/probe-image"
cp /bin/busybox "$WORK/probe-image/busybox"
cat >"$WORK/probe-image/Dockerfile" <<EOF
FROM scratch
LABEL $LABEL_KEY=$ID
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
EOF
DOCKER_BUILDKIT=0 docker build -q -t "$PROBE_IMAGE" "$WORK/probe-image" >>"$WORK/images" 2>>"$WORK/build.log" ||
	{ cat "$WORK/build.log" >&2; exit 1; }

VERSION_N=0
# Builds and pushes the next version of image $1; sets NEW_ID and VERSION.
build_push() {
	local image=$1
	VERSION_N=$((VERSION_N + 1))
	VERSION="dockhook-bench $ID v$VERSION_N"
	printf '%s\n' "$VERSION" >"$SITE/www/index.html"
	# Fresh random bytes: the layer changes and cannot be compressed away.
	head -c 30M /dev/urandom >"$SITE/pad"
	NEW_ID=$(DOCKER_BUILDKIT=0 docker build -q -t "$image" "$SITE" 2>>"$WORK/build.log") ||
		{ cat "$WORK/build.log" >&2; exit 1; }
	echo "$NEW_ID" >>"$WORK/images"
	docker push "$image" >>"$WORK/push.log" 2>&1
}

# Gets the next version of image $2 into the registry but not onto this
# host, so the update under test has to pull it, while container $1 keeps
# running the old one.
prepare_next() {
	local name=$1 image=$2 old_id
	old_id=$(docker inspect --format '{{.Image}}' "$name")
	build_push "$image"
	docker rmi "$NEW_ID" >/dev/null
	if docker image inspect "$image" >/dev/null 2>&1; then
		die "$image still exists locally after docker rmi"
	fi
	if [ "$(docker inspect --format '{{.Image}}' "$name")" != "$old_id" ]; then
		die "$name no longer runs its old image"
	fi
	OLD_ID=$old_id
}

# A Docker Hub payload for repository bench/$1, tag $2.
payload() {
	printf '{"repository":{"repo_name":"bench/%s","namespace":"bench","name":"%s"},"push_data":{"tag":"%s","pusher":"bench","pushed_at":1700000000}}\n' "$1" "$1" "$2"
}
payload site-startfirst latest >"$WORK/hook-a.json"
payload site-stopfirst latest >"$WORK/hook-b.json"
# A tag no container runs: dockhook authenticates, parses, checks the owner
# and its container list, then answers 200 "ignored" and logs one info line.
payload site-startfirst bench-unused >"$WORK/hook-unused.json"

# --- dockhook -----------------------------------------------------------------
TOKEN=$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
API_TOKEN="api$TOKEN"
HOOK_TOKEN=$(hook_token "$BIN" "$TOKEN" dockerhub)
mkdir -p "$WORK/dockhook-data"
# Starts dockhook with DOCKHOOK_GRACE=$1, logging to $2. The log level and
# strategy are dockhook's defaults (info, auto): whatever the caller's shell
# has set must not leak in.
start_dockhook() {
	local grace=$1 log=$2
	env -u RUST_LOG -u DOCKHOOK_LOG -u DOCKHOOK_STRATEGY -u DOCKHOOK_CONFIG \
		DOCKHOOK_LISTEN="127.0.0.1:$HOOK_PORT" DOCKHOOK_TOKEN="$TOKEN" DOCKHOOK_API_TOKEN="$API_TOKEN" OWNER=bench \
		DOCKHOOK_DOCKERHUB_REGISTRY="$REGISTRY" DOCKHOOK_DATA_DIR="$WORK/dockhook-data" \
		DOCKHOOK_GRACE="$grace" "$BIN" serve 2>"$log" &
	HOOK_PID=$!
	for _ in $(seq 300); do
		grep -q 'listening on' "$log" && break
		kill -0 "$HOOK_PID" 2>/dev/null || { cat "$log" >&2; die "dockhook exited at start-up"; }
		sleep 0.1
	done
	grep -q 'listening on' "$log" || { cat "$log" >&2; die "dockhook did not start"; }
	say "dockhook on 127.0.0.1:$HOOK_PORT (pid $HOOK_PID, DOCKHOOK_GRACE=$grace)"
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$HOOK_PID/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$HOOK_PID/status"; }
post() { # $1: payload file; answer on stdout
	curl -sS --noproxy '*' -X POST -H 'Content-Type: application/json' --data "@$1" \
		"$HOOK/hooks/dockerhub/$HOOK_TOKEN"
}
# The "few requests" before an idle reading: health, history, and ignored
# webhooks, so the handlers' lazily built state is in place.
warm_up() {
	local answer
	for _ in 1 2 3 4 5; do
		curl -sS --noproxy '*' -o /dev/null "$HOOK/healthz"
		curl -sS --noproxy '*' -o /dev/null -H "Authorization: Bearer $API_TOKEN" "$HOOK/api/deployments"
		answer=$(post "$WORK/hook-unused.json")
	done
	case $answer in
	*'"ignored"'*) ;;
	*) die "a webhook for an unused tag was not ignored: $answer" ;;
	esac
	sleep 1
}

# One dockhook update under probe; $1 = label, $2 = run number, $3 = payload,
# then the probe's own arguments. The probe keeps going until the deployment
# is final, so a failure in the grace period or a rollback is seen too.
probed_update() {
	local label=$1 i=$2 hookfile=$3 dep
	shift 3
	python3 "$PROBE" "$@" --new "$VERSION" --label "$label" --out "$RESULTS" --log "$WORK/trigger.log" \
		--trace "$WORK/trace-$label-$i.txt" --hook-out "$WORK/hook-$label-$i.out" --api "$HOOK" --token "$API_TOKEN" -- \
		curl -sS --noproxy "'*'" -o "$WORK/hook-$label-$i.out" -X POST -H "'Content-Type: application/json'" \
		--data "@$hookfile" "$HOOK/hooks/dockerhub/\$HOOK_TOKEN" >&2 ||
		warn "$label run $i: new version not seen (see above)"
	dep=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deployments"][0])' "$WORK/hook-$label-$i.out" 2>/dev/null) || {
		warn "unexpected webhook answer: $(cat "$WORK/hook-$label-$i.out" 2>/dev/null)"
		return 0
	}
	say "deployment $dep $(python3 "$PROBE" deployment "$HOOK/api/deployments/$dep" "$API_TOKEN" 60 "$RESULTS" || true)"
}
# The trigger runs under bash -c in probe.py and names the token as
# $HOOK_TOKEN, so it stays out of the traces kept with BENCH_LOGS.
export HOOK_TOKEN

start_dockhook "$GRACE" "$WORK/dockhook.log"
head_line "dockhook: target/release/dockhook serve, log level info (default; RUST_LOG/DOCKHOOK_LOG unset), DOCKHOOK_STRATEGY unset (auto), no dockhook.* labels, DOCKHOOK_GRACE=$GRACE for A and B"
head_line "trigger:  curl -X POST -H 'Content-Type: application/json' --data @payload http://127.0.0.1:$HOOK_PORT/hooks/dockerhub/TOKEN   (Docker Hub payload, repo bench/site-startfirst or bench/site-stopfirst, tag latest)"
warm_up
IDLE_KIB=$(rss_kib)

# --- A: start-first behind a "proxy" on a user network ------------------------
docker network create --label "$LABEL_KEY=$ID" "$NET" >/dev/null
build_push "$IMAGE_A"
docker run -d --name "$SITE_A" --label "$LABEL_KEY=$ID" --network "$NET" --network-alias web "$IMAGE_A" >/dev/null
head_line "A site:   docker run -d --network $NET --network-alias web $IMAGE_A   (no published port)"
head_line "A probe:  container on $NET: loop { read /proc/uptime; timeout 1 wget -q -O- http://web:8080/ || FAIL; read /proc/uptime; sleep 0.05 }; ~50 ms + request time apart, name resolved each time; times to 10 ms; read with docker logs"
# Worth knowing when reading A's failures: a connection whose first SYN is
# lost is retried by TCP after 1 s, which this timeout counts as a FAIL.
head_line "          (timeout 1 s = TCP's first SYN retransmit: a request whose first SYN is lost counts as FAIL)"
for i in $(seq "$RUNS"); do
	prepare_next "$SITE_A" "$IMAGE_A"
	say "A start-first run $i: $(printf '%.12s' "${OLD_ID#sha256:}") -> $VERSION"
	probed_update startfirst "$i" "$WORK/hook-a.json" netrun --network "$NET" --image "$PROBE_IMAGE" \
		--name "$ID-probe-$i" --url http://web:8080/ --docker-label "$LABEL_KEY=$ID"
done

# --- B: stop-first, port published on the host --------------------------------
build_push "$IMAGE_B"
docker run -d --name "$SITE_B" --label "$LABEL_KEY=$ID" -p "127.0.0.1:$SITE_B_PORT:8080" "$IMAGE_B" >/dev/null
python3 "$PROBE" wait "http://127.0.0.1:$SITE_B_PORT/" 30 "$VERSION"
head_line "B site:   docker run -d -p 127.0.0.1:$SITE_B_PORT:8080 $IMAGE_B"
head_line "probe B/C: host, GET http://127.0.0.1:PORT/ every 50 ms on an absolute schedule, new connection each, 0.5 s timeout"
head_line "probing:  1 s baseline; A and B until the deployment is final and >= 2 s after the new version is first seen; C until 2 s after (120 s cap)"
for i in $(seq "$RUNS"); do
	prepare_next "$SITE_B" "$IMAGE_B"
	say "B stop-first run $i: $(printf '%.12s' "${OLD_ID#sha256:}") -> $VERSION"
	probed_update stopfirst "$i" "$WORK/hook-b.json" run --port "$SITE_B_PORT"
done
AFTER_UPDATES_KIB=$(rss_kib)
stop_dockhook
docker rm -f "$SITE_B" >/dev/null

# --- webhook load, while a start-first update runs ----------------------------
cat >"$WORK/webhook.lua" <<EOF
-- Authenticated Docker Hub webhooks for a tag no container runs: dockhook
-- answers each 200 "ignored". done() prints the figures as one JSON line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$(cat "$WORK/hook-unused.json")'

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"errors_total":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
EOF
WRK_CMD="wrk $WRK_ARGS -s webhook.lua http://127.0.0.1:$HOOK_PORT/hooks/dockerhub/TOKEN"
start_dockhook "$LOAD_GRACE" "$WORK/dockhook-load.log"
warm_up
LOAD_IDLE_KIB=$(rss_kib)
prepare_next "$SITE_A" "$IMAGE_A"
say "webhook load: $WRK_CMD, while $SITE_A updates to $VERSION"
lines_before=$(grep -c 'event ignored' "$WORK/dockhook-load.log" || true)
post "$WORK/hook-a.json" >"$WORK/hook-load.out"
wrk_start=$(date +%s.%N)
# shellcheck disable=SC2086 # WRK_ARGS is a list of options
wrk $WRK_ARGS -s "$WORK/webhook.lua" "$HOOK/hooks/dockerhub/$HOOK_TOKEN" >"$WORK/wrk.log" 2>&1 ||
	{ cat "$WORK/wrk.log" >&2; die "wrk failed"; }
wrk_end=$(date +%s.%N)
# Read at once, before dockhook has a moment to give memory back; VmHWM
# is the peak over the instance's life, so the load's peak too.
LOAD_END_KIB=$(rss_kib)
LOAD_HWM_KIB=$(hwm_kib)
sed -n '/Latency Distribution/,$p' "$WORK/wrk.log" | grep -v WRKJSON | sed 's/^/    /' >&2
dep=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deployments"][0])' "$WORK/hook-load.out" 2>/dev/null) ||
	die "the update before the load was not accepted: $(cat "$WORK/hook-load.out")"
state_at_end=$(curl -sS --noproxy '*' -H "Authorization: Bearer $API_TOKEN" "$HOOK/api/deployments/$dep" |
	python3 -c 'import json,sys; print(json.load(sys.stdin).get("state", "?"))')
# The log lines the load itself caused: ignored webhooks are logged at
# debug level, so none at the default level (one each before they were).
log_lines=$(($(grep -c 'event ignored' "$WORK/dockhook-load.log" || true) - lines_before))
python3 "$PROBE" load --out "$RESULTS" --wrk "$WORK/wrk.log" --command "$WRK_CMD" --start "$wrk_start" \
	--end "$wrk_end" --state-at-end "$state_at_end" --log-lines "$log_lines" >/dev/null
say "deployment $dep (state at load end: $state_at_end) $(python3 "$PROBE" deployment "$HOOK/api/deployments/$dep" "$API_TOKEN" 60 "$RESULTS" || true)"
head_line "load:     $WRK_CMD   (Lua: POST, Content-Type: application/json, Docker Hub payload for bench/site-startfirst:bench-unused, answered 200 ignored); started right after the webhook of a start-first update of $SITE_A; this dockhook has DOCKHOOK_GRACE=$LOAD_GRACE, log level info; wrk and dockhook share the $(nproc) cores"
stop_dockhook
# Counted above; keep only a sample of them, so the ~100 MiB of identical
# lines neither fill /tmp nor get copied to BENCH_LOGS.
awk '!/event ignored/ || n++ < 3' "$WORK/dockhook-load.log" >"$WORK/dockhook-load.tmp"
mv "$WORK/dockhook-load.tmp" "$WORK/dockhook-load.log"
printf '{"label":"memory","idle_kib":%s,"after_updates_kib":%s,"updates":"%s","load_idle_kib":%s,"load_end_kib":%s,"load_hwm_kib":%s}\n' \
	"$IDLE_KIB" "$AFTER_UPDATES_KIB" "$((2 * RUNS)) updates" "$LOAD_IDLE_KIB" "$LOAD_END_KIB" "$LOAD_HWM_KIB" >>"$RESULTS"

# --- C: the old way -------------------------------------------------------------
mkdir -p "$WORK/compose"
cat >"$WORK/compose/docker-compose.yml" <<EOF
version: "2.4"
services:
  site:
    image: $IMAGE_C
    container_name: $SITE_C
    labels:
      $LABEL_KEY: "$ID"
    ports:
      - "127.0.0.1:$SITE_C_PORT:8080"
EOF
export COMPOSE_PROJECT_NAME="$ID"
OLD_CMD="docker stop $SITE_C; docker rm $SITE_C; docker-compose pull site; docker-compose up -d site"
head_line "C:        $OLD_CMD   (in a compose v1 project dir, site published on 127.0.0.1:$SITE_C_PORT)"
# Same starting point as dockhook had: the current version runs, pulled.
build_push "$IMAGE_C"
(cd "$WORK/compose" && docker-compose up -d site) >>"$WORK/compose.log" 2>&1
python3 "$PROBE" wait "http://127.0.0.1:$SITE_C_PORT/" 30 "$VERSION"
for i in $(seq "$RUNS"); do
	prepare_next "$SITE_C" "$IMAGE_C"
	say "C old way run $i: $(printf '%.12s' "${OLD_ID#sha256:}") -> $VERSION"
	(cd "$WORK/compose" && python3 "$PROBE" run --port "$SITE_C_PORT" --new "$VERSION" --label oldway \
		--out "$RESULTS" --log "$WORK/trigger.log" --trace "$WORK/trace-oldway-$i.txt" -- "$OLD_CMD" >&2) ||
		warn "old way run $i: new version not seen (see above)"
	# The old way leaves the previous image behind; drop it (not timed) so
	# every run starts from the same state.
	docker rmi "$OLD_ID" >/dev/null 2>&1 || true
done

# --- report ---------------------------------------------------------------------
head_line "site:     FROM scratch busybox httpd + 30 MiB random padding, $(docker image inspect --format '{{.Size}}' "$IMAGE_C" 2>/dev/null || echo '?') bytes (.Size); each update pulls a new ~30 MiB layer from $REGISTRY"
dockerd_note="dockerd not restarted (pid $DOCKERD_PID)"
[ "$(dockerd_pid)" = "$DOCKERD_PID" ] || dockerd_note="dockerd RESTARTED during the run (pid $DOCKERD_PID -> $(dockerd_pid))"
head_line "noise:    $NOISE_START; load avg $(loadavg) at end; $dockerd_note; other engineers may use this machine"
head_line "wall:     $((SECONDS - START_SECONDS)) s"
echo
cat "$HEADER"
echo
python3 "$PROBE" table "$RESULTS" "$EXTRAS"
