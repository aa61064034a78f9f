"""Redis in and out: a list as a work queue, pub/sub channels, and streams read by a
consumer group."""
