"""The mappings file: YAML written in one stable form, read back with the line of every value.

:func:`dump` writes the rows sorted by their identity, fields in a fixed order, lists of names
on one line: two exports of the same rows are byte-equal and a changed value is a one-line
diff. :func:`load` checks a file in this order and names the line of each problem: YAML syntax,
a password in clear text, the JSON Schema (``schema.json``, shipped in the package), and rows
that repeat an identity.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from bulk360.errors import ConfigError, ValidationFailed
from bulk360.mappings.rows import SECTIONS, Row, Rows
from bulk360.mappings.templates import expand

__all__ = ["VERSION", "MappingsFile", "dump", "load", "schema"]

VERSION = 1
_HEADER = (
    "# bulk360 mappings: the configuration rows of a control database.\n"
    "# Check with `bulk360 mappings diff FILE`, write with `bulk360 mappings apply FILE`.\n"
    "# JSON Schema: `bulk360 mappings schema` (bulk360/mappings/schema.json).\n"
)


def schema() -> dict[str, Any]:
    """The JSON Schema of a mappings file."""
    text = resources.files("bulk360.mappings").joinpath("schema.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values, which stay on one line."""


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


class _Inline(dict):  # type: ignore[type-arg]
    """A row's part (``from``, ``to``, ``link``): on one line."""


def _inline(dumper: yaml.SafeDumper, data: _Inline) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(_Inline, _inline)


def dump(rows: Rows) -> str:
    """The file of ``rows``: sections in a fixed order, rows sorted by identity."""
    document: dict[str, Any] = {"version": VERSION}
    for section in SECTIONS:
        found = [row for _, row in rows.sections[section.name]]
        if found:
            ordered = sorted(found, key=lambda r: _sort_key(section.key(r)))
            document[section.name] = [
                {k: _Inline(v) if isinstance(v, dict) else v for k, v in row.items()}
                for row in ordered
            ]
    body = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2
    )
    return _HEADER + body


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in key)


@dataclass(frozen=True)
class MappingsFile:
    """A checked mappings file: its rows and where each row starts."""

    path: Path
    rows: Rows
    lines: Mapping[tuple[str, int], int]
    """(section, index of the row in the file) → the line the row starts on."""

    def line(self, section: str, index: int) -> int:
        return self.lines.get((section, index), 1)

    def where(self, section: str, index: int) -> str:
        return f"{self.path.name}:{self.line(section, index)}"


class _Located(dict):  # type: ignore[type-arg]
    """A YAML mapping that knows the line of each key."""

    line: int
    lines: dict[str, int]


class _LocatedList(list):  # type: ignore[type-arg]
    line: int
    lines: list[int]


def _build(loader: yaml.SafeLoader, node: yaml.Node, problems: list[str], name: str) -> Any:
    """The Python value of ``node``, mappings and lists carrying their lines."""
    if isinstance(node, yaml.MappingNode):
        mapping = _Located()
        mapping.line, mapping.lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                problems.append(f"{name}:{line}: the key {key!r} is not a name")
                continue
            if key in mapping:
                problems.append(f"{name}:{line}: '{key}' appears twice in one mapping")
                continue
            mapping[key] = _build(loader, value_node, problems, name)
            mapping.lines[key] = line
        return mapping
    if isinstance(node, yaml.SequenceNode):
        items = _LocatedList(_build(loader, item, problems, name) for item in node.value)
        items.line = node.start_mark.line + 1
        items.lines = [item.start_mark.line + 1 for item in node.value]
        return items
    return loader.construct_object(node, deep=True)


def _parse(text: str, name: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ValidationFailed([f"{name}:1: the file is empty"])
        problems: list[str] = []
        data = _build(loader, node, problems, name)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or exc.context or "not YAML"
        raise ValidationFailed([f"{name}:{line}: YAML syntax: {what}"]) from None
    except yaml.YAMLError as exc:
        raise ValidationFailed([f"{name}:1: YAML syntax: {exc}"]) from None
    finally:
        loader.dispose()
    if problems:
        raise ValidationFailed(problems)
    return data


def _line_of(data: Any, path: list[str | int]) -> int:
    """The line of the deepest value along ``path`` that has one."""
    line = getattr(data, "line", 1)
    for step in path:
        in_mapping = isinstance(data, _Located) and isinstance(step, str) and step in data
        in_list = isinstance(data, _LocatedList) and isinstance(step, int) and step < len(data)
        if not (in_mapping or in_list):
            break
        line, data = data.lines[step], data[step]
    return line


def _clear_passwords(data: Any, name: str) -> list[str]:
    found = []
    for index, row in enumerate(data.get("sources") or [] if isinstance(data, dict) else []):
        for key in ("password", "db_password"):
            if isinstance(row, _Located) and key in row:
                found.append(
                    f"{name}:{row.lines[key]}: source '{row.get('name', index)}' has a password "
                    "in clear text; a mappings file never holds one: set password_env to the "
                    "name of the environment variable that holds it"
                )
    return found


def _path_text(path: list[str | int]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text or "the file"


def load(path: Path) -> MappingsFile:
    """Read and check ``path``; every problem names its line (:class:`ValidationFailed`)."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read mappings file {path}: {exc}") from None
    data = _parse(text, name)
    problems = _clear_passwords(data, name)
    if problems:
        raise ValidationFailed(problems)
    validator = jsonschema_rs.validator_for(schema())
    for error in validator.iter_errors(data):
        where = list(error.instance_path)
        # A key the schema does not know: the line of that key, not of its row.
        unexpected = re.findall(r"'([^']+)' (?:was|were) unexpected", error.message)
        line = _line_of(data, where + unexpected[:1])
        problems.append(f"{name}:{line}: {_path_text(where)}: {error.message}")
    if problems:
        raise ValidationFailed(sorted(set(problems), key=_by_line))
    # Each section's rows with their lines: the file's own, then the templates' expanded.
    located: dict[str, list[tuple[Row, int]]] = {}
    for section in SECTIONS:
        found: _LocatedList = data.get(section.name) or _LocatedList()
        located[section.name] = [(_plain(row), found.lines[i]) for i, row in enumerate(found)]
    templates: _LocatedList = data.get("templates") or _LocatedList()
    for template in templates:
        for section_name, row, index in expand(_plain(template)):
            rows_at: _LocatedList = template[section_name]
            located[section_name].append((row, rows_at.lines[index]))
    sections: dict[str, list[tuple[int | None, Row]]] = {}
    lines: dict[tuple[str, int], int] = {}
    for section in SECTIONS:
        found_rows = located[section.name]
        sections[section.name] = [
            (None, section.to_row(section.to_columns(row))) for row, _ in found_rows
        ]
        seen: dict[tuple[Any, ...], int] = {}
        for index, (row, line) in enumerate(found_rows):
            lines[(section.name, index)] = line
            key = section.key(row)
            if key in seen:
                problems.append(
                    f"{name}:{line}: {section.name} '{section.describe(row)}' repeats the row "
                    f"of line {seen[key]}"
                )
            seen.setdefault(key, line)
    if problems:
        raise ValidationFailed(problems)
    return MappingsFile(path, Rows(sections), lines)


def _by_line(problem: str) -> tuple[int, str]:
    try:
        return int(problem.split(":")[1]), problem
    except (IndexError, ValueError):
        return 0, problem


def _plain(value: Any) -> Any:
    """``value`` as plain dicts and lists (the rows compare equal to the database's)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
