#!/usr/bin/env bash
# Webhook throughput and tail latency: dockhook (the release binary, default
# log level) answering authenticated Docker Hub webhooks that change nothing
# (a push of an image no container runs: 200 "ignored"), side by side with
# nginx answering a fixed 200 to the same POST, with the same wrk settings,
# on the same machine, in the same run, alternating. Prints requests/s and
# p99 of each round, the medians, and dockhook's share of nginx's
# throughput, against the targets (>= 0.6 of nginx, p99 < 5 ms).
#
#   bench/webhooks.sh                     # 3 rounds of 10 s each per server
#   ROUNDS=5 DURATION=20s bench/webhooks.sh
#   CONNECTIONS=64 THREADS=2 bench/webhooks.sh
#   DOCKHOOK_BIN=target/release/dockhook bench/webhooks.sh   # skip the build
#   BENCH_LOGS=DIR bench/webhooks.sh      # keep wrk output and both logs
#
# Needs a Docker engine (dockhook looks its running containers up), cargo,
# wrk, nginx (Debian's nginx-light or nginx), curl and python3. Nothing is
# left behind: both servers and the temporary directory go on exit.
set -Eeuo pipefail
trap 'printf "bench: failed (status %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2s}
WRK_ARGS=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/wrk-post.lua)
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}


missing=()
for tool in cargo wrk curl python3 docker "$NGINX"; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (apt-get install wrk nginx-light curl python3)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker engine does not answer"

WORK=$(mktemp -d /tmp/dockhook-bench-webhooks.XXXXXX)
HOOK_PID=""
NGINX_PID=""
cleanup() {
	local status=$?
	for pid in $HOOK_PID $NGINX_PID; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $HOOK_PID $NGINX_PID; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n "${BENCH_LOGS:-}" ]]; then
		mkdir -p "$BENCH_LOGS"
		cp "$WORK"/*.log "$WORK"/*.json "$BENCH_LOGS"/ 2>/dev/null || true
	fi
	rm -rf "$WORK"
	exit "$status"
}
trap cleanup EXIT INT TERM

wait_http() { # URL: until anything answers, 10 s at most
	for _ in $(seq 100); do
		curl -s -o /dev/null --noproxy '*' "$1" && return 0
		sleep 0.1
	done
	die "$1 did not answer"
}

# --- dockhook ---------------------------------------------------------------
if [[ -z "${DOCKHOOK_BIN:-}" ]]; then
	say "cargo build --release"
	cargo build --release --locked >"$WORK/cargo.log" 2>&1 || { tail -30 "$WORK/cargo.log" >&2; exit 1; }
	DOCKHOOK_BIN=target/release/dockhook
fi
[[ -x "$DOCKHOOK_BIN" ]] || die "$DOCKHOOK_BIN is not an executable"
TOKEN="bench$(head -c24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
HOOK_TOKEN=$(hook_token "$DOCKHOOK_BIN" "$TOKEN" dockerhub)
HOOK_PORT=$(free_ports 1)
# The default log level: no DOCKHOOK_LOG, no RUST_LOG.
env -u RUST_LOG -u DOCKHOOK_LOG -u DOCKHOOK_LOG_FORMAT \
	DOCKHOOK_LISTEN="127.0.0.1:$HOOK_PORT" DOCKHOOK_TOKEN="$TOKEN" OWNER=bench \
	DOCKHOOK_DATA_DIR="$WORK/data" NO_COLOR=1 \
	"$DOCKHOOK_BIN" serve >"$WORK/dockhook.log" 2>&1 &
HOOK_PID=$!
HOOK_URL="http://127.0.0.1:$HOOK_PORT/hooks/dockerhub/$HOOK_TOKEN"
wait_http "http://127.0.0.1:$HOOK_PORT/healthz"

cat >"$WORK/body.json" <<EOF
{"callback_url":"https://registry.hub.docker.com/u/bench/nothing-runs-this/hook/1/",
 "push_data":{"pushed_at":1700000000,"pusher":"bench","tag":"latest"},
 "repository":{"name":"nothing-runs-this","namespace":"bench","owner":"bench",
  "repo_name":"bench/nothing-runs-this","repo_url":"https://hub.docker.com/r/bench/nothing-runs-this",
  "status":"Active","is_private":false}}
EOF
answer=$(curl -sS --noproxy '*' -H 'Content-Type: application/json' --data-binary @"$WORK/body.json" \
	-w ' %{http_code}' "$HOOK_URL")
[[ "$answer" == *'"status":"ignored"'*' 200' ]] || die "dockhook did not answer 200 ignored: $answer"
say "dockhook $("$DOCKHOOK_BIN" --version | awk '{print $2}') on :$HOOK_PORT answers: $answer"

# --- nginx: a fixed 200 -----------------------------------------------------
NGINX_PORT=$(free_ports 1)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/body;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            default_type application/json;
            return 200 '{"status":"ignored"}';
        }
    }
}
EOF
"$NGINX" -e "$WORK/nginx-error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" >"$WORK/nginx.log" 2>&1 &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT/hooks/dockerhub/$HOOK_TOKEN"
wait_http "$NGINX_URL"
say "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') on :$NGINX_PORT (worker_processes auto, access_log off)"

# --- the rounds ---------------------------------------------------------------
export WRK_BODY_FILE="$WORK/body.json"
run_wrk() { # NAME URL ROUND
	local out="$WORK/wrk-$1-$3.log"
	wrk "${WRK_ARGS[@]}" "$2" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
	grep '^WRKJSON ' "$out" | sed "s/^WRKJSON {/{\"server\":\"$1\",\"round\":$3,/" >>"$WORK/results.json"
}
say "warm-up: $WARMUP each"
for target in "$HOOK_URL" "$NGINX_URL"; do
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s bench/wrk-post.lua "$target" >/dev/null 2>&1
done
log_before=$(stat -c %s "$WORK/dockhook.log")
WRK_CMD="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency -s bench/wrk-post.lua URL"
for round in $(seq "$ROUNDS"); do
	say "round $round/$ROUNDS: $WRK_CMD, dockhook then nginx"
	run_wrk dockhook "$HOOK_URL" "$round"
	run_wrk nginx "$NGINX_URL" "$round"
done
log_bytes=$(($(stat -c %s "$WORK/dockhook.log") - log_before))

python3 - "$WORK/results.json" "$log_bytes" "$WRK_CMD" "$(nproc)" <<'EOF'
import json, statistics, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
log_bytes, command, cores = int(sys.argv[2]), sys.argv[3], sys.argv[4]

def rps(r):
    return r["requests"] / (r["duration_us"] / 1e6)

print(f"webhook load: {command}")
print(f"  POST of a Docker Hub payload for an image no container runs (dockhook: 200 ignored;")
print(f"  nginx: return 200), both on 127.0.0.1, wrk on the same {cores} cores")
print()
print("| round | server | requests/s | p50 ms | p99 ms | max ms | non-2xx | socket errors |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['round']} | {r['server']} | {rps(r):,.0f} | {r['p50_us']/1000:.2f} | "
          f"{r['p99_us']/1000:.2f} | {r['max_us']/1000:.1f} | {r['errors_status']} | {r['errors_other']} |")
med = {}
for server in ("dockhook", "nginx"):
    mine = [r for r in rows if r["server"] == server]
    med[server] = (statistics.median(rps(r) for r in mine),
                   statistics.median(r["p99_us"] / 1000 for r in mine))
ratio = med["dockhook"][0] / med["nginx"][0]
p99 = med["dockhook"][1]
errors = sum(r["errors_status"] + r["errors_other"] for r in rows if r["server"] == "dockhook")
print()
print(f"median dockhook: {med['dockhook'][0]:,.0f} requests/s, p99 {p99:.2f} ms")
print(f"median nginx:    {med['nginx'][0]:,.0f} requests/s, p99 {med['nginx'][1]:.2f} ms")
print(f"ratio dockhook/nginx: {ratio:.2f}   target >= 0.60: {'met' if ratio >= 0.6 else 'MISSED'}")
print(f"dockhook p99 {p99:.2f} ms   target < 5 ms: {'met' if p99 < 5 else 'MISSED'}")
print(f"dockhook errors: {errors}; log written during the rounds: {log_bytes} bytes")
EOF
