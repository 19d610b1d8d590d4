"""The common recipe: the pure-Python driver, 1,000-row ``UNWIND ... MERGE`` batches.

Run as its own process (``python -m benchmarks.python_unwind MANIFEST KEYS_JSON URI USER
DATABASE CAP_SECONDS``, password in ``NEO4J_PASSWORD``) so that the driver's Rust extension can be kept
out: this is the recipe as found in tutorials, with the csv module and dicts per row. It
prints one JSON line: elements written, seconds, finished.
"""

from __future__ import annotations

import sys

sys.modules["neo4j._rust"] = None  # type: ignore[assignment]  # the pure-Python driver

import csv  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from datetime import date, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from neo4j import GraphDatabase, ManagedTransaction  # noqa: E402

BATCH = 1000
DELIMITER = "\x1f"
csv.field_size_limit(1 << 30)


def convert(kind: str, text: str) -> Any:
    """Per-value Python conversion, as the recipe does it."""
    if kind.endswith("[]"):
        return [convert(kind[:-2], part) for part in text.split(DELIMITER)] if text else None
    if kind == "long":
        return int(text)
    if kind == "double":
        return float(text)
    if kind == "boolean":
        return text == "true"
    if kind == "date":
        return date.fromisoformat(text)
    if kind in {"datetime", "localdatetime"}:
        return datetime.fromisoformat(text)
    return text


def rows(path: Path, kinds: list[str]) -> Any:
    """The file's rows as dicts of converted values; empty fields left out."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        names = [
            h.split("(")[0] if h.startswith(":") else h.rpartition(":")[0] for h in next(reader)
        ]
        for record in reader:
            yield {
                name: convert(kind, value)
                for name, kind, value in zip(names, kinds, record, strict=True)
                if value != ""
            }


def main() -> None:
    manifest_path, keys_json, uri, user, database, cap = sys.argv[1:7]
    manifest = json.loads(Path(manifest_path).read_text())
    keys: dict[str, str] = json.loads(keys_json)  # label -> key property (single-column keys)
    folder = Path(manifest_path).parent
    started, written, finished = time.perf_counter(), 0, True
    key_kind = {
        n["label"]: next(
            h for h in n["headers"] if h.startswith(keys[n["label"]] + ":")
        ).rpartition(":")[2]
        for n in manifest["nodes"]
    }
    jobs: list[tuple[str, Path, list[str]]] = []
    for node in manifest["nodes"]:
        label, key = node["label"], keys[node["label"]]
        kinds = ["string"] + [h.rpartition(":")[2] for h in node["headers"][1:]]
        jobs.append(
            (
                f"UNWIND $rows AS row MERGE (n:`{label}` {{`{key}`: row.`{key}`}}) SET n += row",
                folder / node["file"],
                kinds,
            )
        )
    for rel in manifest["relationships"]:
        start, end = rel["from_label"], rel["to_label"]
        kinds = [key_kind[start], key_kind[end]] + [
            h.rpartition(":")[2] for h in rel["headers"][2:]
        ]
        query = (
            f"UNWIND $rows AS row MATCH (a:`{start}` {{`{keys[start]}`: row.s}}) "
            f"MATCH (b:`{end}` {{`{keys[end]}`: row.e}}) "
            f"MERGE (a)-[x:`{rel['type']}`]->(b) SET x += row.props"
        )
        jobs.append((query, folder / rel["file"], kinds))

    def write(tx: ManagedTransaction, query: str, batch: list[dict[str, Any]]) -> None:
        tx.run(query, rows=batch).consume()

    driver = GraphDatabase.driver(uri, auth=(user, os.environ["NEO4J_PASSWORD"]))
    with driver.session(database=database) as session:
        for query, path, kinds in jobs:
            is_relationship = "MATCH (a" in query
            batch: list[dict[str, Any]] = []
            for row in rows(path, kinds):
                if is_relationship:
                    values = list(row.values())
                    row = {"s": values[0], "e": values[1], "props": dict(list(row.items())[2:])}
                else:
                    row.pop(":ID", None)
                batch.append(row)
                if len(batch) == BATCH:
                    session.execute_write(write, query, batch)
                    written += len(batch)
                    batch = []
                    if time.perf_counter() - started > float(cap):
                        finished = False
                        break
            if batch and finished:
                session.execute_write(write, query, batch)
                written += len(batch)
            if not finished:
                break
    driver.close()
    seconds = time.perf_counter() - started
    print(json.dumps({"written": written, "seconds": seconds, "finished": finished}))


if __name__ == "__main__":
    main()
