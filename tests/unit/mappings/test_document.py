"""The mappings file without a database: one stable form, and every problem with its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk360.errors import ValidationFailed
from bulk360.mappings import Rows, compare, dump, load
from bulk360.mappings.rows import SECTIONS
from tests.helpers.cli import bulk360_process as bulk360

SOURCE = {
    "name": "shop",
    "host": "db.internal",
    "port": 5432,
    "database": "shop",
    "user": "etl",
    "password_env": "SHOP_PASSWORD",
}
LABEL = {"source": "shop", "table": "orders", "label": "Order", "key": ["id", "region"]}
RELATIONSHIP = {
    "type": "CONTAINS",
    "from": {"label": "Order", "alias": "o"},
    "to": {"label": "Product", "alias": "p"},
    "join": "o.id = i.order_id AND i.product_id = p.id AND i.kind = 'sale'",
    "link": {"source": "shop", "table": "order_items", "alias": "i"},
    "properties": ["i.quantity"],
}


def rows(**sections: list[dict[str, object]]) -> Rows:
    return Rows({s.name: [(None, r) for r in sections.get(s.name, [])] for s in SECTIONS})


def written(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dump_then_load_gives_the_rows_and_the_same_text(tmp_path: Path) -> None:
    given_rows = rows(sources=[SOURCE], labels=[LABEL], relationships=[RELATIONSHIP])
    text = dump(given_rows)
    assert "key: [id, region]" in text and "from: {label: Order, alias: o}" in text
    loaded = load(written(tmp_path, text))
    assert loaded.rows.sections == given_rows.sections
    assert dump(loaded.rows) == text
    assert loaded.line("relationships", 0) == text.splitlines().index("- type: CONTAINS") + 1


names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(names, names, st.text(max_size=20)), max_size=8, unique_by=lambda t: t[:2])
)
def test_the_order_rows_come_in_never_changes_the_text(rules: list[tuple[str, str, str]]) -> None:
    found = [{"source": "s", "table": t, "column": c, "reason": r} for t, c, r in rules]
    assert dump(rows(exclude=found)) == dump(rows(exclude=list(reversed(found))))


def test_defaults_are_left_out_and_an_explicit_default_equals_none(tmp_path: Path) -> None:
    explicit = dump(rows(sources=[SOURCE])).replace(
        "password_env: SHOP_PASSWORD",
        "password_env: SHOP_PASSWORD\n  schema: public\n  active: true",
    )
    assert load(written(tmp_path, explicit)).rows.sections == rows(sources=[SOURCE]).sections


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("version: 1\nsources:\n- name: a\n  host: [x\n", 5, "YAML syntax"),
        (
            "version: 1\nlabels:\n- source: a\n  table: t\n  table: u\n  label: L\n",
            5,
            "appears twice",
        ),
        ("version: 1\nlabels:\n- source: a\n  table: t\n  label: 9bad\n", 5, "does not match"),
        (
            "version: 1\nsources:\n- name: a\n  host: h\n  port: '5432'\n  database: d\n  user: u\n",
            5,
            "is not of type",
        ),
        ("version: 1\nlabels:\n- source: a\n  table: t\n  label: L\n  colour: red\n", 6, "colour"),
        ("version: 2\n", 1, "version"),
        (
            "version: 1\nexclude:\n- {source: a, table: t, column: c}\n- {source: a, table: t, column: c}\n",
            4,
            "repeats the row of line 3",
        ),
        (
            "version: 1\nsources:\n- name: a\n  host: h\n  port: 1\n  database: d\n  user: u\n  password: hunter2\n",
            8,
            "password in clear text",
        ),
    ],
)
def test_a_wrong_file_names_the_line(tmp_path: Path, text: str, line: int, says: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        load(written(tmp_path, text))
    message = str(failed.value)
    assert f"m.yaml:{line}:" in message and says in message, message
    assert "hunter2" not in message


def test_a_join_edited_is_one_row_changed_and_two_joins_of_one_type_are_two_rows(
    tmp_path: Path,
) -> None:
    by_email = {**RELATIONSHIP, "type": "SUBMITTED", "join": "o.email = p.email"}
    current = Rows(
        {
            s.name: {"relationships": [(7, RELATIONSHIP), (8, by_email)]}.get(s.name, [])
            for s in SECTIONS
        }
    )
    edited = {**RELATIONSHIP, "join": "o.id = i.order_id AND i.product_id = p.id"}
    by_id = {**by_email, "join": "o.id = p.owner_id"}
    file = load(written(tmp_path, dump(rows(relationships=[edited, by_email, by_id]))))
    changes = list(compare(current, file))
    assert [(c.action, c.control_id) for c in changes] == [("changed", 7), ("added", None)]
    assert changes[0].fields() == [
        "join: \"o.id = i.order_id AND i.product_id = p.id AND i.kind = 'sale'\" → "
        '"o.id = i.order_id AND i.product_id = p.id"'
    ]
    assert changes[1].after == by_id


def test_diff_against_another_file_needs_no_database(tmp_path: Path) -> None:
    base = written(tmp_path, dump(rows(sources=[SOURCE], labels=[LABEL])), "base.yaml")
    head = written(
        tmp_path,
        dump(
            rows(
                sources=[{**SOURCE, "port": 6432}],
                labels=[LABEL, {**LABEL, "table": "refunds", "label": "Refund"}],
            )
        ),
        "head.yaml",
    )
    env = {"PATH": os.environ["PATH"], "ETL_DB_PORT": "1"}  # no control database reachable
    same = bulk360("mappings", "diff", str(base), "--against", str(base), env=env)
    assert (same.returncode, same.stdout.strip()) == (0, "base.yaml equals base.yaml")
    changed = bulk360("mappings", "diff", str(head), "--against", str(base), env=env)
    assert changed.returncode == 1, changed.stderr
    assert changed.stdout.splitlines() == [
        "~ sources shop: port: 5432 → 6432 (line 6)",
        "+ labels shop.refunds -> :Refund (line 17)",
    ]
    broken = written(tmp_path, "version: 1\nlabels: {}\n", "broken.yaml")
    wrong = bulk360("mappings", "diff", str(broken), "--against", str(base), env=env)
    assert wrong.returncode == 2 and "broken.yaml:2:" in wrong.stderr, wrong.stderr


TEMPLATE = """\
version: 1
sources:
- {name: east, host: h, port: 5432, database: east, user: u, password_env: P}
- {name: west, host: h, port: 5432, database: west, user: u, password_env: P}
labels:
- {source: east, table: countries, label: Country}
templates:
- name: shops
  tenants: {e: east, w: west}
  labels:
  - {table: customers, label: Customer, key: [id]}
  - {table: orders, label: Order}
  relationships:
  - type: PLACED
    from: {label: Customer, alias: c}
    to: {label: Order, alias: o}
    join: c.id = o.customer_id
  - type: LIVES_IN
    from: {label: Customer, alias: c}
    to: {label: Country, alias: k}
    join: c.country = k.code
  - type: BOUGHT
    from: {label: Customer, alias: c}
    to: {label: Order, alias: o}
    join: c.id = i.customer_id AND i.order_id = o.id
    link: {table: items, alias: i}
  exclude:
  - {table: customers, column: secret, reason: a credential}
"""


def test_a_template_expands_to_each_tenants_rows_with_the_lines_of_its_rules(
    tmp_path: Path,
) -> None:
    loaded = load(written(tmp_path, TEMPLATE))
    labels = [row for _, row in loaded.rows.sections["labels"]]
    assert labels[1:] == [
        {
            "source": "east",
            "table": "customers",
            "label": "Customer_e",
            "group": "Customer",
            "key": ["id"],
        },
        {"source": "east", "table": "orders", "label": "Order_e", "group": "Order"},
        {
            "source": "west",
            "table": "customers",
            "label": "Customer_w",
            "group": "Customer",
            "key": ["id"],
        },
        {"source": "west", "table": "orders", "label": "Order_w", "group": "Order"},
    ]
    ends = [
        (row["type"], row["from"]["label"], row["to"]["label"], row.get("link", {}).get("source"))
        for _, row in loaded.rows.sections["relationships"]
    ]
    assert ends == [
        ("PLACED", "Customer_e", "Order_e", None),
        ("LIVES_IN", "Customer_e", "Country", None),  # a label outside the template stays
        ("BOUGHT", "Customer_e", "Order_e", "east"),  # the link table is the tenant's
        ("PLACED", "Customer_w", "Order_w", None),
        ("LIVES_IN", "Customer_w", "Country", None),
        ("BOUGHT", "Customer_w", "Order_w", "west"),
    ]
    assert [row["source"] for _, row in loaded.rows.sections["exclude"]] == ["east", "west"]
    lines = TEMPLATE.splitlines()
    assert (
        loaded.line("labels", 3)
        == lines.index("  - {table: customers, label: Customer, key: [id]}") + 1
    )
    assert (
        loaded.line("exclude", 1)
        == lines.index("  - {table: customers, column: secret, reason: a credential}") + 1
    )
    # The expanded rows written out are a file without templates that loads to the same rows.
    flat = dump(loaded.rows)
    assert "templates" not in flat and dump(load(written(tmp_path, flat, "flat.yaml")).rows) == flat


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("tenants: {e: east, w: west}", "tenants: {e-1: east}"),
            "does not match",
        ),
        (
            lambda t: t.replace("  - {table: orders, label: Order}\n", "  - {table: orders}\n"),
            '"label" is a required property',
        ),
        (
            lambda t: t.replace(
                "- {source: east, table: countries, label: Country}\n",
                "- {source: east, table: countries, label: Country}\n"
                "- {source: west, table: customers, label: Customer_w}\n",
            ),
            "repeats the row of line",
        ),
    ],
)
def test_a_wrong_template_names_its_line(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as failed:
        load(written(tmp_path, edit(TEMPLATE)))
    assert any(
        message in problem and problem.startswith("m.yaml:") for problem in failed.value.problems
    ), failed.value.problems
