"""PostgreSQL-style SQL rewritten for SQLite, so statements are written once.

`$n` becomes `?n`, single-word `::type` casts are dropped, and `now()` becomes the
current UTC time as RFC 3339 text (how SQLite stores timestamps here). String
literals, quoted identifiers and `--` comments are left alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

_SQLITE_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*"""  # left alone
    r"""|\$(\d+)"""  # $n -> ?n
    r"""|::[A-Za-z_][A-Za-z0-9_]*(?:\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])?"""  # cast: dropped
    r"""|\bnow\(\s*\)""",  # now() -> RFC 3339 text
    re.IGNORECASE,
)


def _sqlite_token(m: re.Match[str]) -> str:
    if m.group(1):
        return "?" + m.group(1)
    token = m.group(0)
    if token.startswith("::"):
        return ""
    if token[0] in "'\"-":
        return token
    return SQLITE_NOW


@lru_cache(maxsize=1024)
def sqlite_sql(sql: str) -> str:
    """A PostgreSQL-style statement rewritten for SQLite (cached; see the module docstring)."""
    return _SQLITE_TOKENS.sub(_sqlite_token, sql)
