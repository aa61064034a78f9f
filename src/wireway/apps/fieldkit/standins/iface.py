"""A stand-in for `ip` and `iw` where Kismet has a stand-in (no WiFi card): the Kismet
lease's reset command (the interface back to managed mode) runs it; it changes
nothing, says what it was asked and appends that line to `--log FILE`."""

from __future__ import annotations

import sys
from pathlib import Path

from wireway.apps.fieldkit.standins import say


def main(argv: list[str]) -> int:
    name, log = "ip/iw", None
    if argv[:1] == ["--as"] and len(argv) > 1:
        name, argv = argv[1], argv[2:]
    if argv[:1] == ["--log"] and len(argv) > 1:
        log, argv = Path(argv[1]), argv[2:]
    line = " ".join([name, *argv])
    say(name, f"would run: {line}")
    if log is not None:
        with log.open("a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
