"""The manifest of an import package: what the folder holds, each file's checksum, and every
count the ledger needs. It is the hand-over between the stages: the engines' results become a
manifest; the loaders, the ledger, ``verify`` and ``--resume`` read nothing else.

On disk it is ``manifest.json`` (:data:`FORMAT` 4). Folders written by earlier versions with
format 3 read the same: format 4 only added ``bulk360_version`` and ``engine``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bulk360.errors import IntegrityError
from bulk360.plan.rules import MappingLedger, Role
from bulk360.plan.types import VALUE_CHANGES

__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "Control",
    "Manifest",
    "NodeEntry",
    "RelationshipEntry",
    "TableEntry",
    "Totals",
    "ValueCounts",
]

FORMAT = 4
READABLE_FORMATS = (3, 4)

ValueCounts = Mapping[str, Mapping[str, int]]
"""Column → kind of change → how many values Neo4j cannot hold as they are."""


@dataclass(frozen=True)
class Control:
    """The control database a package belongs to (several may share an import folder)."""

    instance: str
    """``control_instance.instance_id``."""
    database: str


@dataclass(frozen=True)
class TableEntry:
    """A table read only for relationships (its file is not kept)."""

    source: str
    table: str
    """``schema.table``."""
    rows_read: int
    bytes: int
    seconds: float
    values: ValueCounts = field(default_factory=dict)


@dataclass(frozen=True)
class NodeEntry:
    """The node file of one label, and its ledger: read = nodes + rejected + duplicate."""

    label: str
    source: str
    table: str
    rows_read: int
    bytes: int
    seconds: float
    file: str
    """Path relative to the package's folder."""
    headers: tuple[str, ...]
    keys: tuple[str, ...]
    excluded_columns: int
    """How many columns were excluded (never which: they are named nowhere outside the
    control rows)."""
    rejected_null_key: int
    rejected_duplicate_key: int
    nodes: int
    ids: tuple[int | None, int | None]
    """The first and last node id of the file."""
    sha256: str
    multiline: bool
    values: ValueCounts = field(default_factory=dict)
    group_label: str | None = None
    """A second label its nodes carry (shared by a template's tenants)."""

    @property
    def labels(self) -> list[str]:
        """Every label its nodes carry: its own, then its group's."""
        return [self.label, *([self.group_label] if self.group_label else [])]


@dataclass(frozen=True)
class RelationshipEntry:
    """The file of one relationship mapping, and its ledger."""

    type: str
    mapping_id: int
    from_label: str
    to_label: str
    file: str
    headers: tuple[str, ...]
    relationships: int
    orphans: Mapping[str, int]
    """Rows per side ('from', 'to', 'link') whose keys matched nothing."""
    ledger: MappingLedger
    bytes: int
    seconds: float
    sha256: str
    multiline: bool
    values: ValueCounts = field(default_factory=dict)
    """Property → kind → values neo4j-admin cannot store as they are (a Parquet package's
    empty strings)."""

    @property
    def name(self) -> str:
        """``<TYPE>.<mapping id>``: how loaders and the ledger name the mapping."""
        return f"{self.type}.{self.mapping_id}"


@dataclass(frozen=True)
class Totals:
    nodes: int
    relationships: int
    rows_rejected: int


@dataclass(frozen=True)
class Manifest:
    """Everything an import package holds and counts."""

    run_id: int
    control: Control
    created_at: str
    mode: str
    neo4j_database: str
    nodes: tuple[NodeEntry, ...]
    tables: tuple[TableEntry, ...]
    relationships: tuple[RelationshipEntry, ...]
    format: int = FORMAT
    bulk360_version: str | None = None
    """The bulk360 that wrote it (format 4 on)."""
    engine: str | None = None
    """The engine that wrote its files (format 4 on)."""
    package_format: str = "csv"
    """``csv`` or ``parquet`` (:mod:`bulk360.package.parquet`); earlier packages are CSV."""

    @property
    def totals(self) -> Totals:
        return Totals(
            nodes=sum(n.nodes for n in self.nodes),
            relationships=sum(r.relationships for r in self.relationships),
            rows_rejected=sum(n.rejected_null_key + n.rejected_duplicate_key for n in self.nodes),
        )

    def node(self, label: str) -> NodeEntry:
        return next(n for n in self.nodes if n.label == label)

    def files(self) -> list[NodeEntry | RelationshipEntry]:
        """Every file of the package: nodes, then relationships."""
        return [*self.nodes, *self.relationships]

    def value_changes(self, over_bolt: bool) -> list[tuple[str, str]]:
        """(column, line) per column and kind of value that changes when loaded by neo4j-admin,
        or over Bolt (see :mod:`bulk360.plan.types`)."""
        lines = []
        entries: list[NodeEntry | TableEntry] = [*self.nodes, *self.tables]
        for entry in entries:
            for column, counts in sorted(entry.values.items()):
                for kind, count in sorted(counts.items()):
                    if kind == "empty_arrays" and (over_bolt or self.package_format == "parquet"):
                        continue  # Bolt and neo4j-admin's Parquet reader store empty arrays
                    where = f"{entry.source}.{entry.table}.{column}"
                    plural = "s" if count != 1 else ""
                    lines.append(
                        (where, f"{count:,} value{plural} of {where} {VALUE_CHANGES[kind]}")
                    )
        for rel in self.relationships:
            for prop, counts in sorted(rel.values.items()):
                for kind, count in sorted(counts.items()):
                    where = f"relationship {rel.name}.{prop}"
                    plural = "s" if count != 1 else ""
                    lines.append(
                        (where, f"{count:,} value{plural} of {where} {VALUE_CHANGES[kind]}")
                    )
        return lines

    def checked_value_changes(self, over_bolt: bool, strict: bool) -> list[str]:
        """A line per column whose values change when loaded; when ``strict``
        (``--strict-values``), an :class:`IntegrityError` instead, before anything is loaded."""
        found = self.value_changes(over_bolt)
        changes = [line for _, line in found]
        if changes and strict:
            columns = len({column for column, _ in found})
            raise IntegrityError(
                f"--strict-values: {columns} column{'s' if columns != 1 else ''} hold values "
                "Neo4j cannot store as they are; nothing was loaded: " + "; ".join(changes)
            )
        return changes

    def expected_counts(self) -> dict[tuple[str, str], int]:
        """Nodes per label and relationships per type, as the graph must hold them."""
        expected: dict[tuple[str, str], int] = {}
        for node in self.nodes:
            for label in node.labels:
                key = ("label", label)
                expected[key] = expected.get(key, 0) + node.nodes
        for rel in self.relationships:
            key = ("type", rel.type)
            expected[key] = expected.get(key, 0) + rel.relationships
        return expected

    # ---- on disk -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The manifest as ``manifest.json`` holds it."""
        found = asdict(self)
        found["totals"] = asdict(self.totals)
        return found

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        """A manifest of format 3 or 4; an :class:`IntegrityError` for anything else."""
        found = data.get("format")
        if found not in READABLE_FORMATS:
            raise IntegrityError(
                f"manifest format {found} is not one this bulk360 reads "
                f"({', '.join(map(str, READABLE_FORMATS))})"
            )
        try:
            return cls(
                format=int(found),
                run_id=int(data["run_id"]),
                control=Control(**data["control"]),
                created_at=data["created_at"],
                mode=data["mode"],
                neo4j_database=data["neo4j_database"],
                nodes=tuple(_node(n) for n in data["nodes"]),
                tables=tuple(TableEntry(**t) for t in data.get("tables", [])),
                relationships=tuple(_relationship(r) for r in data["relationships"]),
                bulk360_version=data.get("bulk360_version"),
                engine=data.get("engine"),
                package_format=data.get("package_format", "csv"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"the manifest is incomplete or malformed ({exc})") from None

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """The manifest at ``path``; an :class:`IntegrityError` naming it when it cannot be
        read or parsed."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"the manifest {path} cannot be read: {exc}") from None
        try:
            return cls.from_json(data)
        except IntegrityError as exc:
            raise IntegrityError(f"{path}: {exc}") from None


def _node(data: Mapping[str, Any]) -> NodeEntry:
    values = dict(data)
    values["headers"] = tuple(values["headers"])
    values["keys"] = tuple(values["keys"])
    values["ids"] = tuple(values["ids"])
    return NodeEntry(**values)


def _relationship(data: Mapping[str, Any]) -> RelationshipEntry:
    values = dict(data)
    values["headers"] = tuple(values["headers"])
    ledger = values["ledger"]
    driving: Role = ledger["driving"]
    values["ledger"] = MappingLedger(
        driving, ledger["read"], ledger["rejected"], ledger["orphaned"], ledger["matched"]
    )
    return RelationshipEntry(**values)
