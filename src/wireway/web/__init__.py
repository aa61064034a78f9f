"""The one HTTP server of the process."""
