"""The mavlink connector: positions from a flight controller or MAVProxy over MAVLink
(UDP, TCP or a serial device), read by pymavlink on a worker thread, with a heartbeat
watchdog and each fix on the engine's position board."""
