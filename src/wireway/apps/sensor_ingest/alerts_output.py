"""`sensor_alerts`: evaluate alert rules on readings; fan alerts out to live clients,
MQTT, webhooks and the database."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from wireway.apps.sensor_ingest.alerts import (
    AlertEngine,
    AlertRule,
    BusinessHours,
    Webhooks,
    default_rules,
)
from wireway.apps.sensor_ingest.app import sensor_app
from wireway.connectors.base import Output, Service
from wireway.connectors.mqtt.client import parse_url
from wireway.envelope import Message
from wireway.errors import RetryableError
from wireway.observability import logging as log
from wireway.registry import register_output

logger = log.get("alerts")


class MqttAlerts(msgspec.Struct, forbid_unknown_fields=True):
    """Where alerts are published (QoS 1)."""

    url: Annotated[str, Meta(description="mqtt://host:port, or mqtts:// for TLS")] = "mqtt://127.0.0.1:1883"
    topic: Annotated[str, Meta(description="{device_id} is filled in")] = "neurobuild/alerts/{device_id}"
    enabled: bool = True
    tls_ca: Annotated[str, Meta(description="mqtts: CA file (default: the system's)")] = ""


class SensorAlertsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """Alert rules over readings: a CEL condition, severity, cooldown and clear condition.

    Defaults: `high_gas_concentration` (MQ134 above `gas_threshold_ppm`, compared in
    ppm) and `unauthorized_presence` (radar presence or PIR motion on a device whose
    metadata has `secure_area: true`, outside `business_hours`). One open alert per
    rule and device; repeats raise its count. Alerts go to WebSocket clients that
    subscribed with `"alerts": true`, to MQTT, to `webhooks` (signed with
    HMAC-SHA256 in `X-Wireway-Signature` when `webhook_secret` is set) and the database.
    """

    gas_threshold_ppm: Annotated[float, Meta(gt=0)] = 500
    business_hours: BusinessHours = msgspec.field(default_factory=BusinessHours)
    rules: list[AlertRule] = []
    default_rules: bool = True
    webhooks: list[str] = []
    webhook_secret: str = ""
    mqtt: MqttAlerts | None = None


class MqttPublisher:
    """A small paho publisher on its own thread (alerts are few)."""

    def __init__(self, config: MqttAlerts) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.config = config
        broker = parse_url(config.url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="")
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self.client.tls_set_context(ssl.create_default_context(cafile=config.tls_ca or None))
        self.client.connect_async(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def publish(self, alert: dict[str, Any]) -> None:
        topic = self.config.topic.format(device_id=alert["device_id"])
        self.client.publish(topic, msgspec.json.encode(alert), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC) if value else None


@register_output("sensor_alerts", config=SensorAlertsConfig)
class SensorAlertsOutput(Output):
    """Evaluate the rules on each reading."""

    def __init__(self, config: SensorAlertsConfig, iface: Any, pattern: Any) -> None:
        super().__init__(config, iface, pattern)
        rules = default_rules(config.gas_threshold_ppm, config.business_hours) if config.default_rules else []
        names = {r.name for r in config.rules}
        self.rules = [r for r in rules if r.name not in names] + list(config.rules)
        self.engine = AlertEngine(
            self.rules,
            persist=self.persist,
            notify=self.notify,
            business_hours=config.business_hours,
        )
        self.webhooks = Webhooks(config.webhooks, secret=config.webhook_secret) if config.webhooks else None
        self.mqtt: MqttPublisher | None = None
        self._pending: set[asyncio.Task[bool]] = set()

    def services(self) -> list[Service]:
        return [sensor_app()]

    async def open(self) -> None:
        app = sensor_app()
        app.alerts = self.engine
        if app.hub is None:
            from wireway.connectors.websocket.hub import get_hub

            app.use_hub(get_hub("/ws"))
        mqtt = self.config.mqtt if self.config.mqtt is not None else MqttAlerts()
        if mqtt.enabled:
            try:
                self.mqtt = MqttPublisher(mqtt)
            except Exception as exc:  # noqa: BLE001  (alerts still reach the API and clients)
                logger.warning("alerts: MQTT publisher unavailable", error=str(exc))
        await app.when_ready(self.load)

    async def load(self) -> None:
        """The alerts still open, from the storage."""
        db = sensor_app().db
        assert db is not None
        self.engine.load(await db.fetch("SELECT * FROM alerts WHERE state <> 'cleared'"))

    async def close(self) -> None:
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
        if self.webhooks is not None:
            await self.webhooks.close()
        if self.mqtt is not None:
            self.mqtt.close()

    async def persist(self, alert: dict[str, Any]) -> None:
        db = sensor_app().db
        assert db is not None
        await db.execute(
            "INSERT INTO alerts (id, rule, device_id, severity, state, message, count, first_seen, "
            "last_seen, acknowledged_at, cleared_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
            "$9, $10, $11, $12) ON CONFLICT (id) DO UPDATE SET state = $5, message = $6, "
            "count = $7, last_seen = $9, acknowledged_at = $10, cleared_at = $11, data = $12",
            alert["id"],
            alert["rule"],
            alert["device_id"],
            alert["severity"],
            alert["state"],
            alert.get("message", ""),
            alert["count"],
            _dt(alert["first_seen"]),
            _dt(alert["last_seen"]),
            _dt(alert.get("acknowledged_at")),
            _dt(alert.get("cleared_at")),
            alert.get("data"),
        )

    async def notify(self, alert: dict[str, Any]) -> None:
        hub = sensor_app().hub
        if hub is not None:
            hub.publish("alert", alert)
        if self.mqtt is not None:
            self.mqtt.publish(alert)
        if self.webhooks is not None:
            # webhooks retry on their own; the reading stream does not wait for them
            task = asyncio.create_task(self.webhooks.send(alert), name="wireway[alerts].webhook")
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def write(self, batch: list[Message]) -> dict[int, str] | None:
        if sensor_app().waiting:  # readings from the buffer, before the open alerts load
            raise RetryableError("alerts: storage not reached yet")
        try:
            await self.engine.evaluate_many([msg.payload for msg in batch])
        except Exception as exc:
            raise RetryableError(f"alerts: {exc}") from exc
        return None
