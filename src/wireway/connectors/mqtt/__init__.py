"""The mqtt connector: a subscribing input and a publishing output over one hand-written
MQTT 3.1.1 / 5 client (`wire` the codec, `session` the connection, `inbound` / `outbound`)."""
