"""The outbox writer's commit group against a thread that keeps the GIL busy.

Python's sqlite3 lets go of the GIL around every step of a statement; executemany
steps once per row, and each time the writer thread then waits for the busy thread to
hand the GIL back (up to the 5 ms switch interval). Times one group (BEGIN, the inserts,
COMMIT with fsync) of `--rows` outbox rows, written with executemany and with the
store's multi-row INSERTs (`insert_rows`), while another thread spins; then the SQLite
memory that keeping one prepared INSERT per exact row count (1 to 256) would take,
which is why `insert_rows` uses power-of-two sizes.

Run: .venv/bin/python benchmarks/outbox_gil.py [--rows N] [--groups G]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from wireway.runtime.buffer_file import INSERT_OUTBOX, insert_rows

SCHEMA = "CREATE TABLE outbox(id INTEGER PRIMARY KEY, queue TEXT, body BLOB, enqueued_at REAL)"


def rss_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def group_ms(conn: sqlite3.Connection, rows: int, groups: int, many: bool, start: int) -> tuple[float, float]:
    """p50 and p90 of one group's write, in ms."""
    times = []
    for g in range(groups):
        first = start + g * rows
        batch = [(first + i, "storage\nstate\nalerts", b"x" * 300, time.time()) for i in range(rows)]
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        if many:
            conn.executemany(INSERT_OUTBOX, batch).close()
        else:
            insert_rows(conn, batch)
        conn.execute("COMMIT")
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.9)] * 1000


def main(rows: int, groups: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "outbox.db", isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(SCHEMA)
        stop = threading.Event()

        def busy() -> None:  # an event loop that always has work
            x = 0
            while not stop.is_set():
                for i in range(1000):
                    x += i

        spinner = threading.Thread(target=busy, daemon=True)
        spinner.start()
        try:
            for many, name in ((True, "executemany"), (False, "insert_rows")):
                p50, p90 = group_ms(conn, rows, groups, many, start=0 if many else 10**9)
                print(f"{name:12s} {rows} rows a group: p50 {p50:.1f} ms, p90 {p90:.1f} ms")
        finally:
            stop.set()
            spinner.join()
        conn.close()

    cache = sqlite3.connect(":memory:", cached_statements=400, isolation_level=None)
    cache.execute(SCHEMA)
    before, next_id = rss_mb(), 0
    for n in range(1, 257):
        values = [v for i in range(n) for v in (next_id + i, "q", b"x", 1.0)]
        cache.execute(INSERT_OUTBOX + ", (?, ?, ?, ?)" * (n - 1), values).close()
        next_id += n
    print(f"one prepared INSERT per row count 1..256: +{rss_mb() - before:.1f} MB resident")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--groups", type=int, default=100)
    args = parser.parse_args()
    main(max(1, min(args.rows, 5000)), max(1, min(args.groups, 1000)))
