"""The http_poll connector: poll an HTTP endpoint, a cursor carried from one response to the next request."""
