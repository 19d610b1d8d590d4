"""The plan of a run: the control rows checked against the live catalogs.

:func:`build_plan` either returns a :class:`Plan` — every table to read with the exact columns
and SQL (:mod:`.tables`), every relationship with its join rules (:mod:`.rules`) — or raises
:class:`~bulk360.errors.ValidationFailed` listing every problem it found (:mod:`.checks`), each
naming the control row it comes from. Nothing is written before this check passes. The
schema-drift gate (:mod:`.drift`) compares each mapped table with the last succeeded run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bulk360.control.config import ControlConfig, Source, load_config
from bulk360.errors import Bulk360Error, ValidationFailed
from bulk360.plan.catalog import CatalogTable, read_catalog
from bulk360.plan.drift import SchemaChange, drift
from bulk360.plan.nodes import TableChecks
from bulk360.plan.relationships import RelationshipChecks
from bulk360.plan.rules import RelationshipPlan
from bulk360.plan.tables import ColumnPlan, TablePlan
from bulk360.settings import Settings

__all__ = [
    "ColumnPlan",
    "Plan",
    "RelationshipPlan",
    "SchemaChange",
    "TablePlan",
    "build_plan",
    "prepare_plan",
    "read_catalogs",
]


@dataclass(frozen=True)
class Plan:
    """Everything a run reads and builds, checked against the live catalogs."""

    sources: tuple[Source, ...]
    tables: tuple[TablePlan, ...]
    relationships: tuple[RelationshipPlan, ...]
    schema_changes: tuple[SchemaChange, ...] = ()

    def source(self, name: str) -> Source:
        return next(s for s in self.sources if s.name == name)

    @property
    def blocking_changes(self) -> list[SchemaChange]:
        """The schema changes that stop a run unless accepted."""
        return [change for change in self.schema_changes if change.blocking]

    def schema_columns(self) -> list[tuple[str, str, str, str, int]]:
        """(source, table, column, type, position) of every node table: what a run records."""
        return [
            (t.source, t.table, name, type_text, position)
            for t in self.tables
            if t.label
            for position, (name, type_text) in enumerate(t.catalog_columns, start=1)
        ]


def build_plan(
    config: ControlConfig,
    catalogs: Mapping[str, Mapping[str, CatalogTable]],
    problems: list[str] | None = None,
) -> Plan:
    """Check ``config`` against ``catalogs`` (source name → tables) and build the plan.

    ``problems`` found earlier (e.g. unreachable sources) are reported together with these.
    Raises :class:`ValidationFailed` if anything is wrong.
    """
    found = list(problems or [])
    checks = TableChecks(config, catalogs, found)
    if not config.nodes:
        checks.problem("node_label_mappings has no active row for an active source")
    checks.check_exclusions()
    checks.check_overrides()
    nodes: dict[str, TablePlan] = {}
    for mapping in config.nodes:
        if mapping.label in nodes:
            checks.problem(f"{mapping}: label '{mapping.label}' is already mapped by another row")
            continue
        plan = checks.node_plan(mapping)
        if plan is not None:
            nodes[mapping.label] = plan
    relationship_checks = RelationshipChecks(checks, nodes)
    relationships = [relationship_checks.plan(m) for m in config.relationships]
    changes = drift(config, catalogs, nodes.values(), checks.excluded)
    if found:
        raise ValidationFailed(found)
    tables = list(nodes.values())
    for rel in relationships:
        assert rel is not None
        if rel.link_table is not None and rel.link_table not in tables:
            tables.append(rel.link_table)
    used = {t.source for t in tables}
    return Plan(
        sources=tuple(s for s in config.sources if s.name in used),
        tables=tuple(tables),
        relationships=tuple(r for r in relationships if r is not None),
        schema_changes=tuple(changes),
    )


def read_catalogs(
    config: ControlConfig, settings: Settings
) -> tuple[dict[str, dict[str, CatalogTable]], list[str]]:
    """The catalog of every active source; unreachable sources become problems."""
    catalogs: dict[str, dict[str, CatalogTable]] = {}
    problems: list[str] = []
    for source in config.sources:
        try:
            with source.connect(settings) as conn:
                catalogs[source.name] = read_catalog(conn, source.schema)
        except Bulk360Error as exc:  # an unreachable source, or its password variable unset
            problems.append(str(exc))
    return catalogs, problems


def prepare_plan(settings: Settings) -> Plan:
    """Read the control rows and check them against the live catalogs."""
    config = load_config(settings)
    catalogs, problems = read_catalogs(config, settings)
    return build_plan(config, catalogs, problems)
