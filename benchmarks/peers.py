"""The methods bulk360 is measured against, each written the way its users write it.

* ``psql_copy``: the readers' own SELECTs, copied by ``psql \\copy`` (to files, or to /dev/null),
  as many streams in parallel as bulk360 uses;
* ``connectorx_read``: the same SELECTs read into Arrow by ConnectorX;
* ``load_csv``: the server loading bulk360's CSV files itself with
  ``LOAD CSV ... CALL { } IN TRANSACTIONS OF 10000 ROWS``;
* ``seed_load``: the first prototype's approach: one ``CREATE`` per row, executed one by one,
  then one ``MATCH ... WHERE <join condition> CREATE`` per relationship mapping.

The pure-Python ``UNWIND ... MERGE`` recipe lives in :mod:`benchmarks.python_unwind`, because it
runs in its own process without the driver's Rust extension.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import connectorx
import psycopg
from neo4j import Driver
from psycopg import sql

from bulk360.graph import quoted
from bulk360.load.bolt import clear_database, create_key_constraint
from bulk360.plan import Plan, TablePlan
from bulk360.settings import Settings
from bulk360.types import ARRAY_DELIMITER, SESSION_SETTINGS

__all__ = [
    "clear_graph",
    "connectorx_read",
    "create_constraints",
    "load_csv",
    "psql_copy",
    "seed_load",
]

_TEMPORAL = {"date", "localdatetime", "datetime", "localtime", "time", "duration"}
_CONVERT = {"long": "toInteger", "double": "toFloat", "boolean": "toBoolean"}


def _source_env(settings: Settings, source: str, plan: Plan) -> dict[str, str]:
    info = plan.source(source).conninfo(settings)
    return {
        "PGHOST": info["host"],
        "PGPORT": str(info["port"]),
        "PGDATABASE": info["dbname"],
        "PGUSER": info["user"],
        "PGPASSWORD": info["password"] or "",
        # The readers' session settings, so that psql writes exactly bulk360's text.
        "PGOPTIONS": " ".join(f"-c {k}={v}" for k, v in SESSION_SETTINGS.items()),
    }


def psql_copy(
    settings: Settings, plan: Plan, out_dir: Path | None, workers: int, env: Mapping[str, str]
) -> int:
    """``\\copy (SELECT ...) TO file`` (or /dev/null) for every table, ``workers`` at a time."""

    def copy(table: TablePlan) -> None:
        target = str(out_dir / f"{table.name}.csv") if out_dir else "/dev/null"
        select = table.select_sql().as_string(None)
        command = f"\\copy ({select}) TO '{target}' WITH (FORMAT csv)"
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command],
            env={**env, **_source_env(settings, table.source, plan)},
            check=True,
            capture_output=True,
        )

    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    tables = sorted(plan.tables, key=lambda t: -t.size_bytes)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(copy, tables))
    return len(tables)


# Types ConnectorX cannot read natively (it panics); it gets their text, as COPY does.
_CONNECTORX_AS_TEXT = {"interval", "inet", "cidr", "macaddr", "money", "xml"}


def _connectorx_table(table: TablePlan) -> TablePlan:
    columns = tuple(
        replace(
            c,
            select=sql.SQL("{}::text AS {}").format(sql.Identifier(c.name), sql.Identifier(c.name)),
        )
        if c.pg_type in _CONNECTORX_AS_TEXT or c.pg_type.startswith("_")
        else c
        for c in table.columns
    )
    return replace(table, columns=columns)


def connectorx_read(settings: Settings, plan: Plan, workers: int) -> int:
    """Every table's SELECT read into an Arrow table by ConnectorX; returns the rows read."""

    def read(table: TablePlan) -> int:
        table = _connectorx_table(table)
        info = plan.source(table.source).conninfo(settings)
        password = quote(info["password"] or "", safe="")
        uri = (
            f"postgresql://{info['user']}:{password}@{info['host']}:{info['port']}/{info['dbname']}"
        )
        arrow = connectorx.read_sql(uri, table.select_sql().as_string(None), return_type="arrow")
        return int(arrow.num_rows)

    tables = sorted(plan.tables, key=lambda t: -t.size_bytes)
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(read, tables))


def _value(header: str, expression: str) -> str:
    """Cypher turning the text of a CSV field into the header's type."""
    kind = header.rpartition(":")[2]
    inner = kind.removesuffix("[]")
    convert = _CONVERT.get(inner) or (inner if inner in _TEMPORAL else "")
    if kind.endswith("[]"):
        element = f"{convert}(v)" if convert else "v"
        return f"[v IN split({expression}, '{ARRAY_DELIMITER}') | {element}]"
    return f"{convert}({expression})" if convert else expression


def clear_graph(driver: Driver, database: str) -> None:
    """Empty the graph the way ``bulk360 run --mode bolt --clear`` does, in larger batches."""
    clear_database(driver, database, 50_000)


def create_constraints(driver: Driver, database: str, plan: Plan) -> None:
    """The key constraints bolt mode creates, so that every method matches nodes alike."""
    for table in plan.tables:
        if table.label:
            create_key_constraint(driver, database, table.label, table.key_columns)


def load_csv(
    driver: Driver, database: str, manifest: Mapping[str, Any], run_folder: str, plan: Plan
) -> int:
    """The server reads bulk360's files itself; returns the elements written."""
    keys = {t.label: t.key_columns for t in plan.tables if t.label}
    headers = {n["label"]: n["headers"] for n in manifest["nodes"]}
    written = 0

    def load(file: str, body: str) -> int:
        query = (
            f"LOAD CSV WITH HEADERS FROM 'file:///{run_folder}/{file}' AS row "
            f"CALL (row) {{ {body} }} IN TRANSACTIONS OF 10000 ROWS"
        )
        with driver.session(database=database) as session:
            summary = session.run(query).consume()
        return summary.counters.nodes_created + summary.counters.relationships_created

    def key_match(alias: str, label: str, column: str) -> str:
        by_name = {h.rpartition(":")[0]: h for h in headers[label]}
        parts = keys[label]
        field = f"row.{quoted(column)}"
        values = [
            f"{quoted(k)}: "
            + _value(
                by_name[k],
                field if len(parts) == 1 else f"split({field}, '{ARRAY_DELIMITER}')[{i}]",
            )
            for i, k in enumerate(parts)
        ]
        return f"MATCH ({alias}:{quoted(label)} {{{', '.join(values)}}})"

    for node in manifest["nodes"]:
        sets = ", ".join(
            f"n.{quoted(h.rpartition(':')[0])} = {_value(h, f'row.{quoted(h)}')}"
            for h in node["headers"][1:]
        )
        written += load(node["file"], f"CREATE (n:{quoted(node['label'])}) SET {sets}")
    for rel in manifest["relationships"]:
        start, end = rel["headers"][0], rel["headers"][1]
        sets = ", ".join(
            f"x.{quoted(h.rpartition(':')[0])} = {_value(h, f'row.{quoted(h)}')}"
            for h in rel["headers"][2:]
        )
        body = (
            f"{key_match('a', rel['from_label'], start)} {key_match('b', rel['to_label'], end)} "
            f"CREATE (a)-[x:{quoted(rel['type'])}]->(b)" + (f" SET {sets}" if sets else "")
        )
        written += load(rel["file"], body)
    return written


def _driver_value(value: Any) -> Any:
    """What the seed did to a psycopg value so the driver accepts it."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_driver_value(v) for v in value if v is not None]
    if isinstance(value, (str, int, float, bool, timedelta)) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value
    return str(value)


def seed_load(
    settings: Settings, plan: Plan, driver: Driver, database: str, cap_seconds: float
) -> tuple[int, float, bool]:
    """One CREATE per row, then MATCH ... WHERE ... CREATE per mapping, until ``cap_seconds``.

    Returns the elements written, the seconds taken and whether it finished.
    """
    started = time.perf_counter()
    written = 0
    with driver.session(database=database) as session:
        for table in plan.tables:
            if not table.label:
                continue
            columns = ", ".join(f'"{c.name}"' for c in table.columns)
            with psycopg.connect(**plan.source(table.source).conninfo(settings)) as conn:
                cursor = conn.execute(f'SELECT {columns} FROM "{table.schema}"."{table.table}"')  # type: ignore[arg-type]
                names = [c.name for c in table.columns]
                for row in cursor:
                    properties = {
                        n: _driver_value(v)
                        for n, v in zip(names, row, strict=True)
                        if v is not None
                    }
                    session.run(
                        f"CREATE (n:{quoted(table.label)}) SET n = $properties",
                        properties=properties,
                    ).consume()
                    written += 1
                    if time.perf_counter() - started > cap_seconds:
                        return written, time.perf_counter() - started, False
        for rel in plan.relationships:
            mapping = rel.mapping
            aliases = [
                f"({mapping.from_alias}:{quoted(mapping.from_label)})",
                f"({mapping.to_alias}:{quoted(mapping.to_label)})",
            ]
            if rel.link_table is not None and rel.link_table.label:
                aliases.insert(1, f"({mapping.link_alias}:{quoted(rel.link_table.label)})")
            elif rel.link_table is not None:
                continue  # the seed had no way to join through a table that is not a node
            summary = session.run(
                f"MATCH {', '.join(aliases)} WHERE {mapping.join_condition} "
                f"CREATE ({mapping.from_alias})-[:{quoted(mapping.relationship_type)}]->"
                f"({mapping.to_alias})"
            ).consume()
            written += summary.counters.relationships_created
            if time.perf_counter() - started > cap_seconds:
                return written, time.perf_counter() - started, False
    return written, time.perf_counter() - started, True
