"""Readiness and liveness checks of a service (see config.services.Probe)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

from wireway.config.services import Probe

READ_CHUNK = 1024 * 1024


class Result:
    """One check: passed or not, and whether a connection was refused (for recovery)."""

    __slots__ = ("ok", "reason", "refused")

    def __init__(self, ok: bool, reason: str = "", refused: bool = False) -> None:
        self.ok = ok
        self.reason = reason
        self.refused = refused


class Prober:
    """A probe with what it remembers between checks (a file's size, a log's offset)."""

    def __init__(self, probe: Probe, log_file: Path, base_dir: Path, seen: set[str]) -> None:
        self.probe = probe
        self.log_file = log_file
        self.base_dir = base_dir
        self.seen = seen  # the wireway inputs that have produced a message
        self.size = -1
        self.offset = 0
        self.pattern = re.compile(probe.log) if probe.log else None

    def from_offset(self, offset: int) -> None:
        """Read the log from `offset` on: what this run wrote, not an earlier run's line."""
        self.offset = offset

    async def check(self) -> Result:
        probe = self.probe
        try:
            async with asyncio.timeout(probe.timeout):
                if probe.tcp:
                    return await self._tcp(probe.tcp)
                if probe.http:
                    return await self._http(probe.http)
                if probe.file:
                    return self._file(self.base_dir / probe.file)
                if probe.exec:
                    return await self._exec(probe.exec)
                if probe.input:
                    ok = probe.input in self.seen
                    return Result(ok, "" if ok else f"no message from {probe.input} yet")
                return self._log()
        except TimeoutError:
            return Result(False, "timed out")
        except ConnectionRefusedError:
            return Result(False, "connection refused", refused=True)
        except OSError as exc:
            return Result(False, str(exc))

    async def _tcp(self, address: str) -> Result:
        host, _, port = address.rpartition(":")
        _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Result(True)

    async def _http(self, url: str) -> Result:
        import httpx  # only where a probe asks for it: the engine does not load it otherwise

        try:
            async with httpx.AsyncClient(timeout=self.probe.timeout, trust_env=False) as client:
                answer = await client.get(url)
        except httpx.ConnectError as exc:
            refused = isinstance(exc.__cause__, ConnectionRefusedError) or "refused" in str(exc).lower()
            return Result(False, str(exc), refused=refused)
        except httpx.HTTPError as exc:
            return Result(False, str(exc))
        ok = 200 <= answer.status_code < 300
        return Result(ok, "" if ok else f"HTTP {answer.status_code}")

    def _file(self, path: Path) -> Result:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return Result(False, f"{path} does not exist")
        if not self.probe.grows:
            return Result(True)
        grew, self.size = size > self.size >= 0, size
        return Result(grew, "" if grew else f"{path} did not grow")

    async def _exec(self, argv: list[str]) -> Result:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = await proc.wait()
        finally:
            if proc.returncode is None:  # timed out: do not leave it behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return Result(code == 0, f"exit code {code}")

    def _log(self) -> Result:
        assert self.pattern is not None
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, 2)
                end = f.tell()
                if end < self.offset:  # rotated: start again at the top
                    self.offset = 0
                f.seek(self.offset)
                chunk = f.read(READ_CHUNK)
        except FileNotFoundError:
            return Result(False, "no output yet")
        cut = chunk.rfind(b"\n") + 1  # whole lines only: a line being written waits
        self.offset += cut
        for line in chunk[:cut].decode("utf-8", "replace").splitlines():
            if self.pattern.search(line):
                return Result(True)
        return Result(False, f"no line matched {self.pattern.pattern!r} yet")
