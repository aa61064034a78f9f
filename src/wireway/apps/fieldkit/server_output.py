"""`fieldkit_server`: events to the TAK server the operators set, as WigleToTAK sends them."""

from __future__ import annotations

import socket
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from wireway.apps.fieldkit.app import FieldKit
from wireway.connectors.base import Output
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.registry import register_output


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Sends each event as one UDP datagram to the TAK server set with
    `POST /update_tak_settings` (WigleToTAK's unicast copy beside the multicast group).
    The address is read for every batch, so a change applies at once; while none is
    set the events are confirmed without being sent. UDP has no acknowledgement: a
    batch is confirmed once the kernel took it.
    """

    max_datagram_bytes: Annotated[int, Meta(ge=1, le=65507, description="a longer event goes to the DLQ")] = (
        65507
    )


@register_output("fieldkit_server", config=ServerConfig)
class ServerOutput(Output):
    """UDP unicast to the operators' TAK server."""

    config: ServerConfig
    service_class = FieldKit
    formats: ClassVar[tuple[str, ...] | None] = ("cot",)
    default_format: ClassVar[str] = "cot"

    def use_service(self, service: FieldKit) -> None:
        self.kit = service

    async def open(self) -> None:
        self.codec = self.iface.new_codec()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        target = self.kit.settings.server()
        if target is None:
            return None
        refused: dict[int, str] = {}
        for i, msg in enumerate(batch):
            try:
                data = self.codec.encode(msg, True)
            except ValueError as exc:
                refused[i] = str(exc)
                continue
            if len(data) > self.config.max_datagram_bytes:
                refused[i] = f"{len(data)} bytes: over max_datagram_bytes"
                continue
            try:
                self.sock.sendto(data, target)
            except BlockingIOError as exc:
                raise RetryableError(f"udp {target[0]}:{target[1]}: send buffer full") from exc
            except OSError as exc:
                if isinstance(exc, socket.gaierror):
                    refused[i] = f"TAK server {target[0]}: {exc}"
                    continue
                raise RetryableError(f"udp {target[0]}:{target[1]}: {exc.strerror or exc}") from exc
        return refused or None

    async def close(self) -> None:
        if hasattr(self, "sock"):
            self.sock.close()
