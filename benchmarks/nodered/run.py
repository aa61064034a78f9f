"""A comparable Node-RED flow, measured like benchmarks/hand_script.py on the same machine.

The flow (`flows.json` beside this file): MQTT in at QoS 1 on the sensor bench's topics
-> a function node that validates each reading (the checks of wireway's sensor app),
adds the time it was received, splits it into one row per sensor and checks the gas
threshold (a notification on each transition, published at QoS 1) -> a join node that
batches readings (`--batch-seconds` from the first one, at most `--batch-count`) -> a
function node that inserts each batch with one INSERT ... SELECT FROM unnest(...) through
`pg`, into the table of hand_script.py. Node-RED's MQTT node acknowledges each message on
receipt, before anything is stored, and a failed INSERT is logged and its readings lost:
no delivery guarantee, no dedupe.

Node-RED is not a dependency of wireway. Install it and the PostgreSQL client outside the
repository once (the folder can be changed with --node-red):

    mkdir -p /tmp/nodered && npm install --prefix /tmp/nodered node-red@4 pg@8

Then, beside the other two (same publisher, a private Mosquitto with the same settings):

    .venv/bin/python benchmarks/nodered/run.py --messages 15000 --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hand_script import TABLE, sql  # the same table as the hand-written script

HERE = Path(__file__).resolve().parent
INSTALL = "mkdir -p {0} && npm install --prefix {0} node-red@4 pg@8"
WAIT_SECONDS = 600  # the most a run waits for its rows once the publisher is done


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid`, its waited-for children and its live descendants (/proc)."""
    total = 0.0
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total += sum(int(x) for x in stat[11:15]) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            for child in children.read_text().split():
                try:
                    total += tree_cpu(int(child))
                except OSError:  # ended meanwhile
                    continue
    return total


def start_node_red(
    modules: Path, work: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[str], list[int], threading.Event]:
    """Node-RED on the committed flow; a thread follows its log for the stored count."""
    from wireway.bench.common import free_port

    user_dir = work / "node-red"
    user_dir.mkdir()
    shutil.copy(HERE / "flows.json", user_dir / "flows.json")
    env = {
        **os.environ,
        **env,
        "NR_MODULES": str(modules),
        "NR_USER_DIR": str(user_dir),
        "NR_FLOW_FILE": str(user_dir / "flows.json"),
        "NR_HTTP_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        ["node", str(modules / "node-red" / "red.js"), "--settings", str(HERE / "settings.js")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    stored = [0]
    ready = threading.Event()

    def follow() -> None:  # Node-RED's log: readiness, the running count, and any error
        assert proc.stdout is not None
        for line in proc.stdout:
            if "insert rows] stored " in line:
                stored[0] = int(line.rsplit(" ", 1)[1])
            elif "Connected to broker" in line:
                ready.set()
            elif ready.is_set() and ("[error]" in line or "[warn]" in line):
                print(line.rstrip(), file=sys.stderr)

    threading.Thread(target=follow, daemon=True).start()
    return proc, stored, ready


def drive(
    messages: int, devices: int, dsn: str, rate: float | None, modules: Path, batch: tuple[float, int]
) -> None:
    import asyncpg
    from rich.progress import Progress

    from wireway.bench.common import cpu_of, machine_busy, stop
    from wireway.bench.load import Publisher
    from wireway.bench.sensor import start_broker

    async def rows(schema: str) -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.sensor_readings"))
        finally:
            await conn.close()

    schema = f"noderedbench_{uuid.uuid4().hex[:8]}"
    prefix = f"nodered-{uuid.uuid4().hex[:6]}"
    asyncio.run(sql(dsn, f"CREATE SCHEMA {schema};" + TABLE.format(schema=schema)))
    try:
        with tempfile.TemporaryDirectory(prefix="wireway-nodered-") as tmp:
            broker, port = start_broker(Path(tmp))
            env = {
                "NR_MQTT_PORT": str(port),
                "NR_TOPIC": f"{prefix}/sensors/+/data",
                "NR_PG": dsn,
                "NR_SCHEMA": schema,
                "NR_BATCH_SECONDS": str(batch[0]),
                "NR_BATCH_COUNT": str(batch[1]),
            }
            red, stored, ready = start_node_red(modules, Path(tmp), env)
            try:
                if not ready.wait(60):
                    raise RuntimeError("Node-RED did not connect to the broker in 60 s")
                time.sleep(1)  # the subscription follows the connection
                cpu0, pg0 = tree_cpu(red.pid), cpu_of("postgres")
                busy0, t0 = machine_busy(), time.time()
                with Progress(transient=True) as progress:
                    what = f"MQTT QoS 1 at {rate:,.0f}/s" if rate else "MQTT QoS 1, full speed"
                    task = progress.add_task(what, total=messages)
                    acked = Publisher(port).run(prefix, messages, devices, rate, progress, task)
                deadline = time.monotonic() + WAIT_SECONDS
                while stored[0] < messages and time.monotonic() < deadline and red.poll() is None:
                    time.sleep(0.005)
                wall = time.time() - t0
                cpu, pg_cpu = tree_cpu(red.pid) - cpu0, cpu_of("postgres") - pg0
                busy = machine_busy() - busy0
                if stored[0] < messages:
                    raise RuntimeError(f"only {stored[0]} of {messages} readings were stored")
            finally:
                stop(red, 10)
                broker.terminate()
                broker.wait(10)
        in_table = asyncio.run(rows(schema))
        per = acked / 1000
        print(
            f"Node-RED flow, {acked:,} readings{f' offered at {rate:,.0f}/s' if rate else ''}: "
            f"{acked / wall:,.0f} readings/s; "
            f"CPU ms per 1,000 readings: Node-RED {cpu * 1000 / per:.0f}, "
            f"PostgreSQL {pg_cpu * 1000 / per:.0f}; "
            f"machine busy {busy / (wall * (os.cpu_count() or 1)):.0%}; {in_table:,} rows stored"
        )
    finally:
        asyncio.run(sql(dsn, f"DROP SCHEMA {schema} CASCADE"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--rate", type=float, default=None, help="readings/s offered (default: full speed)")
    parser.add_argument("--batch-seconds", type=float, default=0.01, help="a batch waits this from its first")
    parser.add_argument("--batch-count", type=int, default=1000, help="the most readings in one INSERT")
    parser.add_argument("--node-red", type=Path, default=Path("/tmp/nodered"), help="the npm install folder")
    args = parser.parse_args()
    modules = args.node_red / "node_modules"
    if not (modules / "node-red" / "red.js").exists() or not (modules / "pg").exists():
        sys.exit(f"Node-RED or pg is not installed in {args.node_red}: {INSTALL.format(args.node_red)}")
    if shutil.which("node") is None:
        sys.exit("node (Node.js 18 or later) is not on PATH")
    drive(
        min(args.messages, 1_000_000),
        args.devices,
        args.pg,
        args.rate,
        modules,
        (args.batch_seconds, max(1, min(args.batch_count, 10_000))),
    )


if __name__ == "__main__":
    main()
