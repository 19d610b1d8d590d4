"""The Cypher that bolt mode and sync share. Labels, types and property names are checked
identifiers, backtick-quoted (:func:`bulk360.graph.quoted`); values are always parameters, a
row ``r`` of ``UNWIND $rows AS r`` read by position (see :class:`bulk360.package.writer.GraphWriter`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from neo4j import Driver

from bulk360.graph import quoted
from bulk360.package.files import NodeFile, RelationshipFile

__all__ = [
    "clear_database",
    "count_graph",
    "count_nodes_query",
    "count_relationships_query",
    "create_key_constraint",
    "delete_group_query",
    "delete_nodes_query",
    "ensure_key_constraints",
    "graph_counts",
    "match_node",
    "merge_nodes_query",
    "node_query",
    "relationship_query",
    "replace_pairs_query",
    "scalar",
]


def scalar(driver: Driver, database: str, query: str) -> int:
    """The single number a query returns (no bookmarks: a rebuilt store starts again)."""
    records, _, _ = driver.execute_query(query, database_=database, bookmark_manager_=None)
    return int(records[0][0])


def count_nodes_query(label: str) -> str:
    return f"MATCH (n:{quoted(label)}) RETURN count(n)"


def count_relationships_query(kind: str) -> str:
    return f"MATCH ()-[r:{quoted(kind)}]->() RETURN count(r)"


def count_graph(
    driver: Driver, database: str, labels: Iterable[str], types: Iterable[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Nodes per label and relationships per type (from the count store), in one query: one
    round trip, which counts when Neo4j is far away."""
    names = [("label", label) for label in labels]
    names += [("type", kind) for kind in dict.fromkeys(types)]
    parts = [
        (count_nodes_query(name) if kind == "label" else count_relationships_query(name))
        + f" AS n, $names[{i}][0] AS kind, $names[{i}][1] AS name"
        for i, (kind, name) in enumerate(names)
    ]
    # A label or type the database has never seen gives no row at all within a UNION: 0.
    nodes = {name: 0 for kind, name in names if kind == "label"}
    relationships = {name: 0 for kind, name in names if kind == "type"}
    if not parts:
        return nodes, relationships
    records, _, _ = driver.execute_query(
        " UNION ALL ".join(parts),
        names=[list(n) for n in names],
        database_=database,
        bookmark_manager_=None,
    )
    for record in records:
        (nodes if record["kind"] == "label" else relationships)[record["name"]] = int(record["n"])
    return nodes, relationships


def graph_counts(driver: Driver, database: str) -> dict[tuple[str, str], int]:
    """Nodes per label (``("label", name)``) and relationships per type (``("type", name)``)
    of every label and type the database knows (from the count store)."""

    def names(query: str) -> list[str]:
        records, _, _ = driver.execute_query(query, database_=database, bookmark_manager_=None)
        return [record[0] for record in records]

    labels = names("CALL db.labels() YIELD label RETURN label")
    types = names("CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType")
    nodes, relationships = count_graph(driver, database, labels, types)
    return {("label", k): v for k, v in nodes.items()} | {
        ("type", k): v for k, v in relationships.items()
    }


def clear_database(driver: Driver, database: str, batch_size: int) -> None:
    """Delete every relationship, then every node, in transactions of ``batch_size`` rows."""
    with driver.session(database=database) as session:
        for query in (
            "MATCH ()-[x]->() CALL (x) { DELETE x } IN TRANSACTIONS OF $size ROWS",
            "MATCH (x) CALL (x) { DELETE x } IN TRANSACTIONS OF $size ROWS",
        ):
            session.run(query, size=batch_size).consume()


def create_key_constraint(driver: Driver, database: str, label: str, keys: Sequence[str]) -> None:
    """The uniqueness constraint ``bulk360_<label>_key`` on the key properties, if missing."""
    properties = ", ".join(f"n.{quoted(k)}" for k in keys)
    driver.execute_query(
        f"CREATE CONSTRAINT {quoted(f'bulk360_{label}_key')} IF NOT EXISTS "
        f"FOR (n:{quoted(label)}) REQUIRE ({properties}) IS UNIQUE",
        database_=database,
        bookmark_manager_=None,
    )


def ensure_key_constraints(
    driver: Driver, database: str, keys: Sequence[tuple[str, Sequence[str]]], wait: float = 300
) -> None:
    """The key constraints of ``keys`` (label, key properties) that are missing, created; then
    every index waited for (a graph admin mode just built gets its indexes here, and a ``MERGE``
    before they are online would scan its label). Two round trips when all exist."""
    records, _, _ = driver.execute_query(
        "SHOW CONSTRAINTS YIELD name RETURN collect(name) AS names",
        database_=database,
        bookmark_manager_=None,
    )
    present = set(records[0]["names"])
    missing = [(label, k) for label, k in keys if f"bulk360_{label}_key" not in present]
    for label, k in missing:
        create_key_constraint(driver, database, label, k)
    # Also when they all exist: one made by another run a moment ago may still be populating.
    driver.execute_query(
        "CALL db.awaitIndexes($seconds)",
        seconds=int(wait),
        database_=database,
        bookmark_manager_=None,
    )


def delete_group_query(start: str, kind: str, end: str) -> str:
    """Every relationship of ``kind`` from ``start`` to ``end`` nodes, deleted in bounded
    transactions (``$size`` rows)."""
    return (
        f"MATCH (:{quoted(start)})-[x:{quoted(kind)}]->(:{quoted(end)}) "
        "CALL (x) { DELETE x } IN TRANSACTIONS OF $size ROWS"
    )


def match_node(alias: str, node: NodeFile, offset: int) -> str:
    """``MATCH (<alias>:<Label> {key: r[offset], ...})``: a node by its key values in ``r``."""
    props = ", ".join(
        f"{quoted(k.name)}: {k.cypher(f'r[{offset + i}]')}" for i, k in enumerate(node.key_fields())
    )
    return f"MATCH ({alias}:{quoted(node.label)} {{{props}}})"


def merge_nodes_query(node: NodeFile, removed: Sequence[str] = ()) -> str:
    """``MERGE`` each row's node on its key and set every other property (a NULL one is
    removed), and remove the properties ``removed`` (columns no longer written)."""
    fields, keys = node.fields, node.key_fields()
    index = {f.name: i for i, f in enumerate(fields)}
    key_map = ", ".join(f"{quoted(k.name)}: {k.cypher(f'r[{index[k.name]}]')}" for k in keys)
    sets = ", ".join(
        f"n.{quoted(f.name)} = {f.cypher(f'r[{index[f.name]}]')}"
        for f in fields
        if f.name not in node.keys
    )
    query = f"UNWIND $rows AS r MERGE (n:{quoted(node.label)} {{{key_map}}})"
    group = [f"n:{quoted(node.group_label)}"] if node.group_label else []
    if sets or group:
        query += f" SET {', '.join([*([sets] if sets else []), *group])}"
    return query + (f" REMOVE {', '.join(f'n.{quoted(c)}' for c in removed)}" if removed else "")


def node_query(node: NodeFile, mode: str) -> str:
    """The query of a label's rows: ``create`` for a label without nodes yet, else ``merge``."""
    if mode != "create":
        return merge_nodes_query(node)
    # All properties in the CREATE map (a null one is left out): faster than SET.
    every = ", ".join(f"{quoted(f.name)}: {f.cypher(f'r[{i}]')}" for i, f in enumerate(node.fields))
    labels = ":".join(quoted(label) for label in node.labels)
    return f"UNWIND $rows AS r CREATE (n:{labels} {{{every}}})"


def _ends(rel: RelationshipFile) -> str:
    """The two nodes of each row, by their keys: ``a`` and ``b``."""
    n_start = len(rel.start.key_fields())
    return f"UNWIND $rows AS r {match_node('a', rel.start, 0)} {match_node('b', rel.end, n_start)} "


def relationship_query(rel: RelationshipFile, mode: str) -> str:
    """The query of a mapping's rows that creates (``create``), or merges, each relationship
    between its two nodes."""
    offset = len(rel.start.key_fields()) + len(rel.end.key_fields())
    values = [(quoted(f.name), f.cypher(f"r[{offset + i}]")) for i, f in enumerate(rel.fields)]
    if mode == "create":
        every = ", ".join(f"{name}: {value}" for name, value in values)
        return _ends(rel) + f"CREATE (a)-[x:{quoted(rel.type)} {{{every}}}]->(b)"
    sets = ", ".join(f"x.{name} = {value}" for name, value in values)
    return _ends(rel) + f"MERGE (a)-[x:{quoted(rel.type)}]->(b)" + (f" SET {sets}" if sets else "")


def replace_pairs_query(rel: RelationshipFile) -> str:
    """For each row (a pair of nodes by their keys, then the list of its relationships' property
    maps ``p0``, ``p1``...), the pair's relationships of the type deleted and created anew."""
    offset = len(rel.start.key_fields()) + len(rel.end.key_fields())
    kind = quoted(rel.type)
    values = ", ".join(f"{quoted(f.name)}: {f.cypher(f'p.p{i}')}" for i, f in enumerate(rel.fields))
    return (
        _ends(rel)
        + f"CALL (a, b) {{ MATCH (a)-[x:{kind}]->(b) DELETE x }} "
        + f"WITH a, b, r UNWIND r[{offset}] AS p CREATE (a)-[x:{kind} {{{values}}}]->(b)"
    )


def delete_nodes_query(node: NodeFile) -> str:
    """Each row's node (by its key values) deleted with its relationships."""
    return f"UNWIND $rows AS r {match_node('n', node, 0)} DETACH DELETE n"
