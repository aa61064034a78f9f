"""Start WigleToTAK (its own script, unchanged, copied into FOLDER) on loopback.

    python serve.py FOLDER HOST PORT GROUP GROUP_PORT

WigleToTAK listens on 0.0.0.0:8000 and sends to 239.2.3.1:6969 with TTL 1, all
fixed in its code. This wrapper runs it as it is, with three things set from
outside: its Flask app listens on HOST:PORT, its broadcast goes to GROUP:GROUP_PORT,
and its sockets' multicast TTL is 0 so that no datagram leaves this host. Its
reading, parsing and sending are untouched. Run with a Python that has Flask.
"""

from __future__ import annotations

import importlib
import socket
import sys
import types
from typing import Any


class HostOnly(socket.socket):
    """A socket whose multicast TTL is always 0 (this host only)."""

    def setsockopt(self, level: int, option: int, value: Any, *rest: Any) -> None:
        if level == socket.IPPROTO_IP and option == socket.IP_MULTICAST_TTL:
            value = 0
        super().setsockopt(level, option, value, *rest)


def main() -> None:
    folder, host, port, group, group_port = sys.argv[1:6]
    sys.path.insert(0, folder)
    peer = importlib.import_module("WigletoTAK")  # its own script, found in FOLDER

    shim = types.ModuleType("socket")
    shim.__dict__.update(socket.__dict__)
    shim.__dict__["socket"] = HostOnly
    peer.__dict__["socket"] = shim  # the name its code calls socket.socket through
    # start_broadcast calls broadcast_file(path) with the group as default arguments
    peer.broadcast_file.__defaults__ = (group, int(group_port))
    peer.app.run(host=host, port=int(port), debug=False)


if __name__ == "__main__":
    main()
