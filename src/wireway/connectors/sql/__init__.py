"""The sql connector: one async database layer for SQLite and PostgreSQL, and the `sql` output."""
