"""`wireway bench`: the benchmark harness (tcp -> file, and the sensor application end to end)."""
