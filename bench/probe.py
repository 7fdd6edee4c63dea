#!/usr/bin/env python3
"""Helpers for bench/core.sh, Python standard library only.

    probe.py freeport N
        N free TCP ports on 127.0.0.1, one per line.
    probe.py wait URL SECONDS [TEXT]
        Wait until URL answers 200 (and, with TEXT, a body containing it).
    probe.py run --port P --new TEXT --label L --out FILE --log FILE
                 [--trace FILE] -- CMD
        Probe http://127.0.0.1:P/ at 20 requests/s, run CMD (bash) as the
        update, and append one JSON line of figures to FILE (and, with
        --trace, every request relative to the update's start).
    probe.py deployment URL TOKEN SECONDS RESULTS
        Poll a dockhook deployment until it reaches a final state, and add
        the state, its created -> finished time and when each step began
        (dockhook's own clock) to the last line of RESULTS.
    probe.py table RESULTS EXTRAS
        Print the summary table.

Every time in `run` comes from one monotonic clock in one process, so the
update's start (t0) and what the probe sees cannot drift apart.
"""

import http.client
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime

INTERVAL = 0.05  # 20 requests/s
TIMEOUT = 0.5  # per request; a hung request must not look like a slow success
BASELINE = 1.0  # seconds of probing before the update, to prove the old one serves
SETTLE = 2.0  # keep probing this long after the new version is first seen
LIMIT = 120.0  # give up this long after the update started
FINAL = {"succeeded", "skipped", "failed", "rolled_back"}


def freeport(n):
    # Hold all sockets open until every port is chosen, so the N differ.
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    for s in socks:
        print(s.getsockname()[1])
        s.close()


def no_proxy_get(url, timeout):
    # Loopback only: never let an http_proxy in the environment intercept.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
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


def run(port, new, label, out, log, cmd, trace=None):
    new_b = new.encode()
    lock = threading.Lock()
    samples = []  # (sent, done, ok, is_new)

    def one(sent):
        ok, body = get(port)
        done = time.monotonic()
        with lock:
            samples.append((sent, done, ok, ok and body.strip() == new_b))

    trig = {}

    def trigger():
        trig["t0"] = time.monotonic()
        with open(log, "ab") as f:
            trig["proc"] = subprocess.Popen(
                ["bash", "-c", cmd], stdout=f, stderr=subprocess.STDOUT
            )
            trig["rc"] = trig["proc"].wait()
        trig["t1"] = time.monotonic()

    start = time.monotonic()
    threads = []
    trigger_thread = None
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
            trigger_thread = threading.Thread(target=trigger, daemon=True)
            trigger_thread.start()
        if trigger_thread is None or "t0" not in trig:
            continue
        with lock:
            first_new = min((d for _, d, _, n in samples if n), default=None)
        finished = not trigger_thread.is_alive()
        if first_new is not None and now - first_new >= SETTLE and finished:
            break
        if now - trig["t0"] >= LIMIT:
            timed_out = True
            if not finished:
                trig["proc"].kill()
            break
    for t in threads:
        t.join(TIMEOUT + 1)
    trigger_thread.join()
    end = time.monotonic()

    t0 = trig["t0"]
    with lock:
        s = sorted(samples, key=lambda x: x[1])
    ok_done = [d for _, d, ok, _ in s if ok]
    baseline_ok = any(ok and d < t0 for _, d, ok, _ in s)
    # Longest stretch with no successful answer; an outage still open at the
    # end counts up to the end of probing.
    marks = ok_done + [end]
    gap = max((b - a for a, b in zip(marks, marks[1:])), default=None)
    if not ok_done:
        gap = end - start
    first_new = min((d for _, d, _, n in s if n), default=None)
    result = {
        "label": label,
        "to_new_s": None if first_new is None else round(first_new - t0, 3),
        "max_gap_s": None if gap is None else round(gap, 3),
        "failed": sum(1 for x in s if not x[2]),
        "requests": len(s),
        "trigger_rc": trig.get("rc"),
        "trigger_s": round(trig["t1"] - t0, 3) if "t1" in trig else None,
        "baseline_ok": baseline_ok,
        "timed_out": timed_out,
    }
    with open(out, "a") as f:
        f.write(json.dumps(result) + "\n")
    if trace:
        # One line per request, relative to t0: sent, done, ok, new.
        with open(trace, "w") as f:
            f.write(f"# {label}: {cmd}\n# trigger ran {result['trigger_s']} s, rc {result['trigger_rc']}\n")
            for sent, done, ok, is_new in sorted(s):
                f.write(f"{sent - t0:8.3f} {done - t0:8.3f} {'ok  ' if ok else 'FAIL'} {'new' if is_new else ('old' if ok else '-')}\n")
    print(json.dumps(result))
    return 0 if first_new is not None and baseline_ok else 1


def parse_ts(text):
    # dockhook stores '%Y-%m-%dT%H:%M:%fZ' (UTC, milliseconds).
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def deployment(url, token, seconds, results):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + seconds
    d, took = {}, None
    while time.monotonic() < deadline:
        try:
            with opener.open(req, timeout=2) as r:
                d = json.load(r)
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
    last["finished_s"] = None if took is None else round(took, 3)
    last["steps"] = steps
    lines[-1] = json.dumps(last)
    with open(results, "w") as f:
        f.write("\n".join(lines) + "\n")
    timeline = ", ".join(f"{k} +{v:.2f}s" for k, v in sorted(steps.items(), key=lambda kv: kv[1]))
    print(state, "after", "?" if took is None else f"{took:.2f}s", f"({timeline})")
    return 0 if state == "succeeded" else 1


def table(results_path, extras_path):
    rows = [json.loads(l) for l in open(results_path) if l.strip()]
    extras = [l.rstrip("\n").split("\t") for l in open(extras_path) if l.strip()]
    lines = []

    def fmt(v, unit):
        if v is None:
            return "FAIL"
        return f"{v:.2f} {unit}" if unit == "s" else f"{v:g}"

    def stat_row(name, values, unit):
        good = [v for v in values if v is not None]
        runs = " ".join(fmt(v, unit).replace(" s", "") for v in values)
        if not good:
            return [name, "FAIL", "FAIL", runs]
        # A failed run makes the max meaningless: say so instead.
        mx = fmt(max(good), unit) if len(good) == len(values) else "FAIL"
        return [name, fmt(statistics.median(good), unit), mx, runs]

    for label, title in (("dockhook", "dockhook"), ("oldway", "old way (stop; rm; pull; up -d)")):
        rs = [r for r in rows if r["label"] == label]
        if not rs:
            continue
        start = "webhook POST" if label == "dockhook" else "first command"
        lines.append(stat_row(f"{title}: {start} -> new version serving",
                              [r["to_new_s"] for r in rs], "s"))
        lines.append(stat_row(f"{title}: longest gap between successes",
                              [r["max_gap_s"] for r in rs], "s"))
        lines.append(stat_row(f"{title}: failed requests (of ~{statistics.median(r['requests'] for r in rs):.0f})",
                              [r["failed"] for r in rs], "n"))
        if label == "dockhook":
            lines.append(stat_row(f"{title}: queued -> stop of old begins (pull while serving)",
                                  [r.get("steps", {}).get("stopping") for r in rs], "s"))
            took = [r.get("finished_s") for r in rs]
            states = sorted({r.get("state", "?") for r in rs})
            lines.append(stat_row(f"{title}: queued -> {'/'.join(states)} (incl. 5 s grace)",
                                  took, "s"))
    per_label = max([sum(1 for r in rows if r["label"] == l) for l in ("dockhook", "oldway")] + [0])
    header = [f"metric ({per_label} runs each)", "median", "max", "runs"]
    widths = [max(len(r[i]) for r in lines + [header]) for i in range(4)]
    w0 = max([widths[0]] + [len(n) for n, _ in extras])
    widths[0] = w0
    sep = "  "
    out = [sep.join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    out.append(sep.join("-" * w for w in widths))
    for r in lines:
        out.append(sep.join(c.ljust(w) if i in (0, 3) else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    # Single measurements: the value spans the remaining columns.
    out.append(sep.join("-" * w for w in widths))
    for name, value in extras:
        out.append(name.ljust(w0) + sep + value)
    print("\n".join(out))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "freeport":
        freeport(int(argv[2]))
        return 0
    if cmd == "wait":
        return wait(argv[2], float(argv[3]), argv[4] if len(argv) > 4 else None)
    if cmd == "deployment":
        return deployment(argv[2], argv[3], float(argv[4]), argv[5])
    if cmd == "table":
        table(argv[2], argv[3])
        return 0
    if cmd == "run":
        args, rest = argv[2:], []
        if "--" in args:
            k = args.index("--")
            args, rest = args[:k], args[k + 1:]
        opts = dict(zip(args[0::2], args[1::2]))
        return run(int(opts["--port"]), opts["--new"], opts["--label"],
                   opts["--out"], opts["--log"], " ".join(rest), opts.get("--trace"))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
