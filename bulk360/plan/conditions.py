"""Join conditions of relationship mappings, parsed by a real SQL grammar (sqlglot).

A join condition is a conjunction of equalities between columns of bound aliases, for example
``a.account_id = pm.account_id`` or ``t.ticket_id = l.ticket_id AND l.tag_id = g.tag_id``, and
optionally of row filters comparing one column with literals: ``e.event_type = 'view'`` or
``o.status IN ('paid', 'shipped')``. It is never pasted into SQL or Cypher: bulk360 evaluates the
equalities as a Polars join on the named columns and the filters as a Polars filter before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

__all__ = [
    "ColumnRef",
    "Equality",
    "Filter",
    "JoinCondition",
    "JoinConditionError",
    "parse_column",
    "parse_join_condition",
]


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


@dataclass(frozen=True)
class Filter:
    """``column = literal`` or ``column IN (literals)``: only rows whose value is one of ``values``.

    ``values`` are the literals as PostgreSQL writes them in CSV (``'view'`` → ``view``, ``5`` →
    ``5``); ``kind`` is ``"string"`` or ``"number"``, checked against the column's type.
    """

    column: ColumnRef
    values: tuple[str, ...]
    kind: str

    def __str__(self) -> str:
        shown = [f"'{v}'" if self.kind == "string" else v for v in self.values]
        if len(shown) == 1:
            return f"{self.column} = {shown[0]}"
        return f"{self.column} IN ({', '.join(shown)})"


@dataclass(frozen=True)
class JoinCondition:
    """The equalities of a join condition and its row filters."""

    equalities: tuple[Equality, ...]
    filters: tuple[Filter, ...] = ()


def _column(node: exp.Expression, text: str) -> ColumnRef:
    if not isinstance(node, exp.Column) or not node.table or node.args.get("db"):
        raise JoinConditionError(f"'{node.sql()}' in '{text}' is not an alias.column reference")
    return ColumnRef(alias=node.table, column=node.name)


def _literal(node: exp.Expression, text: str) -> tuple[str, str] | None:
    """(value, kind) of a string or number literal (a negative number too), else None."""
    negative = isinstance(node, exp.Neg)
    if negative:
        node = node.this
    if not isinstance(node, exp.Literal):
        return None
    if node.is_string:
        if negative:
            raise JoinConditionError(f"'-{node.sql()}' in '{text}' is not a literal")
        return node.this, "string"
    return ("-" if negative else "") + node.this, "number"


def _filter(column: exp.Expression, literals: list[exp.Expression], text: str) -> Filter:
    values = [_literal(node, text) for node in literals]
    if not values or any(v is None for v in values):
        raise JoinConditionError(
            f"'{column.sql()}' in '{text}' must be compared with string or number literals"
        )
    kinds = {kind for _, kind in values}  # type: ignore[misc]
    if len(kinds) > 1:
        raise JoinConditionError(f"the literals compared with '{column.sql()}' mix types")
    return Filter(
        _column(column, text),
        tuple(dict.fromkeys(v for v, _ in values)),  # type: ignore[misc]
        kinds.pop(),
    )


def _terms(node: exp.Expression, text: str) -> list[Equality | Filter]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _terms(node.this, text) + _terms(node.expression, text)
    if isinstance(node, exp.EQ):
        if isinstance(node.this, exp.Column) and not isinstance(node.expression, exp.Column):
            return [_filter(node.this, [node.expression], text)]
        left, right = _column(node.this, text), _column(node.expression, text)
        if left.alias == right.alias:
            raise JoinConditionError(f"'{node.sql()}' compares two columns of one alias")
        return [Equality(left, right)]
    if isinstance(node, exp.In) and not node.args.get("query"):
        return [_filter(node.this, node.expressions, text)]
    raise JoinConditionError(
        f"'{node.sql()}' in '{text}' is not supported: use alias.column = alias.column "
        "terms (and alias.column = 'literal' or alias.column IN (...) filters) joined by AND"
    )


def _parse(text: str) -> exp.Expression:
    if not text or not text.strip():
        raise JoinConditionError("the join condition is empty")
    try:
        return sqlglot.condition(text, dialect="postgres")  # type: ignore[return-value]
    except ParseError:
        raise JoinConditionError(f"'{text}' is not a valid condition") from None


def parse_join_condition(text: str) -> JoinCondition:
    """Parse ``text`` into its equalities and filters, or raise :class:`JoinConditionError`."""
    terms = _terms(_parse(text), text)
    equalities = tuple(t for t in terms if isinstance(t, Equality))
    filters = tuple(t for t in terms if isinstance(t, Filter))
    if not equalities:
        raise JoinConditionError(f"'{text}' has no alias.column = alias.column term")
    return JoinCondition(equalities, filters)


def parse_column(text: str) -> ColumnRef:
    """Parse one ``alias.column`` reference (a relationship property), or raise."""
    return _column(_parse(text), text)
