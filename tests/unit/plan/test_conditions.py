from __future__ import annotations

import pytest

from bulk360.plan.conditions import (
    ColumnRef,
    Equality,
    Filter,
    JoinConditionError,
    parse_column,
    parse_join_condition,
)


def test_single_equality() -> None:
    condition = parse_join_condition("a.account_id = pm.account_id")
    assert condition.equalities == (
        Equality(ColumnRef("a", "account_id"), ColumnRef("pm", "account_id")),
    )
    assert condition.filters == ()


def test_conjunction_with_parentheses_and_quoted_identifiers() -> None:
    terms = parse_join_condition('(t.ticket_id = l.ticket_id) AND l."Tag Id" = g.tag_id')
    assert [str(t) for t in terms.equalities] == [
        "t.ticket_id = l.ticket_id",
        "l.Tag Id = g.tag_id",
    ]


def test_row_filters_next_to_equalities() -> None:
    condition = parse_join_condition(
        "c.id = e.customer_id AND e.product_id = p.id AND e.event_type = 'add_to_cart'"
        " AND (e.weight IN (1, -2, 1))"
    )
    assert [str(e) for e in condition.equalities] == [
        "c.id = e.customer_id",
        "e.product_id = p.id",
    ]
    assert condition.filters == (
        Filter(ColumnRef("e", "event_type"), ("add_to_cart",), "string"),
        Filter(ColumnRef("e", "weight"), ("1", "-2"), "number"),
    )
    assert str(condition.filters[1]) == "e.weight IN (1, -2)"


def test_property_column() -> None:
    assert parse_column("l.tagged_at") == ColumnRef("l", "tagged_at")
    with pytest.raises(JoinConditionError, match=r"not an alias\.column"):
        parse_column("tagged_at")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a.account_id = ", "not a valid condition"),
        ("a.x = b.y; DROP TABLE accounts", "not a valid condition"),
        ("a.x = 1", "no alias.column = alias.column term"),
        ("a.x = b.y OR a.z = b.z", "not supported"),
        ("a.x > b.y", "not supported"),
        ("account_id = pm.account_id", "not an alias.column"),
        ("a.x = a.y", "one alias"),
        ("a.x = b.y AND a.z IN (SELECT 1)", "not supported"),
        ("a.x = b.y AND a.z = lower('A')", "string or number literals"),
        ("a.x = b.y AND a.z IN (1, 'one')", "mix types"),
    ],
)
def test_rejected_conditions(text: str, message: str) -> None:
    with pytest.raises(JoinConditionError, match=message):
        parse_join_condition(text)
