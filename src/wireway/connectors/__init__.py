"""Connectors: one folder per family, each registering its input/output by name.

The contracts (see `base.py`): an input is started with an `InputContext` and
hands values to `ctx.ingest(...)`; an output gets `write(batch)` and confirms by
returning, or raises `RetryableError` / `PermanentError`. Model input: `tcp`;
model output: `http_client`.
"""
