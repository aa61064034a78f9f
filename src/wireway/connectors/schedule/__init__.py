"""The schedule connector: tick messages on a cron expression or an interval."""
