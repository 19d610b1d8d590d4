"""A whole graph as comparable values: every node and relationship with typed properties."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neo4j import Driver

from tests.helpers.services import cypher

Node = tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]


def typed(value: Any) -> Any:
    """A hashable value that keeps its type: 1 and 1.0, or a date and its text, differ."""
    if isinstance(value, list):
        return ("list", tuple(typed(v) for v in value))
    if isinstance(value, float) and math.isnan(value):
        return ("float", "NaN")
    return (type(value).__name__, value)


def properties(props: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((name, typed(value)) for name, value in props.items()))


EMPTY_LIST = ("list", ())


@dataclass(frozen=True)
class Snapshot:
    """Every node and relationship of the graph with typed properties, as multisets."""

    nodes: Counter[Any]
    relationships: Counter[Any]

    @classmethod
    def take(cls, driver: Driver) -> Snapshot:
        node_of: dict[str, Any] = {}
        for record in cypher(
            driver, "MATCH (n) RETURN elementId(n) AS id, labels(n) AS labels, properties(n) AS p"
        ):
            node_of[record["id"]] = (tuple(sorted(record["labels"])), properties(record["p"]))
        relationships = Counter(
            (r["type"], node_of[r["a"]], node_of[r["b"]], properties(r["p"]))
            for r in cypher(
                driver,
                "MATCH (a)-[r]->(b) RETURN type(r) AS type, elementId(a) AS a, "
                "elementId(b) AS b, properties(r) AS p",
            )
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
        return self.mapped(lambda n: (n[0], tuple(p for p in n[1] if p[1] != EMPTY_LIST)))

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
