"""The kismet connector: devices from Kismet's REST API by last-seen time, and its eventbus."""
