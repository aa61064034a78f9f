"""The http_client connector."""
