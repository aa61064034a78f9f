"""The Node-RED benchmark's flow: what benchmarks/nodered/run.py expects of it.

Node-RED itself is never installed for the tests; the function node's code is run
with plain Node.js when it is on PATH, and that test is skipped otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

FOLDER = Path(__file__).resolve().parents[1] / "benchmarks" / "nodered"


def nodes() -> dict[str, dict[str, Any]]:
    return {node.get("name") or node["id"]: node for node in json.loads((FOLDER / "flows.json").read_text())}


def test_the_flow_has_the_nodes_the_runner_follows() -> None:
    flow = nodes()
    reader = flow["sensor readings"]
    assert (reader["type"], reader["qos"], reader["datatype"]) == ("mqtt in", "1", "json")
    assert reader["wires"] == [[flow["validate, enrich, split, alert"]["id"]]]
    assert flow["validate, enrich, split, alert"]["wires"] == [[flow["batch"]["id"]], [flow["alerts"]["id"]]]
    assert flow["batch"]["wires"] == [[flow["insert rows"]["id"]]]
    # run.py reads the running count from this node's log lines
    assert "node.log(`stored ${stored}`)" in flow["insert rows"]["func"]
    assert "insert rows] stored " in (FOLDER / "run.py").read_text()


def test_every_variable_of_the_flow_is_set_by_the_runner() -> None:
    text = (FOLDER / "flows.json").read_text()
    runner = (FOLDER / "run.py").read_text()
    names = set(re.findall(r"\$\{(NR_\w+)\}", text)) | set(re.findall(r'env\.get\(\\"(NR_\w+)', text))
    assert names >= {"NR_MQTT_PORT", "NR_TOPIC", "NR_PG", "NR_SCHEMA", "NR_BATCH_SECONDS"}
    assert all(f'"{name}"' in runner for name in names)


HARNESS = """
const context = new Map();
const node = { warnings: [], warn(m) { this.warnings.push(m); } };
new Function("context", "node", INIT)(context, node);
const prepare = new Function("context", "node", "msg", FUNC);
const out = [];
for (const payload of READINGS) out.push(prepare(context, node, { payload }));
console.log(JSON.stringify({ out, warnings: node.warnings }));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_function_node_validates_splits_and_alerts() -> None:
    fn = nodes()["validate, enrich, split, alert"]
    good = {
        "device_id": "bench-001",
        "timestamp": "2026-01-01T00:00:00.123456Z",
        "sensors": {
            "ld2410": {"presence": True, "distance": 120, "energy": 40},
            "pir": {"motion_detected": False},
            "mq134": {"gas_concentration": 620, "unit": "ppm"},
        },
    }
    bad = {"device_id": "bench 1", "timestamp": "yesterday", "sensors": {"pir": {"motion_detected": 1}}}
    script = (
        HARNESS.replace("INIT", json.dumps(fn["initialize"]))
        .replace("FUNC", json.dumps(fn["func"]))
        .replace("READINGS", json.dumps([good, good, bad]))
    )
    result = json.loads(subprocess.run(["node", "-e", script], capture_output=True, check=True).stdout)
    first, second, rejected = result["out"]
    rows = first[0]["payload"]
    assert [row[3] for row in rows] == ["ld2410", "pir", "mq134"]
    assert rows[0][:2] == ["bench-001", good["timestamp"]]
    assert json.loads(rows[2][4]) == {"gas_concentration": 620, "unit": "ppm"}
    assert first[1]["topic"] == "neurobuild/alerts/bench-001"
    assert first[1]["payload"]["state"] == "opened"
    assert second[1] is None  # still open: one notification per transition
    assert rejected is None
    assert len(result["warnings"]) == 1
    assert "device_id" in result["warnings"][0]
    assert "timestamp" in result["warnings"][0]
