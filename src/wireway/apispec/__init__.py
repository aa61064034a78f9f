"""Machine-readable descriptions of what wireway serves: OpenAPI for its HTTP routes,
AsyncAPI for the MQTT topics and WebSocket messages of a set of patterns."""
