"""Bolt mode: the run's node and relationship files written over Bolt, for servers you cannot stop.

The files are those admin mode gives ``neo4j-admin``; here Polars parses each one with the types
of its header, and batches of rows go to the server as one ``UNWIND $rows`` parameter of a
managed transaction (retried by the driver on deadlocks, leader switches and dropped
connections). Values are never pasted into Cypher; labels, types and property names are checked
identifiers, backtick-quoted. Temporal values travel as the ISO text PostgreSQL wrote and the
server parses them (``date(r[2])``), exactly as ``neo4j-admin`` does.

Idempotent, so a second run or a rerun after a failure gives the same graph:

* nodes are merged on their key properties, backed by a uniqueness constraint per label;
  a label without nodes when the load starts is written with ``CREATE`` (same result, no lookups);
* relationships of a type that has none yet are created; otherwise they are merged between
  their two nodes when no pair of nodes repeats among the mappings of that (start label, type,
  end label) group, and when pairs repeat (two equal relationships between the same nodes, which
  neo4j-admin also creates) the group is deleted in bounded transactions and created again.

Nodes of all labels are written by ``workers`` threads, then relationships the same way; two
batches that lock the same node may deadlock, and the driver retries the one the server aborts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j.exceptions import DriverError, Neo4jError

from bulk360.errors import TargetError
from bulk360.graph import open_driver, quoted
from bulk360.types import ARRAY_DELIMITER

__all__ = [
    "Batch",
    "BoltLoad",
    "BoltLoader",
    "Field",
    "NodeSpec",
    "RelationshipSpec",
    "clear_database",
    "create_key_constraint",
    "keys_by_id",
    "merge_nodes_query",
    "scan",
]

# Types the server parses from ISO text, with the Cypher function that does it.
_TEMPORAL = {"date", "localdatetime", "datetime", "localtime", "time", "duration"}
_POLARS = {"long": pl.Int64, "double": pl.Float64}


@dataclass(frozen=True)
class Field:
    """One typed column of a file: ``name:type`` of the header."""

    column: str
    name: str
    kind: str

    @classmethod
    def of(cls, header: str) -> Field:
        name, _, kind = header.rpartition(":")
        return cls(header, name, kind)

    def parse(self, expression: pl.Expr) -> pl.Expr:
        """The Polars expression turning the file's text into the driver's value."""
        kind = self.kind.removesuffix("[]")
        if self.kind.endswith("[]"):
            # NULL stays NULL; an empty text is an empty array, which Bolt can write (unlike
            # neo4j-admin, which stores no property: counted by the run as a changed value).
            split = expression.str.split(ARRAY_DELIMITER)
            parts = pl.when(expression == "").then(split.list.slice(0, 0)).otherwise(split)
            if kind == "boolean":
                return parts.list.eval(pl.element() == "true")
            return parts.cast(pl.List(_POLARS.get(kind, pl.String)))
        if kind == "boolean":
            return expression == "true"
        return expression.cast(_POLARS[kind]) if kind in _POLARS else expression

    def cypher(self, value: str) -> str:
        """The Cypher expression of the value parameter ``value`` (temporals parsed there)."""
        kind = self.kind.removesuffix("[]")
        if kind not in _TEMPORAL:
            return value
        if self.kind.endswith("[]"):
            return f"[v IN {value} | {kind}(v)]"
        return f"{kind}({value})"


@dataclass(frozen=True)
class NodeSpec:
    """A node file and the key properties its nodes are merged on."""

    label: str
    path: Path
    headers: Sequence[str]
    keys: Sequence[str]
    rows: int | None = None
    """Nodes in the file, when the manifest says (for progress bars)."""

    @property
    def fields(self) -> list[Field]:
        return [Field.of(h) for h in self.headers if not h.startswith(":")]

    @property
    def id_column(self) -> str:
        return self.headers[0]

    def key_fields(self) -> list[Field]:
        by_name = {f.name: f for f in self.fields}
        return [by_name[k] for k in self.keys]


@dataclass(frozen=True)
class RelationshipSpec:
    """The file of one relationship mapping."""

    name: str
    type: str
    start: NodeSpec
    end: NodeSpec
    path: Path
    headers: Sequence[str]
    rows: int | None = None
    """Relationships in the file, when the manifest says (for progress bars)."""

    @property
    def group(self) -> tuple[str, str, str]:
        """Mappings of one type between the same two labels are written alike."""
        return (self.start.label, self.type, self.end.label)

    @property
    def fields(self) -> list[Field]:
        return [Field.of(h) for h in self.headers[2:]]


@dataclass
class BoltLoad:
    """What was written, per label and per relationship type."""

    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    merged_labels: list[str] = field(default_factory=list)
    replaced_types: list[str] = field(default_factory=list)
    created_types: list[str] = field(default_factory=list)
    """Types that had no relationship when the load began."""
    cleared: tuple[int, int] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    graph_nodes: dict[str, int] = field(default_factory=dict)
    """Nodes per label in the graph after the load."""
    graph_relationships: dict[str, int] = field(default_factory=dict)
    """Relationships per type in the graph after the load."""


def keys_by_id(node: NodeSpec, alias: str) -> pl.LazyFrame:
    """A node file's ids with the typed key values of each, named ``<alias>0``, ``<alias>1``..."""
    return scan(node.path).select(
        pl.col(node.id_column).cast(pl.Int64).alias(f"{alias}|id"),
        *[k.parse(pl.col(k.column)).alias(f"{alias}{i}") for i, k in enumerate(node.key_fields())],
    )


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


@dataclass(frozen=True)
class Batch:
    """One transaction: a query, its rows, and the label or mapping they count for."""

    kind: str
    name: str
    query: str
    rows: list[tuple[Any, ...]]
    task: str = ""
    """The progress bar it advances (default: ``name``)."""

    @property
    def progress_task(self) -> str:
        return self.task or self.name


def scan(path: Path) -> pl.LazyFrame:
    """A file of a run, every column as text."""
    return pl.scan_csv(path, infer_schema=False, quote_char='"', has_header=True)


def merge_nodes_query(spec: NodeSpec, removed: Sequence[str] = ()) -> str:
    """``MERGE`` each row's node on its key and set every other property (a NULL one is
    removed), and remove the properties ``removed`` (columns no longer written)."""
    fields, keys = spec.fields, spec.key_fields()
    index = {f.name: i for i, f in enumerate(fields)}
    key_map = ", ".join(f"{quoted(k.name)}: {k.cypher(f'r[{index[k.name]}]')}" for k in keys)
    sets = ", ".join(
        f"n.{quoted(f.name)} = {f.cypher(f'r[{index[f.name]}]')}"
        for f in fields
        if f.name not in spec.keys
    )
    query = f"UNWIND $rows AS r MERGE (n:{quoted(spec.label)} {{{key_map}}})"
    query += f" SET {sets}" if sets else ""
    return query + (f" REMOVE {', '.join(f'n.{quoted(c)}' for c in removed)}" if removed else "")


def node_query(spec: NodeSpec, mode: str) -> str:
    """The ``UNWIND $rows AS r`` query of a label's rows (``r``: values in ``spec.fields``
    order): ``create`` for a label without nodes yet, else ``merge``."""
    if mode != "create":
        return merge_nodes_query(spec)
    fields = spec.fields
    # All properties in the CREATE map (a null one is left out): faster than SET.
    every = ", ".join(f"{quoted(f.name)}: {f.cypher(f'r[{i}]')}" for i, f in enumerate(fields))
    return f"UNWIND $rows AS r CREATE (n:{quoted(spec.label)} {{{every}}})"


def relationship_query(spec: RelationshipSpec, mode: str) -> str:
    """The ``UNWIND $rows AS r`` query of a mapping's rows (``r``: start keys, end keys, then
    the properties) that creates, or merges, each relationship between its two nodes."""
    start_keys, end_keys = spec.start.key_fields(), spec.end.key_fields()
    n_start, n_end = len(start_keys), len(end_keys)

    def match(alias: str, node: NodeSpec, keys: list[Field], offset: int) -> str:
        props = ", ".join(
            f"{quoted(k.name)}: {k.cypher(f'r[{offset + i}]')}" for i, k in enumerate(keys)
        )
        return f"MATCH ({alias}:{quoted(node.label)} {{{props}}})"

    values = [
        (quoted(f.name), f.cypher(f"r[{n_start + n_end + i}]")) for i, f in enumerate(spec.fields)
    ]
    head = (
        f"UNWIND $rows AS r {match('a', spec.start, start_keys, 0)} "
        f"{match('b', spec.end, end_keys, n_start)} "
    )
    if mode == "create":
        every = ", ".join(f"{name}: {value}" for name, value in values)
        return head + f"CREATE (a)-[x:{quoted(spec.type)} {{{every}}}]->(b)"
    sets = ", ".join(f"x.{name} = {value}" for name, value in values)
    return head + f"MERGE (a)-[x:{quoted(spec.type)}]->(b)" + (f" SET {sets}" if sets else "")


def node_rows(spec: NodeSpec, frame: pl.LazyFrame) -> pl.DataFrame:
    """The typed values of a node file's rows, in the order of ``spec.fields``."""
    return frame.select([f.parse(pl.col(f.column)).alias(f.name) for f in spec.fields]).collect()


class BoltLoader:
    """Writes a run's files into a running Neo4j over Bolt."""

    def __init__(
        self,
        uri: str,
        auth: tuple[str, str],
        database: str,
        batch_size: int = 5_000,
        workers: int = 4,
        retry_seconds: float = 30.0,
    ) -> None:
        self.uri = uri
        self._auth = auth
        self.database = database
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self.retry_seconds = retry_seconds
        self.load = BoltLoad()
        self._lock = threading.Lock()
        self.progress: Callable[[str, int], None] = lambda name, rows: None
        """Told ``(label or mapping, rows)`` after each committed batch."""

    # ---- the connection ----------------------------------------------------------------

    def connect(self) -> Driver:
        """A verified driver; a bad URI, password or database is one line naming the URI."""
        driver = open_driver(
            self.uri,
            self._auth,
            max_transaction_retry_time=self.retry_seconds,
            # "label does not exist" and the like are expected before the first load.
            notifications_min_severity="OFF",
        )
        try:
            driver.execute_query("RETURN 1", database_=self.database, bookmark_manager_=None)
        except Neo4jError as exc:
            driver.close()
            raise TargetError(
                f"Neo4j at {self.uri} cannot serve database '{self.database}': {exc.message}"
            ) from None
        except DriverError as exc:
            driver.close()
            raise TargetError(f"Neo4j at {self.uri} does not answer: {exc}") from None
        return driver

    def preflight(self) -> None:
        """Connect once before anything is read, so a bad target fails first."""
        self.connect().close()

    # ---- the load ----------------------------------------------------------------------

    def run(
        self,
        nodes: Sequence[NodeSpec],
        relationships: Sequence[RelationshipSpec],
        clear: bool,
        progress: Callable[[str, int], None] = lambda name, rows: None,
    ) -> BoltLoad:
        """Clear (if asked), create the constraints, write every node, then every relationship."""
        driver = self.connect()
        self.progress = progress
        try:
            with self.failures():
                started = time.perf_counter()
                if clear:
                    self.load.cleared = self._clear(driver)
                for spec in nodes:
                    create_key_constraint(driver, self.database, spec.label, spec.keys)
                node_modes = {s.label: self._node_mode(driver, s) for s in nodes}
                relationship_modes = self._relationship_modes(driver, relationships)
                self.load.seconds["prepare"] = round(time.perf_counter() - started, 3)
                bookmarks = GraphDatabase.bookmark_manager()
                started = time.perf_counter()
                self.write_nodes(driver, bookmarks, nodes, node_modes)
                self.load.seconds["nodes"] = round(time.perf_counter() - started, 3)
                started = time.perf_counter()
                self.write_relationships(driver, bookmarks, relationships, relationship_modes)
                self.load.seconds["relationships"] = round(time.perf_counter() - started, 3)
                self._count_graph(driver, nodes, relationships)
        finally:
            driver.close()
        return self.load

    def write_nodes(
        self, driver: Driver, bookmarks: Any, nodes: Sequence[NodeSpec], modes: dict[str, str]
    ) -> None:
        """Every label's nodes, its batches on the writer threads."""
        self.write_batches(
            driver, bookmarks, [self._node_batches(s, modes[s.label]) for s in nodes]
        )

    def write_relationships(
        self,
        driver: Driver,
        bookmarks: Any,
        relationships: Sequence[RelationshipSpec],
        modes: dict[tuple[str, str, str], str],
    ) -> None:
        """Every mapping's relationships (their nodes are written)."""
        self.write_batches(
            driver, bookmarks, [self.relationship_batches(r, modes[r.group]) for r in relationships]
        )

    def auth(self) -> tuple[str, str]:
        return self._auth

    @contextmanager
    def failures(
        self, then: str = "run again to complete it (bolt mode is idempotent)"
    ) -> Iterator[None]:
        """A driver error after its retries becomes one line saying what was written."""
        try:
            yield
        except (Neo4jError, DriverError) as exc:
            message = exc.message if isinstance(exc, Neo4jError) else str(exc)
            reason = message or type(exc).__name__
            nodes = sum(self.load.nodes.values())
            relationships = sum(self.load.relationships.values())
            raise TargetError(
                f"writing to Neo4j at {self.uri} failed after {nodes:,} nodes and "
                f"{relationships:,} relationships: {reason.splitlines()[0]}; the graph is "
                f"incomplete, {then}"
            ) from None

    def _node_mode(self, driver: Driver, spec: NodeSpec) -> str:
        """``create`` for a label without nodes yet, else ``merge``."""
        if self.scalar(driver, f"MATCH (n:{quoted(spec.label)}) RETURN count(n)") == 0:
            return "create"
        self.load.merged_labels.append(spec.label)
        return "merge"

    def _relationship_modes(
        self, driver: Driver, relationships: Sequence[RelationshipSpec]
    ) -> dict[tuple[str, str, str], str]:
        """How each (start label, type, end label) group is written.

        ``create`` when the type has no relationship yet; ``merge`` on (start, end) when no
        pair of nodes repeats in the group; otherwise the group's relationships are deleted
        first (in bounded transactions) and created again.
        """
        groups: dict[tuple[str, str, str], list[RelationshipSpec]] = {}
        for spec in relationships:
            groups.setdefault(spec.group, []).append(spec)
        modes: dict[tuple[str, str, str], str] = {}
        for (start, kind, end), specs in groups.items():
            if self.scalar(driver, f"MATCH ()-[r:{quoted(kind)}]->() RETURN count(r)") == 0:
                modes[(start, kind, end)] = "create"
                self.load.created_types.append(kind)
                continue
            pairs = pl.concat(
                [scan(s.path).select(pl.nth(0).alias("s"), pl.nth(1).alias("e")) for s in specs]
            )
            counts = pairs.select(total=pl.len(), distinct=pl.struct("s", "e").n_unique())
            total, distinct = counts.collect(engine="streaming").row(0)
            if total == distinct:
                modes[(start, kind, end)] = "merge"
                continue
            with driver.session(database=self.database) as session:
                session.run(
                    f"MATCH (:{quoted(start)})-[x:{quoted(kind)}]->(:{quoted(end)}) "
                    "CALL (x) { DELETE x } IN TRANSACTIONS OF $size ROWS",
                    size=self.batch_size,
                ).consume()
            self.load.replaced_types.append(f"{start}-{kind}->{end}")
            modes[(start, kind, end)] = "create"
        return modes

    @staticmethod
    def _work(tx: ManagedTransaction, batch: Batch) -> None:
        tx.run(batch.query, rows=batch.rows).consume()

    def write_batches(self, driver: Driver, bookmarks: Any, sources: list[Iterator[Batch]]) -> None:
        """Run the batches of all sources on ``workers`` threads, a bounded number in flight.

        Each committed batch counts its rows in ``load.nodes`` (kind ``node``) or
        ``load.relationships`` (any other kind) under its name, and advances the progress.
        """
        in_flight: set[Future[None]] = set()

        def write(batch: Batch) -> None:
            with driver.session(database=self.database, bookmark_manager=bookmarks) as session:
                session.execute_write(self._work, batch)
            with self._lock:
                counts = self.load.nodes if batch.kind == "node" else self.load.relationships
                counts[batch.name] = counts.get(batch.name, 0) + len(batch.rows)
            self.progress(batch.progress_task, len(batch.rows))

        with ThreadPoolExecutor(self.workers) as pool:
            try:
                for source in sources:
                    for batch in source:
                        if len(in_flight) >= 2 * self.workers:
                            done, in_flight = wait(in_flight, return_when=FIRST_EXCEPTION)
                            for future in done:
                                future.result()
                        in_flight.add(pool.submit(write, batch))
                for future in in_flight:
                    future.result()
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise

    def _count_graph(
        self,
        driver: Driver,
        nodes: Sequence[NodeSpec],
        relationships: Sequence[RelationshipSpec],
    ) -> None:
        """What the graph holds after the load, per label and type (from the count store)."""
        for spec in nodes:
            self.load.graph_nodes[spec.label] = self.scalar(
                driver, f"MATCH (n:{quoted(spec.label)}) RETURN count(n)"
            )
        for kind in dict.fromkeys(spec.type for spec in relationships):
            self.load.graph_relationships[kind] = self.scalar(
                driver, f"MATCH ()-[r:{quoted(kind)}]->() RETURN count(r)"
            )

    def scalar(self, driver: Driver, query: str) -> int:
        """The single number a query returns."""
        records, _, _ = driver.execute_query(query, database_=self.database, bookmark_manager_=None)
        return int(records[0][0])

    def _clear(self, driver: Driver) -> tuple[int, int]:
        """Empty the database; returns the relationships and nodes it held."""
        counts = (
            self.scalar(driver, "MATCH ()-[r]->() RETURN count(r)"),
            self.scalar(driver, "MATCH (n) RETURN count(n)"),
        )
        clear_database(driver, self.database, self.batch_size)
        return counts

    def _node_batches(self, spec: NodeSpec, mode: str) -> Iterator[Batch]:
        frame = node_rows(spec, scan(spec.path))
        query = node_query(spec, mode)
        self.load.nodes.setdefault(spec.label, 0)
        for offset in range(0, frame.height, self.batch_size):
            yield Batch("node", spec.label, query, frame.slice(offset, self.batch_size).rows())

    def relationship_batches(
        self, spec: RelationshipSpec, mode: str, task: str = ""
    ) -> Iterator[Batch]:
        """The batches that create (or merge) a mapping's relationships between their keys."""
        start_keys, end_keys = spec.start.key_fields(), spec.end.key_fields()
        fields = spec.fields
        n_start, n_end = len(start_keys), len(end_keys)
        # The files hold node ids; the server matches nodes on their keys, read from the node
        # files (every end is a node of the run: the joins wrote no other).
        frame = (
            scan(spec.path)
            .select(
                pl.col(spec.headers[0]).cast(pl.Int64).alias("s|id"),
                pl.col(spec.headers[1]).cast(pl.Int64).alias("e|id"),
                *[f.parse(pl.col(f.column)).alias(f.name) for f in fields],
            )
            .join(keys_by_id(spec.start, "s"), on="s|id", how="inner", maintain_order="left")
            .join(keys_by_id(spec.end, "e"), on="e|id", how="inner", maintain_order="left")
            .select(
                *[f"s{i}" for i in range(n_start)],
                *[f"e{i}" for i in range(n_end)],
                *[f.name for f in fields],
            )
            .collect()
        )

        query = relationship_query(spec, mode)
        self.load.relationships.setdefault(spec.name, 0)
        for offset in range(0, frame.height, self.batch_size):
            rows = frame.slice(offset, self.batch_size).rows()
            yield Batch("relationship", spec.name, query, rows, task)
