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
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bulk360.control.config import (
    ControlConfig,
    ExclusionRule,
    node_of,
    override_of,
    relationship_of,
    rule_of,
    source_of,
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
    return Changes(tuple(_joins_changed(found)))


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

    # The rows a run would read, in id order as it reads them, and for each the name the plan's
    # messages give it → its section and index in the file.
    where: dict[str, tuple[str, int]] = {}
    found: dict[str, list[Any]] = {name: [] for name in (s.name for s in SECTIONS)}
    active: set[str] = set()
    for section in SECTIONS:  # sources first: the other rows count only for active ones
        rows_of = [
            (
                index,
                {
                    **section.to_columns(row),
                    section.id_column: ids[(section.name, section.key(row))],
                },
            )
            for index, (_, row) in enumerate(rows.sections[section.name])
        ]
        for index, c in sorted(rows_of, key=lambda pair: pair[1][section.id_column]):
            if section.name == "sources":
                where[f"source '{c['name']}'"] = ("sources", index)
                if c["is_active"]:
                    password = None if c["db_password_env"] else (stored or {}).get(c["name"])
                    found["sources"].append(source_of({**c, "db_password": password}))
                    active.add(c["name"])
                continue
            # Rows of inactive sources and inactive mappings are not read (relationships name
            # labels, not sources).
            if not c.get("is_active", True) or c.get("source_name", "") not in {*active, ""}:
                continue
            item = _CONVERT[section.name](c)
            found[section.name].append(item)
            where[_plan_name(item)] = (section.name, index)
    config = ControlConfig(
        sources=tuple(found["sources"]),
        exclusions=tuple(found["exclude"]),
        kept=tuple(found["keep"]),
        overrides=tuple(found["types"]),
        nodes=tuple(found["labels"]),
        relationships=tuple(found["relationships"]),
    )
    return config, where


_CONVERT = {
    "exclude": rule_of,
    "keep": rule_of,
    "types": override_of,
    "labels": node_of,
    "relationships": relationship_of,
}
"""Section → the dataclass of a row with the control table's columns."""


def _plan_name(item: Any) -> str:
    """How the plan's messages name a row (see bulk360.plan.nodes and bulk360.plan.relationships)."""
    return f"exclusion rule #{item.rule_id}" if isinstance(item, ExclusionRule) else str(item)


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
