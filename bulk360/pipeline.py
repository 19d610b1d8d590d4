"""The one place that decides the order of the stages of a run.

STEP 1  start the run row in etl_run_logs
STEP 2  validate the control rows against the live catalogs (and the target, in admin mode)
STEP 3  extract: parallel COPY readers, one snapshot per source
STEP 4  transform: node id checks and relationship joins (Polars)
STEP 5  write the manifest and publish the import folder
STEP 6  load: neo4j-admin database import full (admin mode), or UNWIND batches (bolt mode)
STEP 7  record per-table results and finish the run row
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bulk360.catalog import CatalogTable, read_catalog
from bulk360.control import ControlConfig, RunLog, load_config
from bulk360.errors import Bulk360Error, IntegrityError, ValidationFailed
from bulk360.extract import Extractor, ExtractResult
from bulk360.load.admin import AdminImport, AdminLoader
from bulk360.load.bolt import BoltLoad, BoltLoader, NodeSpec, RelationshipSpec
from bulk360.paths import RunPaths
from bulk360.plan import Plan, RelationshipPlan, TablePlan, build_plan
from bulk360.settings import Settings
from bulk360.transform import (
    NodeCheck,
    RelationshipResult,
    build_relationship,
    check_nodes,
    needed_columns,
)

__all__ = ["MODES", "Reporter", "RunOptions", "RunSummary", "prepare_plan", "run"]

MODES = ("admin", "bolt", "csv")


class Reporter(Protocol):
    """What a run tells its caller while it works (the CLI draws it with rich)."""

    def step(self, number: int, total: int, title: str) -> None:
        """A step begins."""

    def bytes_progress(self, tables: list[TablePlan]) -> Any:
        """A context manager yielding ``advance(table, nbytes)`` for the readers."""

    def rows_progress(self, totals: dict[str, int]) -> Any:
        """A context manager yielding ``advance(name, rows)`` for the Bolt writers."""


class SilentReporter:
    """A reporter that says nothing (library use and tests)."""

    def step(self, number: int, total: int, title: str) -> None:
        return None

    @contextmanager
    def bytes_progress(self, tables: list[TablePlan]) -> Iterator[Callable[[TablePlan, int], None]]:
        yield lambda table, nbytes: None

    @contextmanager
    def rows_progress(self, totals: dict[str, int]) -> Iterator[Callable[[str, int], None]]:
        yield lambda name, rows: None


@dataclass(frozen=True)
class RunOptions:
    """What the caller chose for one run."""

    mode: str = "admin"
    """``admin`` (CSV files, then neo4j-admin), ``bolt`` (the files written over Bolt into a
    running server) or ``csv`` (stop after the files)."""
    workers: int = 4
    """Parallel COPY readers (and join threads)."""
    overwrite: bool = False
    """Replace an existing Neo4j database (admin mode)."""
    tolerance: int = 0
    """Bad entries neo4j-admin may report beyond the rows bulk360 already rejected."""
    keep_runs: int = 2
    """Complete run folders kept in the import folder."""
    batch_size: int = 5_000
    """Rows per UNWIND transaction (bolt mode)."""
    clear: bool = False
    """Delete every node and relationship of the target database first (bolt mode)."""
    retry_seconds: float = 30.0
    """How long the driver retries a failing transaction before the run fails (bolt mode)."""


@dataclass
class RunSummary:
    """The outcome of a run, as printed at its end."""

    run_id: int
    mode: str
    status: str = "running"
    import_dir: Path | None = None
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_rejected: int = 0
    rows_orphaned: int = 0
    bytes_written: int = 0
    step_seconds: dict[str, float] = field(default_factory=dict)
    admin: AdminImport | None = None
    bolt: BoltLoad | None = None

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (paths as text)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))  # type: ignore[no-any-return]


def read_catalogs(
    config: ControlConfig, settings: Settings
) -> tuple[dict[str, dict[str, CatalogTable]], list[str]]:
    """The catalog of every active source; unreachable sources become problems."""
    catalogs: dict[str, dict[str, CatalogTable]] = {}
    problems: list[str] = []
    for source in config.sources:
        try:
            with source.connect(settings) as conn:
                catalogs[source.name] = read_catalog(conn, source.schema)
        except Bulk360Error as exc:  # an unreachable source, or its password variable unset
            problems.append(str(exc))
    return catalogs, problems


def prepare_plan(settings: Settings) -> Plan:
    """Read the control rows and check them against the live catalogs."""
    config = load_config(settings)
    catalogs, problems = read_catalogs(config, settings)
    return build_plan(config, catalogs, problems)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _has_text(headers: list[str]) -> bool:
    """Whether a file can hold quoted newlines (any string property)."""
    return any(h.endswith((":string", ":string[]")) for h in headers)


class _Run:
    """State of one run while its steps execute."""

    def __init__(self, settings: Settings, options: RunOptions, reporter: Reporter) -> None:
        from bulk360 import __version__

        self.settings = settings
        self.options = options
        self.reporter = reporter
        self.total_steps = 6 if options.mode == "csv" else 7
        self.log = RunLog(
            settings,
            options.mode,
            {
                "workers": options.workers,
                "overwrite": options.overwrite,
                "tolerance": options.tolerance,
                **(
                    {"batch_size": options.batch_size, "clear": options.clear}
                    if options.mode == "bolt"
                    else {}
                ),
            },
            __version__,
        )
        # STEP 1 is the run row itself, written just above.
        self.step_number = 1
        reporter.step(1, self.total_steps, f"start run {self.log.run_id} ({options.mode} mode)")
        self.paths = RunPaths(settings.import_dir, self.log.run_id)
        self.summary = RunSummary(run_id=self.log.run_id, mode=options.mode)
        self.loader = AdminLoader(settings)
        self.bolt = BoltLoader(
            settings.neo4j_uri,
            (settings.neo4j_username, settings.neo4j_password),
            settings.neo4j_database,
            batch_size=options.batch_size,
            workers=options.workers,
            retry_seconds=options.retry_seconds,
        )
        self.file_of: dict[str, Path] = {}
        self.digests: dict[Path, str] = {}

    @contextmanager
    def step(self, key: str, title: str) -> Iterator[None]:
        self.step_number += 1
        self.reporter.step(self.step_number, self.total_steps, title)
        started = time.perf_counter()
        yield
        self.summary.step_seconds[key] = round(time.perf_counter() - started, 3)

    def path_of(self, table: TablePlan) -> Path:
        return self.file_of[table.name]

    def validate(self) -> Plan:
        plan = prepare_plan(self.settings)
        if self.options.mode == "admin":
            problems = self.loader.preflight(self.options.overwrite)
            if problems:
                raise ValidationFailed(problems)
        if self.options.mode == "bolt":
            self.bolt.preflight()
        return plan

    def extract(self, plan: Plan) -> list[ExtractResult]:
        self.paths.create()
        for table in plan.tables:
            file = (
                self.paths.node_file(table.label)
                if table.label
                else self.paths.table_file(table.name)
            )
            self.file_of[table.name] = file
        with self.reporter.bytes_progress(list(plan.tables)) as advance:
            extractor = Extractor(
                self.settings,
                plan,
                self.path_of,
                self.options.workers,
                advance,
                needed_columns(plan),
            )
            return extractor.run()

    def transform(
        self, plan: Plan, extracted: list[ExtractResult]
    ) -> tuple[dict[str, NodeCheck], list[RelationshipResult]]:
        """Node checks and joins on the frames the readers parsed; each relationship file is hashed."""
        frames = {r.table.name: r.keys for r in extracted if r.keys is not None}
        self.digests = {r.path: r.sha256 for r in extracted}
        with ThreadPoolExecutor(max(1, self.options.workers)) as pool:
            node_jobs = {
                r.table.name: pool.submit(check_nodes, r.table, frames.get(r.table.name))
                for r in extracted
                if r.table.label
            }

            def relationship(rel: RelationshipPlan) -> tuple[RelationshipResult, str]:
                result = build_relationship(rel, frames, self.paths.relationship_file(rel.name))
                return result, _sha256(result.path)

            rel_jobs = [pool.submit(relationship, rel) for rel in plan.relationships]
            checks = {name: job.result() for name, job in node_jobs.items()}
            relationships = []
            for job in rel_jobs:
                result, digest = job.result()
                relationships.append(result)
                self.digests[result.path] = digest
        return checks, relationships

    def manifest(
        self,
        extracted: list[ExtractResult],
        checks: dict[str, NodeCheck],
        relationships: list[RelationshipResult],
    ) -> dict[str, Any]:
        node_files = [r for r in extracted if r.table.label]
        digests = self.digests
        work = self.paths.work_dir
        nodes: list[dict[str, Any]] = []
        for result in node_files:
            table = result.table
            duplicates = checks[table.name].duplicates
            nodes.append(
                {
                    "label": table.label,
                    "source": table.source,
                    "table": f"{table.schema}.{table.table}",
                    "file": str(result.path.relative_to(work)),
                    "headers": table.headers(),
                    # How many, not which: an excluded column is named nowhere outside the control rows.
                    "excluded_columns": len(table.excluded),
                    "rows_read": result.rows + result.rows_null_key,
                    "rejected_null_key": result.rows_null_key,
                    "rejected_duplicate_key": duplicates,
                    "nodes": result.rows - duplicates,
                    "bytes": result.path.stat().st_size,
                    "sha256": digests[result.path],
                    "multiline": _has_text(table.headers()),
                }
            )
        rels: list[dict[str, Any]] = []
        for rel in relationships:
            headers = [
                f":START_ID({rel.plan.from_table.label})",
                f":END_ID({rel.plan.to_table.label})",
            ]
            headers += [h for _, h in rel.plan.properties]
            rels.append(
                {
                    "type": rel.plan.relationship_type,
                    "mapping_id": rel.plan.mapping.mapping_id,
                    "from_label": rel.plan.from_table.label,
                    "to_label": rel.plan.to_table.label,
                    "file": str(rel.path.relative_to(work)),
                    "headers": headers,
                    "relationships": rel.rows,
                    "orphans": rel.orphans,
                    "bytes": rel.path.stat().st_size,
                    "sha256": digests[rel.path],
                    "multiline": _has_text(headers),
                }
            )
        return {
            "run_id": self.log.run_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": self.options.mode,
            "neo4j_database": self.settings.neo4j_database,
            "nodes": nodes,
            "relationships": rels,
            "totals": {
                "nodes": sum(n["nodes"] for n in nodes),
                "relationships": sum(r["relationships"] for r in rels),
                "rows_rejected": sum(
                    n["rejected_null_key"] + n["rejected_duplicate_key"] for n in nodes
                ),
            },
        }

    def record(
        self,
        extracted: list[ExtractResult],
        checks: dict[str, NodeCheck],
        relationships: list[RelationshipResult],
        loaded: BoltLoad | None = None,
    ) -> None:
        """One etl_table_logs row per table and mapping; ``loaded`` holds what Bolt wrote."""
        summary = self.summary
        for result in extracted:
            table = result.table
            duplicates = checks[table.name].duplicates if table.label else 0
            rejected = result.rows_null_key + duplicates
            written = result.rows - duplicates if table.label else 0
            status = "succeeded"
            if loaded is not None and table.label:
                status = "succeeded" if loaded.nodes.get(table.label) == written else "failed"
                written = loaded.nodes.get(table.label, 0)
            self.log.table(
                object_kind="node" if table.label else "table",
                source_name=table.source,
                table_name=f"{table.schema}.{table.table}",
                label=table.label,
                status=status,
                rows_processed=result.rows + result.rows_null_key,
                rows_written=written,
                rows_rejected=rejected,
                bytes=result.bytes,
                seconds=round(result.seconds, 3),
                details={
                    "rejected_null_key": result.rows_null_key,
                    "rejected_duplicate_key": duplicates,
                },
            )
            summary.rows_read += result.rows + result.rows_null_key
            summary.rows_rejected += rejected
            if table.label:
                summary.nodes[table.label] = written
            summary.bytes_written += result.bytes if table.label else 0
        for rel in relationships:
            written, status = rel.rows, "succeeded"
            if loaded is not None:
                written = loaded.relationships.get(rel.plan.name, 0)
                status = "succeeded" if written == rel.rows else "failed"
            self.log.table(
                object_kind="relationship",
                label=f"{rel.plan.from_table.label}->{rel.plan.to_table.label}",
                relationship_type=rel.plan.relationship_type,
                mapping_id=rel.plan.mapping.mapping_id,
                status=status,
                rows_processed=rel.rows + rel.orphaned,
                rows_written=written,
                rows_orphaned=rel.orphaned,
                bytes=rel.path.stat().st_size if rel.path.exists() else 0,
                seconds=round(rel.seconds, 3),
                details={"orphans": rel.orphans},
            )
            kind = rel.plan.relationship_type
            summary.relationships[kind] = summary.relationships.get(kind, 0) + written
            summary.rows_orphaned += rel.orphaned


def run(settings: Settings, options: RunOptions, reporter: Reporter | None = None) -> RunSummary:
    """Run the pipeline once; raises a :class:`Bulk360Error` after logging the run as failed."""
    reporter = reporter or SilentReporter()
    state = _Run(settings, options, reporter)
    published = False
    outputs: tuple[list[ExtractResult], dict[str, NodeCheck], list[RelationshipResult]] | None
    outputs = None
    try:
        with state.step("validate", "validate the control rows against the live catalogs"):
            plan = state.validate()
        with state.step(
            "extract", f"extract {len(plan.tables)} tables with {options.workers} COPY readers"
        ):
            extracted = state.extract(plan)
        with state.step(
            "transform", f"check node ids and join {len(plan.relationships)} relationship mappings"
        ):
            checks, relationships = state.transform(plan, extracted)
        with state.step("write", "write the manifest and publish the import folder"):
            manifest = state.manifest(extracted, checks, relationships)
            state.paths.manifest.write_text(json.dumps(manifest, indent=2))
            manifest_sha = _sha256(state.paths.manifest)
            state.paths.publish(keep=options.keep_runs)
            published = True
            state.summary.import_dir = state.paths.final_dir
        if options.mode == "admin":
            with state.step("load", "neo4j-admin database import full"):
                state.summary.admin = _admin_import(state, manifest)
        elif options.mode == "bolt":
            outputs = (extracted, checks, relationships)
            with state.step("load", f"write over Bolt in batches of {options.batch_size:,} rows"):
                state.summary.bolt = _bolt_load(state, plan, manifest)
        with state.step("record", "record the results"):
            state.record(extracted, checks, relationships, state.summary.bolt)
            state.log.artifact(
                "manifest",
                str(state.paths.final_dir / "manifest.json"),
                manifest_sha,
                options.mode != "csv",
            )
            _finish(state, "succeeded")
    except Bulk360Error as exc:
        _fail(state, published, outputs, str(exc))
        raise
    except BaseException as exc:
        _fail(state, published, outputs, f"unexpected {type(exc).__name__}")
        raise
    return state.summary


def _finish(state: _Run, status: str, error: str | None = None) -> None:
    summary = state.summary
    state.log.finish(
        status,
        error=error,
        nodes_written=sum(summary.nodes.values()),
        relationships_written=sum(summary.relationships.values()),
        rows_read=summary.rows_read,
        rows_rejected=summary.rows_rejected,
        rows_orphaned=summary.rows_orphaned,
        bytes_written=summary.bytes_written,
        import_dir=str(state.paths.final_dir),
    )
    summary.status = status


def _fail(
    state: _Run,
    published: bool,
    outputs: tuple[list[ExtractResult], dict[str, NodeCheck], list[RelationshipResult]] | None,
    error: str,
) -> None:
    """Log the run as failed; a failed Bolt load also records what it wrote so far."""
    if not published:
        state.paths.discard()
    if outputs is not None:
        state.summary.bolt = state.bolt.load
        state.record(*outputs, state.bolt.load)
        _finish(state, "failed", error)
        return
    state.log.finish("failed", error=error)
    state.summary.status = "failed"


def _bolt_load(state: _Run, plan: Plan, manifest: dict[str, Any]) -> BoltLoad:
    final = state.paths.final_dir
    tables = {t.label: t for t in plan.tables if t.label}
    nodes = {
        n["label"]: NodeSpec(
            n["label"], final / n["file"], n["headers"], tables[n["label"]].key_columns
        )
        for n in manifest["nodes"]
    }
    relationships = [
        RelationshipSpec(
            name=f"{r['type']}.{r['mapping_id']}",
            type=r["type"],
            start=nodes[r["from_label"]],
            end=nodes[r["to_label"]],
            path=final / r["file"],
            headers=r["headers"],
        )
        for r in manifest["relationships"]
    ]
    totals = {n["label"]: n["nodes"] for n in manifest["nodes"]}
    totals |= {
        spec.name: r["relationships"]
        for spec, r in zip(relationships, manifest["relationships"], strict=True)
    }
    with state.reporter.rows_progress(totals) as advance:
        return state.bolt.run(list(nodes.values()), relationships, state.options.clear, advance)


def _admin_import(state: _Run, manifest: dict[str, Any]) -> AdminImport:
    final = state.paths.final_dir
    multiline = [
        final / e["file"]
        for e in [*manifest["nodes"], *manifest["relationships"]]
        if e["multiline"]
    ]
    rejected_duplicates = sum(n["rejected_duplicate_key"] for n in manifest["nodes"])
    result = state.loader.run(
        nodes=[(n["label"], final / n["file"]) for n in manifest["nodes"]],
        relationships=[(r["type"], final / r["file"]) for r in manifest["relationships"]],
        multiline=multiline,
        report_file=state.paths.admin_report,
        log_file=state.paths.admin_log,
        tolerance=state.options.tolerance + rejected_duplicates,
        overwrite=state.options.overwrite,
    )
    expected_nodes = manifest["totals"]["nodes"]
    expected_rels = manifest["totals"]["relationships"]
    if (result.nodes, result.relationships) != (expected_nodes, expected_rels):
        raise IntegrityError(
            f"neo4j-admin imported {result.nodes} nodes and {result.relationships} relationships, "
            f"the manifest has {expected_nodes} and {expected_rels}; see {result.report_file}"
        )
    return result
