"""The methods bulk360 is measured against, each written the way its users write it.

* ``psql_copy``: the readers' own SELECTs, copied by ``psql \\copy`` (to files, or to /dev/null),
  as many streams in parallel as bulk360 uses;
* ``string_id_copy``: the same graph's files with string ids (node keys as ``:ID(Label)``), made
  from bulk360's files outside any timing, for the methods that work the way people write them
  without bulk360: neo4j-admin with its default flags (``string_ids_import``), LOAD CSV and the
  Python recipe, which match nodes on their keys;
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
import polars as pl
import psycopg
from neo4j import Driver
from psycopg import sql

from bulk360.graph import quoted
from bulk360.load.cypher import clear_database, create_key_constraint
from bulk360.plan import Plan, TablePlan
from bulk360.plan.ids import IdRange
from bulk360.plan.types import ARRAY_DELIMITER, SESSION_SETTINGS
from bulk360.settings import Settings

__all__ = [
    "clear_graph",
    "connectorx_read",
    "create_constraints",
    "id_ranges",
    "load_csv",
    "psql_copy",
    "seed_load",
    "string_id_copy",
    "string_ids_import",
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


def id_ranges(manifest: Mapping[str, Any]) -> dict[str, IdRange]:
    """Each label's node ids in a run, so that a peer runs the readers' exact SELECTs."""
    return {
        n["label"]: IdRange(n["ids"][0] if n["nodes"] else 0, n["nodes"]) for n in manifest["nodes"]
    }


def psql_copy(
    settings: Settings,
    plan: Plan,
    out_dir: Path | None,
    workers: int,
    env: Mapping[str, str],
    ranges: Mapping[str, IdRange],
) -> int:
    """``\\copy (SELECT ...) TO file`` (or /dev/null) for every table, ``workers`` at a time."""

    def copy(table: TablePlan) -> None:
        target = str(out_dir / f"{table.name}.csv") if out_dir else "/dev/null"
        select = table.select_sql(ranges.get(table.name)).as_string(None)
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


def connectorx_read(
    settings: Settings, plan: Plan, workers: int, ranges: Mapping[str, IdRange]
) -> int:
    """Every table's SELECT read into an Arrow table by ConnectorX; returns the rows read."""

    def read(table: TablePlan) -> int:
        ids = ranges.get(table.name)
        table = _connectorx_table(table)
        info = plan.source(table.source).conninfo(settings)
        password = quote(info["password"] or "", safe="")
        uri = (
            f"postgresql://{info['user']}:{password}@{info['host']}:{info['port']}/{info['dbname']}"
        )
        select = table.select_sql(ids).as_string(None)
        arrow = connectorx.read_sql(uri, select, return_type="arrow")
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


def string_id_copy(folder: Path, manifest: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """The files of a run with string ids: each node's key text (parts joined by U+001F) as
    ``:ID(Label)``, each relationship end as its node's key. Returns the copy's manifest."""
    out.mkdir(parents=True, exist_ok=True)
    key_of: dict[str, pl.DataFrame] = {}
    nodes, relationships = [], []
    for node in manifest["nodes"]:
        label = node["label"]
        headers = node["headers"]
        by_name = {h.rpartition(":")[0]: h for h in headers[1:]}
        parts = [pl.col(by_name[k]) for k in node["keys"]]
        key = parts[0] if len(parts) == 1 else pl.concat_str(parts, separator=ARRAY_DELIMITER)
        frame = _read(folder / node["file"]).with_columns(key.alias(f":ID({label})"))
        key_of[label] = frame.select(pl.col(":ID").cast(pl.Int64), pl.col(f":ID({label})"))
        file = f"{label}.csv"
        frame.select(f":ID({label})", *headers[1:]).write_csv(out / file)
        nodes.append({**node, "file": file, "headers": [f":ID({label})", *headers[1:]]})
    for rel in manifest["relationships"]:
        start, end = f":START_ID({rel['from_label']})", f":END_ID({rel['to_label']})"
        starts = key_of[rel["from_label"]].rename(
            {":ID": ":START_ID", f":ID({rel['from_label']})": start}
        )
        ends = key_of[rel["to_label"]].rename({":ID": ":END_ID", f":ID({rel['to_label']})": end})
        frame = (
            _read(folder / rel["file"])
            .with_columns(pl.col(":START_ID", ":END_ID").cast(pl.Int64))
            .join(starts, on=":START_ID", how="left", maintain_order="left")
            .join(ends, on=":END_ID", how="left", maintain_order="left")
        )
        file = f"{rel['type']}.{rel['mapping_id']}.csv"
        headers = [start, end, *rel["headers"][2:]]
        frame.select(headers).write_csv(out / file)
        relationships.append({**rel, "file": file, "headers": headers})
    return {**manifest, "nodes": nodes, "relationships": relationships}


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False, quote_char='"', has_header=True)


def string_ids_import(settings: Settings, manifest: Mapping[str, Any], folder: Path) -> None:
    """``bin/neo4j-admin database import full`` of string-id files, its default id type, through
    its launcher: how neo4j-admin is run without bulk360 (the flags bulk360 used before)."""
    files = [*manifest["nodes"], *manifest["relationships"]]
    command = [
        str(settings.neo4j_admin),
        *("database", "import", "full", settings.neo4j_database),
        "--overwrite-destination=true",
        f"--report-file={folder / 'string-ids.report'}",
        "--skip-duplicate-nodes=true",
        "--skip-bad-relationships=true",
        f"--array-delimiter=U+{ord(ARRAY_DELIMITER):04X}",
        f"--multiline-fields={str(any(e['multiline'] for e in files)).lower()}",
        *[f"--nodes={n['label']}={folder / n['file']}" for n in manifest["nodes"]],
        *[f"--relationships={r['type']}={folder / r['file']}" for r in manifest["relationships"]],
    ]
    subprocess.run(command, check=True, capture_output=True)


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
