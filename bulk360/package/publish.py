"""Step 5: the engines' results become the manifest, and the work folder becomes a published
import package (renamed whole, so that a folder that looks complete always is)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bulk360.package.manifest import (
    Control,
    Manifest,
    NodeEntry,
    RelationshipEntry,
    TableEntry,
)
from bulk360.package.parquet import to_parquet
from bulk360.package.paths import RunPaths, file_sha256
from bulk360.package.results import ExtractResult, Joined, RelationshipResult

__all__ = ["as_parquet", "manifest_of", "publish"]


def as_parquet(
    extracted: list[ExtractResult], joined: Joined, workers: int
) -> tuple[list[ExtractResult], Joined]:
    """Every node and relationship file as Parquet (:mod:`bulk360.package.parquet`), ``workers``
    at a time, with the empty strings neo4j-admin will not store counted per column."""

    def node(result: ExtractResult) -> ExtractResult:
        if not result.table.label:
            return result  # read only for relationships: removed before publishing
        done = to_parquet(result.path, result.table.headers())
        column = {c.header: c.name for c in result.table.columns}
        values = {name: dict(kinds) for name, kinds in result.values.items()}
        for header, count in done.empty_strings.items():
            values.setdefault(column[header], {})["empty_strings"] = count
        return dataclasses.replace(result, path=done.path, sha256=done.sha256, values=values)

    def relationship(result: RelationshipResult) -> RelationshipResult:
        done = to_parquet(result.path, result.plan.file_headers())
        values = {
            header.rpartition(":")[0]: {"empty_strings": count}
            for header, count in done.empty_strings.items()
        }
        return dataclasses.replace(result, path=done.path, sha256=done.sha256, values=values)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        nodes = list(pool.map(node, extracted))
        relationships = list(pool.map(relationship, joined.relationships))
    return nodes, dataclasses.replace(joined, relationships=relationships)


def manifest_of(
    *,
    run_id: int,
    control: Control,
    mode: str,
    neo4j_database: str,
    engine: str,
    version: str,
    extracted: Iterable[ExtractResult],
    joined: Joined,
    work_dir: Path,
    package_format: str = "csv",
) -> Manifest:
    """What the work folder holds, each file's checksum, and every count the ledger needs."""
    nodes: list[NodeEntry] = []
    tables: list[TableEntry] = []
    for result in extracted:
        table = result.table
        read = result.rows + result.rows_null_key + result.rows_duplicate
        where = f"{table.schema}.{table.table}"
        seconds = round(result.seconds, 3)
        if not table.label:
            tables.append(
                TableEntry(table.source, where, read, result.bytes, seconds, result.values)
            )
            continue
        check = joined.checks[table.name]
        nodes.append(
            NodeEntry(
                label=table.label,
                source=table.source,
                table=where,
                rows_read=read,
                bytes=result.bytes,
                seconds=seconds,
                file=str(result.path.relative_to(work_dir)),
                headers=tuple(table.headers()),
                keys=tuple(table.key_columns),
                excluded_columns=len(table.excluded),
                rejected_null_key=result.rows_null_key,
                rejected_duplicate_key=result.rows_duplicate,
                nodes=result.rows,
                ids=(check.first_id, check.last_id),
                sha256=result.sha256,
                multiline=result.multiline,
                values=result.values,
                group_label=table.group_label,
            )
        )
    relationships = [
        RelationshipEntry(
            type=rel.plan.relationship_type,
            mapping_id=rel.plan.mapping.mapping_id,
            from_label=rel.plan.from_table.label or "",
            to_label=rel.plan.to_table.label or "",
            file=str(rel.path.relative_to(work_dir)),
            headers=tuple(rel.plan.file_headers()),
            relationships=rel.rows,
            orphans=rel.orphans,
            ledger=rel.ledger,
            bytes=rel.path.stat().st_size,
            seconds=round(rel.seconds, 3),
            sha256=rel.sha256,
            multiline=rel.multiline,
            values=rel.values,
        )
        for rel in joined.relationships
    ]
    return Manifest(
        run_id=run_id,
        control=control,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        mode=mode,
        neo4j_database=neo4j_database,
        nodes=tuple(nodes),
        tables=tuple(tables),
        relationships=tuple(relationships),
        bulk360_version=version,
        engine=engine,
        package_format=package_format,
    )


def publish(paths: RunPaths, manifest: Manifest, keep: int, protect: Iterable[Path]) -> str:
    """Write the manifest, rename the work folder into place, point ``current`` at it and prune
    older folders of the same control database; returns the manifest's SHA-256."""
    manifest.write(paths.manifest)
    digest = file_sha256(paths.manifest)
    paths.publish(manifest.control.instance, keep=keep, protect=protect)
    return digest
