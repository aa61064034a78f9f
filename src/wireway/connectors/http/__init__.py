"""The http connector."""
