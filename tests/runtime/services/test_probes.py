"""Probes and recovery: a log line, a liveness probe that restarts, a refused port that
restarts the service behind it, a pattern run as a service that is ready once its
input produced a message."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from services_support import isolated_run_dir, listener, script, service, service_code, supervisor

from conftest import free_port
from support import engine_from, eventually

__all__ = ["isolated_run_dir"]


async def test_a_log_line_makes_a_service_ready(tmp_path: Path) -> None:
    code = script("import time\ntime.sleep(0.5)\nprint('now listening', flush=True)\ntime.sleep(60)")
    sup = supervisor(
        tmp_path,
        service("svc", tmp_path, command=code, ready={"log": "listening$", "interval": 0.1}),
        service("after", tmp_path, command=script("import time; time.sleep(60)"), depends_on=["svc"]),
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("svc")[0].state == "starting")
        assert sup.status("after")[0].state == "waiting"
        await eventually(lambda: sup.status("after")[0].state == "ready")
        assert "now listening" in sup.log_path("svc").read_text()
    finally:
        await sup.close()


async def test_a_failing_liveness_probe_restarts_the_service(tmp_path: Path) -> None:
    alive_file = tmp_path / "alive"
    code = script(f"import time\nopen({str(alive_file)!r}, 'w')\ntime.sleep(60)")
    live = {"file": str(alive_file), "interval": 0.1, "failures": 2}
    sup = supervisor(
        tmp_path, service("svc", tmp_path, command=code, live=live, backoff={"initial": 0.1, "jitter": 0})
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("svc")[0].state == "ready" and alive_file.exists())
        first = sup.status("svc")[0].pid
        alive_file.unlink()
        await eventually(lambda: sup.status("svc")[0].pid not in (None, first), timeout=10)
        assert sup.status("svc")[0].restarts >= 1
    finally:
        await sup.close()


async def test_a_refused_connection_restarts_the_service_behind_the_port_once(tmp_path: Path) -> None:
    """`gpsd` keeps running but closes its port on SIGUSR1; `client`'s liveness probe
    is refused and its `on_failure: {refused: restart gpsd}` restarts gpsd (once)."""
    port = free_port()
    closing = listener(port) + "signal.signal(signal.SIGUSR1, lambda *_: s.close())\n"
    sup = supervisor(
        tmp_path,
        service(
            "gpsd",
            tmp_path,
            command=service_code("gpsd", tmp_path, closing),
            ready={"tcp": f"127.0.0.1:{port}", "interval": 0.1},
            backoff={"initial": 1, "jitter": 0},
        ),
        service(
            "client",
            tmp_path,
            command=script("import time; time.sleep(60)"),
            live={"tcp": f"127.0.0.1:{port}", "interval": 0.1, "failures": 1000},
            on_failure={"refused": "restart gpsd"},
        ),
    )
    await sup.open()
    try:
        await eventually(lambda: all(s.state == "ready" for s in sup.status()))
        first = sup.status("gpsd")[0].pid
        assert first is not None
        os.kill(first, signal.SIGUSR1)
        await eventually(lambda: sup.status("gpsd")[0].pid not in (None, first), timeout=10)
        await eventually(lambda: sup.status("gpsd")[0].state == "ready")
        await asyncio.sleep(0.5)  # probes go on: no second recovery of a healthy port
        assert sup.status("gpsd")[0].restarts == 1
        starts = (tmp_path / "starts").read_text().split("\n")
        assert len([line for line in starts if line]) == 2
    finally:
        await sup.close()


async def connect_when_listening(port: int, seconds: float = 10.0) -> asyncio.StreamWriter:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            return writer
        except ConnectionRefusedError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_a_pattern_service_starts_its_inputs_once_ready_and_is_ready_on_a_message(
    tmp_path: Path,
) -> None:
    """The pattern's tcp input listens only once `db` is ready; the pattern service is
    ready once that input produced a message, and `after` starts only then."""
    port = free_port()
    flag = tmp_path / "db-ready"
    services = {
        "db": {"command": ["sleep", "60"], "ready": {"file": str(flag), "interval": 0.1}},
        "q": {"pattern": "p", "depends_on": ["db"], "ready": {"input": "p.tcp", "interval": 0.1}},
        "after": {"command": ["sleep", "60"], "depends_on": ["q"]},
    }
    text = (
        "pattern: {name: p}\n"
        "interfaces:\n"
        f"  input: [{{type: tcp, address: '127.0.0.1:{port}'}}]\n"
        f"  output: [{{type: file, address: '{tmp_path}/out.jsonl'}}]\n"
        "settings: {buffer: memory, timeout: 2}\n"
        f"services: {json.dumps(services)}\n"
    )
    async with engine_from(tmp_path, text) as engine:
        sup = engine.supervisor
        assert sup is not None
        await eventually(lambda: sup.status("db")[0].state == "starting")
        await asyncio.sleep(0.3)
        try:
            await asyncio.open_connection("127.0.0.1", port)
            raise AssertionError("the input listens before what its pattern depends on is ready")
        except ConnectionRefusedError:
            pass
        flag.touch()
        await eventually(lambda: sup.status("q")[0].state == "starting")
        # "starting" comes just before the input opens its port: connect once it listens
        writer = await connect_when_listening(port)
        assert sup.status("after")[0].state == "waiting"
        writer.write(b'{"x": 1}\n')
        await writer.drain()
        await eventually(lambda: sup.status("after")[0].state == "ready")
        writer.close()
        status = engine.status()
        assert [s["name"] for s in status["services"]] == ["db", "q", "after"]


async def test_http_and_exec_probes(tmp_path: Path) -> None:
    """`web` is ready once its HTTP server answers 2xx; `checked` once `test -f` exits 0."""
    port = free_port()
    flag = tmp_path / "flag"
    web = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(tmp_path),
    ]
    sup = supervisor(
        tmp_path,
        service("web", tmp_path, command=web, ready={"http": f"http://127.0.0.1:{port}/", "interval": 0.1}),
        service(
            "checked",
            tmp_path,
            command=script("import time; time.sleep(60)"),
            depends_on=["web"],
            ready={"exec": ["test", "-f", str(flag)], "interval": 0.1},
        ),
    )
    await sup.open()
    try:
        await eventually(lambda: sup.status("web")[0].state == "ready")
        await eventually(lambda: sup.status("checked")[0].state == "starting")
        await asyncio.sleep(0.3)
        assert sup.status("checked")[0].state == "starting"
        flag.touch()
        await eventually(lambda: sup.status("checked")[0].state == "ready")
    finally:
        await sup.close()


async def test_the_routes_answer_what_the_openapi_document_says(tmp_path: Path) -> None:
    """/services and its routes are described in /openapi.json; the answers decode into
    the described Structs (unknown fields refused)."""
    import httpx
    import msgspec

    from wireway.runtime.services.routes import ServiceBody, ServiceList, ServiceProblem

    text = (
        "pattern: {name: p}\n"
        "interfaces:\n"
        "  input: [{type: http, address: /in}]\n"
        f"  output: [{{type: file, address: '{tmp_path}/out.jsonl'}}]\n"
        "settings: {buffer: memory, timeout: 2}\n"
        "services: {s: {command: [sleep, '60'], autostart: false}}\n"
    )
    async with engine_from(tmp_path, text) as engine:
        base = f"http://{engine.http[0]}:{engine.http[1]}"
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30) as client:
            doc = (await client.get("/openapi.json")).json()
            assert {"/services", "/services/{name}", "/services/{name}/start"} <= set(doc["paths"])
            listed = msgspec.convert((await client.get("/services")).json(), ServiceList)
            assert [s.state for s in listed.services] == ["stopped"]
            started = msgspec.convert((await client.post("/services/s/start")).json(), ServiceBody)
            assert started.state == "ready"
            again = await client.post("/services/s/start")
            assert again.status_code == 409
            assert msgspec.convert(again.json(), ServiceProblem).error == "ALREADY_RUNNING"
            missing = await client.get("/services/nope")
            assert missing.status_code == 404
            stopped = await client.post("/services/s/stop", params={"force": "true"})
            assert msgspec.convert(stopped.json(), ServiceBody).state == "stopped"
            not_running = await client.post("/services/s/stop")
            assert not_running.status_code == 409


async def test_an_input_refused_by_its_peer_restarts_the_service_behind_it(tmp_path: Path) -> None:
    """`gpsd` keeps running but closes its port on SIGUSR1; the gpsd input of the pattern
    run as service `kit` is refused on its next connect, and the pattern's
    `on_failure: {refused: restart gpsd}` restarts gpsd."""
    port = free_port()
    closing = listener(port) + "signal.signal(signal.SIGUSR1, lambda *_: s.close())\n"
    services = {
        "gpsd": {
            "command": service_code("gpsd", tmp_path, closing),
            "ready": {"tcp": f"127.0.0.1:{port}", "interval": 0.1},
            "backoff": {"initial": 0.5, "jitter": 0},
        },
        "kit": {"pattern": "kit", "depends_on": ["gpsd"], "on_failure": {"refused": "restart gpsd"}},
    }
    text = (
        "pattern: {name: kit}\n"
        "interfaces:\n"
        f"  input: [{{type: gpsd, address: '127.0.0.1:{port}', max_backoff: 0.2}}]\n"
        f"  output: [{{type: file, address: '{tmp_path}/out.jsonl'}}]\n"
        "settings: {buffer: memory, timeout: 2}\n"
        f"services: {json.dumps(services)}\n"
    )
    async with engine_from(tmp_path, text) as engine:
        sup = engine.supervisor
        assert sup is not None
        await eventually(lambda: sup.status("gpsd")[0].state == "ready")
        first = sup.status("gpsd")[0].pid
        assert first is not None
        os.kill(first, signal.SIGUSR1)  # the accepted connection closes too: the input reconnects
        await eventually(lambda: sup.status("gpsd")[0].pid not in (None, first), timeout=10)
        await eventually(lambda: sup.status("gpsd")[0].state == "ready")
        assert sup.status("gpsd")[0].restarts >= 1


async def test_an_input_stopped_before_its_pattern_service_started_it(tmp_path: Path) -> None:
    """A pattern whose dependency never became ready stops cleanly: its tcp input,
    never started, has nothing to close."""
    port = free_port()
    services = {
        "db": {"command": ["sleep", "60"], "ready": {"file": str(tmp_path / "never"), "interval": 0.1}},
        "q": {"pattern": "p", "depends_on": ["db"], "ready": {"input": "p.tcp", "interval": 0.1}},
    }
    text = (
        "pattern: {name: p}\n"
        "interfaces:\n"
        f"  input: [{{type: tcp, address: '127.0.0.1:{port}'}}]\n"
        f"  output: [{{type: file, address: '{tmp_path}/out.jsonl'}}]\n"
        "settings: {buffer: memory, timeout: 2}\n"
        f"services: {json.dumps(services)}\n"
    )
    async with engine_from(tmp_path, text) as engine:
        tcp_input = engine.runners[0].inputs[0]
        await tcp_input.stop()
        assert tcp_input.state == "stopped"
