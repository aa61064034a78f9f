"""The runtime: pattern runners, output queues, the store and the engine."""
