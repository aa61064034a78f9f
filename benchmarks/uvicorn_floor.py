"""The floor under `wireway bench sensor`'s HTTP single-POST figure on this machine.

uvicorn (uvloop, httptools, as `wireway run` serves) with an ASGI app that answers
every POST 202 without looking at it, loaded by the bench's own client (single
readings over 64 keep-alive connections): what one process can answer here before
any work of wireway's.

Run: .venv/bin/python benchmarks/uvicorn_floor.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from typing import Any

BODY = b'{"message":"Sensor data accepted"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning")


def main(requests: int) -> None:
    import socket

    from wireway.bench.common import free_port
    from wireway.bench.load import http_load

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.05)
        rate, answered = asyncio.run(http_load(f"http://127.0.0.1:{port}", requests, 1, 64))
        print(f"uvicorn alone, {answered:,} POSTs answered 202: {rate:,.0f} POSTs/s")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    main(min(args.requests, 1_000_000))
