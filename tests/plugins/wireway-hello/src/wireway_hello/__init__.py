"""A tiny wireway plugin: the `hello` output (see output.py)."""
