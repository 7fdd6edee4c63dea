# shellcheck shell=bash
# Shared by the bench scripts that run real dockhook against a real engine
# and registry: sourced, never run. It holds what they all do the same way:
# messages, tool checks, unique names, the throwaway registry on loopback,
# the release build, FROM scratch busybox images and removing everything a
# run labelled. The caller sets `set -Eeuo pipefail` and its own traps.
#
#   . "$(dirname "$0")/lib.sh"

die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
say() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
warn() { say "WARNING: $*"; }

# Fails before touching anything when a tool is missing: saying which beats
# a half-run that dies in the middle.
need_tools() {
	local missing=() tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	((${#missing[@]} == 0)) || die "missing: ${missing[*]} (.ci/run installs them)"
}

# The engine answers, and /bin/busybox can run in a FROM scratch image.
need_docker_and_static_busybox() {
	docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker engine does not answer"
	if ldd /bin/busybox >/dev/null 2>&1; then die "/bin/busybox is dynamically linked; install busybox-static"; fi
}

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# hook_token BIN SECRET SOURCE: the token in SOURCE's hook URL for the hook
# secret SECRET, as dockhook itself prints it (`check-config --show-token`).
hook_token() {
	local bin=$1 secret=$2 source=$3 token
	token=$(env -i PATH="$PATH" OWNER=bench DOCKHOOK_TOKEN="$secret" DOCKHOOK_DATA_DIR=/nonexistent \
		"$bin" check-config --show-token |
		sed -n "s#.*/hooks/$source/\([0-9a-f]\{64\}\)\$#\1#p")
	[[ -n $token ]] || die "$bin check-config --show-token printed no $source hook URL"
	printf '%s\n' "$token"
}

# N free loopback ports, one a line, all different.
free_ports() { python3 "$BENCH_DIR/probe.py" freeport "$1"; }

# Serves a throwaway Debian docker-registry on $1 (host:port), storing in
# directory $2; sets REG_PID. Stop it with stop_pid "$REG_PID".
start_registry() {
	local addr=$1 dir=$2
	mkdir -p "$dir/storage"
	cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: $addr
EOF
	/usr/bin/docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
	# shellcheck disable=SC2034 # for the caller
	REG_PID=$!
	python3 "$BENCH_DIR/probe.py" wait "http://$addr/v2/" 20 || { cat "$dir/registry.log" >&2; exit 1; }
}

# Sets BIN: $DOCKHOOK_BIN when given, else a fresh cargo build of profile
# $1 (release or debug; its log in $2) in the repository's own target
# directory, whatever the caller's CARGO_TARGET_DIR says.
build_dockhook() {
	local profile=$1 log=$2 flag=()
	if [ -n "${DOCKHOOK_BIN:-}" ]; then
		BIN=$(realpath "$DOCKHOOK_BIN")
	else
		say "cargo build ($profile)"
		[ "$profile" = release ] && flag=(--release)
		CARGO_TARGET_DIR="$BENCH_REPO/target" cargo build "${flag[@]}" >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
		BIN="$BENCH_REPO/target/$profile/dockhook"
	fi
	[ -x "$BIN" ] || die "$BIN is not an executable"
}

# Builds image $1 FROM scratch with busybox-static and its applets, in
# build directory $2, carrying label $3 (key=value); its ID is appended to
# file $4. The label comes first so the classic builder's cache only ever
# matches this run's own layers: an identical "COPY busybox" of someone
# else's image would otherwise become our parent. --network none: the RUN
# step needs none, and the default bridge may be missing on a shared engine.
build_busybox_base() {
	local tag=$1 dir=$2 label=$3 ids=$4
	mkdir -p "$dir"
	cp /bin/busybox "$dir/busybox"
	cat >"$dir/Dockerfile" <<EOF
FROM scratch
LABEL $label
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
EOF
	DOCKER_BUILDKIT=0 docker build --network none -q -t "$tag" "$dir" >>"$ids" 2>"$dir/build.log" ||
		{ cat "$dir/build.log" >&2; exit 1; }
}

# TERM, then KILL after 10 s; waits for it. A no-op for an empty pid.
stop_pid() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# Removes every container, network and image carrying label $1 (key=value),
# and the image IDs listed in file $2 (newest first, so children go before
# the parents they were built on). Containers from this run's images carry
# the label, including any dockhook parked or created mid-update.
remove_labelled() {
	local label=$1 ids=$2
	# Other people's test suites restart dockerd on this machine; wait for it
	# (bounded) rather than leave our containers behind.
	for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 1; done
	docker version >/dev/null 2>&1 || warn "Docker does not answer; left behind: whatever carries label $label"
	docker ps -aq --filter "label=$label" | xargs -r docker rm -f >/dev/null 2>&1
	docker network ls -q --filter "label=$label" | xargs -r docker network rm >/dev/null 2>&1
	[ -f "$ids" ] && tac "$ids" | xargs -r docker rmi -f >/dev/null 2>&1
	for _ in 1 2 3; do
		docker images -aq --filter "label=$label" | xargs -r docker rmi -f >/dev/null 2>&1
	done
	return 0
}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_REPO=$(dirname "$BENCH_DIR")
