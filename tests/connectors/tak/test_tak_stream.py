"""Cutting a TAK stream into events: XML events back to back (declarations and
whitespace between them), protocol v1 stream frames, any chunking, bounded."""

from __future__ import annotations

from pathlib import Path

import takproto

from wireway.connectors.tak.stream import EventDeframer

DATA = Path(__file__).parents[2] / "data"


def pytak_events() -> list[bytes]:
    """The two events pytak 7.6.1 wrote on its TCP connection, byte for byte."""
    capture = (DATA / "pytak_7.6.1_loopback_capture.txt").read_text()
    blocks = [b for b in capture.split("===== ")[1:] if b.startswith("tcp ")]
    events = []
    for block in blocks:
        size_text, body = block.split("\n", 1)
        events.append(body.encode()[: int(size_text.split()[1])])
    return events


def cut(stream: bytes, size: int, limit: int = 1 << 20) -> tuple[list[bytes], list[tuple[str, str]]]:
    deframer = EventDeframer(limit)
    events: list[bytes] = []
    refused: list[tuple[str, str]] = []
    for start in range(0, len(stream), size):
        got, bad = deframer.feed(stream[start : start + size])
        events += got
        refused += bad
    refused += deframer.end()
    return events, refused


def test_pytak_stream_in_any_chunking() -> None:
    """pytak's own bytes (a declaration before each event) cut the same way whether
    they arrive at once or one byte at a time."""
    sent = pytak_events()
    assert [len(e) for e in sent] == [384, 404]
    stream = b"".join(sent)
    for size in (1, 7, 100, len(stream)):
        events, refused = cut(stream, size)
        assert refused == []
        assert [e.strip() for e in events] == [e.strip() for e in sent]
        assert all(e.rstrip().endswith(b"</event>") for e in events)


def test_whitespace_and_declarations_between_events() -> None:
    one = b'<event uid="a"><point lat="1" lon="2"/></event>'
    two = b'<?xml version="1.0"?>\n\n<event uid="b"/>'  # self-closed: held until an </event>
    three = b'\r\n  <event uid="c"></event>\n'
    events, refused = cut(one + two + b"</event>" + three, 5)
    assert events[0] == one
    assert events[1].startswith(b'<?xml version="1.0"?>')
    assert events[2] == b'<event uid="c"></event>'
    assert refused == []


def test_protocol_stream_frames_mixed_with_xml() -> None:
    """After a negotiation a connection may carry protocol v1 frames; both are cut."""
    xml = b'<event version="2.0" uid="x" type="a-f-G" how="m-g" time="2026-01-01T00:00:00Z" '
    xml += b'start="2026-01-01T00:00:00Z" stale="2026-01-01T00:05:00Z"><point lat="1.5" lon="2.5" '
    xml += b'hae="0" ce="1" le="1"/><detail/></event>'
    frame = bytes(takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))
    assert frame[0] == 0xBF
    stream = xml + frame + frame + b"\n" + xml
    for size in (1, 3, len(stream)):
        events, refused = cut(stream, size)
        assert refused == []
        assert events == [xml, frame, frame, xml]


def test_an_event_over_the_limit_is_refused_and_the_next_kept() -> None:
    big = b"<event uid='big'><detail>" + b"x" * 5000 + b"</detail></event>"
    small = b"<event uid='small'></event>"
    for size in (64, 1000, 10_000):
        events, refused = cut(big + small + big + small, size, limit=1000)
        assert events == [small, small], size
        assert len(refused) == 2
        assert all("over max_event_bytes" in why for _, why in refused)


def test_a_frame_over_the_limit_is_passed_over() -> None:
    xml = b'<event version="2.0" uid="x" type="a" how="m-g" time="2026-01-01T00:00:00Z" '
    xml += b'start="2026-01-01T00:00:00Z" stale="2026-01-01T00:05:00Z"><point lat="1" lon="2" '
    xml += b'hae="0" ce="1" le="1"/><detail><remarks>' + b"r" * 3000 + b"</remarks></detail></event>"
    big = bytes(takproto.xml2proto(xml, takproto.TAKProtoVer.STREAM))
    small = b"<event uid='after'></event>"
    events, refused = cut(big + small, 100, limit=1000)
    assert events == [small]
    assert "over max_event_bytes" in refused[0][1]


def test_junk_before_an_event_and_a_cut_end() -> None:
    events, refused = cut(b"hello\n<event uid='a'></event><event uid='b'>", 4)
    assert events == [b"<event uid='a'></event>"]
    assert refused[0] == ("hello\n", "not a CoT event")
    assert refused[1][1] == "the connection closed inside an event"


def test_a_byte_order_mark_first_is_no_error() -> None:
    events, refused = cut(b"\xef\xbb\xbf<event uid='a'></event>", 2)
    assert events == [b"<event uid='a'></event>"]
    assert refused == []


def test_what_is_held_is_bounded() -> None:
    deframer = EventDeframer(1000)
    for _ in range(100):
        deframer.feed(b"<event>" + b"y" * 500)
        assert len(deframer.rest) <= 1000 + 507
