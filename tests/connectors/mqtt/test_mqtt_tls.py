"""The mqtt input and output over TLS with client certificates (mutual TLS), against a
Mosquitto of the test that requires a certificate signed by its CA; the certificates
are generated here. A missing or foreign client certificate, or a broker certificate
from a CA wireway does not trust, leaves the connector down and the engine running.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from own_mosquitto import Publisher, make_certs, mosquitto

from support import engine_from, eventually


def broker_conf(folder: Path) -> str:
    return (
        f"cafile {folder}/ca.pem\ncertfile {folder}/server.pem\nkeyfile {folder}/server.key\n"
        "require_certificate true\nuse_identity_as_username true\npersistence false\n"
    )


def pattern(name: str, port: int, prefix: str, tls: str) -> str:
    url = f"mqtts://127.0.0.1:{port}"
    return f"""
pattern: {{name: {name}}}
interfaces:
  input:
    - {{type: mqtt, url: "{url}", {tls}, topics: ["{prefix}/in/+"], clean_session: true,
       reconnect_min: 0.1, reconnect_max: 0.5}}
  output:
    - {{type: mqtt, url: "{url}", {tls}, topic: "{prefix}/out/{{payload.k}}",
       reconnect_min: 0.1, reconnect_max: 0.5}}
"""


async def test_mqtt_in_and_out_with_client_certificates(tmp_path: Path) -> None:
    make_certs(tmp_path)
    prefix = f"tls/{uuid.uuid4().hex[:8]}"
    tls = f"tls_ca: {tmp_path}/ca.pem, tls_cert: {tmp_path}/client.pem, tls_key: {tmp_path}/client.key"
    with mosquitto(tmp_path, broker_conf(tmp_path)) as port:
        peer = Publisher(port, tls_ca=tmp_path / "ca.pem", cert=tmp_path / "client.pem")
        try:
            peer.subscribe(f"{prefix}/out/#")
            async with engine_from(tmp_path, pattern("mtls", port, prefix, tls)) as engine:
                services = engine.health()["services"]
                assert (services["mqtt"], services["mqtt_out"]) == ("up", "up")
                for k in ("a", "b"):
                    peer.publish(f"{prefix}/in/x", {"k": k})
                await eventually(lambda: len(peer.payloads()) == 2)
        finally:
            peer.close()
    assert sorted(p["k"] for p in peer.payloads()) == ["a", "b"]


@pytest.mark.parametrize(
    "tls",
    [
        "tls_ca: {d}/ca.pem",  # no client certificate
        "tls_ca: {d}/ca.pem, tls_cert: {d}/stranger.pem, tls_key: {d}/stranger.key",  # not the broker's CA
        "tls_ca: {d}/other-ca.pem, tls_cert: {d}/client.pem, tls_key: {d}/client.key",  # broker not trusted
    ],
    ids=["no-client-cert", "foreign-client-cert", "untrusted-broker"],
)
async def test_refused_tls_leaves_the_connectors_down_and_the_engine_up(tmp_path: Path, tls: str) -> None:
    make_certs(tmp_path)
    with mosquitto(tmp_path, broker_conf(tmp_path)) as port:
        text = pattern("mtls_refused", port, "tls/refused", tls.format(d=tmp_path))
        async with engine_from(tmp_path, text) as engine:
            await eventually(lambda: engine.runners[0].inputs[0].link.first_attempt.is_set())
            health = engine.health()
            assert health["status"] == "degraded"
            assert health["services"]["mqtt"] == "down"
