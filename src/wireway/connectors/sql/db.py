"""The database layer: one small async interface over SQLite and PostgreSQL.

`open_database(url)` picks the dialect; the interface, errors and value shapes are in
`base`, the dialects in `sqlite` and `postgresql`, the SQL rewriting for SQLite in
`rewrite`. The names other modules use are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from wireway.connectors.sql.base import (
    DEFAULT_OWN_SCHEMA,
    OWN_SCHEMA,
    Database,
    Json,
    Queries,
    QueryFailed,
    RejectedData,
    Tx,
    format_timestamp,
    json_text,
    parse_timestamp,
)
from wireway.connectors.sql.postgresql import PG_ERRORS, PostgresDatabase, PostgresTx, translate_pg
from wireway.connectors.sql.rewrite import sqlite_sql
from wireway.connectors.sql.sqlite import SqliteDatabase, SqliteTx, translate_sqlite

__all__ = [
    "DEFAULT_OWN_SCHEMA",
    "DEFAULT_SQLITE_FILE",
    "PG_ERRORS",
    "Database",
    "Json",
    "PostgresDatabase",
    "PostgresTx",
    "Queries",
    "QueryFailed",
    "RejectedData",
    "SqliteDatabase",
    "SqliteTx",
    "Tx",
    "format_timestamp",
    "json_text",
    "mask_url",
    "open_database",
    "parse_timestamp",
    "parse_url",
    "sqlite_sql",
    "translate_pg",
    "translate_sqlite",
]

DEFAULT_SQLITE_FILE = "wireway.db"


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def parse_url(url: str, *, data_dir: Path) -> tuple[str, str]:
    """(dialect, target): the SQLite file path (or `:memory:`) or the PostgreSQL DSN.

    Raises:
        ValueError: not a URL this layer understands.
    """
    text = url.strip()
    if text in ("", "sqlite:", "sqlite://"):
        return "sqlite", os.path.abspath(data_dir / DEFAULT_SQLITE_FILE)
    if text.startswith("sqlite:///"):
        rest = text[len("sqlite:///") :]
        if not rest or rest.endswith("/"):
            raise ValueError(f"expected a file after sqlite:/// in {url!r}")
        if rest == ":memory:":
            return "sqlite", rest
        return "sqlite", os.path.abspath(rest)  # relative to the working directory
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql", text
    raise ValueError(
        f"unsupported database URL {mask_url(url)!r} "
        "(expected sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db)"
    )


def open_database(url: str, *, data_dir: Path, own_schema: str = DEFAULT_OWN_SCHEMA) -> Database:
    """A `Database` for a URL (nothing is opened yet).

    `sqlite:///relative/path.db` (relative to the working directory),
    `sqlite:////abs/path.db`, `sqlite://` or an empty URL (`<data_dir>/wireway.db`),
    `postgresql://user:password@host:port/db` or `postgres://...` (query parameters
    asyncpg does not know, such as `?search_path=myschema`, become server settings).
    `own_schema` is where wireway keeps its own tables (`Database.own_table`).

    Raises:
        ValueError: an unsupported URL, or an own schema that is not a plain lowercase name.
    """
    if not OWN_SCHEMA.match(own_schema):
        raise ValueError(f"expected a lowercase name (letters, digits, _) for the schema, got {own_schema!r}")
    dialect, target = parse_url(url, data_dir=data_dir)
    db: Database
    if dialect == "sqlite":
        shown = url if url.strip() not in ("", "sqlite:", "sqlite://") else f"sqlite:///{target}"
        db = SqliteDatabase(target, shown)
    else:
        db = PostgresDatabase(target, mask_url(url))
    db.own_schema = own_schema
    return db
