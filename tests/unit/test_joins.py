from __future__ import annotations

import pytest

from bulk360.joins import ColumnRef, Equality, JoinConditionError, parse_join_condition


def test_single_equality() -> None:
    assert parse_join_condition("a.account_id = pm.account_id") == [
        Equality(ColumnRef("a", "account_id"), ColumnRef("pm", "account_id"))
    ]


def test_conjunction_with_parentheses_and_quoted_identifiers() -> None:
    terms = parse_join_condition('(t.ticket_id = l.ticket_id) AND l."Tag Id" = g.tag_id')
    assert [str(t) for t in terms] == ["t.ticket_id = l.ticket_id", "l.Tag Id = g.tag_id"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a.account_id = ", "not a valid condition"),
        ("a.x = b.y; DROP TABLE accounts", "not a valid condition"),
        ("a.x = 1", "not an alias.column"),
        ("a.x = b.y OR a.z = b.z", "not supported"),
        ("a.x > b.y", "not supported"),
        ("account_id = pm.account_id", "not an alias.column"),
        ("a.x = a.y", "one alias"),
    ],
)
def test_rejected_conditions(text: str, message: str) -> None:
    with pytest.raises(JoinConditionError, match=message):
        parse_join_condition(text)
