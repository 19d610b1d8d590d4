"""The files of an import package as the loaders read them: typed header fields, node files
with their keys, relationship files with their two node files, parsed by Polars.

A file is CSV as PostgreSQL's ``COPY`` writes it, with a header line of ``name:type`` fields
(neo4j-admin's), node files first holding ``:ID``, relationship files ``:START_ID`` and
``:END_ID``. Arrays are joined with U+001F. A Parquet package's files
(:mod:`bulk360.package.parquet`) are read as the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bulk360.package.parquet import SUFFIX, as_text
from bulk360.plan.types import ARRAY_DELIMITER

__all__ = ["Field", "NodeFile", "RelationshipFile", "keys_by_id", "node_rows", "scan"]

TEMPORAL = frozenset({"date", "localdatetime", "datetime", "localtime", "time", "duration"})
"""Types the server parses from ISO text, each with the Cypher function of its name."""
_POLARS = {"long": pl.Int64, "double": pl.Float64}


@dataclass(frozen=True)
class Field:
    """One typed column of a file: ``name:type`` of the header."""

    column: str
    name: str
    kind: str

    @classmethod
    def of(cls, header: str) -> Field:
        name, _, kind = header.rpartition(":")
        return cls(header, name, kind)

    def parse(self, expression: pl.Expr) -> pl.Expr:
        """The Polars expression turning the file's text into the driver's value."""
        kind = self.kind.removesuffix("[]")
        if self.kind.endswith("[]"):
            # NULL stays NULL; an empty text is an empty array, which Bolt can write (unlike
            # neo4j-admin, which stores no property: counted by the run as a changed value).
            split = expression.str.split(ARRAY_DELIMITER)
            parts = pl.when(expression == "").then(split.list.slice(0, 0)).otherwise(split)
            if kind == "boolean":
                return parts.list.eval(pl.element() == "true")
            return parts.cast(pl.List(_POLARS.get(kind, pl.String)))
        if kind == "boolean":
            return expression == "true"
        return expression.cast(_POLARS[kind]) if kind in _POLARS else expression

    def canonical(self, expression: pl.Expr) -> pl.Expr:
        """The file's text in one form per value, for comparing two packages: a double is
        written as PostgreSQL formatted it (``0.10`` of a ``numeric(4, 2)``) in a CSV package
        and as Polars does (``0.1``) when read from a Parquet one; every other type has one
        text either way."""
        if self.kind == "double":
            return expression.cast(pl.Float64).cast(pl.String)
        if self.kind == "double[]":
            doubles = expression.str.split(ARRAY_DELIMITER).cast(pl.List(pl.Float64))
            joined = doubles.cast(pl.List(pl.String)).list.join(ARRAY_DELIMITER)
            return pl.when(expression == "").then(expression).otherwise(joined)
        return expression

    def cypher(self, value: str) -> str:
        """The Cypher expression of the value parameter ``value`` (temporals parsed there)."""
        kind = self.kind.removesuffix("[]")
        if kind not in TEMPORAL:
            return value
        if self.kind.endswith("[]"):
            return f"[v IN {value} | {kind}(v)]"
        return f"{kind}({value})"


@dataclass(frozen=True)
class NodeFile:
    """A node file and the key properties its nodes are known by."""

    label: str
    path: Path
    headers: Sequence[str]
    keys: Sequence[str]
    rows: int | None = None
    """Nodes in the file, when the manifest says."""
    group_label: str | None = None
    """A second label its nodes carry (shared by a template's tenants)."""

    @property
    def labels(self) -> list[str]:
        """Every label its nodes carry: its own, then its group's."""
        return [self.label, *([self.group_label] if self.group_label else [])]

    @property
    def fields(self) -> list[Field]:
        return [Field.of(h) for h in self.headers if not h.startswith(":")]

    @property
    def id_column(self) -> str:
        return self.headers[0]

    def key_fields(self) -> list[Field]:
        by_name = {f.name: f for f in self.fields}
        return [by_name[k] for k in self.keys]


@dataclass(frozen=True)
class RelationshipFile:
    """The file of one relationship mapping."""

    name: str
    """``<TYPE>.<mapping id>``."""
    type: str
    start: NodeFile
    end: NodeFile
    path: Path
    headers: Sequence[str]
    rows: int | None = None
    """Relationships in the file, when the manifest says."""

    @property
    def group(self) -> tuple[str, str, str]:
        """Mappings of one type between the same two labels are written alike."""
        return (self.start.label, self.type, self.end.label)

    @property
    def fields(self) -> list[Field]:
        return [Field.of(h) for h in self.headers[2:]]


def scan(path: Path) -> pl.LazyFrame:
    """A file of a package, every column as text (a Parquet file's as its CSV text)."""
    if path.suffix == SUFFIX:
        return as_text(path)
    return pl.scan_csv(path, infer_schema=False, quote_char='"', has_header=True)


def keys_by_id(node: NodeFile, alias: str) -> pl.LazyFrame:
    """A node file's ids (``<alias>|id``) with the typed key values of each, named
    ``<alias>0``, ``<alias>1``..."""
    return scan(node.path).select(
        pl.col(node.id_column).cast(pl.Int64).alias(f"{alias}|id"),
        *[k.parse(pl.col(k.column)).alias(f"{alias}{i}") for i, k in enumerate(node.key_fields())],
    )


def node_rows(node: NodeFile, frame: pl.LazyFrame) -> pl.DataFrame:
    """The typed values of a node file's rows, in the order of ``node.fields``."""
    return frame.select([f.parse(pl.col(f.column)).alias(f.name) for f in node.fields]).collect()
