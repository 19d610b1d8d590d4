"""Parquet import packages (``--package-format parquet``): the same files, typed columns.

Every file of a package is first written as CSV (PostgreSQL's ``COPY`` formats each value as
neo4j-admin parses it, see :mod:`bulk360.plan.types`); a Parquet package then turns each file
into a Parquet file of the same name and header, streamed by Polars, and removes the CSV.
``neo4j-admin database import --input-type=parquet`` reads the column names as the CSV header
(``name:type``) and the values by their Parquet type:

| header type | Parquet column |
|---|---|
| ``:ID``, ``:START_ID``, ``:END_ID``, ``long`` | INT64 |
| ``double`` | DOUBLE (NaN and infinities included) |
| ``boolean`` | BOOLEAN |
| ``<type>[]`` | a LIST of the element's column |
| every other type (text, temporals with their zones, durations) | UTF-8 text, parsed by neo4j-admin as in a CSV file |

Two values fare differently than in a CSV package, both named by the run: neo4j-admin's Parquet
reader stores an empty array as an empty array (its CSV reader stores no property: the run's
``empty_arrays`` count is then no change, as over Bolt), and an empty string as no property (its
CSV reader keeps it), so every empty string of a ``string`` column is counted while the file is
written and named as a changed value (``empty_strings``; ``--strict-values`` fails instead).
Nothing else differs: the graph equals the CSV package's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bulk360.package.fields import Field
from bulk360.package.paths import file_sha256
from bulk360.plan.types import ARRAY_DELIMITER

__all__ = ["FORMATS", "ConvertedFile", "as_text", "to_parquet"]

FORMATS = ("csv", "parquet")
"""The package formats: CSV files as PostgreSQL writes them, or Parquet files made from them."""
SUFFIX = ".parquet"
_IDS = frozenset({":ID", ":START_ID", ":END_ID"})


def _field(header: str) -> Field:
    """The typed field of a file's column ``header``; ids are ``long`` values."""
    return Field(header, header, "long") if header in _IDS else Field.of(header)


def _text(header: str, typed: pl.Expr) -> pl.Expr:
    """The CSV text of a Parquet column (what :mod:`bulk360.package.files` parses)."""
    if _field(header).kind.endswith("[]"):
        return typed.list.eval(pl.element().cast(pl.String)).list.join(ARRAY_DELIMITER)
    return typed.cast(pl.String)


@dataclass(frozen=True)
class ConvertedFile:
    path: Path
    sha256: str
    bytes: int
    empty_strings: Mapping[str, int]
    """Per ``string`` column (its header), the empty strings neo4j-admin will not store."""


def to_parquet(csv_path: Path, headers: Sequence[str]) -> ConvertedFile:
    """Write ``csv_path`` (a package's CSV file with ``headers``) as the Parquet file beside it,
    remove the CSV file, and count the empty strings of its ``string`` columns."""
    out = csv_path.with_suffix(SUFFIX)
    temporary = out.with_name(f".{out.name}.tmp")
    text = pl.scan_csv(csv_path, infer_schema=False, quote_char='"', has_header=True)
    text.select([_field(h).parse(pl.col(h)) for h in headers]).sink_parquet(temporary)
    found: dict[str, int] = {}
    strings = [h for h in headers if _field(h).kind == "string"]
    if strings:  # read back from the columns alone, not from the CSV text again
        counts = pl.scan_parquet(temporary).select([(pl.col(h) == "").sum() for h in strings])
        found = counts.collect().row(0, named=True)
    os.replace(temporary, out)
    csv_path.unlink()
    return ConvertedFile(
        out,
        file_sha256(out),
        out.stat().st_size,
        {column: int(count) for column, count in found.items() if count},
    )


def as_text(path: Path) -> pl.LazyFrame:
    """A Parquet file of a package with every column as its CSV text."""
    frame = pl.scan_parquet(path)
    return frame.select([_text(h, pl.col(h)) for h in frame.collect_schema().names()])
