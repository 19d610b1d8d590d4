"""What an engine hands to the rest of a run: per table what was read and written, per label
what its node ids are, per relationship mapping its file and its ledger.

Both engines (:mod:`bulk360.engines.local`, :mod:`bulk360.engines.spark`) return these; the
manifest, the loaders and the audit rows read nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bulk360.ids import IdRange
from bulk360.plan import RelationshipPlan, TablePlan

__all__ = ["ExtractResult", "NodeCheck", "RelationshipResult"]


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
    values: dict[str, dict[str, int]] = field(default_factory=dict)
    """Column → kind → how many values Neo4j cannot hold as they are (see bulk360.types)."""
    rows_duplicate: int = 0
    """Rows rejected because an earlier row has the same key (node tables)."""
    multiline: bool = False
    """Whether a value holds a line break (neo4j-admin must then parse the file as multi-line)."""
    ids: IdRange | None = None
    """The node ids the rows got (node tables)."""


@dataclass(frozen=True)
class NodeCheck:
    """What was verified of a node file before neo4j-admin trusts it (``--id-type=actual``)."""

    label: str
    first_id: int | None
    last_id: int | None


@dataclass(frozen=True)
class RelationshipResult:
    """The file of one relationship mapping, what its join found, and its ledger.

    The ledger counts the rows of the mapping's driving side (the link table, or the side whose
    keys refer to the other): ``read = matched + rejected + orphaned``, where rejected rows have
    a NULL join key (they refer to nothing) and orphaned ones match nothing; each matched row
    gives one relationship, or more when its key matches several rows (``fanout`` counts those
    extra relationships), so ``read + fanout = rows + rejected + orphaned``.
    """

    plan: RelationshipPlan
    path: Path
    rows: int
    orphans: dict[str, int] = field(default_factory=dict)
    """Rows per side ('from', 'to', 'link') whose keys matched nothing."""
    seconds: float = 0.0
    multiline: bool = False
    """Whether a property value holds a line break."""
    driving: str = "from"
    read: int = 0
    rejected: int = 0
    orphaned: int = 0
    matched: int = 0
    sha256: str = ""
    """SHA-256 of the file."""

    def with_sha256(self, digest: str) -> RelationshipResult:
        return dataclasses.replace(self, sha256=digest)

    @property
    def fanout(self) -> int:
        return self.rows - self.matched

    @property
    def balanced(self) -> bool:
        return self.read == self.matched + self.rejected + self.orphaned
