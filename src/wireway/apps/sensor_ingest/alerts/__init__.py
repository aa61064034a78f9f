"""Alerts over sensor readings: rules (`rules`), their lifecycle (`lifecycle`) and the
alerts read back from the database at start (`restore`)."""

from wireway.apps.sensor_ingest.alerts.lifecycle import ALERT_TYPE, AlertEngine, alert_message, transition
from wireway.apps.sensor_ingest.alerts.restore import restore_alert
from wireway.apps.sensor_ingest.alerts.rules import AlertRule, BusinessHours, default_rules, normalize_sensors

__all__ = [
    "ALERT_TYPE",
    "AlertEngine",
    "AlertRule",
    "BusinessHours",
    "alert_message",
    "default_rules",
    "normalize_sensors",
    "restore_alert",
    "transition",
]
