"""The deployment files parse and agree with the app's ports, paths and metric names."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from conftest import ROOT

DEPLOY = ROOT / "deploy"


def metric_names() -> set[str]:
    """Every metric family the process can export (core + sensor application)."""
    import wireway.apps.sensor_ingest.metrics as app_metrics
    from wireway.observability.metrics import REGISTRY

    app_metrics.INGESTED.setup(False)
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        names.update(s.name for s in family.samples)
    names.add("up")  # Prometheus' own
    return names


def exprs_metrics(expr: str) -> set[str]:
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r"\{[^}]*\}|\[[^]]*\]", "", expr)))
    functions = {
        "sum",
        "rate",
        "by",
        "max",
        "clamp_min",
        "histogram_quantile",
        "le",
        "sensor_type",
        "error_type",
        "connection_type",
        "outcome",
        "and",
        "or",
    }
    return {w for w in words if w not in functions and not w.isdigit()}


def test_prometheus_alerts_use_real_metrics() -> None:
    """HighErrorRate, QueueBacklog and ServiceDown exist and name exported metrics."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    found = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    assert set(found) == {"HighErrorRate", "QueueBacklog", "ServiceDown"}
    known = metric_names()
    for name, expr in found.items():
        missing = exprs_metrics(expr) - known
        assert not missing, f"{name} uses unknown metrics {missing}"


def test_grafana_dashboard_uses_real_metrics() -> None:
    """Every panel's query names exported metrics."""
    dash = json.loads((DEPLOY / "grafana" / "wireway-sensors.json").read_text())
    known = metric_names()
    assert dash["panels"]
    for panel in dash["panels"]:
        for target in panel["targets"]:
            missing = exprs_metrics(target["expr"]) - known
            assert not missing, f"panel {panel['title']!r} uses unknown metrics {missing}"


def kubernetes_docs() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in (DEPLOY / "kubernetes").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        docs[doc["kind"]] = doc
    return docs


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or its valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_kubernetes_probes_and_ports() -> None:
    """Liveness on /health, readiness on /ready, all on the app's port 8080."""
    docs = kubernetes_docs()
    assert set(docs) == {"StatefulSet", "Service", "HorizontalPodAutoscaler"}
    workload = docs["StatefulSet"]
    pod = workload["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8080}
    assert container["ports"][0]["containerPort"] == 8080
    assert "0.0.0.0:8080" in container["args"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == 8080
    assert docs["Service"]["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
    assert workload["spec"]["serviceName"] == docs["Service"]["metadata"]["name"]
    target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", workload["metadata"]["name"])


def test_kubernetes_replicas_share_the_mqtt_topics() -> None:
    """With more than one pod (replicas or the HPA's max), every pod subscribes in one
    shared group, each reading goes to one pod, and each pod has its own client id: its
    pod name, stable across restarts in a StatefulSet (the persistent session resumes)."""
    docs = kubernetes_docs()
    workload = docs["StatefulSet"]
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert max(workload["spec"]["replicas"], hpa["maxReplicas"]) > 1
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["WIREWAY_MQTT_SHARED_GROUP"]
    assert env["WIREWAY_MQTT_CLIENT_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # a removed pod's session keeps its share of the readings: no automatic scale-down
    assert hpa["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"


def test_kubernetes_buffer_has_a_volume_per_pod() -> None:
    """The durable buffer (WIREWAY_DATA_DIR of the image) is on a claim per pod, writable
    by the image's user, and a stop has time to drain it."""
    workload = kubernetes_docs()["StatefulSet"]["spec"]
    pod = workload["template"]["spec"]
    (container,) = pod["containers"]
    (claim,) = workload["volumeClaimTemplates"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    data_dir = re.search(r"WIREWAY_DATA_DIR=(\S+)", dockerfile)
    assert data_dir is not None
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == data_dir.group(1)
    uid = re.search(r"useradd [^\n]*--uid (\d+)", dockerfile)
    assert uid is not None
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == int(uid.group(1))
    assert pod["terminationGracePeriodSeconds"] > 30  # settings.timeout of the built-in app


def test_compose_and_dockerfile_agree() -> None:
    """Compose runs mosquitto, postgres and wireway on 8080; the Dockerfile exposes it."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"mosquitto", "postgres", "wireway"}
    env = compose["services"]["wireway"]["environment"]
    assert env["WIREWAY_HTTP"] == "0.0.0.0:8080"
    assert env["WIREWAY_STORAGE"].startswith("postgresql://")
    assert "8080:8080" in compose["services"]["wireway"]["ports"]
    # one instance: replicas of this service would all take one MQTT client id (compose
    # cannot give each its own stable one) and, without a shared group, every reading
    assert compose["services"]["wireway"].get("deploy", {}).get("replicas", 1) == 1
    assert "scale" not in compose["services"]["wireway"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8080" in dockerfile
    assert 'ENTRYPOINT ["wireway", "run"]' in dockerfile
    assert "/health" in dockerfile
