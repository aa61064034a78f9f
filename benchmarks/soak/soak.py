"""Soak: the built-in sensor application under 1,000 readings/s for a long time.

Starts a Mosquitto of its own (a free port), `wireway run` (the built-in
application, SQLite storage in a temporary data dir, or --storage) and `wireway
simulate --via mqtt --rate RATE`, and samples every --interval seconds wireway's RSS
and CPU (psutil) and, from its /metrics, the buffer depth (every output queue) and
the processing latency (mean and p99 of the interval, from the histogram). Writes a
CSV of the samples, a JSON summary and a PNG of the four over time (matplotlib,
`pip install -e '.[bench]'`).

Memory must stay flat: the median RSS of the last minute may exceed that of the
first minute after --warmup by at most 10% (exit code 1 otherwise).

    .venv/bin/python benchmarks/soak/soak.py                      # 30 minutes
    .venv/bin/python benchmarks/soak/soak.py --duration 300 --warmup 60 --png docs/soak-5min.png
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from wireway.bench.common import free_port, stop, wait_port

ROOT = Path(__file__).resolve().parents[2]
WIREWAY = [sys.executable, "-m", "wireway"]
GROWTH_LIMIT = 0.10


def metrics(text: str) -> dict[str, float]:
    """What the soak reads from /metrics: buffer depth, latency histogram, counts."""
    out = {"depth": 0.0, "lat_sum": 0.0, "lat_count": 0.0, "delivered": 0.0}
    for line in text.splitlines():
        if line.startswith("wireway_queue_size{"):
            out["depth"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("wireway_processing_latency_seconds_sum"):
            out["lat_sum"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("wireway_processing_latency_seconds_count"):
            out["lat_count"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("wireway_processing_latency_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[f"le:{le}"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("wireway_messages_total{") and 'component="storage"' in line:
            delivered = 'outcome="delivered"' in line
            out["delivered"] += float(line.rsplit(" ", 1)[1]) if delivered else 0.0
    return out


def p99(now: dict[str, float], before: dict[str, float]) -> float | None:
    """The interval's 99th percentile latency (s), as the upper bound of its bucket."""
    total = now["lat_count"] - before["lat_count"]
    if total <= 0:
        return None
    bounds = sorted((float(k[3:]), k) for k in now if k.startswith("le:") and k != "le:+Inf")
    for bound, key in bounds:
        if now[key] - before.get(key, 0.0) >= 0.99 * total:
            return bound
    return float("inf")


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, cmd: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.work / log, "ab") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=f, env={**os.environ, **(env or {})}, cwd=self.work)
        self.procs.append(proc)
        return proc

    def start(self) -> tuple[psutil.Process, int]:
        broker = free_port()
        conf = self.work / "mosquitto.conf"
        # the default max_queued_messages (1000) would drop readings inside the broker
        # in a burst; the soak measures wireway, not that limit
        conf.write_text(
            f"listener {broker} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            "max_queued_messages 100000\n"
        )
        self.spawn(["/usr/sbin/mosquitto", "-c", str(conf)], "mosquitto.log")
        wait_port(broker)
        http = free_port()
        env = {
            "WIREWAY_MQTT_URL": f"mqtt://127.0.0.1:{broker}",
            "WIREWAY_MQTT_PREFIX": "soak",
            "WIREWAY_ADMIN_KEY": "soak-admin-key-0123456789abcdef",
        }
        if self.args.storage:
            env["WIREWAY_STORAGE"] = self.args.storage
        data = self.work / "data"
        run = [*WIREWAY, "run", "--data-dir", str(data), "--http", f"127.0.0.1:{http}"]
        wireway = self.spawn(run, "wireway.log", env)
        wait_port(http)
        simulate = [*WIREWAY, "simulate", "--via", "mqtt", "--mqtt", f"mqtt://127.0.0.1:{broker}"]
        simulate += ["--prefix", "soak", "--rate", str(self.args.rate), "--devices", str(self.args.devices)]
        simulate += ["--duration", str(self.args.duration), "--malformed", "0", "--anomalies", "0.01"]
        self.simulator = self.spawn(simulate, "simulate.log")
        return psutil.Process(wireway.pid), http

    def sample(self, proc: psutil.Process, http: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        client = httpx.Client(timeout=10, trust_env=False)
        started = time.monotonic()
        before = metrics(client.get(f"http://127.0.0.1:{http}/metrics").text)
        proc.cpu_percent()
        end = started + self.args.duration
        while time.monotonic() < end:
            time.sleep(self.args.interval)
            now = metrics(client.get(f"http://127.0.0.1:{http}/metrics").text)
            count = now["lat_count"] - before["lat_count"]
            mean = (now["lat_sum"] - before["lat_sum"]) / count if count else None
            high = p99(now, before)
            rows.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                    "cpu_pct": round(proc.cpu_percent(), 1),
                    "buffer_depth": int(now["depth"]),
                    "latency_mean_ms": None if mean is None else round(mean * 1000, 2),
                    "latency_p99_ms": None if high is None else round(high * 1000, 1),
                    "stored_per_s": round((now["delivered"] - before["delivered"]) / self.args.interval),
                }
            )
            before = now
            print(json.dumps(rows[-1]), flush=True)
        client.close()
        return rows

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                stop(proc, 60)


def verdict(rows: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    after = [r for r in rows if r["t_s"] >= warmup]
    if len(after) < 2:
        return {"ok": False, "why": "too short a run after the warm-up"}
    first = [r["rss_mb"] for r in after if r["t_s"] < warmup + 60]
    last = [r["rss_mb"] for r in after if r["t_s"] >= after[-1]["t_s"] - 60]
    base, final = statistics.median(first), statistics.median(last)
    growth = final / base - 1
    means = [r["latency_mean_ms"] for r in after if r["latency_mean_ms"] is not None]
    return {
        "ok": growth <= GROWTH_LIMIT,
        "rss_after_warmup_mb": base,
        "rss_last_minute_mb": final,
        "rss_peak_mb": max(r["rss_mb"] for r in rows),
        "rss_growth_pct": round(growth * 100, 1),
        "cpu_mean_pct": round(statistics.mean(r["cpu_pct"] for r in after), 1),
        "buffer_depth_max": max(r["buffer_depth"] for r in after),
        "latency_mean_ms": round(statistics.mean(means), 1) if means else None,
        "stored_per_s_mean": round(statistics.mean(r["stored_per_s"] for r in after)),
    }


def plot(rows: list[dict[str, Any]], summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    series = [
        ("RSS (MB)", [r["rss_mb"] for r in rows]),
        ("buffer depth (messages)", [r["buffer_depth"] for r in rows]),
        ("CPU (% of one core)", [r["cpu_pct"] for r in rows]),
        ("latency (ms)", [r["latency_mean_ms"] for r in rows]),
    ]
    for ax, (label, values) in zip(axes, series, strict=True):
        ax.plot(minutes, [float("nan") if v is None else v for v in values], linewidth=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[3].plot(
        minutes,
        [float("nan") if r["latency_p99_ms"] is None else r["latency_p99_ms"] for r in rows],
        linewidth=0.8,
        alpha=0.6,
    )
    axes[3].legend(["mean", "p99 (bucket bound)"], loc="upper right")
    axes[0].axhline(summary.get("rss_after_warmup_mb", 0) * (1 + GROWTH_LIMIT), color="red", ls="--", lw=0.8)
    axes[3].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=1800, help="seconds of load (default 30 min)")
    parser.add_argument("--rate", type=int, default=1000, help="readings per second")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--interval", type=float, default=5, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=300, help="seconds before memory is compared")
    parser.add_argument("--storage", default="", help="postgresql://... (default: SQLite in the data dir)")
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks/soak/soak.png")
    parser.add_argument("--csv", type=Path, default=None, help="samples (default: beside the PNG)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wireway-soak-") as tmp:
        soak = Soak(args, Path(tmp))
        try:
            proc, http = soak.start()
            rows = soak.sample(proc, http)
        finally:
            soak.stop()
    summary = verdict(rows, args.warmup)
    summary.update(rate=args.rate, duration_s=args.duration, warmup_s=args.warmup)
    stem = args.png.with_suffix("")
    csv_path = args.csv or stem.with_suffix(".csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    title = (
        f"wireway soak: {args.rate} readings/s over MQTT for {args.duration / 60:.0f} min "
        f"(RSS growth after warm-up {summary.get('rss_growth_pct')}%)"
    )
    plot(rows, summary, args.png, title)
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.png}, {csv_path}, {stem.with_suffix('.json')}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
