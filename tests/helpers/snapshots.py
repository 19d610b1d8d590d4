"""A whole graph as comparable values: every node and relationship with typed properties."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neo4j import Driver

Node = tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]


# Each property as [name, its Cypher type, its text (a list: the text of each element)],
# formatted by the server and sent in one record: 5-10x faster than the driver decoding
# every temporal value, and a value's type still tells 1 from 1.0 or a date from its text.
_TYPED = (
    "[k IN keys({e}) | [k, valueType({e}[k]), CASE WHEN valueType({e}[k]) STARTS WITH 'LIST'"
    " THEN [v IN {e}[k] | toString(v)] ELSE toString({e}[k]) END]]"
)
_NODES = f"MATCH (n) RETURN collect([elementId(n), labels(n), {_TYPED.format(e='n')}]) AS all"
_RELATIONSHIPS = (
    "MATCH (a)-[r]->(b) RETURN collect([type(r), elementId(a), elementId(b),"
    f" {_TYPED.format(e='r')}]) AS all"
)


def _all(driver: Driver, query: str) -> list[Any]:
    """The one collected list ``query`` returns (not through ``Record.data()``, which copies
    it element by element; no bookmarks, as :func:`cypher`)."""
    records, _, _ = driver.execute_query(query, bookmark_manager_=None)
    return list(records[0]["all"])


def properties(typed: list[list[Any]]) -> tuple[tuple[str, Any], ...]:
    return tuple(
        sorted(
            (name, (kind, tuple(text) if isinstance(text, list) else text))
            for name, kind, text in typed
        )
    )


def empty_list(value: Any) -> bool:
    """Whether a property's value (as a snapshot holds it) is an empty array."""
    return value[0].startswith("LIST") and value[1] == ()


def empty_string(value: Any) -> bool:
    """Whether a property's value (as a snapshot holds it) is an empty string."""
    return value[0].startswith("STRING") and value[1] == ""


@dataclass(frozen=True)
class Snapshot:
    """Every node and relationship of the graph with typed properties, as multisets."""

    nodes: Counter[Any]
    relationships: Counter[Any]

    @classmethod
    def take(cls, driver: Driver) -> Snapshot:
        node_of: dict[str, Any] = {
            element: (tuple(sorted(labels)), properties(props))
            for element, labels, props in _all(driver, _NODES)
        }
        relationships = Counter(
            (kind, node_of[a], node_of[b], properties(props))
            for kind, a, b, props in _all(driver, _RELATIONSHIPS)
        )
        return cls(Counter(node_of.values()), relationships)

    def mapped(self, node: Callable[[Node], Node]) -> Snapshot:
        """The same graph with every node (and relationship end) passed through ``node``."""
        return Snapshot(
            Counter({node(n): count for n, count in self.nodes.items()}),
            Counter(
                {
                    (kind, node(a), node(b), props): count
                    for (kind, a, b, props), count in self.relationships.items()
                }
            ),
        )

    def without_empty_arrays(self) -> Snapshot:
        """Empty array properties removed: how neo4j-admin stores them (it cannot store one)."""
        return self.mapped(lambda n: (n[0], tuple(p for p in n[1] if not empty_list(p[1]))))

    def without_empty_strings(self) -> Snapshot:
        """Empty string properties of nodes and relationships removed: how neo4j-admin's
        Parquet reader stores them."""

        def kept(props: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
            return tuple(p for p in props if not empty_string(p[1]))

        nodes = self.mapped(lambda n: (n[0], kept(n[1])))
        return Snapshot(
            nodes.nodes,
            Counter(
                {
                    (kind, a, b, kept(props)): count
                    for (kind, a, b, props), count in nodes.relationships.items()
                }
            ),
        )

    def differences(self, other: Snapshot) -> list[str]:
        """A readable sample of what one graph has and the other has not."""
        found = []
        for kind, mine, theirs in (
            ("node", self.nodes, other.nodes),
            ("relationship", self.relationships, other.relationships),
        ):
            for element in list((mine - theirs).elements())[:3]:
                found.append(f"only in the first graph: {kind} {element}")
            for element in list((theirs - mine).elements())[:3]:
                found.append(f"only in the second graph: {kind} {element}")
        return found
