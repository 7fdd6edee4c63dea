#!/usr/bin/env python3
"""Helpers for bench/updates.sh, Python standard library only.

    probe.py freeport N
        N free TCP ports on 127.0.0.1, one per line.
    probe.py wait URL SECONDS [TEXT]
        Wait until URL answers 200 (and, with TEXT, a body containing it).
    probe.py run --port P --new TEXT --label L --out FILE --log FILE
                 [--trace FILE] [--hook-out FILE --api URL --token T] -- CMD
        Probe http://127.0.0.1:P/ from this host at 20 requests/s, run CMD
        (bash) as the update, and append one JSON line of figures to FILE
        (and, with --trace, every request relative to the update's start).
    probe.py netrun --network NET --image IMG --name NAME --url URL
                 --docker-label K=V --new TEXT --label L --out FILE --log FILE
                 [--trace FILE] [--hook-out FILE --api URL --token T] -- CMD
        The same, but the probe is a container on NET (a busybox loop that
        resolves the URL's host on every request, as a reverse proxy would);
        its log is read with `docker logs`.
    probe.py deployment URL TOKEN SECONDS RESULTS
        Poll a dockhook deployment until it reaches a final state, and add
        the state, the strategy it used, its created -> finished time and
        when each step began (dockhook's own clock) to the last line of
        RESULTS.
    probe.py load --out FILE --wrk WRK_OUTPUT --command CMD --start EPOCH
                  --end EPOCH --state-at-end STATE --log-lines N
        Append the wrk run as one record (from the JSON line its Lua
        done() printed); `deployment` then adds the concurrent update.
    probe.py table RESULTS EXTRAS
        Print the summary table with targets.

With --hook-out, CMD is a webhook POST whose answer lands in that file; the
probe then keeps going until the deployment it started is final, so a late
failure (in the grace period, or a rollback) is seen too, not only the
first moments of the new version.

Clocks: `run` takes every time from one monotonic clock in one process.
`netrun` uses CLOCK_BOOTTIME, which is what /proc/uptime shows inside the
probe container (containers share the host's kernel and Docker 20.10 uses
no time namespace), so the update's start and the container's request
times are on one clock, to 10 ms.
"""

import http.client
import json
import random
import re
import signal
import socket
import statistics
from collections import Counter
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

INTERVAL = 0.05  # 20 requests/s
TIMEOUT = 0.5  # per host request; a hung request must not look like a slow success
BASELINE = 1.0  # seconds of probing before the update, to prove the old one serves
SETTLE = 2.0  # keep probing this long after the new version is first seen
LIMIT = 120.0  # give up this long after the update started
FINAL = {"succeeded", "skipped", "failed", "rolled_back"}

# The in-network probe. `read < /proc/uptime` is a shell builtin, so the two
# timestamps cost no fork; `timeout 1` bounds the request because busybox
# wget's own -T segfaults in these FROM scratch images. One line per
# request: "<sent> <done> <body or FAIL>", in seconds since boot (10 ms).
NET_PROBE = (
    "while :; do read a _ </proc/uptime; "
    "b=$(timeout 1 wget -q -O- {url} 2>/dev/null) || b=FAIL; "
    'read z _ </proc/uptime; echo "$a $z $b"; sleep 0.05; done'
)


def boottime():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def freeport(n):
    # Outside the kernel's ephemeral range, so no outgoing connection (wrk's,
    # Docker's) is handed one of these ports before its server binds it; free
    # means a connection is refused. The same rule as the tests' free_port().
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low - 10000 >= 65535 - high and low > 10000:
        candidates = list(range(10000, low))
    else:
        candidates = list(range(high + 1, 65536))
    random.shuffle(candidates)
    chosen = []
    for port in candidates:
        if len(chosen) == n:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            chosen.append(port)
        except OSError:
            pass
    if len(chosen) < n:
        sys.exit(f"freeport: fewer than {n} free ports outside {low}-{high}")
    for port in chosen:
        print(port)


def no_proxy_get(url, timeout, headers=None):
    # Loopback only: never let an http_proxy in the environment intercept.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers=headers or {})
    with opener.open(req, timeout=timeout) as r:
        return r.status, r.read()


def wait(url, seconds, text=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            status, body = no_proxy_get(url, 1.0)
            if status == 200 and (text is None or text.encode() in body):
                return 0
        except Exception:
            pass
        time.sleep(0.1)
    print(f"timed out after {seconds}s waiting for {url}", file=sys.stderr)
    return 1


def get(port):
    """One probe request: (ok, body). A fresh connection each time, like a
    new visitor, so a kept-alive socket cannot hide a restart."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        r = conn.getresponse()
        body = r.read()
        return r.status == 200, body
    except Exception:
        return False, b""
    finally:
        conn.close()


def fetch_deployment(api, token, dep):
    try:
        _, body = no_proxy_get(f"{api}/api/deployments/{dep}", 2.0,
                               {"Authorization": f"Bearer {token}"})
        return json.loads(body)
    except Exception:
        return {}


def start_trigger(cmd, log, clock, hook=None):
    """Runs CMD in a thread; with hook=(answer file, api, token) the thread
    also waits until the deployment the webhook answered with is final.
    Returns (thread, dict with t0, t1, rc and, with hook, dep_state)."""
    trig = {}

    def body():
        trig["t0"] = clock()
        with open(log, "ab") as f:
            proc = subprocess.Popen(["bash", "-c", cmd], stdout=f, stderr=subprocess.STDOUT)
            trig["proc"] = proc
            trig["rc"] = proc.wait()
        trig["t1"] = clock()
        if hook is None:
            return
        answer_file, api, token = hook
        try:
            dep = json.load(open(answer_file))["deployments"][0]
        except Exception:
            dep, state = None, "no deployment in the webhook answer"
        while dep is not None:
            state = fetch_deployment(api, token, dep).get("state")
            if state in FINAL:
                break
            if clock() - trig["t0"] >= LIMIT:
                state = "not final in time"
                break
            time.sleep(0.2)
        trig["t_final"] = clock()
        trig["dep_state"] = state

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, trig


def figures(label, samples, t0, end, trig, timed_out, extra=None):
    """samples: (sent, done, ok, is_new), times on the clock t0 is on."""
    s = sorted(samples, key=lambda x: x[1])
    ok_done = [d for _, d, ok, _ in s if ok]
    baseline_ok = any(ok and d < t0 for _, d, ok, _ in s)
    # Longest stretch with no successful answer; an outage still open at the
    # end counts up to the end of probing.
    marks = ok_done + [end]
    gap = max((b - a for a, b in zip(marks, marks[1:])), default=None)
    if not ok_done:
        gap = end - (s[0][0] if s else end)
    run, fail_run = 0, 0
    for x in sorted(s):  # in the order sent
        run = 0 if x[2] else run + 1
        fail_run = max(fail_run, run)
    first_new = min((d for _, d, _, n in s if n), default=None)
    result = {
        "label": label,
        "to_new_s": None if first_new is None else round(first_new - t0, 3),
        "max_gap_s": None if gap is None else round(gap, 3),
        "failed": sum(1 for x in s if not x[2]),
        "fail_run": fail_run,
        "requests": len(s),
        "trigger_rc": trig.get("rc"),
        "trigger_s": round(trig["t1"] - t0, 3) if "t1" in trig else None,
        "baseline_ok": baseline_ok,
        "timed_out": timed_out,
    }
    if "dep_state" in trig:
        result["probed_until"] = trig["dep_state"]
    result.update(extra or {})
    return result


def write_trace(trace, label, cmd, result, samples, t0):
    # One line per request, relative to t0: sent, done, ok, new.
    with open(trace, "w") as f:
        f.write(f"# {label}: {cmd}\n# trigger ran {result['trigger_s']} s, rc {result['trigger_rc']}\n")
        for sent, done, ok, is_new in sorted(samples):
            f.write(f"{sent - t0:8.3f} {done - t0:8.3f} {'ok  ' if ok else 'FAIL'} "
                    f"{'new' if is_new else ('old' if ok else '-')}\n")


def emit(result, out):
    with open(out, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0 if result["to_new_s"] is not None and result["baseline_ok"] else 1


def done_probing(thread, trig, first_new, now):
    if thread.is_alive():
        return False
    if first_new is not None:
        return now - first_new >= SETTLE
    # Without the new version, stop only once a deployment is over without
    # it (rolled back, failed); commands may return before the new version
    # serves, so without a deployment wait for it, up to LIMIT.
    return trig.get("dep_state", "succeeded") != "succeeded" and now - trig["t_final"] >= SETTLE


def run(port, new, label, out, log, cmd, trace=None, hook=None):
    new_b = new.encode()
    lock = threading.Lock()
    samples = []  # (sent, done, ok, is_new)

    def one(sent):
        ok, body = get(port)
        done = time.monotonic()
        with lock:
            samples.append((sent, done, ok, ok and body.strip() == new_b))

    start = time.monotonic()
    threads = []
    trigger_thread, trig = None, {}
    i = 0
    timed_out = False
    while True:
        # Absolute schedule: a slow tick does not push every later one back.
        tick = start + i * INTERVAL
        now = time.monotonic()
        if tick > now:
            time.sleep(tick - now)
        t = threading.Thread(target=one, args=(time.monotonic(),), daemon=True)
        t.start()
        threads.append(t)
        i += 1
        now = time.monotonic()
        if trigger_thread is None and now - start >= BASELINE:
            trigger_thread, trig = start_trigger(cmd, log, time.monotonic, hook)
        if trigger_thread is None or "t0" not in trig:
            continue
        with lock:
            first_new = min((d for _, d, _, n in samples if n), default=None)
        if done_probing(trigger_thread, trig, first_new, now):
            break
        if now - trig["t0"] >= LIMIT:
            timed_out = True
            if "rc" not in trig and "proc" in trig:
                trig["proc"].kill()
            break
    for t in threads:
        t.join(TIMEOUT + 1)
    trigger_thread.join(5)
    end = time.monotonic()
    with lock:
        s = list(samples)
    result = figures(label, s, trig["t0"], end, trig, timed_out, {"probe": "host"})
    if trace:
        write_trace(trace, label, cmd, result, s, trig["t0"])
    return emit(result, out)


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def parse_net_log(text, new):
    """The probe container's lines as (sent, done, ok, is_new)."""
    samples = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 3:
            continue  # a line cut short by the kill
        try:
            sent, done = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        body = parts[2].strip()
        ok = body != "FAIL"
        samples.append((sent, done, ok, ok and body == new))
    return samples


def netrun(opts, cmd, hook=None):
    name, new, label = opts["--name"], opts["--new"], opts["--label"]
    docker("run", "-d", "--name", name, "--network", opts["--network"],
           "--label", opts["--docker-label"], opts["--image"],
           "sh", "-c", NET_PROBE.format(url=opts["--url"]))
    # Follow the log as it comes, to know when the new version is seen
    # without polling Docker; the figures come from a full `docker logs`
    # read after the probe is stopped.
    follow = subprocess.Popen(["docker", "logs", "-f", name], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    lock = threading.Lock()
    live = {"first_ok": None, "first_new": None}

    def reader():
        for line in follow.stdout:
            for sent, done, ok, is_new in parse_net_log(line, new):
                with lock:
                    if ok and live["first_ok"] is None:
                        live["first_ok"] = done
                    if is_new and live["first_new"] is None:
                        live["first_new"] = done

    threading.Thread(target=reader, daemon=True).start()
    try:
        # The probe must reach the site before the baseline starts.
        deadline = boottime() + 30
        while live["first_ok"] is None and boottime() < deadline:
            time.sleep(0.05)
        if live["first_ok"] is None:
            print(f"{name}: the probe never reached {opts['--url']}", file=sys.stderr)
            print(docker("logs", name, check=False).stdout[-2000:], file=sys.stderr)
            return 1
        base = boottime()
        time.sleep(BASELINE)
        trigger_thread, trig = start_trigger(cmd, opts["--log"], boottime, hook)
        while "t0" not in trig:
            time.sleep(0.01)
        timed_out = False
        while True:
            time.sleep(0.1)
            now = boottime()
            with lock:
                first_new = live["first_new"]
            if done_probing(trigger_thread, trig, first_new, now):
                break
            if now - trig["t0"] >= LIMIT:
                timed_out = True
                if "rc" not in trig and "proc" in trig:
                    trig["proc"].kill()
                break
        trigger_thread.join(5)
        docker("kill", name, check=False)
        text = docker("logs", name, check=False).stdout
    finally:
        follow.kill()
        docker("rm", "-f", name, check=False)
    # Only what was sent from the baseline on: DNS or start-up misses of
    # the probe itself before it first reached the site are not the update's.
    samples = [x for x in parse_net_log(text, new) if x[0] >= base - 0.01]
    end = max((d for _, d, _, _ in samples), default=boottime())
    result = figures(label, samples, trig["t0"], end, trig, timed_out,
                     {"probe": "container", "clock_resolution_s": 0.01})
    if opts.get("--trace"):
        write_trace(opts["--trace"], label, cmd, result, samples, trig["t0"])
    return emit(result, opts["--out"])


def parse_ts(text):
    # dockhook stores '%Y-%m-%dT%H:%M:%fZ' (UTC, milliseconds).
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def strategy_of(d):
    """Which strategy the deployment used: its final note says so
    ("start-first replaced container …"); else the order of its steps."""
    steps = d.get("steps", [])
    for step in steps:
        m = re.search(r"\b(start-first|stop-first) replaced", step.get("detail") or "")
        if m:
            return m.group(1)
    order = [s["state"] for s in steps]
    if "starting" in order and "stopping" in order:
        return "start-first" if order.index("starting") < order.index("stopping") else "stop-first"
    return "?"


def deployment(url, token, seconds, results):
    deadline = time.monotonic() + seconds
    d, took = {}, None
    while time.monotonic() < deadline:
        try:
            _, body = no_proxy_get(url, 2.0, {"Authorization": f"Bearer {token}"})
            d = json.loads(body)
        except Exception:
            d = {}
        if d.get("state") in FINAL:
            if d.get("created_at") and d.get("finished_at"):
                took = (parse_ts(d["finished_at"]) - parse_ts(d["created_at"])).total_seconds()
            break
        time.sleep(0.2)
    state = d.get("state", "unknown")
    if state != "succeeded":
        print(json.dumps(d), file=sys.stderr)
    # When each step began, from dockhook's own records, to tell the pull
    # (old container still serving) from the swap.
    steps = {}
    try:
        created = parse_ts(d["created_at"])
        for step in d.get("steps", []):
            steps.setdefault(step["state"], round((parse_ts(step["at"]) - created).total_seconds(), 3))
    except (KeyError, ValueError):
        pass
    lines = open(results).read().splitlines()
    last = json.loads(lines[-1])
    last["state"] = state
    last["created_at"] = d.get("created_at")
    last["strategy"] = strategy_of(d)
    last["finished_s"] = None if took is None else round(took, 3)
    last["steps"] = steps
    lines[-1] = json.dumps(last)
    with open(results, "w") as f:
        f.write("\n".join(lines) + "\n")
    timeline = ", ".join(f"{k} +{v:.2f}s" for k, v in sorted(steps.items(), key=lambda kv: kv[1]))
    print(state, last["strategy"], "after", "?" if took is None else f"{took:.2f}s", f"({timeline})")
    return 0 if state == "succeeded" else 1


def load(opts):
    """Appends the wrk run's figures (the JSON line its Lua done() printed)
    and what was seen around it as one record."""
    figures = None
    for line in open(opts["--wrk"]):
        if line.startswith("WRKJSON "):
            figures = json.loads(line[len("WRKJSON "):])
    if figures is None:
        print(f"{opts['--wrk']}: no WRKJSON line (did wrk run the Lua script?)", file=sys.stderr)
        return 1
    figures.update({
        "label": "load",
        "command": opts["--command"],
        "wrk_start_epoch": float(opts["--start"]),
        "wrk_end_epoch": float(opts["--end"]),
        "state_at_end": opts["--state-at-end"],
        "log_lines": int(opts["--log-lines"]),
    })
    with open(opts["--out"], "a") as f:
        f.write(json.dumps(figures) + "\n")
    print(json.dumps(figures))
    return 0


def load_timeline(rec):
    """The update's steps and the wrk window on one axis: seconds from the
    deployment's creation, both from this host's wall clock."""
    try:
        created = parse_ts(rec["created_at"]).replace(tzinfo=timezone.utc).timestamp()
    except (KeyError, TypeError, ValueError):
        return "?"
    marks = dict(rec.get("steps", {}))
    marks["[wrk starts]"] = round(rec["wrk_start_epoch"] - created, 3)
    marks["[wrk ends]"] = round(rec["wrk_end_epoch"] - created, 3)
    return ", ".join(f"{k} {v:+.1f}" for k, v in sorted(marks.items(), key=lambda kv: kv[1]))


# --- the table ----------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "FAIL"
    if unit == "s":
        return f"{v:.2f} s"
    return f"{v:g}"


def verdict(ok):
    return "PASS" if ok else "MISS"


def table(results_path, extras_path):
    recs = [json.loads(l) for l in open(results_path) if l.strip()]
    extras = [l.rstrip("\n").split("\t") for l in open(extras_path) if l.strip()]
    runs = {k: [r for r in recs if r.get("label") == k] for k in ("startfirst", "stopfirst", "oldway")}
    load = next((r for r in recs if r.get("label") == "load"), None)
    mem = next((r for r in recs if r.get("label") == "memory"), {})
    rows = []  # [metric, median, max, runs, target, result] or a section title

    def series(values, unit):
        good = [v for v in values if v is not None]
        each = " ".join(fmt(v, unit).replace(" s", "") for v in values)
        if not good:
            return None, "FAIL", "FAIL", each
        med = statistics.median(good)
        # A failed run makes the max meaningless: say so instead.
        mx = max(good) if len(good) == len(values) else None
        return med, fmt(med, unit), fmt(mx, unit), each

    def stat(name, rs, key, unit, target="", judge=None):
        # key: a field of the run's record, or a function of the record.
        values = [key(r) if callable(key) else r.get(key) for r in rs]
        med, m, x, each = series(values, unit)
        result = ""
        if judge is not None:
            complete = bool(values) and all(v is not None for v in values)
            result = verdict(complete and judge(med, values))
        rows.append([name, m, x, each, target, result])

    def median_of(key):
        good = [r[key] for r in runs["oldway"] if r.get(key) is not None]
        return statistics.median(good) if good else None

    old_to_new, old_done = median_of("to_new_s"), median_of("trigger_s")

    def outcome_row(rs, expect):
        got = [f"{r.get('state', '?')}/{r.get('strategy', '?')}" for r in rs]
        ok = all(g == f"succeeded/{expect}" for g in got)
        each = ", ".join(f"{n}x {g}" for g, n in Counter(got).items())
        rows.append(["deployment state/strategy (from its record)", "", "", each,
                     f"succeeded/{expect}", verdict(ok)])

    def vs_old(name, rs, key, old_value, what):
        if old_value is None:
            stat(name, rs, key, "s")
            return
        stat(name, rs, key, "s", f"<= C {what} {old_value:.2f} s", lambda med, _: med <= old_value)

    for key, title in (
        ("startfirst", "A. dockhook start-first: site on a user network, alias web, no host port; "
                       "probe = container on that network, wget http://web:8080/ every 50 ms"),
        ("stopfirst", "B. dockhook stop-first: site publishes 127.0.0.1:PORT:8080; "
                      "probe = host, GET every 50 ms (20/s)"),
        ("oldway", "C. old way: docker stop; docker rm; docker-compose pull; docker-compose up -d; "
                   "probe = host, 20/s"),
    ):
        rs = runs[key]
        if not rs:
            continue
        rows.append(title)
        n = statistics.median(r["requests"] for r in rs)
        if key == "oldway":
            stat("first command -> new version serving", rs, "to_new_s", "s")
            stat("first command -> last command returns", rs, "trigger_s", "s")
        else:
            vs_old("webhook POST -> new version serving", rs, "to_new_s", old_to_new, "serving")
            vs_old("webhook POST -> deployment final (incl. grace period)", rs, "finished_s",
                   old_done, "returns")
        if key == "startfirst":
            stat(f"failed requests (of ~{n:.0f})", rs, "failed", "n", "0",
                 lambda _, vs: max(vs) == 0)
        else:
            stat(f"failed requests (of ~{n:.0f})", rs, "failed", "n")
        stat("longest run of consecutive FAILs (requests)", rs, "fail_run", "n")
        if key == "stopfirst":
            stat("longest gap between successes", rs, "max_gap_s", "s", "<= 1 s (max)",
                 lambda _, vs: max(vs) <= 1.0)
        else:
            stat("longest gap between successes", rs, "max_gap_s", "s")
        if key == "startfirst":
            stat("queued -> new container starts (pull+create; old serves)", rs,
                 lambda r: r.get("steps", {}).get("starting"), "s")
            outcome_row(rs, "start-first")
        elif key == "stopfirst":
            stat("queued -> stop of old begins (pull+create; old serves)", rs,
                 lambda r: r.get("steps", {}).get("stopping"), "s")
            outcome_row(rs, "stop-first")

    def single(name, value, target="", result=""):
        rows.append([name, value, "", "", target, result])

    if load:
        rows.append(f"Webhook load: {load['command']}")
        rps = load["requests"] / (load["duration_us"] / 1e6)
        single("throughput (ignored Docker Hub webhooks, 200)", f"{rps:,.0f} req/s", ">= 5,000 req/s",
               verdict(rps >= 5000 and load["errors_total"] == 0))
        single("latency p99", f"{load['p99_us'] / 1000:.2f} ms", "<= 20 ms",
               verdict(load["p99_us"] <= 20000))
        single("latency p50 / p99.9 / max",
               f"{load['p50_us'] / 1000:.2f} / {load['p999_us'] / 1000:.2f} / {load['max_us'] / 1000:.2f} ms")
        single("requests; non-2xx; socket errors (conn/read/write/timeout)",
               f"{load['requests']:,}; {load['status']}; {load['connect']}/{load['read']}/{load['write']}/{load['timeout']}")
        single("dockhook log lines during the load ('event ignored', at the default level)", f"{load.get('log_lines', '?'):,}"
               if isinstance(load.get("log_lines"), int) else "?")
        single("start-first update during the load: state at load end -> final",
               f"{load.get('state_at_end', '?')} -> {load.get('state', '?')}/{load.get('strategy', '?')}",
               "succeeded", verdict(load.get("state") == "succeeded"))
        single("  its steps and the load, s from queued", load_timeline(load))
    if mem:
        rows.append("dockhook memory (VmRSS from /proc/PID/status)")
        idle = mem.get("idle_kib")
        if idle is not None:
            single("idle RSS (after start-up + 15 requests)", f"{idle / 1024:.2f} MiB ({idle * 1024 / 1e6:.2f} MB)",
                   "<= 15 MB", verdict(idle * 1024 <= 15_000_000))
        for key, name in (("after_updates_kib", f"RSS after the A and B updates ({mem.get('updates', '?')})"),
                          ("load_idle_kib", "RSS of the load instance before the load"),
                          ("load_end_kib", "RSS at the end of the wrk load"),
                          ("load_hwm_kib", "peak RSS of the load instance (VmHWM)")):
            if mem.get(key) is not None:
                single(name, f"{mem[key] / 1024:.2f} MiB")
    if extras:
        rows.append("Sizes")
        for name, value in extras:
            single(name, value)

    header = [f"metric ({max([len(v) for v in runs.values()] + [0])} runs each)", "median", "max", "runs", "target", ""]
    table_rows = [r for r in rows if isinstance(r, list)]
    # Column widths come from the per-run rows; a single measurement's
    # value may spill over max and runs, and its name over nothing.
    multi = [r for r in table_rows if r[2] or r[3]] + [header]
    widths = [max(len(r[i]) for r in multi) for i in range(6)]
    widths[0] = max([widths[0]] + [len(r[0]) + 2 for r in table_rows])
    widths[4] = max(len(r[4]) for r in table_rows + [header])
    sep = "  "
    span = widths[1] + widths[2] + widths[3] + 2 * len(sep)
    rule = sep.join("-" * w for w in widths)
    out = [sep.join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), rule]
    for r in rows:
        if isinstance(r, str):
            if len(out) > 2:
                out.append(rule)
            out.append(r)
            continue
        name = ("  " + r[0]).ljust(widths[0]) + sep
        if not (r[2] or r[3]):
            out.append((name + r[1].ljust(span) + sep + r[4].ljust(widths[4]) + sep + r[5]).rstrip())
            continue
        out.append((name + sep.join([r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3].ljust(widths[3]),
                                     r[4].ljust(widths[4]), r[5]])).rstrip())
    out.append(rule)
    out.append("PASS/MISS: failures and gaps are judged on the worst run, times on the median.")
    print("\n".join(out))


def options(args):
    """--key value pairs before `--`, and the command after it."""
    rest = []
    if "--" in args:
        k = args.index("--")
        args, rest = args[:k], args[k + 1:]
    opts = dict(zip(args[0::2], args[1::2]))
    hook = None
    if "--hook-out" in opts:
        hook = (opts["--hook-out"], opts["--api"], opts["--token"])
    return opts, " ".join(rest), hook


def main(argv):
    # Killed by the script's clean-up: still run the `finally` that removes
    # the probe container.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "freeport":
        freeport(int(argv[2]))
        return 0
    if cmd == "wait":
        return wait(argv[2], float(argv[3]), argv[4] if len(argv) > 4 else None)
    if cmd == "deployment":
        return deployment(argv[2], argv[3], float(argv[4]), argv[5])
    if cmd == "load":
        return load(options(argv[2:])[0])
    if cmd == "table":
        table(argv[2], argv[3])
        return 0
    if cmd == "run":
        opts, command, hook = options(argv[2:])
        return run(int(opts["--port"]), opts["--new"], opts["--label"],
                   opts["--out"], opts["--log"], command, opts.get("--trace"), hook)
    if cmd == "netrun":
        opts, command, hook = options(argv[2:])
        return netrun(opts, command, hook)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:  # Ctrl-C: the script cleans up; no traceback
        sys.exit(130)
