#!/usr/bin/env python3
"""The load, the sampler and the checks of bench/soak.sh (standard library only).

    soak_load.py run   ...   # until the stop file exists: load + one CSV row per interval
    soak_load.py drain ...   # waits until every deployment in the history is final
    soak_load.py check ...   # the checks and the summary; exit status 1 if one failed

`run` keeps four kinds of clients going against one dockhook, which
bench/soak.sh kills and restarts meanwhile (its pid is re-read from a file
for every sample):

  probe    a steady client: an authenticated Docker Hub webhook for an image
           no container runs (answered 200 "ignored"), on a fresh connection
           each time, as senders do. Its latencies are the CSV's p50/p99.
  ignored  a flood of the same webhook on kept-alive connections.
  hostile  wrong token, bad or missing signature, malformed JSON, an
           oversized body, a foreign owner, hostile image names, a wrong
           API bearer: none may be accepted.
  api      GET /api/deployments, /api/targets, /metrics with the bearer.

Each answer is counted by kind and status ("down" when dockhook was not
listening: the kill -9 windows). Every interval the sampler writes RSS and
open fds of the dockhook process (/proc), the SQLite files' sizes in its
data dir, and the probe's p50/p99 of that interval.
"""

import argparse
import collections
import csv
import hashlib
import hmac
import http.client
import json
import os
import select
import socket
import sqlite3
import statistics
import sys
import threading
import time
import urllib.request

FINAL = {"succeeded", "skipped", "failed", "rolled_back", "rollback_failed", "available", "rejected"}
TIMEOUT = 10.0


class Counts:
    """Answers by (kind, status), and the probe's latencies of the interval."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by = collections.Counter()
        self.probe = []
        self.slowest = collections.defaultdict(float)
        # When each request that got no proper answer failed: the check
        # forgives those cut off by a kill -9, and only those.
        self.errors = []

    def add(self, kind, status, seconds=None, sent=None):
        with self.lock:
            self.by[(kind, str(status))] += 1
            if status in ("reset", "timeout") or str(status).startswith("5"):
                self.errors.append([round(time.time(), 2), kind, str(status)])
            if seconds is not None and status != "down":
                self.slowest[kind] = max(self.slowest[kind], seconds)
            if kind == "probe" and status == 200:
                self.probe.append((sent, seconds))

    def take_probe(self):
        with self.lock:
            out, self.probe = self.probe, []
            return out


def percentile(values, p):
    if not values:
        return ""
    values = sorted(values)
    i = min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))
    return values[i]


def raw_request(port, head, body=b"", timeout=TIMEOUT):
    """Sends one request on a fresh connection; returns the status (int),
    "down" when nothing listens, or "reset"/"timeout" when the server
    went away mid-request. Raw, so that an oversized body the server
    refuses before reading (413 from Content-Length) is read as the 413
    it is, not as a broken pipe."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "down"
    except OSError:
        return "down"
    try:
        s.sendall(head)
        # A large body goes only if no answer came to the head alone: a
        # server that refuses it by its Content-Length answers at once and
        # closes, and a body still arriving then would make the kernel
        # reset the connection before the answer is read.
        if len(body) > 65536 and select.select([s], [], [], 1.0)[0]:
            body = b""
        try:
            s.sendall(body)
        except OSError:
            pass  # answered and closed before the whole body: read the answer
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"HTTP/1.1 "):
            return "reset"
        return int(data[9:12])
    except socket.timeout:
        return "timeout"
    except OSError:
        return "reset"
    finally:
        s.close()


def post_head(path, body, headers=()):
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


def dockerhub(namespace, name, tag):
    return json.dumps({
        "callback_url": "http://127.0.0.1:9/hook",
        "push_data": {"pushed_at": 1700000000, "pusher": namespace, "tag": tag},
        "repository": {"name": name, "namespace": namespace, "owner": namespace,
                       "repo_name": f"{namespace}/{name}", "status": "Active"},
    }).encode()


class KeepAlive:
    """One kept-alive connection, made again after a restart."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                r.read()
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                return r.status
            except ConnectionRefusedError:
                self.conn.close()
                self.conn = None
                return "down"
            except (OSError, http.client.HTTPException):
                # A kept-alive connection the last dockhook held: try once on
                # a new one before counting the request as lost.
                self.conn.close()
                self.conn = None
                if attempt:
                    return "reset"
        return "reset"


def paced(rate, stop, fn):
    """Calls fn about `rate` times a second, on an absolute schedule, so a
    slow answer is not hidden by sending fewer requests."""
    if rate <= 0:
        return
    step, t = 1.0 / rate, time.monotonic()
    while not stop.is_set():
        fn()
        t += step
        delay = t - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -1.0:
            t = time.monotonic()  # fell behind (dockhook down): do not burst


def run(a):
    counts = Counts()
    stop = threading.Event()
    token, port = a.token, a.port
    ignored = dockerhub("bench", "soak-nothing-runs-this", "latest")
    hook = f"/hooks/dockerhub/{token}"

    def timed(kind, fn):
        sent, t = time.time(), time.monotonic()
        status = fn()
        counts.add(kind, status, time.monotonic() - t, sent)

    def probe():
        timed("probe", lambda: raw_request(port, post_head(hook, ignored), ignored))

    flood_conn = KeepAlive(port)

    def flood():
        timed("ignored", lambda: flood_conn.request(
            "POST", hook, ignored, {"Content-Type": "application/json"}))

    secret = a.github_secret.encode()
    big = b'{"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    hostile_bodies = [
        ("bench/../../../etc/passwd", "latest"),
        ("bench/" + "a" * 300, "latest"),
        ("bench/UPPER-case", "latest"),
        ("bench/x;rm -rf /", "latest"),
        ("bench/\u00e9\u202e\u0000", "latest"),
        ("bench/site", "latest\r\nX-Injected: 1"),
        ("bench/site", "t" * 200),
        ("bench/site", "@sha256:zz"),
    ]

    def hostile_cases():
        wrong = "x" * len(token)
        pkg = json.dumps({"action": "published", "package": {"name": "site-b", "package_type": "CONTAINER",
                                                            "owner": {"login": "bench"}}}).encode()
        cases = [
            ("wrong_token", post_head(f"/hooks/dockerhub/{wrong}", ignored), ignored),
            ("no_signature", post_head("/hooks/github", pkg, ["X-GitHub-Event: package"]), pkg),
            ("bad_signature", post_head("/hooks/github", pkg, [
                "X-GitHub-Event: package", "X-Hub-Signature-256: sha256=" + "0" * 64,
                "X-GitHub-Delivery: soak-forged"]), pkg),
            ("malformed_json", post_head(hook, b"{not json"), b"{not json"),
            ("oversized", post_head(hook, big), big),
            ("foreign_owner", post_head(hook, dockerhub("evil", "site-a", "latest")),
             dockerhub("evil", "site-a", "latest")),
            ("wrong_bearer", b"GET /api/deployments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
             + wrong.encode() + b"\r\nConnection: close\r\n\r\n", b""),
        ]
        for repo, tag in hostile_bodies:
            ns, _, name = repo.partition("/")
            body = json.dumps({"push_data": {"tag": tag},
                               "repository": {"repo_name": repo, "namespace": ns, "name": name}}).encode()
            cases.append(("bad_image_name", post_head(hook, body), body))
        # A signed GitHub delivery for a hostile image name: authentic, so
        # parsed, and refused by the image-name check.
        bad = json.dumps({"action": "published", "package": {
            "name": "../../x", "package_type": "CONTAINER", "owner": {"login": "bench"},
            "package_version": {"container_metadata": {"tag": {"name": "latest", "digest": ""}}}}}).encode()
        sig = hmac.new(secret, bad, hashlib.sha256).hexdigest()
        cases.append(("bad_image_name", post_head("/hooks/github", bad, [
            "X-GitHub-Event: package", f"X-Hub-Signature-256: sha256={sig}"]), bad))
        return cases

    # Each kind gets the same share; a kind with several cases (the image
    # names) goes through them in turn.
    cases = collections.defaultdict(list)
    for kind, head, body in hostile_cases():
        cases[kind].append((head, body))
    kinds = list(cases)
    turn = collections.Counter()

    def hostile():
        kind = kinds[turn["all"] % len(kinds)]
        head, body = cases[kind][turn[kind] % len(cases[kind])]
        turn["all"] += 1
        turn[kind] += 1
        timed(f"hostile:{kind}", lambda: raw_request(port, head, body))

    api_conn = KeepAlive(port)
    api_paths = ["/api/deployments", "/api/targets", "/metrics"]
    api_turn = [0]

    def api():
        path = api_paths[api_turn[0] % len(api_paths)]
        api_turn[0] += 1
        timed(f"api:{path}", lambda: api_conn.request("GET", path, headers={"Authorization": f"Bearer {a.api_token}"}))

    threads = [threading.Thread(target=paced, args=(r, stop, f), daemon=True)
               for r, f in ((a.probe_rate, probe), (a.flood_rate, flood), (a.hostile_rate, hostile),
                            (a.api_rate, api))]
    for t in threads:
        t.start()

    start = time.time()
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "unix", "pid", "rss_kib", "fds", "db_bytes", "wal_bytes", "sqlite_bytes",
                    "probe_n", "probe_p50_ms", "probe_p99_ms", "requests", "down", "load1"])
        last_total = last_down = 0
        probes = open(a.probes, "w")
        next_at = time.monotonic() + a.sample
        while not os.path.exists(a.stop):
            time.sleep(max(0.0, min(1.0, next_at - time.monotonic())))
            if time.monotonic() < next_at:
                continue
            next_at += a.sample
            pid, rss, fds = sample_process(a.pidfile)
            db = size(os.path.join(a.data, "dockhook.db"))
            wal = size(os.path.join(a.data, "dockhook.db-wal"))
            sent_lat = counts.take_probe()
            lat = [v for _, v in sent_lat]
            with counts.lock:
                total = sum(counts.by.values())
                down = sum(n for (k, s), n in counts.by.items() if s == "down")
            t_s = time.time() - start
            w.writerow([f"{t_s:.1f}", f"{time.time():.1f}", pid, rss, fds, db, wal, db + wal,
                        len(lat), ms(percentile(lat, 50)), ms(percentile(lat, 99)), total - last_total,
                        down - last_down, open("/proc/loadavg").read().split()[0]])
            # Every probe latency too, for exact percentiles over longer
            # periods: when it was sent (s since the start) and ms.
            probes.writelines(f"{sent - start:.3f}\t{v * 1000:.3f}\n" for sent, v in sent_lat)
            last_total, last_down = total, down
            f.flush()
        probes.close()
    stop.set()
    for t in threads:
        t.join(TIMEOUT + 5)
    with open(a.counts, "w") as f:
        json.dump({"by": [[k, s, n] for (k, s), n in sorted(counts.by.items())],
                   "slowest_s": dict(counts.slowest), "errors": counts.errors}, f)


def ms(v):
    return f"{v * 1000:.2f}" if v != "" else ""


def sample_process(pidfile):
    """(pid, VmRSS KiB, open fds) of the dockhook now running; blanks while
    none is (between a kill -9 and its restart)."""
    try:
        pid = int(open(pidfile).read().strip())
        rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return pid, rss, fds
    except (OSError, ValueError, StopIteration):
        return "", "", ""


def size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def api_get(port, token, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=TIMEOUT) as r:
        return json.load(r)


def push(a):
    """Sends the webhook of one real push and appends what came of it to
    --out as a JSON line. While dockhook is down (a kill -9) the webhook is
    sent again, as a sender retries, under the same GitHub delivery ID."""
    if a.source == "dockerhub":
        ns, _, name = a.repo.partition("/")
        body = dockerhub(ns, name, a.tag)
        path, headers = f"/hooks/dockerhub/{a.token}", []
        delivery = None
    else:
        owner, _, name = a.repo.partition("/")
        delivery = f"soak-{a.version}-{os.urandom(6).hex()}"
        body = json.dumps({"action": "published", "package": {
            "name": name, "package_type": "CONTAINER", "owner": {"login": owner},
            "package_version": {"version": a.digest, "container_metadata": {
                "tag": {"name": a.tag, "digest": a.digest}}}}, "sender": {"login": owner}}).encode()
        sig = hmac.new(a.github_secret.encode(), body, hashlib.sha256).hexdigest()
        path = "/hooks/github"
        headers = ["X-GitHub-Event: package", f"X-Hub-Signature-256: sha256={sig}",
                   f"X-GitHub-Delivery: {delivery}"]
    record = {"unix": round(time.time(), 2), "built_from": a.built_from, "image": a.repo, "version": a.version, "source": a.source,
              "delivery": delivery, "retries": 0}
    deadline = time.monotonic() + a.timeout
    while True:
        status, answer = raw_exchange(a.port, post_head(path, body, headers), body)
        if not (status in ("down", "reset", "timeout") or str(status).startswith("5") or status == 409) \
                or time.monotonic() > deadline:
            break
        record["retries"] += 1
        time.sleep(0.5)
    record["status"] = status
    record["body"] = answer
    try:
        record["deployments"] = json.loads(answer).get("deployments", [])
    except ValueError:
        record["deployments"] = []
    with open(a.out, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"{a.source} webhook for {a.repo} {a.version}: {status} {answer}"
          + (f" (after {record['retries']} retries)" if record["retries"] else ""))
    return 0


def raw_exchange(port, head, body):
    """Like raw_request, for a small request whose answer body matters."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    except OSError:
        return "down", ""
    try:
        s.sendall(head + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if not data.startswith(b"HTTP/1.1 "):
            return "reset", ""
        return int(data[9:12]), data.partition(b"\r\n\r\n")[2].decode(errors="replace")
    except socket.timeout:
        return "timeout", ""
    except OSError:
        return "reset", ""
    finally:
        s.close()


def drain(a):
    """Waits until no deployment in the history is open; prints those still
    open when the time is up and fails."""
    deadline = time.monotonic() + a.timeout
    while True:
        deps = api_get(a.port, a.api_token, "/api/deployments?limit=1000")["deployments"]
        open_ = [d for d in deps if d["state"] not in FINAL]
        if not open_:
            return 0
        if time.monotonic() > deadline:
            for d in open_:
                print(f"still open after {a.timeout} s: deployment {d['id']} of {d['target']}: {d['state']}",
                      file=sys.stderr)
            return 1
        time.sleep(0.5)


def check(a):
    failures = []
    rows = list(csv.DictReader(open(a.csv)))
    counts = json.load(open(a.counts))
    pushes = [json.loads(line) for line in open(a.pushes) if line.strip()]
    kills = [json.loads(line) for line in open(a.kills) if line.strip()]

    def num(r, k):
        return float(r[k]) if r[k] != "" else None

    up = [r for r in rows if r["rss_kib"] != ""]
    duration = float(rows[-1]["t_s"]) if rows else 0.0
    start_unix = float(rows[0]["unix"]) - float(rows[0]["t_s"]) if rows else 0.0
    # The first and the last window after warm-up, shrunk for a short run so
    # that the two never overlap.
    window = min(a.window, max(a.sample * 3, (duration - a.warmup) / 3))
    first = [r for r in up if a.warmup <= float(r["t_s"]) < a.warmup + window]
    last = [r for r in up if float(r["t_s"]) >= duration - window]

    def med(rs, k):
        vs = [num(r, k) for r in rs if num(r, k) is not None]
        return statistics.median(vs) if vs else None

    print(f"samples: {len(rows)} every {a.sample:g} s over {duration:.0f} s; dockhook up in {len(up)}; "
          f"warm-up {a.warmup:g} s; windows compared: first and last {window:.0f} s after it")
    print(f"kill -9: {len(kills)}, restart (kill to /healthz answering) "
          + (f"median {statistics.median(k['restart_s'] for k in kills):.2f} s, "
             f"max {max(k['restart_s'] for k in kills):.2f} s" if kills else "-"))
    for k in kills:
        print(f"  at {k['t_s']:.0f} s: pid {k['pid']} killed {k['when']}")

    # --- nothing grows --------------------------------------------------------
    if up:
        print(f"RSS:  first sample {int(up[0]['rss_kib']) / 1024:.1f} MiB, last {int(up[-1]['rss_kib']) / 1024:.1f} MiB, "
              f"max {max(int(r['rss_kib']) for r in up) / 1024:.1f} MiB")
        print(f"fds:  first sample {up[0]['fds']}, last {up[-1]['fds']}, max {max(int(r['fds']) for r in up)}")
    for key, label, tol, slack, unit, scale in (
            ("rss_kib", "RSS", a.rss_tolerance, a.rss_slack_kib, "MiB", 1024),
            ("fds", "open fds", a.fd_tolerance, a.fd_slack, "", 1)):
        f_med, l_med = med(first, key), med(last, key)
        if f_med is None or l_med is None:
            failures.append(f"{label}: no samples in the first or the last window")
            continue
        limit = f_med * (1 + tol) + slack
        ok = l_med <= limit
        print(f"{label}: median {f_med / scale:.1f}{unit} in the first window, {l_med / scale:.1f}{unit} in the last "
              f"(limit {limit / scale:.1f}{unit} = first x {1 + tol:g} + {slack / scale:g}{unit}): {'ok' if ok else 'GREW'}")
        if not ok:
            failures.append(f"{label} grew: median {l_med / scale:.1f}{unit} in the last window > {limit / scale:.1f}{unit}")
    sizes = [int(r["sqlite_bytes"]) for r in rows]
    dbs = [int(r["db_bytes"]) for r in rows]
    wals = [int(r["wal_bytes"]) for r in rows]
    if rows:
        print(f"SQLite: db {dbs[0] / 1024:.0f} KiB -> {dbs[-1] / 1024:.0f} KiB, wal max {max(wals) / 1024:.0f} KiB, "
              f"db + wal max {max(sizes) / 1048576:.2f} MiB (limit {a.sqlite_max_mib:g} MiB)")
        if max(sizes) > a.sqlite_max_mib * 1048576:
            failures.append(f"SQLite files reached {max(sizes) / 1048576:.1f} MiB > {a.sqlite_max_mib:g} MiB")
    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    deps = [dict(r) for r in db.execute("SELECT id, target, source, state FROM deployments ORDER BY id")]
    # Deployments a kill -9 cut off, and how the next life ended them.
    interrupted = [dict(r) for r in db.execute(
        "SELECT d.id, d.target, d.state, s.detail FROM steps s JOIN deployments d ON d.id = s.deployment_id "
        "WHERE s.detail LIKE '%dockhook stopped during step%' ORDER BY d.id")]
    remembered = {r[0] for r in db.execute("SELECT delivery FROM deliveries WHERE source = 'github'")}
    db.close()
    # The history grows by what was deployed, never by what was ignored or
    # refused. After the clean stop the WAL is checkpointed into the db, so
    # the db's size is all there is; per deployment, schema included.
    final_size = size(a.db) + size(a.db + "-wal")
    if deps:
        per = final_size / len(deps)
        ok = per <= a.db_per_deployment_kib * 1024
        print(f"SQLite after the final clean stop: {final_size / 1024:.0f} KiB for {len(deps)} deployments, "
              f"{per / 1024:.1f} KiB each (limit {a.db_per_deployment_kib:g} KiB): {'ok' if ok else 'TOO MUCH'}")
        if not ok:
            failures.append(f"the db holds {per / 1024:.1f} KiB per deployment > {a.db_per_deployment_kib:g} KiB")

    # --- latency ----------------------------------------------------------------
    print(f"probe latency (POST of an ignored webhook, new connection each), per {a.period:.0f} s:")
    print("   from     to       n   p50 ms   p99 ms   max ms")
    probes = [tuple(map(float, line.split("\t"))) for line in open(a.probes) if line.strip()]
    t = 0.0
    while t < duration:
        vs = [v for at, v in probes if t <= at < t + a.period]
        if vs:
            print(f"  {t:5.0f} {min(t + a.period, duration):6.0f} {len(vs):7} {percentile(vs, 50):8.2f} "
                  f"{percentile(vs, 99):8.2f} {max(vs):8.1f}")
        t += a.period

    # --- requests -----------------------------------------------------------------
    by = collections.defaultdict(collections.Counter)
    for kind, status, n in counts["by"]:
        by[kind][status] += n
    print("requests by kind and answer (down: dockhook not listening, during a kill -9):")
    for kind in sorted(by):
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(by[kind].items()))
        slowest = counts["slowest_s"].get(kind)
        print(f"  {kind:28} {sum(by[kind].values()):7}  {answers}"
              + (f"  (slowest {slowest * 1000:.0f} ms)" if slowest else ""))
    for kind, answers in by.items():
        if kind.startswith("hostile:") and any(s.startswith("2") for s in answers):
            failures.append(f"{kind}: hostile requests answered 2xx: {dict(answers)}")
    # A request in flight when dockhook is killed loses its connection; any
    # other request must get a proper answer, and no 5xx at all.
    cut = unexplained = 0
    for at, kind, status in counts["errors"]:
        near = any(k["unix"] - 1 <= at <= k["unix"] + k["restart_s"] + 1 for k in kills)
        if near and status in ("reset", "timeout"):
            cut += 1
            continue
        unexplained += 1
        if unexplained <= 20:
            failures.append(f"{kind}: answered {status} at {at - start_unix:.1f} s"
                            + (" (while dockhook was being killed or restarted)" if near else ""))
    if unexplained > 20:
        failures.append(f"... and {unexplained - 20} more requests without a proper answer")
    print(f"requests cut off by a kill -9 (connection reset within 1 s of one): {cut}")
    for kind in ("probe", "ignored"):
        other = {s: n for s, n in by.get(kind, {}).items() if s not in ("200", "down", "reset")}
        if other:
            failures.append(f"{kind}: ignored webhooks not answered 200: {other}")

    # --- deployments -----------------------------------------------------------------
    final = [d for d in deps if d["state"] in FINAL]
    states = collections.Counter(d["state"] for d in deps)
    sources = collections.Counter(d["source"] for d in deps)
    print(f"deployments: {len(final)}/{len(deps)} in a final state ({', '.join(f'{s} {n}' for s, n in sorted(states.items()))}); "
          f"by source: {', '.join(f'{s} {n}' for s, n in sorted(sources.items()))}")
    print(f"deployments a kill -9 cut off, ended by the next life: {len(interrupted)}")
    for d in interrupted:
        step = d["detail"].rpartition("dockhook stopped during step ")[2].split(";")[0].rstrip(")")
        print(f"  {d['id']} ({d['target']}): cut off in step {step}, ended {d['state']}")
    for d in deps:
        if d["state"] not in FINAL:
            failures.append(f"deployment {d['id']} of {d['target']} is {d['state']}, not final, after the drain")
    by_id = {d["id"]: d for d in deps}
    accepted = [p for p in pushes if p.get("status") == 202]
    named = sorted({i for p in accepted for i in p["deployments"]})
    lost = [i for i in named if i not in by_id]
    open_named = [i for i in named if i in by_id and by_id[i]["state"] not in FINAL]
    print(f"pushes: {len(pushes)} webhooks sent for new images; answers "
          + ", ".join(f"{s}: {n}" for s, n in sorted(collections.Counter(str(p.get('status')) for p in pushes).items()))
          + f"; retries after a refused connection: {sum(p.get('retries', 0) for p in pushes)}")
    print(f"answered 202: {len(accepted)}, naming {len(named)} deployments: {len(named) - len(lost)} in the history, "
          f"{len(named) - len(lost) - len(open_named)} final")
    for i in lost:
        failures.append(f"deployment {i}, named in a 202 answer, is not in the history")
    for i in open_named:
        failures.append(f"deployment {i}, named in a 202 answer, is {by_id[i]['state']}")
    not_202 = [p for p in pushes if p.get("status") != 202]
    for p in not_202:
        failures.append(f"push of {p['image']} {p['version']} was answered {p.get('status')}: {p.get('body', '')[:200]}")
    deliveries = [p["delivery"] for p in accepted if p.get("delivery")]
    if deliveries:
        missing = [d for d in deliveries if d not in remembered]
        print(f"GitHub deliveries answered 202: {len(deliveries)}, remembered in the db: {len(deliveries) - len(missing)}")
        for d in missing:
            failures.append(f"GitHub delivery {d} was answered 202 but is not remembered")

    print()
    if failures:
        print(f"FAILED ({len(failures)}):")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("all checks passed")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--token", required=True, help="the Docker Hub hook's token")
    r.add_argument("--api-token", required=True)
    r.add_argument("--github-secret", required=True)
    r.add_argument("--pidfile", required=True)
    r.add_argument("--data", required=True)
    r.add_argument("--csv", required=True)
    r.add_argument("--counts", required=True)
    r.add_argument("--probes", required=True, help="file for every probe latency (t_s, ms)")
    r.add_argument("--stop", required=True)
    r.add_argument("--sample", type=float, default=10)
    r.add_argument("--probe-rate", type=float, default=10)
    r.add_argument("--flood-rate", type=float, default=50)
    r.add_argument("--hostile-rate", type=float, default=10)
    r.add_argument("--api-rate", type=float, default=2)
    u = sub.add_parser("push")
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--token", required=True, help="the Docker Hub hook's token")
    u.add_argument("--github-secret", required=True)
    u.add_argument("--source", choices=("dockerhub", "github"), required=True)
    u.add_argument("--repo", required=True, help="owner/name")
    u.add_argument("--tag", default="latest")
    u.add_argument("--version", required=True)
    u.add_argument("--digest", default="")
    u.add_argument("--out", required=True)
    u.add_argument("--timeout", type=float, default=120)
    u.add_argument("--built-from", type=float, help="when the image's build began (unix time)")
    d = sub.add_parser("drain")
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--api-token", required=True)
    d.add_argument("--timeout", type=float, default=300)
    c = sub.add_parser("check")
    for name in ("csv", "counts", "probes", "pushes", "kills", "db"):
        c.add_argument(f"--{name}", required=True)
    c.add_argument("--sample", type=float, default=10)
    c.add_argument("--warmup", type=float, default=120)
    c.add_argument("--window", type=float, default=600)
    c.add_argument("--period", type=float, default=600)
    c.add_argument("--rss-tolerance", type=float, default=0.25)
    c.add_argument("--rss-slack-kib", type=float, default=4096)
    c.add_argument("--fd-tolerance", type=float, default=0.0)
    c.add_argument("--fd-slack", type=float, default=8)
    c.add_argument("--sqlite-max-mib", type=float, default=64)
    c.add_argument("--db-per-deployment-kib", type=float, default=64)
    a = p.parse_args()
    if a.cmd == "run":
        run(a)
        return 0
    if a.cmd == "push":
        return push(a)
    if a.cmd == "drain":
        return drain(a)
    return check(a)


if __name__ == "__main__":
    sys.exit(main())
