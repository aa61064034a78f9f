"""The target table's columns, as the database describes them (read when the output opens)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wireway.connectors.sql.base import Database, QueryFailed


@dataclass
class ColumnInfo:
    """One column of the target table, as the database describes it."""

    name: str
    kind: str  # text int float numeric bool json timestamptz timestamp date any
    notnull: bool = False
    maxlen: int | None = None
    low: int = -(2**63)
    high: int = 2**63 - 1
    dbtype: str = ""  # PostgreSQL: the type's name (varchar, int4, jsonb, ...)


_PG_INT_RANGE = {"int2": 15, "int4": 31, "int8": 63}
_PG_KINDS = {
    "varchar": "text",
    "bpchar": "text",
    "text": "text",
    "name": "text",
    "citext": "text",
    "float4": "float",
    "float8": "float",
    "numeric": "numeric",
    "bool": "bool",
    "json": "json",
    "jsonb": "json",
    "timestamptz": "timestamptz",
    "timestamp": "timestamp",
    "date": "date",
}
_DESCRIBE_PG = """
SELECT a.attname AS name, t.typname AS typname, a.attnotnull AS notnull,
       CASE WHEN t.typname IN ('varchar', 'bpchar') AND a.atttypmod > 4
            THEN a.atttypmod - 4 END AS maxlen
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_LENGTH = re.compile(r"\(\s*(\d+)\s*\)")


def _sqlite_kind(declared: str) -> str:
    d = declared.upper()
    if "JSON" in d:
        return "json"
    if "INT" in d:
        return "int"
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return "text"
    if "REAL" in d or "FLOA" in d or "DOUB" in d or "NUMERIC" in d or "DECIMAL" in d:
        return "float"
    if "BOOL" in d:
        return "bool"
    if "TIMESTAMP" in d or "DATETIME" in d:
        return "timestamp"
    if d == "DATE":
        return "date"
    return "any"


async def describe(db: Database, table: str) -> dict[str, ColumnInfo]:
    """The columns of a table; raises QueryFailed if there is no such table."""
    found: dict[str, ColumnInfo] = {}
    if db.dialect == "postgresql":
        for r in await db.fetch(_DESCRIBE_PG, table):
            typname = str(r["typname"])
            info = ColumnInfo(str(r["name"]), _PG_KINDS.get(typname, "any"), bool(r["notnull"]))
            info.maxlen, info.dbtype = r["maxlen"], typname
            if typname in _PG_INT_RANGE:
                bits = _PG_INT_RANGE[typname]
                info.kind, info.low, info.high = "int", -(2**bits), 2**bits - 1
            found[info.name] = info
    else:
        schema, _, name = table.rpartition(".")
        pragma = f"PRAGMA {schema + '.' if schema else ''}table_info({name})"
        for r in await db.fetch(pragma):
            declared = str(r["type"] or "")
            info = ColumnInfo(str(r["name"]), _sqlite_kind(declared), bool(r["notnull"]))
            length = _LENGTH.search(declared)
            if info.kind == "text" and length:
                info.maxlen = int(length.group(1))
            found[info.name] = info
    if not found:
        raise QueryFailed(f"table {table} does not exist in {db.url}")
    return found
