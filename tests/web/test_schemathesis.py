"""schemathesis against the process's own `/openapi.json`: every operation of a real
`wireway run` (the built-in application, the admin key), with generated valid and
invalid requests, answers no 5xx and nothing its schema does not allow.

Bounded: MAX_EXAMPLES requests per operation and mode (positive, negative).
Which key may call which route is tests/apps/test_authorization.py's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from conftest import free_port

ADMIN = "schemathesis-admin-key-0123456789"
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`wireway run` with the built-in application on SQLite, MQTT off; its base URL."""
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    env = {
        **os.environ,
        "WIREWAY_ADMIN_KEY": ADMIN,
        "WIREWAY_MQTT_ENABLED": "false",
        "WIREWAY_STORAGE": f"sqlite:///{tmp}/data/wireway.db",
    }
    env.pop("WIREWAY_CONFIG", None)
    command = [sys.executable, "-m", "wireway", "run", "--data-dir", str(tmp / "data")]
    log = (tmp / "wireway.log").open("wb")
    proc = subprocess.Popen(
        [*command, "--http", f"127.0.0.1:{port}", "--log-level", "WARNING"],
        cwd=tmp,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp / "wireway.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("wireway run did not answer /health within 30 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        output = (tmp / "wireway.log").read_text(errors="replace")
        assert "Traceback" not in output, output[-3000:]
        assert "Exception in ASGI application" not in output, output[-3000:]
        # a reading answered 202 is stored: none may be dead-lettered by an output
        assert "dead-lettered" not in output, output[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_answers_within_its_schema(running: str, mode: str) -> None:
    """Every operation, MAX_EXAMPLES generated requests each (valid ones, then ones
    that break the schema); every failure is listed, not only the first."""
    api = schemathesis.openapi.from_url(f"{running}/openapi.json")
    failures: list[str] = []
    operations = calls = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = operation.as_strategy(GenerationMode(mode), headers={"X-API-Key": ADMIN})

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the first example is enough
        )
        def call(case: Any) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=running, checks=CHECKS, timeout=10)

        try:
            call()
        except Unsatisfiable:  # nothing to break: an operation without parameters or body
            assert mode == "negative", operation.label
        except Exception as exc:  # noqa: BLE001  (collected: one failing operation hides no other)
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    document = httpx.get(f"{running}/openapi.json", trust_env=False).json()
    methods = ("get", "put", "post", "delete", "patch", "head", "options")
    listed = sum(1 for ops in document["paths"].values() for m in ops if m in methods)
    assert operations == listed - 1  # schemathesis leaves the document's own route out
    assert calls > operations * 5, calls
    assert not failures, "\n\n".join(failures)
