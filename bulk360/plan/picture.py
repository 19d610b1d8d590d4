"""The graph model as a picture: what the control rows build, drawn.

A box per label (its source table, key and kept columns, the excluded columns struck through,
its count in the newest succeeded run) and an arrow per relationship mapping (its type, mapping
id, join condition, link table, count). Drawn by Graphviz (``dot``, Debian's ``graphviz``) as
SVG or PNG, or written as Mermaid text (``.mmd``) for a Markdown page.

    bulk360 plan --graph model.svg
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bulk360.errors import ConfigError
from bulk360.plan import Plan

__all__ = ["FORMATS", "Counts", "check_path", "draw", "mermaid", "svg"]

FORMATS = (".svg", ".png", ".mmd")


@dataclass(frozen=True)
class Counts:
    """Nodes per label and relationships per mapping (``TYPE.<id>``) of one run."""

    run_id: int | None = None
    labels: Mapping[str, int] = field(default_factory=dict)
    mappings: Mapping[str, int] = field(default_factory=dict)


def _ids(plan: Plan) -> dict[str, str]:
    """A node name per label (``n0``, ``n1``...: a label is any identifier, a name is safe)."""
    return {t.label: f"n{i}" for i, t in enumerate(plan.tables) if t.label}


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _dot_source(plan: Plan, counts: Counts) -> str:
    """The model as Graphviz's DOT text, with HTML-like labels (every text escaped)."""
    import graphviz

    title = "bulk360 graph model" + (
        f" — counts of run {counts.run_id}" if counts.run_id else " — no run yet"
    )
    graph = graphviz.Digraph("model", graph_attr={"rankdir": "LR", "label": title, "labelloc": "t"})
    graph.attr("node", shape="plaintext", fontname="Helvetica", fontsize="10")
    graph.attr("edge", fontname="Helvetica", fontsize="9")
    ids = _ids(plan)
    for table in plan.tables:
        if not table.label:
            continue
        e = html.escape
        rows = [
            f'<tr><td bgcolor="#dbe9f6"><b>{e(table.labels_text)}</b>'
            f"{' ' + e(_count(counts.labels.get(table.label))) if counts.run_id else ''}</td></tr>",
            f"<tr><td>{e(f'{table.source}.{table.schema}.{table.table}')}</td></tr>",
            f"<tr><td>key ({e(', '.join(table.key_columns))})</td></tr>",
        ]
        kept = [c.header.split(":")[0] for c in table.columns if c.header.split(":")[0]]
        rows.append(f'<tr><td align="left">{e(", ".join(kept))}</td></tr>')
        if table.excluded:
            struck = ", ".join(f"<s>{e(c)}</s>" for c in table.excluded)
            rows.append(
                f'<tr><td align="left"><font color="#b00020">excluded {struck}</font></td></tr>'
            )
        graph.node(
            ids[table.label],
            "<" + '<table border="1" cellborder="0" cellspacing="0">' + "".join(rows) + "</table>>",
        )
    for rel in plan.relationships:
        m = rel.mapping
        text = f"{m.relationship_type} #{m.mapping_id}"
        if counts.run_id:
            text += f"  {_count(counts.mappings.get(rel.name))}"
        detail = m.join_condition
        if m.link_table:
            detail = f"via {m.link_source}.{m.link_table}: {detail}"
        graph.edge(
            ids[m.from_label],
            ids[m.to_label],
            label=f"<<b>{html.escape(text)}</b><br/>"
            + "<br/>".join(html.escape(line) for line in _wrap(detail))
            + ">",
        )
    return str(graph.source)


def _wrap(text: str, width: int = 48) -> list[str]:
    """A long join condition as lines of about ``width`` characters."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def svg(plan: Plan, counts: Counts) -> str:
    """The picture as SVG text (the dashboard embeds it)."""
    return _render(plan, counts, "svg").decode()


def _render(plan: Plan, counts: Counts, kind: str) -> bytes:
    import graphviz

    try:
        return bytes(graphviz.pipe("dot", kind, _dot_source(plan, counts).encode()))
    except graphviz.ExecutableNotFound:
        raise ConfigError(
            "drawing the graph model needs Graphviz's dot: apt-get install graphviz "
            "(scripts/services up installs it)"
        ) from None


def mermaid(plan: Plan, counts: Counts) -> str:
    """The model as a Mermaid flowchart (``.mmd``)."""
    ids = _ids(plan)
    lines = ["flowchart LR"]
    for table in plan.tables:
        if not table.label:
            continue
        parts = [table.labels_text, f"{table.source}.{table.schema}.{table.table}"]
        parts.append(f"key ({', '.join(table.key_columns)})")
        if counts.run_id:
            parts.append(f"{_count(counts.labels.get(table.label))} nodes")
        if table.excluded:
            parts.append(f"excluded: {', '.join(table.excluded)}")
        lines.append(f'    {ids[table.label]}["{_mermaid_text("<br/>".join(parts))}"]')
    for rel in plan.relationships:
        m = rel.mapping
        text = f"{m.relationship_type} #{m.mapping_id}: {m.join_condition}"
        if m.link_table:
            text += f" (via {m.link_source}.{m.link_table})"
        if counts.run_id:
            text += f", {_count(counts.mappings.get(rel.name))}"
        lines.append(f'    {ids[m.from_label]} -->|"{_mermaid_text(text)}"| {ids[m.to_label]}')
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Text inside a Mermaid quoted label: quotes and the characters Mermaid parses escaped."""
    return text.replace('"', "#quot;").replace("|", "#124;")


def check_path(path: Path) -> None:
    """A one-line error unless ``path`` names a format the picture is drawn in."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"--graph {path}: the picture is written as .svg, .png or .mmd (Mermaid), "
            f"not {suffix or 'a file without a suffix'}"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"--graph {path}: the folder {path.parent} does not exist")


def draw(plan: Plan, counts: Counts, path: Path) -> None:
    """Write the picture to ``path``: ``.svg``, ``.png`` or ``.mmd`` by its suffix."""
    check_path(path)
    suffix = path.suffix.lower()
    if suffix == ".mmd":
        path.write_text(mermaid(plan, counts))
    else:
        path.write_bytes(_render(plan, counts, suffix[1:]))
