#!/usr/bin/env bash
# The start-first switch by hand, with the docker CLI only: which order of
# Docker's steps loses requests, how many and of which kind. No dockhook:
# this is the experiment its start-first order is chosen from.
#
#   bench/switch-orders.sh                    # every order, 20 switches each
#   ORDERS="a b" SWITCHES=5 bench/switch-orders.sh
#   KEEP=DIR bench/switch-orders.sh           # keep probe logs and step marks
#   SLOW=1 bench/switch-orders.sh             # 0.3 s requests: some are in flight
#   WAIT=3 bench/switch-orders.sh             # a client that waits 3 s, not 1 s
#
# Two busybox httpd containers take turns behind the network alias `web` on
# a user-defined network; a probe container on that network requests
# http://web:8080/ about 20 times a second with `timeout 1 wget`, resolving
# the alias for every request as a reverse proxy would, and retries a failed
# request once at once (the figures give both: failed at the first try, and
# failed twice). Each switch: start the new container without the alias,
# wait until it serves, then the order's steps, then remove the old one.
#
# Orders (the new container gets the alias by disconnect + connect --alias,
# then both serve for SETTLE before the old one leaves):
#   a   today's: disconnect the old one from the network, then stop it
#   b   stop the old one while it is still on the network (Docker takes it
#       off when it has exited), then disconnect it
#   c   disconnect the old one and connect it again at once without the
#       alias (Docker's IPAM gives it back its address, the lowest free
#       one), let it serve what is in flight for 2 s, stop it
#   d   disconnect the old one, wait 2 s for in-flight requests, stop it
#   bd  as b, with a site that drains on SIGTERM (closes its listener at
#       once, lets in-flight requests finish, exits 0.3 s later)
#   ad  as a, with that draining site
#
# Failure kinds, from busybox wget: refused (RST: nothing listens on the
# address), timeout (killed by `timeout`: the address answers nothing, as
# when it has left the network), dns (the alias did not resolve), reset,
# other. Everything is removed on exit, even on failure or Ctrl-C.
set -Eeuo pipefail
trap 'printf "switch-orders: failed (status %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

ORDERS=${ORDERS:-"a b c d bd ad"}
SWITCHES=${SWITCHES:-20}
SETTLE=${SETTLE:-0.5}
SLOW=${SLOW:-0}
# With SLOW=1 each request takes 0.3 s (a CGI script), so a switch often
# finds one in flight.
if [ "$SLOW" = 1 ]; then URL_PATH=/cgi-bin/slow; else URL_PATH=/; fi
# How long the probe waits for a request. 1 s gives up exactly when TCP
# retransmits a lost SYN; a proxy's connect timeout is longer.
WAIT=${WAIT:-1}
# Late failures (a request that times out after the switch) still count.
TAIL=$((WAIT + 1))

die() { printf 'switch-orders: %s\n' "$*" >&2; exit 1; }
say() { printf '[switch-orders %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
command -v docker >/dev/null || die "missing: docker"
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || die "needs busybox-static (/bin/busybox, statically linked)"
docker version >/dev/null 2>&1 || die "the Docker engine does not answer"

ID="dso$$$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
LABEL="dockhook.bench.run=$ID"
NET="$ID-net"
IMG="dockhook-switch:$ID"
PROBE="$ID-probe"
WORK=$(mktemp -d /tmp/dockhook-switch.XXXXXX)

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM ERR
	docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f >/dev/null 2>&1
	docker network ls -q --filter "label=$LABEL" | xargs -r docker network rm >/dev/null 2>&1
	docker rmi "$IMG" >/dev/null 2>&1
	if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$WORK"/*.log "$WORK"/*.marks "$KEEP"/ 2>/dev/null; fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/image/www"
cp /bin/busybox "$WORK/image/busybox"
echo ok >"$WORK/image/www/index.html"
mkdir -p "$WORK/image/www/cgi-bin"
printf '#!/bin/sh\nsleep 0.3\nprintf "Content-Type: text/plain\\r\\n\\r\\nok\\n"\n' >"$WORK/image/www/cgi-bin/slow"
chmod +x "$WORK/image/www/cgi-bin/slow"
cat >"$WORK/image/Dockerfile" <<EOF
FROM scratch
LABEL $LABEL
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY www /www
EOF
# --network none: the RUN step needs no network, and the default bridge
# may be missing on a shared engine.
DOCKER_BUILDKIT=0 docker build --network none -q -t "$IMG" "$WORK/image" >/dev/null
docker network create --label "$LABEL" "$NET" >/dev/null

# The bench's site: sh as PID 1 exits on TERM, which kills httpd and any
# request it is serving.
SITE_PLAIN="trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"
# A site that drains: TERM closes the listener (httpd's parent exits), the
# forked children finish the requests in flight, then the container exits.
SITE_DRAIN="trap 'kill \$h; sleep 0.3; exit 0' TERM; httpd -f -p 8080 -h /www & h=\$!; wait"

# One line per request: sent, done (seconds since boot, as the host's
# /proc/uptime), exit status, wget's message; then the retry's, if any.
docker run -d --name "$PROBE" --label "$LABEL" --network "$NET" "$IMG" sh -c '
while :; do
	read a _ </proc/uptime
	m=$(timeout '"$WAIT"' wget -q -O /dev/null http://web:8080'"$URL_PATH"' 2>&1); r=$?
	read z _ </proc/uptime
	if [ $r = 0 ]; then echo "$a $z 0"; else
		m2=$(timeout '"$WAIT"' wget -q -O /dev/null http://web:8080'"$URL_PATH"' 2>&1); r2=$?
		echo "$a $z $r $m|$r2 $m2" | tr "\n" " "; echo
	fi
	sleep 0.05
done' >/dev/null

mark() { printf '%s %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*" >>"$MARKS"; }
serving() { # $1: container name; waits until it answers by its own name
	docker exec "$PROBE" sh -c "for i in \$(seq 100); do
		timeout 1 wget -q -O /dev/null http://$1:8080/ 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
}
site() { # $1: name, $2: command, then docker run options
	local name=$1 cmd=$2
	shift 2
	docker run -d --name "$name" --label "$LABEL" --network "$NET" "$@" "$IMG" sh -c "$cmd" >/dev/null
}
address() { docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
give_alias() {
	docker network disconnect "$NET" "$1"
	docker network connect --alias web "$NET" "$1"
}

for order in $ORDERS; do
	case $order in
	a | b | c | d) cmd=$SITE_PLAIN ;;
	ad | bd) cmd=$SITE_DRAIN ;;
	*) die "unknown order $order" ;;
	esac
	MARKS="$WORK/$order.marks"
	: >"$MARKS"
	old="$ID-$order-0"
	site "$old" "$cmd" --network-alias web
	serving "$old"
	say "order $order: $SWITCHES switches"
	for k in $(seq "$SWITCHES"); do
		new="$ID-$order-$k"
		site "$new" "$cmd"
		serving "$new"
		mark "switch $k begins; old at $(address "$old")"
		give_alias "$new"
		mark "alias given"
		sleep "$SETTLE"
		case $order in
		a | ad)
			mark "disconnect old"; docker network disconnect "$NET" "$old"
			mark "stop old"; docker stop "$old" >/dev/null
			;;
		b | bd)
			mark "stop old"; docker stop "$old" >/dev/null
			mark "disconnect old"; docker network disconnect "$NET" "$old"
			;;
		c)
			mark "disconnect old"; docker network disconnect "$NET" "$old"
			mark "reconnect old without alias"; docker network connect "$NET" "$old"
			mark "old back at $(address "$old")"
			sleep 2
			mark "stop old"; docker stop "$old" >/dev/null
			;;
		d)
			mark "disconnect old"; docker network disconnect "$NET" "$old"
			sleep 2
			mark "stop old"; docker stop "$old" >/dev/null
			;;
		esac
		mark "switch $k ends"
		sleep "$TAIL"
		docker rm -f "$old" >/dev/null
		old=$new
	done
	docker rm -f "$old" >/dev/null
done
docker logs "$PROBE" >"$WORK/probe.log" 2>&1
docker rm -f "$PROBE" >/dev/null

python3 - "$WORK" "$ORDERS" "$TAIL" <<'EOF'
import re, sys
from collections import Counter
work, orders, tail = sys.argv[1], sys.argv[2].split(), float(sys.argv[3])
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
    retry_rc = int(retry.split(" ", 1)[0]) if retry.strip() else 0
    reqs.append((sent, done, rc, first.strip(), retry_rc, retry.strip()))

def kind(rc, msg):
    if rc == 143: return "timeout"
    if "refused" in msg: return "refused"
    if "bad address" in msg: return "dns"
    if "reset" in msg: return "reset"
    if "unreachable" in msg or "No route" in msg: return "unreachable"
    return "other:" + msg[:40]

print(f"{'order':5} {'switches':>8} {'requests':>8} {'failed':>6} {'max/switch':>10} {'switches w/ failure':>19} {'failed after 1 retry':>20}  kinds (first try)")
for order in orders:
    marks = [l.split(" ", 1) for l in open(f"{work}/{order}.marks")]
    marks = [(float(t), e.strip()) for t, e in marks]
    spans = []
    for t, e in marks:
        if "begins" in e:
            spans.append([t, None, []])
        elif e.endswith("ends"):
            # Not later: the last switch's container is removed then.
            spans[-1][1] = t + tail - 0.5
        else:
            spans[-1][2].append((t, e))
    n = fails = twice = 0
    per = []
    kinds = Counter()
    for b, e, steps in spans:
        inside = [r for r in reqs if b <= r[0] <= e]
        n += len(inside)
        f = [r for r in inside if r[2] != 0]
        per.append(len(f))
        fails += len(f)
        twice += sum(1 for r in f if r[4] != 0)
        for r in f:
            k = kind(r[2], r[3])
            kinds[k] += 1
            # When, against the steps: which step it came after, and how long after.
            before = [s for s in steps if s[0] <= r[0]]
            at = f"{before[-1][1]} +{r[0] - before[-1][0]:.3f}s" if before else f"switch begins +{r[0] - b:.3f}s"
            print(f"  {order} switch {len(per)}: {k} sent {at}, done after {r[1] - r[0]:.2f}s ({r[3][:60]}), retry {'ok' if r[4] == 0 else 'FAILED ' + r[5][:60]}", file=sys.stderr)
    was = [e.rsplit(" ", 1)[1] for _, e in marks if "old at" in e]
    back = [e.rsplit(" ", 1)[1] for _, e in marks if e.startswith("old back at")]
    if back:
        kept = sum(1 for x, y in zip(was, back) if x == y)
        kinds[f"(old kept its address {kept}/{len(back)})"] = 0
    ks = ", ".join(f"{k} {v}" if v else k for k, v in kinds.most_common()) or "-"
    print(f"{order:5} {len(spans):8} {n:8} {fails:6} {max(per, default=0):10} {sum(1 for p in per if p):19} {twice:20}  {ks}")
EOF
