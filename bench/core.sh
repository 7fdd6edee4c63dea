#!/usr/bin/env bash
# Core benchmark: how fast and how smoothly dockhook replaces a container,
# against the old way (docker stop; rm; compose pull; up -d), on this machine.
#
#   bench/core.sh            # RUNS=3 by default; progress on stderr,
#                            # header + table on stdout
#   BENCH_LOGS=DIR bench/core.sh   # also keep logs and per-request traces
#
# Everything is local: a throwaway registry (Debian's docker-registry) on
# 127.0.0.1, a FROM scratch busybox site with 30 MiB of random padding, so
# every update really pulls ~30 MiB, and bench/probe.py hitting the site at
# 20 requests/s while the update happens. All containers, images, the
# registry and temp files are removed on exit, even on failure or Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
PROBE="$REPO/bench/probe.py"
RUNS=${RUNS:-3}

# Unique per invocation, so parallel runs or other people's containers and
# images on the same engine are never touched.
ID="dhb$$$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK=$(mktemp -d "/tmp/dockhook-bench.XXXXXX")
LABEL_KEY=dockhook.bench.run
HOOK_SITE="$ID-site-hook"
OLD_SITE="$ID-site-compose"
DOCKHOOK_IMAGE="dockhook-bench:$ID"
RESULTS="$WORK/results.jsonl"
EXTRAS="$WORK/extras.tsv"
HEADER="$WORK/header.txt"
: >"$RESULTS" >"$EXTRAS" >"$HEADER" >"$WORK/images"
REG_PID=""
HOOK_PID=""

say() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
warn() { say "WARNING: $*"; }
extra() { printf '%s\t%s\n' "$1" "$2" >>"$EXTRAS"; }
head_line() { printf '%s\n' "$*" >>"$HEADER"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB (%d bytes)", b / 1048576, b }'; }

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
	trap - EXIT INT TERM
	say "cleaning up"
	stop_dockhook
	if [ -f "$WORK/compose/docker-compose.yml" ]; then
		(cd "$WORK/compose" && docker-compose down --remove-orphans) >/dev/null 2>&1
	fi
	# Every container from the site image carries the run's label, including
	# any that dockhook parked or created mid-update if we were interrupted.
	docker ps -aq --filter "label=$LABEL_KEY=$ID" | xargs -r docker rm -f >/dev/null 2>&1
	docker rm -f "$HOOK_SITE" "$OLD_SITE" >/dev/null 2>&1
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
		cp "$WORK"/*.log "$WORK"/*.jsonl "$WORK"/trace-* "$WORK"/*.tsv "$BENCH_LOGS"/ 2>/dev/null
		say "logs and traces kept in $BENCH_LOGS"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t PORTS < <(python3 "$PROBE" freeport 4)
REG_PORT=${PORTS[0]} HOOK_PORT=${PORTS[1]} HOOK_SITE_PORT=${PORTS[2]} OLD_SITE_PORT=${PORTS[3]}
REGISTRY="127.0.0.1:$REG_PORT"
IMAGE="$REGISTRY/bench/site:latest"

# --- versions -----------------------------------------------------------------
head_line "dockhook core bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' (src modified)')"
head_line "command:  bench/core.sh   (RUNS=$RUNS)"
head_line "host:     $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(docker info --format '{{.Driver}}' 2>/dev/null) storage"
head_line "versions: docker server $(docker version --format '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), $(/usr/bin/docker-registry --version | awk '{print "docker-registry", $NF}'), $(busybox | head -1 | awk '{print "busybox", $2}'), $(rustc --version | awk '{print "rustc", $2}'), $(python3 --version)"

# --- local registry -----------------------------------------------------------
mkdir -p "$WORK/registry"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: $REGISTRY
EOF
/usr/bin/docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
python3 "$PROBE" wait "http://$REGISTRY/v2/" 20 || { cat "$WORK/registry.log" >&2; exit 1; }
say "registry on $REGISTRY"

# --- builds -------------------------------------------------------------------
say "cargo build --release"
t=$SECONDS
cargo build --release >"$WORK/cargo.log" 2>&1 || { tail -30 "$WORK/cargo.log" >&2; exit 1; }
build_note="cargo build --release ($((SECONDS - t)) s)"
BIN="$REPO/target/release/dockhook"
extra "release binary size (target/release/dockhook)" "$(mib "$(stat -c %s "$BIN")")"

if [ -f "$REPO/Dockerfile" ]; then
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

# --- the site image -----------------------------------------------------------
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

VERSION_N=0
# Builds and pushes the next version; sets NEW_ID and VERSION.
build_push() {
	VERSION_N=$((VERSION_N + 1))
	VERSION="dockhook-bench $ID v$VERSION_N"
	printf '%s\n' "$VERSION" >"$SITE/www/index.html"
	# Fresh random bytes: the layer changes and cannot be compressed away.
	head -c 30M /dev/urandom >"$SITE/pad"
	NEW_ID=$(DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$SITE" 2>>"$WORK/build.log") ||
		{ cat "$WORK/build.log" >&2; exit 1; }
	echo "$NEW_ID" >>"$WORK/images"
	docker push "$IMAGE" >>"$WORK/push.log" 2>&1
}

# Gets the next version into the registry but not onto this host, so the
# update under test has to pull it, while NAME keeps running the old one.
prepare_next() {
	local name=$1 old_id
	old_id=$(docker inspect --format '{{.Image}}' "$name")
	build_push
	docker rmi "$NEW_ID" >/dev/null
	if docker image inspect "$IMAGE" >/dev/null 2>&1; then
		say "$IMAGE still exists locally after docker rmi"; exit 1
	fi
	if [ "$(docker inspect --format '{{.Image}}' "$name")" != "$old_id" ]; then
		say "$name no longer runs its old image"; exit 1
	fi
	OLD_ID=$old_id
}

build_push
head_line "site:     $IMAGE, FROM scratch busybox httpd + 30 MiB random padding, $(docker image inspect --format '{{.Size}}' "$IMAGE") bytes (.Size); each update pulls a new ~30 MiB layer from $REGISTRY"
head_line "probe:    GET http://127.0.0.1:PORT/ every 50 ms, new connection each, 0.5 s timeout; 1 s baseline, stops 2 s after the new version is first seen (120 s cap)"

# --- dockhook -----------------------------------------------------------------
TOKEN=$(head -c16 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$WORK/dockhook-data"
cat >"$WORK/hook.json" <<'EOF'
{"repository":{"repo_name":"bench/site","namespace":"bench","name":"site"},"push_data":{"tag":"latest","pusher":"bench","pushed_at":1700000000}}
EOF
env DOCKHOOK_LISTEN="127.0.0.1:$HOOK_PORT" DOCKHOOK_TOKEN="$TOKEN" OWNER=bench \
	DOCKHOOK_DOCKERHUB_REGISTRY="$REGISTRY" DOCKHOOK_DATA_DIR="$WORK/dockhook-data" \
	DOCKHOOK_GRACE=5s "$BIN" serve 2>"$WORK/dockhook.log" &
HOOK_PID=$!
for _ in $(seq 300); do
	grep -q 'listening on' "$WORK/dockhook.log" && break
	kill -0 "$HOOK_PID" 2>/dev/null || { cat "$WORK/dockhook.log" >&2; exit 1; }
	sleep 0.1
done
grep -q 'listening on' "$WORK/dockhook.log" || { say "dockhook did not start"; cat "$WORK/dockhook.log" >&2; exit 1; }
say "dockhook on 127.0.0.1:$HOOK_PORT (pid $HOOK_PID)"
head_line "dockhook: target/release/dockhook serve, DOCKHOOK_GRACE=5s; trigger: curl -X POST http://127.0.0.1:$HOOK_PORT/hooks/dockerhub/TOKEN (Docker Hub payload)"

hook_api() { curl -sS --noproxy '*' -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HOOK_PORT$1"; }
for _ in 1 2 3 4 5; do
	curl -sS --noproxy '*' -o /dev/null "http://127.0.0.1:$HOOK_PORT/healthz"
	hook_api /api/deployments
done
sleep 1
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$HOOK_PID/status"; }
extra "dockhook idle RSS (VmRSS, after start-up + 10 requests)" "$(mib $(($(rss_kib) * 1024)))"

docker run -d --name "$HOOK_SITE" -p "127.0.0.1:$HOOK_SITE_PORT:8080" "$IMAGE" >/dev/null
python3 "$PROBE" wait "http://127.0.0.1:$HOOK_SITE_PORT/" 30 "$VERSION"

for i in $(seq "$RUNS"); do
	prepare_next "$HOOK_SITE"
	say "dockhook run $i: $(printf '%.12s' "${OLD_ID#sha256:}") -> $VERSION"
	python3 "$PROBE" run --port "$HOOK_SITE_PORT" --new "$VERSION" --label dockhook \
		--out "$RESULTS" --log "$WORK/trigger.log" --trace "$WORK/trace-dockhook-$i.txt" -- \
		curl -sS --noproxy "'*'" -o "$WORK/hook-$i.out" -X POST -H "'Content-Type: application/json'" \
		--data "@$WORK/hook.json" "http://127.0.0.1:$HOOK_PORT/hooks/dockerhub/$TOKEN" >&2 ||
		warn "dockhook run $i: new version not seen (see above)"
	dep=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deployments"][0])' "$WORK/hook-$i.out" 2>/dev/null) || {
		warn "unexpected webhook answer: $(cat "$WORK/hook-$i.out" 2>/dev/null)"
		dep=""
	}
	# Wait for the grace period and clean-up, so runs never overlap.
	if [ -n "$dep" ]; then
		say "deployment $dep $(python3 "$PROBE" deployment "http://127.0.0.1:$HOOK_PORT/api/deployments/$dep" "$TOKEN" 60 "$RESULTS" || true)"
	fi
done
extra "dockhook RSS after the $RUNS updates" "$(mib $(($(rss_kib) * 1024)))"
stop_dockhook
docker rm -f "$HOOK_SITE" >/dev/null

# --- the old way ----------------------------------------------------------------
mkdir -p "$WORK/compose"
cat >"$WORK/compose/docker-compose.yml" <<EOF
version: "2.4"
services:
  site:
    image: $IMAGE
    container_name: $OLD_SITE
    ports:
      - "127.0.0.1:$OLD_SITE_PORT:8080"
EOF
export COMPOSE_PROJECT_NAME="$ID"
OLD_CMD="docker stop $OLD_SITE; docker rm $OLD_SITE; docker-compose pull site; docker-compose up -d site"
head_line "old way:  $OLD_CMD   (in a compose v1 project dir)"
# Same starting point as dockhook had: the current version runs, pulled.
(cd "$WORK/compose" && docker-compose up -d site) >>"$WORK/compose.log" 2>&1
python3 "$PROBE" wait "http://127.0.0.1:$OLD_SITE_PORT/" 30 "$VERSION"

for i in $(seq "$RUNS"); do
	prepare_next "$OLD_SITE"
	say "old way run $i: $(printf '%.12s' "${OLD_ID#sha256:}") -> $VERSION"
	(cd "$WORK/compose" && python3 "$PROBE" run --port "$OLD_SITE_PORT" --new "$VERSION" --label oldway \
		--out "$RESULTS" --log "$WORK/trigger.log" --trace "$WORK/trace-oldway-$i.txt" -- "$OLD_CMD" >&2) ||
		warn "old way run $i: new version not seen (see above)"
	# The old way leaves the previous image behind; drop it (not timed) so
	# every run starts from the same state.
	docker rmi "$OLD_ID" >/dev/null 2>&1 || true
done

# --- report ---------------------------------------------------------------------
echo
cat "$HEADER"
echo
python3 "$PROBE" table "$RESULTS" "$EXTRAS"
