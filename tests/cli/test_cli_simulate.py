"""`wireway simulate` against a peer that is not there."""

from __future__ import annotations

from pathlib import Path

from conftest import free_port, wireway


def test_simulate_over_mqtt_without_a_broker(tmp_path: Path) -> None:
    """No broker at the given address: one line naming it and exit code 1, no traceback."""
    port = free_port()  # nothing listens there
    result = wireway(
        "simulate",
        *("--devices", "2", "--total", "4", "--via", "mqtt", "--mqtt", f"mqtt://127.0.0.1:{port}"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert f"error: cannot connect to the MQTT broker at mqtt://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
