"""The webhook connector: signed webhooks (GitHub's form or a generic one) on the shared HTTP server."""
