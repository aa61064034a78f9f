"""The stdin connector: wireway's own standard input."""
