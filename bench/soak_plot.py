#!/usr/bin/python3
"""Plots a bench/soak.sh run: RSS, open fds, SQLite size and the probe's
latency over time, with the kill -9s, the pushes and the machine's load
average marked.

    /usr/bin/python3 bench/soak_plot.py soak.csv kills.jsonl pushes.jsonl soak.png

Run with Debian's python3 (python3-matplotlib), not a pyenv one.
"""

import csv
import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def column(rows, key, scale=1.0):
    """(t, value) of the rows where the value is known."""
    pairs = [(float(r["t_s"]), float(r[key]) / scale) for r in rows if r[key] != ""]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def main(csv_path, kills_path, pushes_path, png_path):
    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        sys.exit(f"{csv_path} has no samples")
    kills = [json.loads(line) for line in open(kills_path) if line.strip()]
    pushes = [json.loads(line) for line in open(pushes_path) if line.strip()]
    start = float(rows[0]["unix"]) - float(rows[0]["t_s"])
    # The pushes of the final check come after the last sample: not drawn.
    pushes = [p for p in pushes if p["unix"] - start <= float(rows[-1]["t_s"])]

    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(12, 11))
    rss, fds, sqlite, lat = axes

    rss.plot(*column(rows, "rss_kib", 1024), ".-", ms=3, lw=1, color="tab:blue")
    rss.set_ylabel("RSS (MiB)")

    fds.plot(*column(rows, "fds"), ".-", ms=3, lw=1, color="tab:purple")
    fds.set_ylabel("open fds")

    sqlite.plot(*column(rows, "sqlite_bytes", 1024), "-", lw=1.2, color="tab:green", label="db + wal")
    sqlite.plot(*column(rows, "db_bytes", 1024), "--", lw=1, color="tab:olive", label="db")
    sqlite.plot(*column(rows, "wal_bytes", 1024), ":", lw=1, color="tab:gray", label="wal")
    sqlite.set_ylabel("SQLite (KiB)")
    sqlite.legend(loc="upper left", fontsize=8)

    lat.plot(*column(rows, "probe_p50_ms"), ".-", ms=3, lw=1, color="tab:blue", label="p50")
    lat.plot(*column(rows, "probe_p99_ms"), ".-", ms=3, lw=1, color="tab:red", label="p99")
    lat.set_yscale("log")
    lat.set_ylabel("probe latency (ms)")
    lat.set_xlabel("seconds since the load started")
    lat.legend(loc="upper left", fontsize=8)
    # The machine's load: on a shared host, what else ran shows in the tail.
    if "load1" in rows[0]:
        load = lat.twinx()
        load.plot(*column(rows, "load1"), "-", lw=0.8, color="gray", alpha=0.6)
        load.set_ylabel("load average (1 min, gray)", color="gray")
        load.set_ylim(bottom=0)

    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0 if ax is not lat else None)
        for i, k in enumerate(kills):
            ax.axvline(k["t_s"], color="red", alpha=0.5, lw=1, label="kill -9" if ax is rss and i == 0 else None)
        for i, p in enumerate(pushes):
            ax.axvline(p["unix"] - start, color="tab:green", alpha=0.35, lw=0.8, ls="--",
                       label="push + webhook" if ax is rss and i == 0 else None)
    rss.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"dockhook soak: {float(rows[-1]['t_s']):.0f} s, {len(kills)} kill -9 (red), "
                 f"{len(pushes)} pushes with their webhook (green), one sample every {float(rows[1]['t_s']) - float(rows[0]['t_s']):.0f} s"
                 if len(rows) > 1 else "dockhook soak")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
