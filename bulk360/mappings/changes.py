"""What applying a mappings file changes, checking it against the live catalogs, and writing it.

:func:`compare` gives the rows a file adds, changes and removes, per section. :func:`check`
runs the plan's checks (:mod:`bulk360.plan`) on the file's rows exactly as a run would see
them, each problem pointing at its line. :func:`apply` writes every change in one transaction
and records each in ``mapping_changes``; the next run's plan is the file's.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bulk360.control.config import (
    ControlConfig,
    ExclusionRule,
    NodeMapping,
    RelationshipMapping,
    Source,
    TypeOverride,
)
from bulk360.control.database import connect_control
from bulk360.errors import ValidationFailed
from bulk360.mappings.document import MappingsFile
from bulk360.mappings.rows import SECTIONS, Row, Rows, Section, read_rows
from bulk360.plan import Plan, build_plan, read_catalogs
from bulk360.settings import Settings

__all__ = ["Change", "Changes", "apply", "check", "compare", "current_rows"]


@dataclass(frozen=True)
class Change:
    """One row a file adds, changes or removes."""

    section: Section
    action: str  # added, changed or removed
    control_id: int | None
    before: Row | None
    after: Row | None
    line: int | None = None

    @property
    def row(self) -> Row:
        return self.after if self.after is not None else self.before  # type: ignore[return-value]

    def fields(self) -> list[str]:
        """``port: 5432 → 5433`` for each field a changed row changes."""
        before, after = _flat(self.before or {}), _flat(self.after or {})
        return [
            f"{name}: {_show(before.get(name))} → {_show(after.get(name))}"
            for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)
        ]

    def __str__(self) -> str:
        mark = {"added": "+", "changed": "~", "removed": "-"}[self.action]
        text = f"{mark} {self.section.name} {self.section.describe(self.row)}"
        if self.action == "changed":
            text += ": " + "; ".join(self.fields())
        return text + (f" (line {self.line})" if self.line else "")


def _flat(row: Row, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Changes:
    changes: tuple[Change, ...]
    clear_passwords: tuple[str, ...] = field(default=())

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __bool__(self) -> bool:
        return bool(self.changes)


def current_rows(settings: Settings) -> Rows:
    with connect_control(settings) as conn:
        return read_rows(conn)


def compare(current: Rows, file: MappingsFile) -> Changes:
    """The rows ``file`` adds, changes and removes against ``current``, section by section."""
    found: list[Change] = []
    for section in SECTIONS:
        now = current.by_key(section)
        wanted = [section.key(row) for _, row in file.rows.sections[section.name]]
        for index, (_, row) in enumerate(file.rows.sections[section.name]):
            key, line = section.key(row), file.line(section.name, index)
            if key not in now:
                found.append(Change(section, "added", None, None, row, line))
            elif now[key][1] != row:
                found.append(Change(section, "changed", now[key][0], now[key][1], row, line))
        for key, (control_id, row) in now.items():
            if key not in wanted:
                found.append(Change(section, "removed", control_id, row, None))
    return Changes(tuple(_joins_changed(found)), current.clear_passwords)


def _joins_changed(found: list[Change]) -> list[Change]:
    """A relationship whose join condition alone changed is one row changed in place (its
    mapping id stays), not one removed and one added: when exactly one row of a type between
    two labels went and one came."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, change in enumerate(found):
        if change.section.name == "relationships" and change.action != "changed":
            groups.setdefault(change.section.key(change.row)[:3], []).append(index)
    replaced: dict[int, Change] = {}
    dropped: set[int] = set()
    for indexes in groups.values():
        if sorted(found[i].action for i in indexes) != ["added", "removed"]:
            continue
        added, removed = sorted(indexes, key=lambda i: found[i].action)
        new, old = found[added], found[removed]
        replaced[added] = Change(
            new.section, "changed", old.control_id, old.before, new.after, new.line
        )
        dropped.add(removed)
    return [replaced.get(i, c) for i, c in enumerate(found) if i not in dropped]


def config_of(
    rows: Rows, current: Rows, stored: Mapping[str, str] | None = None
) -> tuple[ControlConfig, dict[str, tuple[str, int]]]:
    """The :class:`ControlConfig` a run would read after ``rows`` are written, and for each
    row's name in the plan's messages, the (section, index) of its row in the file. Rows keep
    the control ids they have; new rows get ids after the largest. ``stored``: the passwords
    kept in the control database, for sources whose row names no variable."""
    ids: dict[tuple[str, tuple[Any, ...]], int] = {}
    next_id: dict[str, int] = {}  # per control table (exclude and keep rows share one)
    for section in SECTIONS:
        taken = [i for i, _ in current.sections[section.name] if i is not None]
        next_id[section.table] = max([next_id.get(section.table, 1) - 1, *taken]) + 1
    for section in SECTIONS:
        now = current.by_key(section)
        for _, row in rows.sections[section.name]:
            key = section.key(row)
            if key in now and now[key][0] is not None:
                ids[(section.name, key)] = now[key][0]  # type: ignore[assignment]
            else:
                ids[(section.name, key)] = next_id[section.table]
                next_id[section.table] += 1

    where: dict[str, tuple[str, int]] = {}

    def each(name: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
        section = next(s for s in SECTIONS if s.name == name)
        for index, (_, row) in enumerate(rows.sections[name]):
            yield index, ids[(name, section.key(row))], section.to_columns(row)

    sources = [
        Source(
            c["name"],
            c["db_host"],
            c["db_port"],
            c["db_name"],
            c["db_user"],
            c["schema_name"],
            None if c["db_password_env"] else (stored or {}).get(c["name"]),
            c["db_password_env"],
        )
        for _, _, c in each("sources")
        if c["is_active"]
    ]
    active = {s.name for s in sources}
    for index, _, c in each("sources"):
        where[f"source '{c['name']}'"] = ("sources", index)
    rules: list[ExclusionRule] = []
    for name in ("exclude", "keep"):
        for index, id_, c in each(name):
            if c["source_name"] in active:
                rule = ExclusionRule(
                    id_, c["source_name"], c["table_name"], c["column_name"], c["reason"]
                )
                rules.append(rule if name == "exclude" else _kept(rule))
                where[f"exclusion rule #{id_}"] = (name, index)
    overrides = []
    for index, id_, c in each("types"):
        if c["source_name"] in active:
            override = TypeOverride(
                id_, c["source_name"], c["table_name"], c["column_name"], c["neo4j_type"]
            )
            overrides.append(override)
            where[str(override)] = ("types", index)
    nodes = []
    for index, id_, c in each("labels"):
        if c["is_active"] and c["source_name"] in active:
            keys = tuple(c["key_columns"]) if c["key_columns"] else None
            node = NodeMapping(id_, c["source_name"], c["table_name"], c["label"], keys)
            nodes.append(node)
            where[str(node)] = ("labels", index)
    relationships = []
    for index, id_, c in each("relationships"):
        if c["is_active"]:
            rel = RelationshipMapping(
                id_,
                c["relationship_type"],
                c["from_label"],
                c["from_alias"],
                c["to_label"],
                c["to_alias"],
                c["join_condition"],
                c["link_source"],
                c["link_table"],
                c["link_alias"],
                tuple(c["property_columns"] or ()),
            )
            relationships.append(rel)
            where[str(rel)] = ("relationships", index)
    config = ControlConfig(
        sources=tuple(sources),
        exclusions=tuple(r for r in rules if r.is_excluded),
        kept=tuple(r for r in rules if not r.is_excluded),
        overrides=tuple(overrides),
        nodes=tuple(sorted(nodes, key=lambda n: n.mapping_id)),
        relationships=tuple(sorted(relationships, key=lambda r: r.mapping_id)),
    )
    return config, where


def _kept(rule: ExclusionRule) -> ExclusionRule:
    return ExclusionRule(rule.rule_id, rule.source, rule.table, rule.column, rule.reason, False)


def check(settings: Settings, file: MappingsFile, current: Rows) -> Plan:
    """The plan of the file's rows against the live catalogs; a problem names its line."""
    stored: dict[str, str] = {}
    if current.clear_passwords:  # a password stored in the control database stays there
        with connect_control(settings) as conn:
            found = conn.execute(
                "SELECT name, db_password FROM source_databases WHERE db_password IS NOT NULL"
            ).fetchall()
            stored = {name: password for name, password in found}
    config, where = config_of(file.rows, current, stored)
    catalogs, problems = read_catalogs(config, settings)
    try:
        return build_plan(config, catalogs, problems)
    except ValidationFailed as failed:
        raise ValidationFailed([_locate(p, where, file) for p in failed.problems]) from None


_RULE = re.compile(r"exclusion rule #(\d+)")


def _locate(problem: str, where: dict[str, tuple[str, int]], file: MappingsFile) -> str:
    """``problem`` with the control row it names replaced by the file's line and row."""
    for name, (section_name, index) in where.items():
        if problem.startswith(name + ":"):
            section = next(s for s in SECTIONS if s.name == section_name)
            row = file.rows.sections[section_name][index][1]
            rest = problem[len(name) + 1 :]
            problem = (
                f"{file.where(section_name, index)}: {section_name} {section.describe(row)}:{rest}"
            )
            break
    else:
        problem = f"{file.path.name}: {problem}"

    def rule(match: re.Match[str]) -> str:
        found = where.get(match.group(0))
        if found is None:
            return match.group(0)
        return f"the {found[0]} row of line {file.line(*found)}"

    return _RULE.sub(rule, problem)


def apply(settings: Settings, file: MappingsFile, changes: Changes) -> None:
    """Write ``changes`` in one transaction, each recorded in ``mapping_changes``."""
    digest = hashlib.sha256(file.path.read_bytes()).hexdigest()
    try:
        os_user = getpass.getuser()
    except (KeyError, OSError):
        os_user = None
    order = {name: i for i, name in enumerate(s.name for s in SECTIONS)}
    # Dependent rows go before the sources they name when removed, after them when written.
    removed = sorted(
        (c for c in changes if c.action == "removed"), key=lambda c: -order[c.section.name]
    )
    written = sorted(
        (c for c in changes if c.action != "removed"),
        key=lambda c: (order[c.section.name], c.action != "changed"),
    )
    with connect_control(settings) as conn, conn.transaction():
        for change in [*removed, *written]:
            _write(conn, change)
            conn.execute(
                "INSERT INTO mapping_changes (os_user, file_name, file_sha256, table_name,"
                " action, row_key, before, after) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    os_user,
                    file.path.name,
                    digest,
                    change.section.table,
                    change.action,
                    change.section.describe(change.row),
                    Jsonb(change.before) if change.before is not None else None,
                    Jsonb(change.after) if change.after is not None else None,
                ],
            )


def _write(conn: psycopg.Connection[Any], change: Change) -> None:
    section = change.section
    table, id_column = sql.Identifier(section.table), sql.Identifier(section.id_column)
    if change.action == "removed":
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} = %s").format(table, id_column), [change.control_id]
        )
        return
    columns = section.to_columns(change.after or {})
    if section.name == "sources" and columns["db_password_env"] is not None:
        columns["db_password"] = None  # a variable named: a stored password goes
    names = list(columns)
    if change.action == "changed":
        conn.execute(
            sql.SQL("UPDATE {} SET {} WHERE {} = %s").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("{} = {}").format(sql.Identifier(n), sql.Placeholder()) for n in names
                ),
                id_column,
            ),
            [*columns.values(), change.control_id],
        )
    else:
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                table,
                sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join(sql.Placeholder() * len(names)),
            ),
            list(columns.values()),
        )
