"""A typed column of an import package's file: a ``name:type`` field of its header (neo4j-admin's
header types), and how its text becomes a value, for the Bolt writer, the sync diff and the
Parquet files alike."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from bulk360.plan.types import ARRAY_DELIMITER

__all__ = ["Field"]

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
            # NULL stays NULL; an empty text is an empty array, which Bolt and neo4j-admin's
            # Parquet reader store (its CSV reader stores no property: counted by the run as a
            # changed value).
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
