"""The schema-drift gate: a mapped table's columns compared with those the newest succeeded run
that read it recorded (``etl_schema_columns``).

A new column that no rule covers, or a kept column whose type changed, stops a run before
anything is read (unless ``--accept-schema-changes``); a dropped column is a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from psycopg import sql

from bulk360.control.config import ControlConfig, Source
from bulk360.plan.catalog import CatalogTable
from bulk360.plan.tables import TablePlan

__all__ = ["SchemaChange", "schema_changes"]


@dataclass(frozen=True)
class SchemaChange:
    """A mapped table's column that changed since the newest succeeded run that read it."""

    source: str
    table: str
    column: str
    text: str
    """One line naming source, table and column, and what to do."""
    blocking: bool
    """Whether it stops a run (a new column without a rule, a changed type)."""


def _rule_sql(source: str, table: str, column: str) -> str:
    """The start of the INSERT that keeps or excludes ``column`` (values quoted by psycopg)."""
    values = ", ".join(sql.Literal(v).as_string(None) for v in (source, table, column))
    return (
        "INSERT INTO field_exclusion_rules"
        f" (source_name, table_name, column_name, is_excluded, reason) VALUES ({values}"
    )


def schema_changes(
    config: ControlConfig, source: Source, found: CatalogTable, excluded: Mapping[str, int]
) -> list[SchemaChange]:
    """Columns of ``found`` new, retyped or dropped since the newest succeeded run that read it
    (none for a table mapped for the first time: mapping it is the decision)."""
    baseline = config.baselines.get((source.name, found.name))
    if baseline is None:
        return []
    kept = {r.column for r in config.kept if (r.source, r.table) == (source.name, found.name)}
    since = f"since run {baseline.run_id}"
    table = f"source '{source.name}', table {source.schema}.{found.name}"
    changes: list[SchemaChange] = []

    def change(column: str, text: str, blocking: bool) -> None:
        changes.append(SchemaChange(source.name, found.name, column, text, blocking))

    for column in found.columns:
        before = baseline.columns.get(column.name)
        if before is None and column.name not in excluded and column.name not in kept:
            insert = _rule_sql(source.name, found.name, column.name)
            change(
                column.name,
                f"{table}: new column '{column.name}' ({column.type_text}) {since} has no "
                f"rule; keep it: {insert}, false, 'reviewed'); or exclude it: {insert}, "
                "true, 'not for the graph');",
                True,
            )
        elif before is not None and before != column.type_text and column.name not in excluded:
            change(
                column.name,
                f"{table}: column '{column.name}' changed type from {before} to "
                f"{column.type_text} {since}",
                True,
            )
    for name in baseline.columns:
        if found.column(name) is None and name not in excluded:
            change(
                name,
                f"{table}: column '{name}' was dropped {since}; its property is no longer written",
                False,
            )
    return changes


def drift(
    config: ControlConfig,
    catalogs: Mapping[str, Mapping[str, CatalogTable]],
    nodes: Iterable[TablePlan],
    excluded: Mapping[tuple[str, str], Mapping[str, int]],
) -> list[SchemaChange]:
    """The schema-drift step of a plan: the changes of every node mapping's table since the run
    that last read it (``excluded``: per table, its excluded columns)."""
    changes: list[SchemaChange] = []
    for table in nodes:
        source = config.source(table.source)
        assert source is not None
        found = catalogs[table.source][table.table]
        changes += schema_changes(
            config, source, found, excluded.get((table.source, table.table), {})
        )
    return changes
