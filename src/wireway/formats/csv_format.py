"""`csv`: one row one message, mapped to an object by the header row's names or by a
declared column list (RFC 4180 quoting, via the csv module)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wireway.envelope import Message
from wireway.formats.codec import Codec, Record
from wireway.registry import register_format

ColumnType = Literal["str", "int", "float", "bool", "json"]
_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


class CsvOptions(msgspec.Struct, forbid_unknown_fields=True):
    """Options of the `csv` format.

    Without `columns`, the first row of each file or stream is the header and names
    the fields; with `columns`, every row is data (set `header: true` as well to skip
    a header row the file has anyway). Values are strings unless `types` names the
    column (`int`, `float`, `bool`, `json`); an empty typed value is null. A row
    with more fields than columns, or fewer, goes to the DLQ with its line number;
    `short_rows: pad` reads missing trailing fields as empty instead (files whose
    writer leaves off empty trailing columns). Reading line by line (a file tail, a
    pipe), a quoted field cannot span lines (an unclosed quote is an error of its
    line alone) and a row that is not UTF-8 goes to the DLQ; whole units (an HTTP
    body, a message) follow RFC 4180 fully. Written rows take the columns from `columns`,
    else from the first message's payload keys, and begin with a header row.
    """

    columns: Annotated[list[str] | None, Meta(description="field names; else the header row's")] = None
    header: Annotated[bool | None, Meta(description="with `columns`: skip the file's header row")] = None
    types: Annotated[dict[str, ColumnType], Meta(description="column -> type; strings otherwise")] = {}
    delimiter: str = ","
    quotechar: str = '"'
    short_rows: Annotated[Literal["error", "pad"], Meta(description="too few fields: DLQ or pad")] = "error"
    skip_lines: Annotated[int, Meta(ge=0, description="lines to ignore first (a preamble)")] = 0

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1:
            raise ValueError("expected one character - at `$.delimiter`")
        if len(self.quotechar) != 1:
            raise ValueError("expected one character - at `$.quotechar`")
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise ValueError("column names must be unique - at `$.columns`")


def _typed(value: str, kind: str) -> Any:
    if kind == "str":
        return value
    if value == "":
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return msgspec.json.decode(value)


@register_format("csv", config=CsvOptions)
class CsvCodec(Codec):
    """One row per message, an object keyed by column name."""

    name = "csv"
    lines = True
    content_type = "text/csv; charset=utf-8"
    options: CsvOptions

    def __init__(self, options: CsvOptions | None = None) -> None:
        super().__init__(options or CsvOptions())
        opts = self.options
        self.columns: list[str] | None = list(opts.columns) if opts.columns else None
        self.skip = opts.skip_lines + (1 if opts.columns and opts.header else 0)
        self.dialect = {"delimiter": opts.delimiter, "quotechar": opts.quotechar}

    def decode(self, data: bytes, where: str = "") -> list[Record]:
        text = data.decode("utf-8-sig", "replace")
        reader = csv.reader(io.StringIO(text, newline=""), strict=True, **self.dialect)  # type: ignore[arg-type]
        out: list[Record] = []
        try:
            for fields in reader:
                record = self.row(fields, f"{where} line {reader.line_num}".strip())
                if record is not None:
                    out.append(record)
        except csv.Error as exc:
            place = f"{where} line {reader.line_num}".strip()
            out.append(Record(text, f"{place}: malformed CSV: {exc}", place))
        return out

    def decode_line(self, line: bytes, where: str = "") -> Record | None:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = line.decode("utf-8", "replace")
            if not self.skip and self.columns is not None:  # a data row: never its bytes guessed
                return Record(text, f"{where}: not UTF-8 (byte {exc.start + 1} of the line)", where)
        if self.columns is None and not self.skip and text.startswith("\ufeff"):
            text = text[1:]  # a byte order mark before the header
        try:
            rows = list(csv.reader([text], strict=True, **self.dialect))  # type: ignore[arg-type]
        except csv.Error as exc:
            return Record(text, f"{where}: malformed CSV: {exc}", where)
        return self.row(rows[0] if rows else [], where, text)

    def row(self, fields: list[str], where: str, raw: str | None = None) -> Record | None:
        if self.skip:
            self.skip -= 1
            return None
        if not fields or fields == [""]:
            return None
        if self.columns is None:
            self.columns = [f.strip() for f in fields]
            return None
        columns = self.columns
        if len(fields) != len(columns):
            if len(fields) < len(columns) and self.options.short_rows == "pad":
                fields = fields + [""] * (len(columns) - len(fields))
            else:
                text = raw if raw is not None else self.options.delimiter.join(fields)
                reason = f"{where}: {len(fields)} fields, expected {len(columns)}"
                return Record(text, reason, where)
        types = self.options.types
        value: dict[str, Any] = {}
        for name, field in zip(columns, fields, strict=True):
            kind = types.get(name)
            if kind is None:
                value[name] = field if field or name not in types else None
                continue
            try:
                value[name] = _typed(field, kind)
            except (ValueError, msgspec.DecodeError) as exc:
                text = raw if raw is not None else self.options.delimiter.join(fields)
                return Record(text, f"{where}: column {name}: {exc}", where)
        return Record(value, None, where)

    # ---- writing --------------------------------------------------------------------
    def header(self, first: Message | None = None) -> bytes:
        columns = self._columns_for(first)
        return self._line(columns) if columns else b""

    def encode(self, msg: Message, payload_only: bool = False) -> bytes:
        payload = msg.payload
        columns = self._columns_for(msg)
        if isinstance(payload, dict):
            cells = [_cell(payload.get(name)) for name in columns]
        elif isinstance(payload, list):
            cells = [_cell(v) for v in payload]
        else:
            cells = [_cell(payload)]
        return self._line(cells)[:-1]

    def _columns_for(self, msg: Message | None) -> list[str]:
        if self.columns is None and msg is not None and isinstance(msg.payload, dict):
            self.columns = [str(k) for k in msg.payload]
        return self.columns or []

    def _line(self, cells: list[str]) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n", **self.dialect).writerow(cells)  # type: ignore[arg-type]
        return buf.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return msgspec.json.encode(value).decode()
