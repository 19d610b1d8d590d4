"""Step 5: the engines' results become the manifest, and the work folder becomes a published
import package (renamed whole, so that a folder that looks complete always is)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from bulk360.package.manifest import (
    Control,
    Manifest,
    NodeEntry,
    RelationshipEntry,
    TableEntry,
)
from bulk360.package.paths import RunPaths, file_sha256
from bulk360.package.results import ExtractResult, Joined

__all__ = ["manifest_of", "publish"]


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
    )


def publish(paths: RunPaths, manifest: Manifest, keep: int, protect: Iterable[Path]) -> str:
    """Write the manifest, rename the work folder into place, point ``current`` at it and prune
    older folders of the same control database; returns the manifest's SHA-256."""
    manifest.write(paths.manifest)
    digest = file_sha256(paths.manifest)
    paths.publish(manifest.control.instance, keep=keep, protect=protect)
    return digest
