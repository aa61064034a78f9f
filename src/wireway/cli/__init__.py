"""The `wireway` command line."""
