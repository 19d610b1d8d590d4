"""What an engine hands to the import package: per table what was read and written, per label
what its node ids are, per relationship mapping its file and its ledger.

Both engines (:mod:`bulk360.engines.local`, :mod:`bulk360.engines.spark`) return these;
:mod:`bulk360.package.publish` turns them into the manifest, which is all the loaders read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bulk360.plan import RelationshipPlan, TablePlan
from bulk360.plan.ids import IdRange
from bulk360.plan.rules import MappingLedger

__all__ = ["Audited", "ExtractResult", "Joined", "NodeCheck", "RelationshipResult"]


class Audited(Protocol):
    """What an audit scan counted of a table (:class:`bulk360.engines.snapshot.Audit`)."""

    @property
    def null_key(self) -> int: ...

    @property
    def duplicate(self) -> int: ...

    @property
    def values(self) -> dict[str, dict[str, int]]: ...


@dataclass(frozen=True)
class ExtractResult:
    """What one reader wrote."""

    table: TablePlan
    path: Path
    rows: int
    rows_null_key: int
    bytes: int
    seconds: float
    sha256: str
    keys: Any
    """The local engine's parsed join and id columns (a Polars frame; None: none needed)."""
    values: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Column → kind → how many values Neo4j cannot hold as they are (see bulk360.plan.types)."""
    rows_duplicate: int = 0
    """Rows rejected because an earlier row has the same key (node tables)."""
    multiline: bool = False
    """Whether a value holds a line break (neo4j-admin must then parse the file as multi-line)."""
    ids: IdRange | None = None
    """The node ids the rows got (node tables)."""

    @classmethod
    def of(
        cls,
        table: TablePlan,
        path: Path,
        rows: int,
        audit: Audited | None,
        *,
        bytes: int,
        seconds: float,
        sha256: str,
        multiline: bool,
        ids: IdRange | None,
        keys: Any = None,
    ) -> ExtractResult:
        """A reader's result, with what the table's audit scan counted (None: no scan)."""
        return cls(
            table=table,
            path=path,
            rows=rows,
            rows_null_key=audit.null_key if audit else 0,
            bytes=bytes,
            seconds=seconds,
            sha256=sha256,
            keys=keys,
            values=audit.values if audit else {},
            rows_duplicate=audit.duplicate if audit else 0,
            multiline=multiline,
            ids=ids,
        )


@dataclass(frozen=True)
class NodeCheck:
    """What was verified of a node file before neo4j-admin trusts it (``--id-type=actual``)."""

    label: str
    first_id: int | None
    last_id: int | None


@dataclass(frozen=True)
class RelationshipResult:
    """The file of one relationship mapping, what its join found, and its ledger (see
    :mod:`bulk360.plan.rules`)."""

    plan: RelationshipPlan
    path: Path
    rows: int
    ledger: MappingLedger
    orphans: Mapping[str, int] = field(default_factory=dict)
    """Rows per counted side ('from', 'to', 'link') whose keys matched nothing."""
    seconds: float = 0.0
    multiline: bool = False
    """Whether a property value holds a line break."""
    sha256: str = ""
    """SHA-256 of the file."""
    values: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Property → kind → values neo4j-admin cannot store as they are (a Parquet package's
    empty strings)."""

    def with_sha256(self, digest: str) -> RelationshipResult:
        return dataclasses.replace(self, sha256=digest)


@dataclass(frozen=True)
class Joined:
    """Step 4's outcome: the checked node ids per label and every relationship file."""

    checks: Mapping[str, NodeCheck]
    relationships: list[RelationshipResult]
