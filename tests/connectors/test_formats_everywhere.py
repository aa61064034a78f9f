"""Any input or output can use any format that fits: the http input, the mqtt input and
output and the stdout output with formats other than JSON, against real servers."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import need_service
from support import base_url, engine_from, eventually, written_lines


def lines(path: Path) -> list[Any]:
    return written_lines(path)


async def test_http_input_reads_a_csv_body(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    text = f"""
pattern: {{name: csv-in, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /rows, format: {{type: csv, types: {{n: int}}}}}}
  output:
    - {{type: file, address: "{out}", payload_only: true}}
security: {{authentication: none}}
"""
    async with engine_from(tmp_path, text) as engine:
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
            ok = await client.post(
                "/rows", content=b'n,name\n1,"a, b"\n2,c\n', headers={"content-type": "text/csv"}
            )
            assert ok.status_code == 202, ok.text
            assert ok.json()["accepted"] == 2
            bad = await client.post("/rows", content=b"n,name\nx,c\n", headers={"content-type": "text/csv"})
            assert bad.status_code == 400
            assert "column n" in bad.text
        await eventually(lambda: len(lines(out)) == 2)
    assert lines(out) == [{"n": 1, "name": "a, b"}, {"n": 2, "name": "c"}]


async def test_stdout_writes_csv_with_its_header(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    port_text = """
pattern: {name: csv-out, type: port-mapping}
interfaces:
  input:
    - {type: http, address: /in}
  output:
    - {type: stdout, format: csv}
security: {authentication: none}
"""
    async with engine_from(tmp_path, port_text) as engine:
        async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
            r = await client.post("/in", json=[{"a": 1, "b": "x,y"}, {"a": 2, "b": "z"}])
            assert r.status_code == 202
        seen: list[str] = []

        def rows() -> list[str]:  # wireway's own log lines go to the console too
            return [x for x in "".join(seen).splitlines() if not x.startswith("20")]

        def printed() -> bool:
            seen.append(capfd.readouterr().out)
            return len(rows()) >= 3

        await eventually(printed)
    assert rows()[:3] == ["a,b", '1,"x,y"', "2,z"]


async def test_mqtt_text_out_and_csv_in(tmp_path: Path) -> None:
    """The mqtt output publishes each payload as text; the mqtt input reads CSV payloads
    with declared columns (each PUBLISH one unit)."""
    need_service("mosquitto", 1883)
    tag = uuid.uuid4().hex[:8]
    out = tmp_path / "out.jsonl"
    got: list[bytes] = []
    ready = threading.Event()
    peer = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fmt-{tag}")
    peer.on_message = lambda c, u, m: got.append(m.payload)
    peer.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    peer.connect("127.0.0.1", 1883, 30)
    peer.loop_start()
    try:
        peer.subscribe(f"fmt/{tag}/text", 1)
        assert ready.wait(5)
        text = f"""
pattern: {{name: fmt-mqtt, type: port-mapping}}
interfaces:
  input:
    - {{type: http, address: /in}}
    - type: mqtt
      url: mqtt://127.0.0.1:1883
      topics: [fmt/{tag}/csv]
      client_id: fmt-in-{tag}
      format: {{type: csv, columns: [device, value], types: {{value: float}}}}
  output:
    - {{type: mqtt, url: "mqtt://127.0.0.1:1883", topic: "fmt/{tag}/text", format: text, when: 'source == "fmt-mqtt.http"'}}
    - {{type: file, address: "{out}", payload_only: true, when: 'source == "fmt-mqtt.mqtt"'}}
security: {{authentication: none}}
"""
        async with engine_from(tmp_path, text) as engine:
            async with httpx.AsyncClient(base_url=base_url(engine), trust_env=False) as client:
                assert (await client.post("/in", json=["hello", "world & <you>"])).status_code == 202
            await eventually(lambda: len(got) == 2)
            for attempt in range(50):  # the input subscribes in the background
                peer.publish(f"fmt/{tag}/csv", f"probe-{attempt},1\nesp32-1,21.5", 1)
                if any(v.get("device") == "esp32-1" for v in lines(out)):
                    break
                await eventually(lambda: True)
            await eventually(lambda: any(v.get("device") == "esp32-1" for v in lines(out)))
    finally:
        peer.disconnect()
        peer.loop_stop()
    assert sorted(got) == [b"hello", b"world & <you>"]
    assert {"device": "esp32-1", "value": 21.5} in lines(out)
