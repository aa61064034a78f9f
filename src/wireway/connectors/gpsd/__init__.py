"""The gpsd connector: positions from gpsd (the GPS daemon) over its JSON protocol, with
reconnection, a watchdog for a silent gpsd, and each fix on the engine's position board."""
