"""WigleToTAK itself, fed the rows `wireway bench fieldkit` feeds the field kit, with
what reaches its multicast group counted (a benchmark only, never part of wireway).

    python benchmarks/wigletotak/run.py --source PATH_OR_URL --rows rows.wiglecsv \
        [--paced 10000 --rate 1000] [--python PYTHON] [--json]

`--source` (or $WIGLETOTAK_SRC) is a clone of github canaryradio/WigleToTAK, its git
folder, or a git URL cloned at run time. Its script and page are copied into a
temporary folder (none of its code is kept in this repository: it is AGPL-3.0),
Flask (its requirements.txt) is installed into a temporary venv unless `--python`
names one that has it, and `serve.py` starts it on 127.0.0.1 sending to a group on
this host with TTL 0. Then three times (all rows at full speed; the first
`--paced` rows at `--rate` rows/s; as many rows of as many new devices at that
rate, where a row lost is a device lost; paced rows stamped when written):

1. a new WiGLE CSV file (the rows file's two header lines) in a temporary Kismet folder;
2. `POST /update_tak_settings` with no TAK server (the kit's run has none either),
   `POST /start_broadcast` on that file (realtime mode, its default);
3. the rows appended while a listener on the group counts the events;
4. once nothing has arrived for 3 s, `POST /stop_broadcast`.

Counted: rows appended, distinct rows that came back as an event (the SSID carries
the row number), events, distinct devices written and received, events for lines
that are no device (WigleToTAK sends the file's header lines too), latency of the
stamped rows, peak RSS. Run it with the Python wireway is installed in.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from wireway.bench.common import free_port, pct, peak_rss_mb, stop, wait_port
from wireway.bench.fieldkit import GROUP, Events, append, survey

HERE = Path(__file__).resolve().parent
FILES = ("WigletoTAK.py", "requirements.txt", "templates/WigleToTAK.html")
QUIET = 3.0  # seconds without an event: WigleToTAK has sent what it will (it reads every 0.1 s)


class Unavailable(Exception):
    """WigleToTAK cannot be run here: the reason."""


def extract(source: str, into: Path) -> None:
    """WigleToTAK's files from a clone, its git folder, or a URL cloned now."""
    if "://" in source:
        clone = into / "clone"
        done = run(["git", "clone", "-q", "--depth", "1", source, str(clone)], 120)
        if done.returncode != 0:
            raise Unavailable(f"git clone {source} failed: {done.stderr.strip()[-300:]}")
        source = str(clone)
    path = Path(source)
    if (path / "WigletoTAK.py").exists():  # a work tree
        for name in FILES:
            if (path / name).exists():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path / name, into / name)
        return
    git_dir = path / ".git" if (path / ".git").exists() else path
    if not (git_dir / "HEAD").exists():
        raise Unavailable(f"{source} is neither a WigleToTAK clone nor its git folder")
    for name in FILES:
        done = run(["git", f"--git-dir={git_dir}", "show", f"HEAD:{name}"], 30)
        if done.returncode != 0:
            if name == "WigletoTAK.py":
                raise Unavailable(f"no WigletoTAK.py in {source}: {done.stderr.strip()}")
            continue
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_text(done.stdout)


def python_with_flask(folder: Path, python: str | None) -> str:
    """A Python that imports Flask: the one given, else a new venv with its requirements."""
    if python:
        if run([python, "-c", "import flask"], 30).returncode != 0:
            raise Unavailable(f"{python} cannot import flask")
        return python
    venv = folder / "venv"
    done = run([sys.executable, "-m", "venv", str(venv)], 120)
    if done.returncode != 0:
        raise Unavailable(f"python -m venv failed: {done.stderr.strip()[-300:]}")
    requirements = folder / "requirements.txt"
    wanted = ["-r", str(requirements)] if requirements.exists() else ["flask"]
    done = run([str(venv / "bin" / "pip"), "install", "-q", *wanted], 600)
    if done.returncode != 0:
        raise Unavailable(f"Flask could not be installed: {done.stderr.strip()[-300:]}")
    return str(venv / "bin" / "python")


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 1, "", str(exc))


def post(base: str, route: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        base + route, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    with opener.open(request, timeout=10) as answer:
        answer.read()


def one_run(
    python: str, code: Path, case: Path, head: bytes, rows: list[bytes], rate: float | None
) -> dict[str, Any]:
    wigle = case / "kismet"
    wigle.mkdir(parents=True)
    name = "Kismet-20261204-10-00-00-1.wiglecsv"
    (wigle / name).write_bytes(head)
    port, group_port = free_port(), free_port()
    events = Events(group_port)
    cmd = [python, str(HERE / "serve.py"), str(code), "127.0.0.1", str(port), GROUP, str(group_port)]
    proc = subprocess.Popen(cmd, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 30)
        base = f"http://127.0.0.1:{port}"
        post(base, "/update_tak_settings", {"tak_server_ip": "", "tak_server_port": ""})
        post(base, "/start_broadcast", {"directory": str(wigle), "filename": name})
        time.sleep(0.5)  # its thread has read the header lines
        start = append(wigle / name, rows, rate)
        deadline = time.monotonic() + 120 + len(rows) / 1000
        while time.monotonic() < deadline and time.time() - max(events.last_seen, start) < QUIET:
            time.sleep(0.05)
        post(base, "/stop_broadcast", {})
        rss = peak_rss_mb(proc.pid)
    finally:
        stop(proc, 20)
        events.close()
    macs = {row.split(b",", 1)[0] for row in rows}
    received = {uid.split(b"-", 1)[0] for uid in events.uids}
    lat = sorted(events.latencies)
    return {
        "rows": len(rows),
        "delivered": len(events.rows),
        "events": events.count,
        "devices": len(macs),
        "devices_received": len(macs & received),
        "other": len(received - macs),
        "p50": pct(lat, 0.50) if lat else None,
        "p99": pct(lat, 0.99) if lat else None,
        "rss": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--source", default=os.environ.get("WIGLETOTAK_SRC"))
    parser.add_argument(
        "--rows", type=Path, required=True, help="a WiGLE CSV file: 2 header lines, then rows"
    )
    parser.add_argument("--paced", type=int, default=10_000, help="rows of the paced run")
    parser.add_argument("--rate", type=float, default=1000.0, help="rows/s of the paced run")
    parser.add_argument("--python", help="a Python that has Flask (default: a temporary venv)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    lines = args.rows.read_bytes().splitlines(keepends=True)
    head, rows = b"".join(lines[:2]), lines[2:]
    with tempfile.TemporaryDirectory(prefix="wigletotak-") as tmp:
        folder = Path(tmp)
        try:
            if not args.source:
                raise Unavailable("no source: pass --source or set WIGLETOTAK_SRC (a clone of WigleToTAK)")
            code = folder / "code"
            code.mkdir()
            extract(args.source, code)
            python = python_with_flask(folder, args.python)
            rate = f"{args.rate:,.0f}/s"
            cases = [
                ("full speed", rows, None),
                (rate, rows[: args.paced], args.rate),
                (f"{rate}, new devices", survey(args.paced, args.paced, seed=8), args.rate),
            ]
            runs = [
                {"run": label, **one_run(python, code, folder / str(i), head, case_rows, pace)}
                for i, (label, case_rows, pace) in enumerate(cases)
            ]
            result: dict[str, Any] = {"runs": runs}
        except (Unavailable, RuntimeError, OSError) as exc:
            result = {"error": str(exc)}
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0 if "error" not in result else 3


if __name__ == "__main__":
    sys.exit(main())
