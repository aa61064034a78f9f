"""The stdout connector."""
