"""The file connector."""
