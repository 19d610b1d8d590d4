"""Mappings as code: the control database's configuration rows as one YAML file kept in git.

``bulk360 mappings export`` writes the rows (:func:`.document.dump`), ``diff`` names what a file
would change (:func:`.changes.compare`) and what the plan would read and build then
(:func:`effect`), ``apply`` checks the whole file — YAML, its JSON Schema, then the plan's
checks against the live catalogs — and writes it in one transaction, each change recorded in
``mapping_changes``. The control database stays the source of truth: a run reads its rows,
never the file.
"""

from __future__ import annotations

from bulk360.mappings.changes import Change, Changes, apply, check, compare, current_rows
from bulk360.mappings.document import MappingsFile, dump, load, schema
from bulk360.mappings.rows import Rows, read_rows
from bulk360.plan import Plan

__all__ = [
    "Change",
    "Changes",
    "MappingsFile",
    "Rows",
    "apply",
    "check",
    "compare",
    "current_rows",
    "dump",
    "effect",
    "load",
    "read_rows",
    "schema",
]


def _shape(plan: Plan) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], set[str]]:
    kept = {t.label: tuple(c.name for c in t.columns) for t in plan.tables if t.label}
    excluded = {t.label: t.excluded for t in plan.tables if t.label}
    types = {
        f"(:{r.mapping.from_label})-[:{r.mapping.relationship_type}]->(:{r.mapping.to_label})"
        for r in plan.relationships
    }
    return kept, excluded, types


def effect(before: Plan | None, after: Plan) -> list[str]:
    """What ``bulk360 plan`` would show differently: labels, relationship types, and the
    columns each label keeps or excludes. ``before`` None: the current rows do not plan."""
    if before is None:
        return ["the current control rows do not make a plan; the file's do"]
    kept_then, excluded_then, types_then = _shape(before)
    kept_now, excluded_now, types_now = _shape(after)
    lines = [f"+ label :{label}" for label in sorted(kept_now.keys() - kept_then.keys())]
    lines += [f"- label :{label}" for label in sorted(kept_then.keys() - kept_now.keys())]
    for label in sorted(kept_now.keys() & kept_then.keys()):
        for what, now, then in (
            ("kept", kept_now[label], kept_then[label]),
            ("excluded", excluded_now[label], excluded_then[label]),
        ):
            gained = [c for c in now if c not in then]
            lost = [c for c in then if c not in now]
            if gained:
                lines.append(f"+ :{label} {what} {', '.join(gained)}")
            if lost:
                lines.append(f"- :{label} {what} {', '.join(lost)}")
    lines += [f"+ relationship {t}" for t in sorted(types_now - types_then)]
    lines += [f"- relationship {t}" for t in sorted(types_then - types_now)]
    return lines
