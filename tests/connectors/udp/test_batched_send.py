"""Datagrams sent a batch per `sendmmsg` call on the sender's thread, and one `sendto`
at a time where that is not available: the same datagrams arrive, in order."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from wireway.connectors import mmsg
from wireway.connectors.udp_sockets import DatagramSender, sending
from wireway.envelope import Message, new_message_id
from wireway.errors import RetryableError

needs_mmsg = pytest.mark.skipif(not mmsg.available(), reason="no sendmmsg on this system")


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def messages(count: int) -> list[Message]:
    return [
        Message(message_id=new_message_id(), timestamp="", payload=i, source="test") for i in range(count)
    ]


def receive(sock: socket.socket, count: int) -> list[bytes]:
    return [sock.recv(70_000) for _ in range(count)]


@pytest.mark.parametrize(
    ("batched", "host"),
    [
        pytest.param(True, "127.0.0.1", marks=needs_mmsg),
        # a name is looked up once per batch (uvloop's sendto takes only addresses)
        pytest.param(True, "localhost", marks=needs_mmsg),
        (False, "127.0.0.1"),
    ],
)
async def test_every_datagram_arrives_in_order(batched: bool, host: str) -> None:
    rx = listener()
    port = rx.getsockname()[1]
    sender = await DatagramSender.open(sending("127.0.0.1", False, False, None, 1, False), batched)
    try:
        assert (sender.batches is not None) is batched
        for size in (500, 5, 1, 300, 15, 16):  # from the thread, and a few on the event loop
            batch = messages(size)
            refused = await sender.send(batch, lambda m: f"{m.payload}".encode(), (host, port), 100, "test")
            assert refused is None
            got = await asyncio.to_thread(receive, rx, size)
            assert got == [str(i).encode() for i in range(size)], f"a batch of {size}"
    finally:
        sender.close()
        rx.close()


@pytest.mark.parametrize("batched", [pytest.param(True, marks=needs_mmsg), False])
async def test_unencodable_and_oversize_records_are_refused_and_the_rest_sent(batched: bool) -> None:
    rx = listener()
    port = rx.getsockname()[1]
    sender = await DatagramSender.open(sending("127.0.0.1", False, False, None, 1, False), batched)

    def encode(msg: Message) -> bytes:
        if msg.payload == 1:
            raise ValueError("not encodable")
        return b"x" * (50 if msg.payload == 2 else 5)

    try:
        refused = await sender.send(messages(4), encode, ("127.0.0.1", port), 10, "test")
        assert refused == {1: "not encodable", 2: "50 bytes: over max_datagram_bytes (10)"}
        assert await asyncio.to_thread(receive, rx, 2) == [b"xxxxx", b"xxxxx"]
    finally:
        sender.close()
        rx.close()


@needs_mmsg
def test_a_datagram_the_kernel_refuses_is_reported_and_the_batch_goes_on() -> None:
    """Over 65,507 bytes no IPv4 datagram can carry it (EMSGSIZE): the call reports that
    one and sends those after it."""
    rx = listener()
    tx = sending("127.0.0.1", False, False, None, 1, False)
    try:
        batches = mmsg.BatchSend(tx, 5.0)
        address = mmsg.sockaddr("127.0.0.1", rx.getsockname()[1])
        assert address is not None
        data = [b"first", b"y" * 70_000, b"third", b"fourth"]
        failed, done = batches.send(address, data)
        assert list(failed) == [1]
        assert receive(rx, 3) == [b"first", b"third", b"fourth"]
        assert done == 4
        assert batches.send(address, [b"again"]) == ({}, 1)
        assert receive(rx, 1) == [b"again"]
    finally:
        tx.close()
        rx.close()


def test_sockaddr_of_numeric_addresses_only() -> None:
    v4 = mmsg.sockaddr("239.2.3.1", 6969)
    assert v4 is not None
    assert len(v4) == 16
    assert v4[2:4] == (6969).to_bytes(2, "big")
    v6 = mmsg.sockaddr("::1", 6969)
    assert v6 is not None
    assert len(v6) == 28
    assert mmsg.sockaddr("localhost", 6969) is None


@needs_mmsg
async def test_closed_twice_and_a_send_after_closing_is_retried_later() -> None:
    sender = await DatagramSender.open(sending("127.0.0.1", False, False, None, 1, False), True)
    sender.close()
    sender.close()
    with pytest.raises(RetryableError, match="closed"):
        await sender.send(messages(100), lambda m: b"x", ("127.0.0.1", 9), 10, "test")


async def test_ipv6_loopback_and_a_link_local_scope() -> None:
    """IPv6 goes out batched too; a link-local address keeps its interface."""
    scoped = mmsg.sockaddr("fe80::1%lo", 6969)
    assert scoped is not None
    assert scoped[-4:] == socket.if_nametoindex("lo").to_bytes(
        4, "little" if sys.byteorder == "little" else "big"
    )
    try:
        rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        rx.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    rx.settimeout(5)
    sender = await DatagramSender.open(sending("::1", False, False, None, 1, False))
    try:
        refused = await sender.send(
            messages(100), lambda m: f"{m.payload}".encode(), ("::1", rx.getsockname()[1]), 100, "t"
        )
        assert refused is None
        assert await asyncio.to_thread(receive, rx, 100) == [str(i).encode() for i in range(100)]
    finally:
        sender.close()
        rx.close()
