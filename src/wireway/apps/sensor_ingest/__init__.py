"""The sensor-ingestion application."""
