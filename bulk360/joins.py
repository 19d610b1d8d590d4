"""Join conditions of relationship mappings, parsed by a real SQL grammar (sqlglot).

A join condition is a conjunction of equalities between columns of bound aliases, for example
``a.account_id = pm.account_id`` or ``t.ticket_id = l.ticket_id AND l.tag_id = g.tag_id``. It is
never pasted into SQL or Cypher: bulk360 evaluates it as a Polars join on the named columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

__all__ = ["ColumnRef", "Equality", "JoinConditionError", "parse_join_condition"]


class JoinConditionError(ValueError):
    """Raised when a join condition is not a conjunction of ``alias.column = alias.column``."""


@dataclass(frozen=True, order=True)
class ColumnRef:
    """One side of an equality: a column of the table bound to ``alias``."""

    alias: str
    column: str

    def __str__(self) -> str:
        return f"{self.alias}.{self.column}"


@dataclass(frozen=True)
class Equality:
    """``left = right``, two columns of different aliases."""

    left: ColumnRef
    right: ColumnRef

    def __str__(self) -> str:
        return f"{self.left} = {self.right}"


def _column(node: exp.Expression, text: str) -> ColumnRef:
    if not isinstance(node, exp.Column) or not node.table or node.args.get("db"):
        raise JoinConditionError(f"'{node.sql()}' in '{text}' is not an alias.column reference")
    return ColumnRef(alias=node.table, column=node.name)


def _terms(node: exp.Expression, text: str) -> list[Equality]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _terms(node.this, text) + _terms(node.expression, text)
    if isinstance(node, exp.EQ):
        left, right = _column(node.this, text), _column(node.expression, text)
        if left.alias == right.alias:
            raise JoinConditionError(f"'{node.sql()}' compares two columns of one alias")
        return [Equality(left, right)]
    raise JoinConditionError(
        f"'{node.sql()}' in '{text}' is not supported: use alias.column = alias.column "
        "terms joined by AND"
    )


def parse_join_condition(text: str) -> list[Equality]:
    """Parse ``text`` into its equalities, or raise :class:`JoinConditionError`."""
    if not text or not text.strip():
        raise JoinConditionError("the join condition is empty")
    try:
        tree = sqlglot.condition(text, dialect="postgres")
    except ParseError:
        raise JoinConditionError(f"'{text}' is not a valid condition") from None
    return _terms(tree, text)  # type: ignore[arg-type]
