"""The tcp connector."""
