"""The mqtt connector: a subscribing input and a publishing output (paho-mqtt on asyncio)."""
