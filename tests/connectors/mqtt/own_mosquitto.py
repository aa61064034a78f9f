"""A Mosquitto of one test alone (its own config, a free port), certificates for it, and
the real `wireway run` against it."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from conftest import free_port, need_service

MOSQUITTO = "/usr/sbin/mosquitto"


def have_mosquitto() -> str:
    """The mosquitto binary (skips, or fails in CI, without it)."""
    binary = MOSQUITTO if os.path.exists(MOSQUITTO) else shutil.which("mosquitto")
    if binary is None:
        need_service("mosquitto (the binary, for a broker of the test)", 0)
    assert binary is not None
    return binary


@contextlib.contextmanager
def mosquitto(folder: Path, conf: str) -> Iterator[int]:
    """Mosquitto with `conf` (its listener added) on a free port; stopped afterwards."""
    binary = have_mosquitto()
    port = free_port()
    path = folder / "mosquitto.conf"
    path.write_text(f"user root\nlog_dest none\nlistener {port} 127.0.0.1\n{conf}")
    proc = subprocess.Popen([binary, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"mosquitto did not start: {err}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def passwords(folder: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file of `users` (name -> password)."""
    path = folder / "passwd"
    binary = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    for i, (user, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([binary, "-b", *create, str(path), user, password], check=True, timeout=10)
    return path


def make_certs(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files:
    ca.pem, server.pem/.key, client.pem/.key, and other-ca.pem (a CA nobody trusts)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    pem = serialization.Encoding.PEM

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if subject == "127.0.0.1":
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    def write(stem: str, certificate: x509.Certificate, key: Any = None) -> None:
        (folder / f"{stem}.pem").write_bytes(certificate.public_bytes(pem))
        if key is not None:
            raw = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            (folder / f"{stem}.key").write_bytes(raw)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    write("ca", cert("wireway test CA", ca_key, "wireway test CA", ca_key, True))
    for stem, subject in (("server", "127.0.0.1"), ("client", "wireway-client")):
        key = ec.generate_private_key(ec.SECP256R1())
        write(stem, cert(subject, key, "wireway test CA", ca_key, False), key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    write("other-ca", cert("someone else", other_key, "someone else", other_key, True))
    key = ec.generate_private_key(ec.SECP256R1())
    write("stranger", cert("stranger", key, "someone else", other_key, False), key)


class Publisher:
    """A paho client of the test that publishes and counts the broker's PUBACKs."""

    def __init__(
        self,
        port: int,
        tls_ca: Path | None = None,
        cert: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if tls_ca is not None:  # `cert` and its key (same stem, .key) for a client certificate
            key = str(cert.with_suffix(".key")) if cert else None
            self.client.tls_set(ca_certs=str(tls_ca), certfile=str(cert) if cert else None, keyfile=key)
        self.lock = threading.Lock()
        self.acked = 0
        self.messages: list[paho.MQTTMessage] = []
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_publish = self._published
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.connected.wait(5), "test client could not connect"

    def _published(self, c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        with self.lock:
            self.acked += 1

    def _message(self, c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(msg)

    def publish(self, topic: str, payload: Any, qos: int = 1) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        assert self.client.publish(topic, body, qos).rc == paho.MQTT_ERR_SUCCESS

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: done.set()
        self.client.subscribe(topic, 1)
        assert done.wait(5), "no SUBACK"

    def payloads(self) -> list[Any]:
        with self.lock:
            return [json.loads(m.payload) for m in self.messages]

    def wait_acked(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < count:
            assert time.monotonic() < deadline, f"{self.acked} of {count} acknowledged by the broker"
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Wireway:
    """The real `wireway run PATTERN` of a test, with its own HTTP port and data folder."""

    def __init__(self, folder: Path, pattern: str) -> None:
        (folder / "pattern.yaml").write_text(pattern)
        self.http = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "WIREWAY_LOG_LEVEL": "WARNING"}
        env.pop("WIREWAY_CONFIG", None)
        self.log = (folder / "wireway.log").open("w")
        options = ["--http", self.http.removeprefix("http://"), "--data-dir", str(folder / "data")]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wireway", "run", str(folder / "pattern.yaml"), *options],
            cwd=folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.http + path, timeout=5, trust_env=False)

    def wait(self, check: Any, timeout: float = 30, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"wireway exited with {self.proc.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                if check():
                    return
            assert time.monotonic() < deadline, f"{what} not met in {timeout}s"
            time.sleep(0.1)

    def metric(self, name: str) -> float:
        """The sum of the samples on /metrics that start with `name` (a metric's name, or
        its name and its first labels, like `m{a="x"`); 0 when there is none."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name) and line[len(name)] in "{ ,}":
                total += float(line.rsplit(" ", 1)[1])
        return total

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
