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

from bulk360.package.fields import Field
from bulk360.package.parquet import SUFFIX, as_text

__all__ = ["Field", "NodeFile", "RelationshipFile", "keys_by_id", "node_rows", "scan"]


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
