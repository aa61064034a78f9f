"""track: a device passes when new, moved, its signal changed or due for a refresh;
bounded memory, state across restarts, the refresh timer, and tcp -> track -> file."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import sqlite3
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import free_port
from support import engine_from, eventually, written_lines
from wireway.envelope import Message
from wireway.observability.metrics import REGISTRY
from wireway.processors.track import Shrink, Track, TrackConfig, distance_m

BASE = Path(".")
_ids = itertools.count()
# one degree of latitude, in metres (distance_m's sphere)
DEG_M = distance_m(0.0, 0.0, 1.0, 0.0)


def device(mac: str, lat: float = 52.0, lon: float = 4.0, rssi: int = -60, **extra: Any) -> Message:
    payload = {"mac": mac, "lat": lat, "lon": lon, "rssi": rssi, **extra}
    return Message(message_id=f"m{next(_ids)}", timestamp="2026-01-01T00:00:00Z", payload=payload)


def step_of(**options: Any) -> Track:
    config = {"key": "payload.mac", "lat": "payload.lat", "lon": "payload.lon", "rssi": "payload.rssi"}
    step = Track(TrackConfig(**{**config, **options}), base_dir=BASE)
    step.clock = lambda: 1000.0
    return step


async def run(step: Track, *msgs: Message) -> list[Message]:
    """One batch, committed as the runtime would once it is durable."""
    result = await step.process(list(msgs))
    step.committed(result.passed)
    return result.passed


def counted(pattern: str, outcome: str) -> float:
    labels = {"pattern": pattern, "component": "track", "outcome": outcome}
    return REGISTRY.get_sample_value("wireway_messages_total", labels) or 0.0


def test_distance_is_haversine() -> None:
    """A degree of latitude is about 111.2 km; a degree of longitude shrinks with cos(lat)."""
    assert distance_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195, rel=1e-4)
    assert distance_m(60.0, 10.0, 60.0, 11.0) == pytest.approx(DEG_M / 2, rel=1e-3)
    assert distance_m(52.0, 4.0, 52.0, 4.0) == 0.0


async def test_new_moved_signal_and_unchanged() -> None:
    """New passes; same place and signal is dropped (counted); a move beyond min_move_m
    or a signal change beyond min_rssi_change passes."""
    step = step_of(min_move_m=25, min_rssi_change=6)
    step.pattern = "track-unit"
    assert len(await run(step, device("a"))) == 1
    assert await run(step, device("a"), device("a", lat=52.0 + 20 / DEG_M)) == []  # 20 m
    assert len(await run(step, device("a", lat=52.0 + 30 / DEG_M))) == 1  # 30 m from the last passed
    assert await run(step, device("a", lat=52.0 + 30 / DEG_M, rssi=-65)) == []
    assert len(await run(step, device("a", lat=52.0 + 30 / DEG_M, rssi=-67))) == 1
    assert counted("track-unit", "unchanged") == 3


async def test_slow_drift_is_measured_from_the_last_passed_position() -> None:
    """Ten steps of 10 m each: the device passes again once it is 25 m from where it passed."""
    step = step_of(min_move_m=25)
    passed = [len(await run(step, device("a", lat=52.0 + i * 10 / DEG_M))) for i in range(10)]
    assert passed == [1, 0, 0, 1, 0, 0, 1, 0, 0, 1]


async def test_refresh_after_passes_a_stationary_device_again() -> None:
    """A device that does not change passes again once its last passed message is that old."""
    step = step_of(refresh_after=30)
    now = [1000.0]
    step.clock = lambda: now[0]
    assert len(await run(step, device("a"))) == 1
    now[0] += 29
    assert await run(step, device("a")) == []
    now[0] += 1
    assert len(await run(step, device("a"))) == 1


async def test_same_key_twice_in_one_batch_and_unknown_position() -> None:
    """The second message of a key in one batch is compared with the first; a message
    without a fix changes nothing, and the first fix passes."""
    step = step_of()
    got = await run(step, device("a", lat=None), device("a", lat=None), device("b"))  # type: ignore[arg-type]
    assert [m.payload["mac"] for m in got] == ["a", "b"]
    assert len(await run(step, device("a"))) == 1  # its first fix


async def test_zero_zero_is_no_fix() -> None:
    """(0, 0), as GPS tools write it without a fix, is an unknown position, not a move."""
    step = step_of()
    await run(step, device("a"))
    assert await run(step, device("a", lat=0.0, lon=0.0)) == []
    assert len(await run(step, device("a", lat=52.01))) == 1


async def test_a_pass_that_was_not_committed_is_compared_again() -> None:
    """A batch refused before the outboxes took it: the device is still new next time."""
    step = step_of()
    assert len((await step.process([device("a")])).passed) == 1  # never committed
    assert len(await run(step, device("a"))) == 1
    assert await run(step, device("a")) == []


async def test_key_error_goes_to_the_dlq() -> None:
    """A key that cannot be evaluated fails the message with the reason."""
    step = step_of(key="payload.missing")
    result = await step.process([device("a")])
    assert result.passed == []
    assert result.failed[0][1][0].startswith("track: cannot evaluate key")


async def test_max_keys_forgets_the_least_recently_seen() -> None:
    """With room for two devices, the one seen longest ago is forgotten (new again)."""
    step = step_of(max_keys=2)
    await run(step, device("a"), device("b"))
    await run(step, device("a"))  # a is seen again: b is now the least recent
    await run(step, device("c"))
    assert set(step.devices) == {"a", "c"}
    assert len(await run(step, device("b"))) == 1
    assert step.gone == set()  # without a state file nothing is kept of forgotten devices


async def test_forget_after() -> None:
    """A device with no message for forget_after seconds is forgotten."""
    step = step_of(forget_after=100, refresh_after=None)
    now = [1000.0]
    step.clock = lambda: now[0]
    await run(step, device("a"), device("b"))
    now[0] += 60
    await run(step, device("b"))
    now[0] += 50
    assert len(await run(step, device("b", rssi=-61))) == 0
    assert set(step.devices) == {"b"}


def test_config_errors_name_their_key() -> None:
    """lat without lon, and refresh_emit that could never refresh, are refused at their key."""
    import msgspec

    with pytest.raises(msgspec.ValidationError, match=r"\$\.lon"):
        msgspec.convert({"key": "payload.mac", "lat": "payload.lat"}, TrackConfig)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.forget_after"):
        msgspec.convert(
            {"key": "k", "refresh_emit": True, "refresh_after": 60, "forget_after": 30}, TrackConfig
        )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 40.0, allow_nan=False), min_size=1, max_size=60))
async def test_a_stationary_device_passes_once_per_refresh_window(gaps: list[float]) -> None:
    """Messages of a device that never changes, at any pace: consecutive passes are at
    least refresh_after apart, and a message refresh_after after the last pass passes."""
    step = step_of(refresh_after=30, forget_after=None)
    now = [0.0]
    step.clock = lambda: now[0]
    last: float | None = None
    for gap in gaps:
        now[0] += gap
        went = bool(await run(step, device("a")))
        due = last is None or now[0] - last >= 30
        assert went == due, (now[0], last)
        if went:
            last = now[0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)),
        min_size=1,
        max_size=30,
    ),
    st.floats(1.0, 500.0),
)
async def test_moving_beyond_the_threshold_always_passes(
    steps: list[tuple[float, float]], min_move: float
) -> None:
    """Wherever the device wanders, a message farther than min_move_m from its last passed
    position passes, and one within it (same signal, no refresh due) does not."""
    step = step_of(min_move_m=min_move, refresh_after=None, forget_after=None)
    lat, lon = 52.0, 4.0
    await run(step, device("a", lat=lat, lon=lon))
    ref = (lat, lon)
    for dlat, dlon in steps:
        lat, lon = lat + dlat, lon + dlon
        moved = distance_m(ref[0], ref[1], lat, lon)
        if math.isclose(moved, min_move, rel_tol=1e-9):
            continue
        went = bool(await run(step, device("a", lat=lat, lon=lon)))
        assert went == (moved > min_move)
        if went:
            ref = (lat, lon)


def payload_of(i: int) -> dict[str, Any]:
    """A Kismet-like access point record."""
    mac = ":".join(f"{(i >> s) & 0xFF:02X}" for s in (40, 32, 24, 16, 8, 0))
    return {
        "mac": mac,
        "ssid": f"net-{i}",
        "channel": "6",
        "frequency": 2437000,
        "crypt": "WPA2 WPA2-PSK AES-CCMP",
        "type": "Wi-Fi AP",
        "rssi": -60 - i % 30,
        "lat": 52.0 + i * 1e-5,
        "lon": 4.0 + i * 1e-5,
        "last_time": 1764806400 + i,
    }


async def tracked_bytes(step: Track, count: int) -> int:
    """Memory held by the step after `count` devices passed, in batches of 500."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, count, 500):
            msgs = [
                Message(message_id=f"d{i}", timestamp="2026-01-01T00:00:00Z", payload=payload_of(i))
                for i in range(start, start + 500)
            ]
            await run(step, *msgs)
            del msgs
        step.pending.clear()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def test_fifty_thousand_devices_in_modest_memory() -> None:
    """50,000 devices tracked: under 40 MB of state (untimed: tracemalloc counts bytes)."""
    step = step_of()
    held = await tracked_bytes(step, 50_000)
    assert step.tracked == 50_000
    assert held < 40 * 2**20, f"{held / 2**20:.1f} MB"


@pytest.mark.slow
async def test_fifty_thousand_devices_with_their_last_messages() -> None:
    """refresh_emit keeps each device's last message too (compactly): still modest."""
    step = step_of(refresh_emit=True)
    held = await tracked_bytes(step, 50_000)
    assert step.tracked == 50_000
    assert held < 64 * 2**20, f"{held / 2**20:.1f} MB"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=5000), min_size=1, max_size=6))
def test_shrink_gives_back_every_message_unchanged(raws: list[bytes]) -> None:
    """Whatever the first message (the dictionary) and the others, each comes back."""
    shrink = Shrink()
    packed = [shrink.pack(raw) for raw in raws]
    assert [shrink.unpack(p) for p in packed] == raws


async def test_last_messages_are_kept_packed_and_written_plain(tmp_path: Path) -> None:
    """Devices after the first keep their last message smaller than its msgpack; the
    state file holds plain msgpack all the same (a new process has another dictionary)."""
    step = step_of(persist=True, refresh_emit=True, refresh_after=30)
    step.data_dir, step.pattern = tmp_path, "p"
    await step.start()
    try:
        msgs = [
            Message(message_id=f"m{i}", timestamp="2026-01-01T00:00:00Z", payload=payload_of(i))
            for i in range(20)
        ]
        await run(step, *msgs)
        plain = {m.payload["mac"]: msgspec.msgpack.encode(m) for m in msgs}
        for mac, raw in list(plain.items())[1:]:
            last = step.devices[mac].last
            assert last is not None
            assert len(last) < len(raw) / 2
    finally:
        await step.stop()
    with sqlite3.connect(tmp_path / "state" / "p.track.db") as conn:
        rows = dict(conn.execute("SELECT key, last FROM devices").fetchall())
    assert rows == plain


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    """persist: devices passed before stop() are not new after the next start(); a
    device forgotten meanwhile is."""
    now = [5000.0]

    async def started() -> Track:
        step = step_of(persist=True, forget_after=100)
        step.data_dir, step.pattern, step.clock = tmp_path, "p", lambda: now[0]
        await step.start()
        return step

    step = await started()
    await run(step, device("a"), device("b"))
    now[0] += 60
    await run(step, device("b"))
    await step.stop()
    now[0] += 50  # a was seen 110 s ago: forgotten; b 50 s ago
    step = await started()
    try:
        assert set(step.devices) == {"b"}
        assert await run(step, device("b")) == []
        assert len(await run(step, device("a"))) == 1
        assert len(await run(step, device("b", lat=52.01))) == 1
    finally:
        await step.stop()
    assert (tmp_path / "state" / "p.track.db").is_file()


async def test_refresh_queue_survives_a_restart(tmp_path: Path) -> None:
    """persist with refresh_emit: after a restart the timer still refreshes the devices
    that passed before it, with their last message."""
    now = [5000.0]

    async def started() -> tuple[Track, list[Message]]:
        step = step_of(persist=True, refresh_emit=True, refresh_after=30)
        step.data_dir, step.pattern, step.clock = tmp_path, "p", lambda: now[0]
        published: list[Message] = []

        async def publish(msgs: list[Message]) -> None:
            published.extend(msgs)

        step.publish = publish
        await step.start()
        return step, published

    step, _ = await started()
    await run(step, device("a"), device("b"))
    await run(step, device("a", rssi=-62))  # a's last message, dropped as unchanged
    await step.stop()
    now[0] += 31
    step, published = await started()
    try:
        await step.refresh_due()
        assert sorted((m.payload["mac"], m.payload["rssi"]) for m in published) == [("a", -62), ("b", -60)]
        await step.refresh_due()
        assert len(published) == 2  # refreshed: not due again before another 30 s
    finally:
        await step.stop()


async def test_refresh_timer_resends_the_last_message() -> None:
    """refresh_emit: a device that sends nothing new is published again once due, with
    a new id and time and its last payload; a forgotten one is not."""
    step = step_of(refresh_after=0.2, refresh_emit=True, forget_after=0.5)
    step.clock = __import__("time").time
    step.pattern = "track-timer"
    published: list[Message] = []

    async def publish(msgs: list[Message]) -> None:
        published.extend(msgs)

    step.publish = publish
    first = device("a", rssi=-61)
    await run(step, device("a"), first)  # the second is dropped but is the last message
    await step.start()
    try:
        await eventually(lambda: len(published) >= 1, timeout=5)
        again = published[0]
        assert again.payload == first.payload
        assert again.message_id != first.message_id
        assert again.timestamp != first.timestamp
        await asyncio.sleep(1.0)  # past forget_after: forgotten, no more refreshes
        count = len(published)
        assert 1 <= count <= 4
        await asyncio.sleep(0.5)
        assert len(published) == count
        assert step.tracked == 0
    finally:
        await step.stop()
    assert counted("track-timer", "refreshed") == count


def pattern(port: int, out: Path, name: str) -> str:
    return f"""
pattern: {{name: {name}, type: streaming}}
interfaces:
  input:
    - {{type: tcp, address: "127.0.0.1:{port}", ack: true}}
  output:
    - {{type: file, address: "{out}", format: jsonl, payload_only: true}}
processors:
  - track:
      key: payload.mac
      lat: payload.lat
      lon: payload.lon
      rssi: payload.rssi
      min_move_m: 25
      min_rssi_change: 10
      refresh_after: 0.5
      refresh_emit: true
"""


async def send(port: int, lines: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(lines)
    await writer.drain()
    ack = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return ack


def row(mac: str, lat: float, rssi: int = -60) -> bytes:
    return json.dumps({"mac": mac, "lat": lat, "lon": 4.0, "rssi": rssi}).encode() + b"\n"


async def test_end_to_end_tcp_track_file(tmp_path: Path) -> None:
    """tcp -> track -> file: repeated rows of two devices become one line each, a move
    and a signal change one more each, and the timer refreshes them while nothing comes."""
    port, out = free_port(), tmp_path / "out.jsonl"

    def lines() -> list[dict[str, Any]]:
        return written_lines(out)

    async with engine_from(tmp_path, pattern(port, out, "track-e2e")):
        rows = [row("a", 52.0), row("b", 53.0)] * 5
        assert (await send(port, b"".join(rows))) == b"ok 2 of 10\n"
        await eventually(lambda: len(lines()) >= 2)
        assert [(v["mac"], v["lat"]) for v in lines()[:2]] == [("a", 52.0), ("b", 53.0)]
        moved = [row("a", 52.001), row("b", 53.0, rssi=-75)]
        assert (await send(port, b"".join(moved))) == b"ok 2\n"
        await eventually(lambda: len(lines()) >= 4)
        # nothing more is sent: the refresh timer keeps both devices fresh with their last rows
        await eventually(lambda: len(lines()) >= 6, timeout=5)
    seen = [(v["mac"], v["lat"], v["rssi"]) for v in lines()]
    # a refresh may come between the two sends (the old rows again), never anything else
    assert {("a", 52.001, -60), ("b", 53.0, -75)} <= set(seen[2:])
    assert set(seen) == {("a", 52.0, -60), ("b", 53.0, -60), ("a", 52.001, -60), ("b", 53.0, -75)}
    assert seen[-2:] in ([("a", 52.001, -60), ("b", 53.0, -75)], [("b", 53.0, -75), ("a", 52.001, -60)])
    assert counted("track-e2e", "unchanged") == 8


async def test_drop_unfixed_drops_what_has_no_position() -> None:
    """No position, (0, 0), out of range or unreadable: dropped and counted, the device
    not remembered; a key that cannot be read matters only for a message with a fix."""
    step = step_of(drop_unfixed=True)
    step.pattern = "track-unfixed"
    unfixed = [
        device("a", lat=None),  # type: ignore[arg-type]
        device("b", lat=0.0, lon=0.0),
        device("c", lat=95.0),
        device("d", lat="52.0"),  # type: ignore[arg-type]
        Message(message_id="m-no-key", timestamp="2026-01-01T00:00:00Z", payload={"lat": None}),
    ]
    result = await step.process([*unfixed, device("e", lat=0.0, lon=4.0)])
    assert [m.payload["mac"] for m in result.passed] == ["e"]
    assert result.failed == []
    assert step.tracked == 1
    assert counted("track-unfixed", "no_fix") == 5
    with pytest.raises(ValueError, match="drop_unfixed"):
        TrackConfig(key="payload.mac", drop_unfixed=True)
