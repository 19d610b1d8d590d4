"""The checks of exclusion rules, type overrides and node mappings against the live catalogs
(:class:`TableChecks`), resolved into table plans; each problem names its control row and is
collected, so that one report lists them all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from bulk360.control.config import ControlConfig, NodeMapping, Source
from bulk360.plan.catalog import CatalogColumn, CatalogTable
from bulk360.plan.tables import IDENTIFIER, ColumnPlan, TablePlan
from bulk360.plan.types import OVERRIDE_TYPES, join_family, property_type

__all__ = ["TableChecks"]


class TableChecks:
    """Exclusion rules, type overrides and node mappings, with the problems they have."""

    def __init__(
        self,
        config: ControlConfig,
        catalogs: Mapping[str, Mapping[str, CatalogTable]],
        problems: list[str],
    ) -> None:
        self.config = config
        self.catalogs = catalogs
        self.problems = problems
        self.excluded: dict[tuple[str, str], dict[str, int]] = {}
        """(source, table) → excluded column → the rule's id."""
        self.overrides = {(o.source, o.table, o.column): o for o in config.overrides}

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def catalog_table(self, source: str, table: str, where: str) -> CatalogTable | None:
        """The catalog entry of ``source``'s ``table``; a problem when there is none."""
        if source not in self.catalogs:
            if self.config.source(source) is None:
                self.problem(f"{where}: source '{source}' is not an active source_databases row")
            return None  # unreachable sources are reported once, by read_catalogs
        found = self.catalogs[source].get(table)
        if found is None:
            schema = self.config.source(source).schema  # type: ignore[union-attr]
            self.problem(f"{where}: table {schema}.{table} does not exist in source '{source}'")
        return found

    def check_exclusions(self) -> None:
        for rule in self.config.exclusions:
            where = f"exclusion rule #{rule.rule_id}"
            found = self.catalog_table(rule.source, rule.table, where)
            if found is not None and found.column(rule.column) is None:
                self.problem(
                    f"{where}: column '{rule.column}' does not exist in {rule.source}.{rule.table}"
                )
            self.excluded.setdefault((rule.source, rule.table), {})[rule.column] = rule.rule_id

    def check_overrides(self) -> None:
        for override in self.config.overrides:
            where = str(override)
            found = self.catalog_table(override.source, override.table, where)
            if found is None:
                continue
            column = found.column(override.column)
            if column is None:
                self.problem(
                    f"{where}: column '{override.column}' does not exist in "
                    f"{override.source}.{override.table}"
                )
            elif override.neo4j_type not in OVERRIDE_TYPES:
                self.problem(
                    f"{where}: neo4j_type '{override.neo4j_type}' is not one of "
                    + ", ".join(OVERRIDE_TYPES)
                )
            elif override.neo4j_type == "double" and not _holds_numbers(column):
                self.problem(
                    f"{where}: a {column.type_text or column.typname} column cannot be a double; "
                    "double is for numeric, money and integer columns"
                )

    def _column_plan(
        self, source: Source, found: CatalogTable, column: CatalogColumn
    ) -> ColumnPlan:
        override = self.overrides.get((source.name, found.name, column.name))
        kind = property_type(
            column.typname,
            column.category,
            column.element,
            column.precision,
            column.scale,
            override.neo4j_type if override else None,
        )
        return ColumnPlan(
            column.name,
            column.typname,
            kind.neo4j_type,
            kind.select(column.name),
            kind.audits,
            kind.expression(column.name),
        )

    def table_plan(
        self,
        source: Source,
        found: CatalogTable,
        label: str | None,
        keys: tuple[str, ...],
        wanted: set[str] | None,
        where: str,
    ) -> TablePlan:
        """The plan of one table: its kept columns (``wanted``: only those), typed."""
        excluded = self.excluded.get((source.name, found.name), {})
        columns: list[ColumnPlan] = []
        for column in found.columns:
            if column.name in excluded or (wanted is not None and column.name not in wanted):
                continue
            if not IDENTIFIER.match(column.name):
                self.problem(
                    f"{where}: column '{column.name}' of {source.name}.{found.name} is not a valid "
                    "property name; exclude it with a field_exclusion_rules row"
                )
                continue
            columns.append(self._column_plan(source, found, column))
        key_columns = [found.column(k) for k in keys]
        return TablePlan(
            source=source.name,
            schema=source.schema,
            table=found.name,
            columns=tuple(columns),
            excluded=tuple(sorted(excluded)),
            label=label,
            key_columns=keys,
            key_unique=bool(keys) and found.is_unique(keys),
            key_not_null=all(c is not None and c.not_null for c in key_columns),
            size_bytes=found.size_bytes,
            catalog_columns=tuple((c.name, c.type_text) for c in found.columns),
            has_ctid=found.has_ctid,
        )

    def node_plan(self, mapping: NodeMapping) -> TablePlan | None:
        """The table plan of a node mapping, its keys checked."""
        where = str(mapping)
        if not IDENTIFIER.match(mapping.label):
            self.problem(f"{where}: label '{mapping.label}' is not a valid identifier")
        group = mapping.group_label
        if group is not None and not IDENTIFIER.match(group):
            self.problem(f"{where}: group label '{group}' is not a valid identifier")
        elif group is not None and any(group == m.label for m in self.config.nodes):
            self.problem(f"{where}: group label '{group}' is the label of another mapping")
        found = self.catalog_table(mapping.source, mapping.table, where)
        if found is None:
            return None
        keys = mapping.key_columns or found.primary_key
        if not keys:
            self.problem(
                f"{where}: {mapping.source}.{mapping.table} has no primary key; set key_columns"
            )
            return None
        excluded = self.excluded.get((mapping.source, mapping.table), {})
        for key in keys:
            if found.column(key) is None:
                self.problem(
                    f"{where}: key column '{key}' does not exist in {mapping.source}.{mapping.table}"
                )
            elif key in excluded:
                self.problem(
                    f"{where}: key column '{key}' is excluded by exclusion rule #{excluded[key]}"
                )
        source = self.config.source(mapping.source)
        assert source is not None
        plan = self.table_plan(source, found, mapping.label, tuple(keys), None, where)
        return replace(plan, group_label=group)


def _holds_numbers(column: CatalogColumn) -> bool:
    """Whether a column can be written as a double (a scalar numeric, money or integer)."""
    if column.category == "A":
        return False
    family = join_family(column.typname, column.category)
    return column.typname in {"numeric", "money"} or family == "integer"
