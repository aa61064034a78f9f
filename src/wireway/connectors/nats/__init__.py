"""The nats connector: core NATS and JetStream, in and out."""
