"""Low-level, dependency-free readers for the dataset files lmdistill uses.

Every reader returns plain Python values (no pandas), never turns a cell such as ``"NA"``,
``"null"`` or ``""`` into a missing value, strips a leading UTF-8 byte-order mark, and raises
:class:`lmdistill.errors.DataError` with a one-line message naming the file when the file is
missing or cannot be parsed.

* :func:`read_tsv` - GLUE-style TSV: one record per line, fields split on tabs, **no quoting**
  (equivalent to ``csv.QUOTE_NONE``; a ``"`` is an ordinary character, which matters for MRPC /
  SST-2 sentences that start with a quote). ``\\r\\n`` line ends are accepted.
* :func:`read_csv_quoted` - CSV/TSV with the csv module's default quoting, so quoted fields
  may contain the delimiter, tabs and newlines (the Amazon multi-domain files).
* :func:`read_lines` - one text per line (RT polarity ``.pos``/``.neg``).
* :func:`read_jsonl` / :func:`read_json` - JSON Lines / a single JSON document.

Tabular readers return a :class:`Table`: the header (if any), the rows as lists of strings and,
for error messages, the 1-based file line on which each row starts.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmdistill.errors import DataError

__all__ = ["Table", "read_tsv", "read_csv_quoted", "read_lines", "read_jsonl", "read_json"]

PathLike = str | os.PathLike

# Long reviews exceed the csv module's default 128 KiB field limit only in pathological files,
# but a limit error on real data would be a confusing failure: allow up to 64 MiB per field.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


@dataclass
class Table:
    """A parsed delimited file.

    ``columns`` is the header row (``None`` when the file was read with ``header=False``),
    ``rows`` the data rows (lists of strings, possibly of unequal length) and ``lines`` the
    1-based line number on which each row starts (parallel to ``rows``).
    """

    path: Path
    columns: list[str] | None
    rows: list[list[str]]
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def column_index(self, name: str) -> int:
        """Position of header column ``name``; DataError listing the columns if absent."""
        if self.columns is None:
            raise DataError(f"{self.path} has no header row, so column '{name}' cannot be looked up")
        try:
            return self.columns.index(name)
        except ValueError:
            cols = ", ".join(self.columns) if self.columns else "none"
            raise DataError(f"column '{name}' not in {self.path} (columns: {cols})") from None

    def cell(self, i: int, col: int, name: str | None = None) -> str:
        """Field ``col`` of row ``i``; DataError naming the file line if the row is too short."""
        row = self.rows[i]
        if col >= len(row):
            what = f"column '{name}'" if name else f"field {col + 1}"
            raise DataError(
                f"{self.path} line {self.lines[i]} has {len(row)} fields, so {what} is missing"
            )
        return row[col]


def _check_file(path: PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"file {p} does not exist")
    if not p.is_file():
        raise DataError(f"{p} is not a regular file")
    return p


def _decode_error(p: Path, err: UnicodeDecodeError) -> DataError:
    return DataError(f"{p} is not valid UTF-8 (byte {err.start}: {err.reason}); re-encode it as UTF-8")


def read_tsv(path: PathLike, header: bool = True, *, errors: str = "strict") -> Table:
    """Read a tab-separated file with quoting OFF (GLUE convention, like ``csv.QUOTE_NONE``).

    Each ``\\n``-terminated line is one record, split on ``\\t``; a trailing ``\\r`` is
    dropped, blank lines are skipped, a missing final newline is fine (CoLA dev), a UTF-8 BOM is
    stripped (MRPC). Cells are returned verbatim - "NA", "null", quotes and surrounding spaces
    are kept. With ``header=True`` the first non-blank line becomes ``Table.columns``.
    """
    p = _check_file(path)
    columns: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    for lineno, line in read_lines(p, errors=errors):
        fields = line.split("\t")
        if header and columns is None:
            columns = fields
            continue
        rows.append(fields)
        lines.append(lineno)
    if header and columns is None:
        columns = []
    return Table(p, columns, rows, lines)


def read_csv_quoted(
    path: PathLike, delimiter: str = ",", header: bool = True, *, errors: str = "strict"
) -> Table:
    """Read a delimited file with the csv module's default (``"``) quoting.

    Quoted fields may contain the delimiter, tabs, newlines and doubled quotes, so one record can
    span several lines (the Amazon multi-domain reviews: ``"title\\n\\tbody"\\t1``). Empty
    records (blank lines) are skipped; a UTF-8 BOM is stripped. Malformed quoting raises
    DataError with the line number.
    """
    p = _check_file(path)
    columns: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, _CSV_FIELD_LIMIT))
    try:
        with open(p, encoding="utf-8-sig", errors=errors, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            start = 1
            try:
                for record in reader:
                    this_start, start = start, reader.line_num + 1
                    if not record or (len(record) == 1 and not record[0].strip()):
                        continue
                    if header and columns is None:
                        columns = record
                        continue
                    rows.append(record)
                    lines.append(this_start)
            except csv.Error as e:
                raise DataError(f"cannot parse {p} near line {reader.line_num}: {e}") from None
    except UnicodeDecodeError as e:
        raise _decode_error(p, e) from None
    finally:
        csv.field_size_limit(old_limit)
    if header and columns is None:
        columns = []
    return Table(p, columns, rows, lines)


def read_lines(path: PathLike, *, errors: str = "strict") -> list[tuple[int, str]]:
    """Non-blank lines of a text file as ``(1-based line number, text)``, line ends removed.

    ``errors="replace"`` decodes invalid UTF-8 bytes as U+FFFD instead of failing.
    """
    p = _check_file(path)
    out: list[tuple[int, str]] = []
    try:
        # newline="\n": split only on LF (a stray CR inside a field stays in the field).
        with open(p, encoding="utf-8-sig", errors=errors, newline="\n") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.rstrip("\n")
                if line.endswith("\r"):
                    line = line[:-1]
                if line.strip():
                    out.append((lineno, line))
    except UnicodeDecodeError as e:
        raise _decode_error(p, e) from None
    return out


def read_jsonl(path: PathLike) -> list[tuple[int, Any]]:
    """JSON Lines: one JSON value per non-blank line, returned as ``(line number, value)``."""
    p = _check_file(path)
    out: list[tuple[int, Any]] = []
    try:
        with open(p, encoding="utf-8-sig", newline="\n") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    out.append((lineno, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(f"invalid JSON in {p} line {lineno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise _decode_error(p, e) from None
    return out


def read_json(path: PathLike) -> Any:
    """A whole-file JSON document (e.g. CLINC150's ``{split: [[text, intent], ...]}``)."""
    p = _check_file(path)
    try:
        with open(p, encoding="utf-8-sig") as f:
            text = f.read()
        if not text.strip():
            raise DataError(f"no examples in {p} (the file is empty)")
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON in {p} line {e.lineno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise _decode_error(p, e) from None
