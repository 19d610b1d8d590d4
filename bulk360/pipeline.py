"""The one place that decides the order of the stages of a run.

STEP 1  start the run row in etl_run_logs (runs found dead are marked failed first)
STEP 2  validate the control rows against the live catalogs (and the target), schema-drift gate
STEP 3  extract: parallel COPY readers, one snapshot per source, values audited
STEP 4  transform: node id checks and relationship joins (Polars), each mapping's ledger
STEP 5  write the manifest and publish the import folder
STEP 6  load: neo4j-admin into a staging store (admin mode), or UNWIND batches (bolt mode)
STEP 7  swap the staging store in for the target database (admin mode)
STEP 8  record: a ledger row per label and mapping in etl_table_logs; finish the run row

The manifest is the only input of steps 6 to 8, so a failed run whose folder was published can
be resumed (``--resume``): its manifest and checksums are verified again instead of steps 2-5,
and only the load and the records are repeated. A run that failed before publishing is started
again from step 2. Every label and mapping must balance its ledger (read = written + rejected +
duplicates + orphaned - fan-out) or the run fails; values Neo4j cannot hold as they are are
counted and named (``--strict-values`` fails instead).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bulk360.catalog import CatalogTable, read_catalog
from bulk360.control import (
    ControlConfig,
    RunLog,
    failed_since,
    find_run,
    graph_run,
    load_config,
)
from bulk360.engines import Engine, Joined, SparkOptions, start_engine
from bulk360.engines.results import ExtractResult
from bulk360.errors import (
    Bulk360Error,
    ConfigError,
    IntegrityError,
    InternalError,
    Interrupted,
    SchemaDrift,
    TargetError,
    ValidationFailed,
    one_line,
)
from bulk360.graph import connect_graph
from bulk360.load.admin import AdminImport, AdminLoader, ImportRequest
from bulk360.load.bolt import BoltLoad, BoltLoader
from bulk360.load.sync import SyncLoad, SyncLoader, specs_of
from bulk360.paths import MANIFEST_FILE, RunPaths, file_sha256
from bulk360.plan import Plan, TablePlan, build_plan
from bulk360.settings import Settings
from bulk360.types import VALUE_CHANGES
from bulk360.verify import compare_counts

__all__ = [
    "MODES",
    "Reporter",
    "RunOptions",
    "RunSummary",
    "prepare_plan",
    "run",
    "value_changes",
]

MODES = ("admin", "bolt", "csv", "sync")
MANIFEST_FORMAT = 3


class Reporter(Protocol):
    """What a run tells its caller while it works (the CLI draws it with rich)."""

    def step(self, number: int, total: int, title: str) -> None:
        """A step begins."""

    def note(self, text: str) -> None:
        """Something the user should know about the step under way."""

    def bytes_progress(self, tables: list[TablePlan]) -> Any:
        """A context manager yielding ``advance(table, nbytes)`` for the readers."""

    def rows_progress(self, totals: dict[str, int | None]) -> Any:
        """A context manager yielding ``advance(task, rows)`` for the Bolt writers: one task
        per entry of ``totals`` (its rows, None when not known)."""


class SilentReporter:
    """A reporter that says nothing (library use and tests)."""

    def step(self, number: int, total: int, title: str) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    @contextmanager
    def bytes_progress(self, tables: list[TablePlan]) -> Iterator[Callable[[TablePlan, int], None]]:
        yield lambda table, nbytes: None

    @contextmanager
    def rows_progress(self, totals: dict[str, int | None]) -> Iterator[Callable[[str, int], None]]:
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
    """Complete run folders of this control database kept in the import folder."""
    batch_size: int = 5_000
    """Rows per UNWIND transaction (bolt mode)."""
    clear: bool = False
    """Delete every node and relationship of the target database first (bolt mode)."""
    retry_seconds: float = 30.0
    """How long the driver retries a failing transaction before the run fails (bolt mode)."""
    resume: bool = False
    """Resume a failed run: its own mode and options, its published folder if it has one."""
    resume_run: int | None = None
    """The run to resume (None: the newest failed run)."""
    accept_schema_changes: bool = False
    """Let a run through although a mapped table changed since the last succeeded run."""
    strict_values: bool = False
    """Fail, before anything is published, if any value cannot be stored as it is."""
    full: bool = False
    """Sync mode: clear the graph and write everything (as ``--mode bolt --clear``)."""
    engine: str = "local"
    """What reads, joins and writes the files: ``local`` or ``spark`` (see bulk360.engines)."""
    spark_master: str = "local[*]"
    """The Spark engine's master URL."""
    spark_conf: tuple[str, ...] = ()
    """The Spark engine's extra settings, ``key=value`` each."""

    def recorded(self, settings: Settings) -> dict[str, Any]:
        """The options as the run row keeps them (what a resumed run repeats)."""
        values: dict[str, Any] = {
            "workers": self.workers,
            "overwrite": self.overwrite,
            "tolerance": self.tolerance,
            "strict_values": self.strict_values,
            "neo4j_database": settings.neo4j_database,
            "engine": self.engine,
        }
        if self.engine == "spark":
            # The settings' names only: a value may hold a secret.
            values |= {
                "spark_master": self.spark_master,
                "spark_conf": [item.partition("=")[0] for item in self.spark_conf],
            }
        if self.mode == "bolt":
            values |= {"batch_size": self.batch_size, "clear": self.clear}
        if self.mode == "sync":
            values |= {"batch_size": self.batch_size, "full": self.full}
        return values


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
    sync: dict[str, dict[str, int]] | None = None
    """Sync mode: per label and mapping, what was inserted, updated and deleted."""
    diffed_against: int | None = None
    resumed_from: int | None = None
    values_changed: list[str] = field(default_factory=list)
    """One line per column whose values Neo4j could not hold as they are, and what happened."""
    schema_changes: list[str] = field(default_factory=list)
    """Schema changes let through by --accept-schema-changes."""
    ledger_balanced: bool | None = None
    notes: list[str] = field(default_factory=list)

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


def value_changes(manifest: dict[str, Any], mode: str) -> list[tuple[str, str]]:
    """(column, line) per column of the manifest and kind of value that changes in ``mode``."""
    lines = []
    for entry in [*manifest["nodes"], *manifest.get("tables", [])]:
        for column, counts in sorted(entry.get("values", {}).items()):
            for kind, count in sorted(counts.items()):
                if kind == "empty_arrays" and mode == "bolt":
                    continue  # Bolt writes them as empty arrays
                where = f"{entry['source']}.{entry['table']}.{column}"
                plural = "s" if count != 1 else ""
                lines.append((where, f"{count:,} value{plural} of {where} {VALUE_CHANGES[kind]}"))
    return lines


def _steps(mode: str, reuse: bool) -> list[str]:
    steps = ["start", *(["verify"] if reuse else ["validate", "extract", "transform", "write"])]
    steps += {"admin": ["load", "swap"], "bolt": ["load"], "sync": ["load"]}.get(mode, [])
    return [*steps, "record"]


def _resume_options(options: RunOptions, original: dict[str, Any]) -> RunOptions:
    """The failed run's own mode and options; workers, batch size and retries may be new."""
    recorded = original["options"] or {}
    return dataclasses.replace(
        options,
        mode=original["mode"],
        overwrite=bool(recorded.get("overwrite", options.overwrite)),
        tolerance=int(recorded.get("tolerance", options.tolerance)),
        clear=bool(recorded.get("clear", False)),
        strict_values=bool(recorded.get("strict_values", options.strict_values)),
        full=bool(recorded.get("full", False)),
    )


@dataclass(frozen=True)
class _Resumed:
    """The failed run a run resumes, and whether its published folder is reused."""

    row: dict[str, Any]
    paths: RunPaths | None


def _find_resumable(settings: Settings, options: RunOptions) -> _Resumed:
    row = find_run(settings, options.resume_run, "failed")
    run_id = row["run_id"]
    if row["status"] != "failed":
        raise ConfigError(f"run {run_id} is {row['status']}; only a failed run can be resumed")
    newer = graph_run(settings, after=run_id)
    if newer is not None:
        raise ConfigError(
            f"run {newer['run_id']} succeeded after run {run_id}; resuming run {run_id} would "
            "load older data over it: start a new run instead"
        )
    folder = Path(row["import_dir"]) if row["import_dir"] else None
    paths = RunPaths.of_folder(folder) if folder else None
    published = bool(row["published_at"]) and paths is not None and paths.final_dir.is_dir()
    if paths is not None and not published:
        paths.discard()  # a partial folder left by the failed run
    return _Resumed(row, paths if published else None)


class _Run:
    """State of one run while its steps execute."""

    def __init__(
        self,
        settings: Settings,
        options: RunOptions,
        reporter: Reporter,
        resumed: _Resumed | None,
    ) -> None:
        from bulk360 import __version__

        self.settings = settings
        self.options = options
        self.reporter = reporter
        self.resumed = resumed
        self.steps = _steps(options.mode, resumed is not None and resumed.paths is not None)
        resumed_from = resumed.row["run_id"] if resumed else None
        recorded = options.recorded(settings) | ({"resumed_from": resumed_from} if resumed else {})
        self.log = RunLog(settings, options.mode, recorded, __version__, resumed_from)
        self.step_number = 1
        self.step_key = "start"
        title = f"start run {self.log.run_id} ({options.mode} mode)"
        if resumed_from is not None:
            title += f", resuming run {resumed_from}"
        reporter.step(1, len(self.steps), title)
        for run_id in self.log.reconciled:
            reporter.note(f"run {run_id} had stopped without finishing: marked failed")
        if resumed is not None and resumed.paths is not None:
            self.paths = resumed.paths
            # The folder stays published under this run too, so a failed resume resumes.
            self.log.published(resumed.row["manifest_sha256"], resumed.row["published_at"])
        else:
            self.paths = RunPaths(settings.import_dir, self.log.run_id, self.log.token)
        self.log.folder(self.paths.final_dir)
        self.summary = RunSummary(
            run_id=self.log.run_id, mode=options.mode, resumed_from=resumed_from
        )
        self.loader = AdminLoader(settings)
        self.bolt = BoltLoader(
            settings.neo4j_uri,
            (settings.neo4j_username, settings.neo4j_password),
            settings.neo4j_database,
            batch_size=options.batch_size,
            workers=options.workers,
            retry_seconds=options.retry_seconds,
        )
        self._engine: Engine | None = None
        self.published = resumed is not None and resumed.paths is not None
        self.manifest: dict[str, Any] | None = None
        self.manifest_sha = ""
        self.baseline: tuple[dict[str, Any], Path, dict[str, Any]] | None = None
        """Sync mode: the run that built the graph, its folder and its manifest."""
        self.sync_graph: SyncLoad | None = None
        """Sync mode: what the sync wrote and what the graph then holds (None: no change)."""

    @contextmanager
    def step(self, key: str, title: str) -> Iterator[None]:
        self.step_number += 1
        self.step_key = key
        self.reporter.step(self.step_number, len(self.steps), title)
        started = time.perf_counter()
        yield
        self.summary.step_seconds[key] = round(time.perf_counter() - started, 3)

    def note(self, text: str) -> None:
        self.summary.notes.append(text)
        self.reporter.note(text)

    @property
    def engine(self) -> Engine:
        return self.start_engine()

    def start_engine(self) -> Engine:
        """The run's engine, started when first needed (a Spark session takes seconds)."""
        if self._engine is None:
            options = self.options
            self._engine = start_engine(
                self.settings,
                options.engine,
                options.workers,
                SparkOptions(options.spark_master, options.spark_conf),
            )
        return self._engine

    @property
    def engine_started(self) -> bool:
        return self._engine is not None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self.log.close()

    # ---- steps 2-5 -----------------------------------------------------------------------

    def validate(self) -> Plan:
        plan = prepare_plan(self.settings)
        for change in plan.schema_changes:
            if not change.blocking:
                self.note(change.text)
        blocking = [change.text for change in plan.blocking_changes]
        if blocking and not self.options.accept_schema_changes:
            raise SchemaDrift(blocking)
        for text in blocking:
            self.note(f"accepted: {text}")
        self.summary.schema_changes = blocking
        if self.options.mode == "admin":
            recovered = self.loader.recover()
            if recovered:
                self.note(recovered)
            problems = self.loader.preflight(self.options.overwrite)
            if problems:
                raise ValidationFailed(problems)
        if self.options.mode in ("bolt", "sync"):
            self.bolt.preflight()
        if self.options.mode == "sync" and not self.options.full:
            self.baseline = _sync_baseline(self)
        if self.options.engine == "spark":  # its start is not extraction's
            started = time.perf_counter()
            self.start_engine()
            self.note(
                f"Spark session ({self.options.spark_master}) ready in "
                f"{time.perf_counter() - started:.1f}s"
            )
        return plan

    def extract(self, plan: Plan) -> list[ExtractResult]:
        self.paths.create()
        with self.reporter.bytes_progress(list(plan.tables)) as advance:
            return self.engine.extract(plan, self.paths, advance)

    def transform(self, plan: Plan, extracted: list[ExtractResult]) -> Joined:
        return self.engine.transform(plan, extracted, self.paths)

    def build_manifest(self, extracted: list[ExtractResult], joined: Joined) -> dict[str, Any]:
        """What the folder holds, each file's checksum, and every count the ledger needs."""
        checks, relationships = joined.checks, joined.relationships
        work = self.paths.work_dir
        nodes: list[dict[str, Any]] = []
        tables: list[dict[str, Any]] = []
        for result in extracted:
            table = result.table
            common = {
                "source": table.source,
                "table": f"{table.schema}.{table.table}",
                "rows_read": result.rows + result.rows_null_key + result.rows_duplicate,
                "bytes": result.bytes,
                "seconds": round(result.seconds, 3),
                "values": result.values,
            }
            if not table.label:
                tables.append(common)
                continue
            check = checks[table.name]
            nodes.append(
                {
                    "label": table.label,
                    **common,
                    "file": str(result.path.relative_to(work)),
                    "headers": table.headers(),
                    "keys": list(table.key_columns),
                    # How many, not which: an excluded column is named nowhere outside the control rows.
                    "excluded_columns": len(table.excluded),
                    "rejected_null_key": result.rows_null_key,
                    "rejected_duplicate_key": result.rows_duplicate,
                    "nodes": result.rows,
                    "ids": [check.first_id, check.last_id],
                    "sha256": result.sha256,
                    "multiline": result.multiline,
                }
            )
        rels: list[dict[str, Any]] = []
        for rel in relationships:
            headers = [":START_ID", ":END_ID", *[h for _, h in rel.plan.properties]]
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
                    "ledger": {
                        "driving": rel.driving,
                        "read": rel.read,
                        "rejected": rel.rejected,
                        "orphaned": rel.orphaned,
                        "matched": rel.matched,
                    },
                    "bytes": rel.path.stat().st_size,
                    "seconds": round(rel.seconds, 3),
                    "sha256": rel.sha256,
                    "multiline": rel.multiline,
                }
            )
        return {
            "format": MANIFEST_FORMAT,
            "run_id": self.log.run_id,
            "control": {"instance": self.log.instance, "database": self.settings.etl_db_name},
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": self.options.mode,
            "neo4j_database": self.settings.neo4j_database,
            "nodes": nodes,
            "tables": tables,
            "relationships": rels,
            "totals": {
                "nodes": sum(n["nodes"] for n in nodes),
                "relationships": sum(r["relationships"] for r in rels),
                "rows_rejected": sum(
                    n["rejected_null_key"] + n["rejected_duplicate_key"] for n in nodes
                ),
            },
        }

    def check_values(self, manifest: dict[str, Any]) -> None:
        """Name every value that changes; with ``--strict-values``, fail instead."""
        found = value_changes(manifest, self.options.mode)
        changes = [line for _, line in found]
        self.summary.values_changed = changes
        if changes and self.options.strict_values:
            columns = len({column for column, _ in found})
            raise IntegrityError(
                f"--strict-values: {columns} column{'s' if columns != 1 else ''} hold values "
                "Neo4j cannot store as they are; nothing was loaded: " + "; ".join(changes)
            )
        for line in changes:
            self.note(line)

    def publish(self, plan: Plan, manifest: dict[str, Any]) -> None:
        self.paths.manifest.write_text(json.dumps(manifest, indent=2))
        self.manifest_sha = file_sha256(self.paths.manifest)
        protect = []
        built = graph_run(self.settings)
        if built is not None and built["import_dir"]:
            protect.append(Path(built["import_dir"]))  # the graph's own folder
        self.paths.publish(self.log.instance, keep=self.options.keep_runs, protect=protect)
        self.published = True
        self.log.published(self.manifest_sha)
        self.log.schema(plan.schema_columns())

    # ---- resume ------------------------------------------------------------------------

    def verify_published(self, resumed: _Resumed) -> dict[str, Any]:
        """The resumed run's manifest, after its checksum and every file's are verified."""
        paths = resumed.paths
        assert paths is not None
        run_id = resumed.row["run_id"]
        manifest_path = paths.published_manifest
        try:
            sha = file_sha256(manifest_path)
            manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"run {run_id}'s manifest cannot be read ({one_line(exc)}); start a new run"
            ) from None
        if sha != resumed.row["manifest_sha256"]:
            raise IntegrityError(
                f"run {run_id}'s manifest {manifest_path} changed since it was published; "
                "start a new run"
            )
        if (manifest.get("control") or {}).get("instance") != self.log.instance:
            raise IntegrityError(
                f"{paths.final_dir} belongs to another control database; start a new run"
            )
        for entry in [*manifest["nodes"], *manifest["relationships"]]:
            path = paths.final_dir / entry["file"]
            if not path.is_file() or file_sha256(path) != entry["sha256"]:
                raise IntegrityError(
                    f"run {run_id}'s file {path} is missing or differs from its manifest "
                    "(SHA-256); start a new run"
                )
        files = len(manifest["nodes"]) + len(manifest["relationships"])
        self.note(f"{paths.final_dir}: manifest and {files} files verified (SHA-256)")
        self.manifest_sha = sha
        (paths.final_dir / "failure.json").unlink(missing_ok=True)
        self.log.copy_schema(run_id)
        return manifest

    # ---- step 8 ------------------------------------------------------------------------

    def _changes(self, name: str) -> dict[str, int]:
        """A sync's inserted, updated and deleted rows of a label or mapping, as columns."""
        counts = (self.summary.sync or {}).get(name, {})
        return {f"rows_{kind}": count for kind, count in counts.items()}

    def record(self, manifest: dict[str, Any], loaded: BoltLoad | None, failed: bool) -> None:
        """A ledger row per table, label and mapping; raises if a ledger does not balance.

        ``loaded`` is what Bolt wrote (None in admin and csv modes, where neo4j-admin's totals
        or the files are checked against the manifest before this step).
        """
        summary = self.summary
        summary.nodes, summary.relationships = {}, {}
        summary.rows_read = summary.rows_rejected = summary.rows_orphaned = 0
        unbalanced: list[str] = []
        for entry in manifest.get("tables", []):
            self.log.table(
                object_kind="table",
                source_name=entry["source"],
                table_name=entry["table"],
                status="failed" if failed else "succeeded",
                rows_processed=entry["rows_read"],
                bytes=entry["bytes"],
                seconds=entry["seconds"],
                details={"values": entry.get("values", {})},
            )
            summary.rows_read += entry["rows_read"]
        for entry in manifest["nodes"]:
            label = entry["label"]
            read, expected = entry["rows_read"], entry["nodes"]
            rejected, duplicate = entry["rejected_null_key"], entry["rejected_duplicate_key"]
            written = expected if loaded is None else loaded.nodes.get(label, 0)
            balanced = read == written + rejected + duplicate
            if loaded is not None and label in loaded.graph_nodes:
                in_graph = loaded.graph_nodes[label]
                merged = label in loaded.merged_labels
                balanced = balanced and (in_graph >= written if merged else in_graph == written)
            if not balanced and not failed:
                unbalanced.append(
                    f":{label} read {read:,} ≠ written {written:,} + rejected {rejected:,} "
                    f"+ duplicate keys {duplicate:,}"
                    + (f" (graph holds {loaded.graph_nodes.get(label, 0):,})" if loaded else "")
                )
            self.log.table(
                **self._changes(label),
                object_kind="node",
                source_name=entry["source"],
                table_name=entry["table"],
                label=label,
                status="succeeded" if written == expected and not failed else "failed",
                rows_processed=read,
                rows_written=written,
                rows_rejected=rejected,
                rows_duplicate=duplicate,
                bytes=entry["bytes"],
                seconds=entry["seconds"],
                ledger_balanced=balanced,
                details={
                    "rejected_null_key": rejected,
                    "rejected_duplicate_key": duplicate,
                    "values": entry.get("values", {}),
                },
            )
            summary.rows_read += read
            summary.rows_rejected += rejected + duplicate
            summary.nodes[label] = written
            summary.bytes_written += entry["bytes"]

        def relationships_written(entry: dict[str, Any]) -> int:
            name = f"{entry['type']}.{entry['mapping_id']}"
            return entry["relationships"] if loaded is None else loaded.relationships.get(name, 0)

        # The graph holds every relationship a type was written: exactly so when the type was
        # empty before the load (Bolt counts what it sent, the count store what exists).
        lost_types: set[str] = set()
        if loaded is not None and not failed:
            written_by_type: dict[str, int] = {}
            for entry in manifest["relationships"]:
                kind = entry["type"]
                written_by_type[kind] = written_by_type.get(kind, 0) + relationships_written(entry)
            for kind, written in written_by_type.items():
                in_graph = loaded.graph_relationships.get(kind, 0)
                if in_graph < written or (kind in loaded.created_types and in_graph != written):
                    lost_types.add(kind)
                    unbalanced.append(
                        f"[:{kind}] {written:,} written but the graph holds {in_graph:,}"
                    )
        for entry in manifest["relationships"]:
            ledger = entry["ledger"]
            expected = entry["relationships"]
            written = relationships_written(entry)
            fanout = expected - ledger["matched"]
            balanced = (
                ledger["read"] + fanout == expected + ledger["rejected"] + ledger["orphaned"]
                and written == expected
                and entry["type"] not in lost_types
            )
            if not balanced and entry["type"] not in lost_types and not failed:
                unbalanced.append(
                    f"{entry['type']} #{entry['mapping_id']} read {ledger['read']:,} + fan-out "
                    f"{fanout:,} ≠ written {written:,} + rejected {ledger['rejected']:,} + "
                    f"orphaned {ledger['orphaned']:,}"
                )
            self.log.table(
                **self._changes(f"{entry['type']}.{entry['mapping_id']}"),
                object_kind="relationship",
                label=f"{entry['from_label']}->{entry['to_label']}",
                relationship_type=entry["type"],
                mapping_id=entry["mapping_id"],
                status="succeeded" if written == expected and not failed else "failed",
                rows_processed=ledger["read"],
                rows_written=written,
                rows_rejected=ledger["rejected"],
                rows_orphaned=ledger["orphaned"],
                rows_fanout=fanout,
                bytes=entry["bytes"],
                seconds=entry["seconds"],
                ledger_balanced=balanced,
                details={"orphans": entry["orphans"], "driving_side": ledger["driving"]},
            )
            kind = entry["type"]
            summary.relationships[kind] = summary.relationships.get(kind, 0) + written
            summary.rows_orphaned += ledger["orphaned"]
        summary.ledger_balanced = not unbalanced
        if unbalanced and not failed:
            raise IntegrityError(
                f"the ledger of run {self.log.run_id} does not balance: " + "; ".join(unbalanced)
            )


def run(settings: Settings, options: RunOptions, reporter: Reporter | None = None) -> RunSummary:
    """Run the pipeline once; raises a :class:`Bulk360Error` after logging the run as failed."""
    reporter = reporter or SilentReporter()
    resumed = _find_resumable(settings, options) if options.resume else None
    if resumed is not None:
        options = _resume_options(options, resumed.row)
    state = _Run(settings, options, reporter, resumed)
    loading = False
    try:
        if resumed is not None and resumed.paths is not None:
            with state.step("verify", f"verify run {resumed.row['run_id']}'s import folder"):
                manifest = state.verify_published(resumed)
                state.manifest = manifest
                state.check_values(manifest)
        else:
            with state.step("validate", "validate the control rows against the live catalogs"):
                plan = state.validate()
            with (
                state.step(
                    "extract",
                    f"extract {len(plan.tables)} tables "
                    + (
                        f"over JDBC with Spark ({options.spark_master})"
                        if options.engine == "spark"
                        else f"with {options.workers} COPY readers"
                    ),
                ),
                _import_folder_errors(state),
            ):
                extracted = state.extract(plan)
            with (
                state.step(
                    "transform",
                    f"check node ids and join {len(plan.relationships)} relationship mappings",
                ),
                _import_folder_errors(state),
            ):
                joined = state.transform(plan, extracted)
            with (
                state.step("write", "write the manifest and publish the import folder"),
                _import_folder_errors(state),
            ):
                manifest = state.build_manifest(extracted, joined)
                state.check_values(manifest)
                state.publish(plan, manifest)
                state.manifest = manifest
        state.summary.import_dir = state.paths.final_dir
        if options.mode == "admin":
            with state.step("load", "neo4j-admin database import full into a staging store"):
                state.summary.admin = _admin_import(state, manifest)
                for note in state.summary.admin.notes:
                    state.note(note)
                state.note(
                    f"{state.summary.admin.nodes:,} nodes and "
                    f"{state.summary.admin.relationships:,} relationships with their actual ids "
                    f"(neo4j-admin started as {state.summary.admin.started})"
                )
            with state.step("swap", f"swap the import in as database '{settings.neo4j_database}'"):
                replaced = state.loader.swap()
                state.note(
                    f"database '{settings.neo4j_database}' "
                    + (
                        "replaced (the previous store was kept until the swap completed)"
                        if replaced
                        else "created"
                    )
                )
        elif options.mode == "bolt" or (options.mode == "sync" and options.full):
            loading = True
            with state.step("load", f"write over Bolt in batches of {options.batch_size:,} rows"):
                state.summary.bolt = _bolt_load(
                    state, manifest, clear=options.clear or options.full
                )
        elif options.mode == "sync":
            loading = True
            if state.baseline is None:  # a resumed sync skipped validation
                state.baseline = _sync_baseline(state)
            with state.step(
                "load", f"write what changed since run {state.baseline[0]['run_id']} over Bolt"
            ):
                _sync_load(state, manifest)
        loading = False
        with state.step("record", "record the results and balance the ledger"):
            state.record(manifest, _written(state, manifest), failed=False)
            state.log.artifact(
                "manifest",
                str(state.paths.published_manifest),
                state.manifest_sha,
                options.mode != "csv",
            )
            _finish(state, "succeeded")
    except Bulk360Error as exc:
        unrecorded = _fail(state, loading, str(exc))
        if unrecorded:
            exc.args = (f"{exc}; {unrecorded}",)
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        _fail(state, loading, f"interrupted ({exc.args[0] if exc.args else 'SIGINT'})")
        raise
    except Exception as exc:
        # A bug: one line naming the step and the run; the traceback stays in the run row.
        where = f"step {state.step_number}/{len(state.steps)} ({state.step_key})"
        error = f"unexpected {type(exc).__name__} in {where}: {one_line(exc)}"
        unrecorded = _fail(state, loading, error, traceback.format_exc())
        kept = (
            f"the traceback is in the run row (bulk360 runs show {state.log.run_id})"
            if unrecorded is None
            else unrecorded
        )
        raise InternalError(
            f"run {state.log.run_id} stopped: {error}; this is a bug in bulk360: {kept}"
        ) from exc
    except BaseException as exc:
        _fail(state, loading, f"unexpected {type(exc).__name__}: {one_line(exc)}")
        raise
    finally:
        state.close()
    return state.summary


@contextmanager
def _import_folder_errors(state: _Run) -> Iterator[None]:
    """A file of the import folder that cannot be written (a full disk) is one line."""
    try:
        yield
    except OSError as exc:
        folder = state.settings.import_dir
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:,.1f} MiB"
        except OSError:
            free = "unknown"
        where = f": {exc.filename}" if exc.filename else ""
        raise TargetError(
            f"writing the import folder failed{where}: {exc.strerror or exc}; free space in "
            f"{folder}: {free}"
        ) from None


def _finish(state: _Run, status: str, error: str | None = None, trace: str | None = None) -> None:
    summary = state.summary
    extra = {"traceback": trace} if trace else {}
    state.log.finish(
        status,
        error=error,
        nodes_written=sum(summary.nodes.values()),
        relationships_written=sum(summary.relationships.values()),
        rows_read=summary.rows_read,
        rows_rejected=summary.rows_rejected,
        rows_orphaned=summary.rows_orphaned,
        bytes_written=summary.bytes_written,
        ledger_balanced=summary.ledger_balanced,
        accepted_schema_changes=summary.schema_changes or None,
        **extra,
    )
    summary.status = status


def _fail(state: _Run, loading: bool, error: str, trace: str | None = None) -> str | None:
    """Log the run as failed; a failed Bolt load also records what it wrote so far.

    When the control database cannot take the record, the failure goes to ``failure.json`` in
    the run's folder (the next run marks the run failed with that text), and the returned line
    says so.
    """
    state.summary.status = "failed"
    if not state.published:
        state.paths.discard()
    try:
        if loading and state.manifest is not None:
            state.summary.bolt = state.bolt.load
            state.record(state.manifest, state.bolt.load, failed=True)
            _finish(state, "failed", error, trace)
        else:
            extra = {"traceback": trace} if trace else {}
            state.log.finish(
                "failed", error=error, ledger_balanced=state.summary.ledger_balanced, **extra
            )
    except Bulk360Error as exc:
        failure = state.paths.failure_file(state.published)
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(
            json.dumps(
                {
                    "run_id": state.log.run_id,
                    "error": error,
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "not_recorded_because": str(exc),
                    **({"traceback": trace} if trace else {}),
                },
                indent=2,
            )
        )
        unrecorded = f"the control database could not record this failure ({exc}); see {failure}"
        state.note(unrecorded)
        return unrecorded
    return None


def _written(state: _Run, manifest: dict[str, Any]) -> BoltLoad | None:
    """What the load wrote, for the ledger: Bolt's counts; for a sync, the new manifest's counts,
    which the graph must then hold exactly; None when the files or neo4j-admin's totals say it."""
    if state.summary.bolt is not None:
        return state.summary.bolt
    sync = state.sync_graph
    if sync is None:
        return None
    return BoltLoad(
        nodes={n["label"]: n["nodes"] for n in manifest["nodes"]},
        relationships={
            f"{r['type']}.{r['mapping_id']}": r["relationships"] for r in manifest["relationships"]
        },
        created_types=list(sync.graph_relationships),
        graph_nodes=sync.graph_nodes,
        graph_relationships=sync.graph_relationships,
    )


def _sync_baseline(state: _Run) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """The run that built the graph, its folder and manifest; refuses (one line) when there is
    none, or when the graph no longer matches it and no failed sync explains why."""
    settings = state.settings
    rebuild = "rebuild it with --mode bolt --clear (or --mode sync --full)"
    built = graph_run(settings)
    if built is None or not built["import_dir"]:
        raise TargetError(
            f"no succeeded run built the graph of database '{settings.neo4j_database}' yet, so "
            f"there is nothing to compare with: {rebuild}"
        )
    folder = Path(built["import_dir"])
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        raise TargetError(
            f"the import folder of run {built['run_id']}, which built the graph, is gone "
            f"({folder}): {rebuild}"
        ) from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise TargetError(
            f"run {built['run_id']} built the graph with files of an earlier bulk360: {rebuild}"
        )
    failed = failed_since(settings, built["run_id"], "sync")
    if failed:
        state.note(
            f"sync run {failed[-1]} failed after run {built['run_id']}: the graph may hold part "
            "of it, and this sync completes it"
        )
    else:
        with connect_graph(settings) as driver:
            wrong = [
                c
                for c in compare_counts(driver, settings.neo4j_database, folder / MANIFEST_FILE)
                if not c.ok
            ]
        if wrong:
            shown = ", ".join(
                f"{c.name} {c.actual:,} (run {built['run_id']}: {c.expected:,})" for c in wrong[:3]
            )
            raise TargetError(
                f"the graph does not match run {built['run_id']}, which built it ({shown}): it "
                f"was changed outside bulk360, so a sync would guess; {rebuild}"
            )
    state.summary.diffed_against = built["run_id"]
    return built, folder, manifest


def _sync_load(state: _Run, manifest: dict[str, Any]) -> None:
    assert state.baseline is not None
    built, folder, old = state.baseline
    loader = SyncLoader(state.bolt)
    new = specs_of(state.paths.final_dir, manifest)
    load = loader.diff(built["run_id"], specs_of(folder, old), new)
    with state.reporter.rows_progress(load.tasks()) as advance:
        loader.write(load, new, advance)
    state.summary.sync = load.counts()
    state.summary.diffed_against = built["run_id"]
    state.log.diffed_against(built["run_id"])
    if not load.changed:
        state.note(f"no change since run {built['run_id']}: nothing was written")
        state.sync_graph = None
        return
    for name, counts in load.counts().items():
        if any(counts.values()):
            state.note(
                f"{name}: {counts['inserted']:,} inserted, {counts['updated']:,} updated, "
                f"{counts['deleted']:,} deleted"
            )
    for group in load.rebuilt_groups:
        state.note(f"{group}: rewritten whole (its mappings or key changed)")
    state.sync_graph = load


def _bolt_load(state: _Run, manifest: dict[str, Any], clear: bool) -> BoltLoad:
    nodes, relationships = specs_of(state.paths.final_dir, manifest)
    totals: dict[str, int | None] = {n["label"]: n["nodes"] for n in manifest["nodes"]}
    totals |= {
        spec.name: r["relationships"]
        for spec, r in zip(relationships, manifest["relationships"], strict=True)
    }
    loader = state.engine.bolt_loader(state.bolt) if state.engine_started else state.bolt
    with state.reporter.rows_progress(totals) as advance:
        return loader.run(nodes, relationships, clear, advance)


def _admin_import(state: _Run, manifest: dict[str, Any]) -> AdminImport:
    """Import into the staging store; its totals must equal the manifest's before any swap."""
    final = state.paths.final_dir
    if state.resumed is not None:
        problems = state.loader.preflight(state.options.overwrite)
        if problems:
            raise ValidationFailed(problems)
    entries = [*manifest["nodes"], *manifest["relationships"]]
    state.loader.check_space(sum(e["bytes"] for e in entries))
    result = state.loader.stage(
        ImportRequest(
            nodes=[(n["label"], final / n["file"]) for n in manifest["nodes"]],
            relationships=[(r["type"], final / r["file"]) for r in manifest["relationships"]],
            multiline=[final / e["file"] for e in entries if e["multiline"]],
            report_file=state.paths.admin_report,
            log_file=state.paths.admin_log,
            tolerance=state.options.tolerance,
        )
    )
    expected_nodes = manifest["totals"]["nodes"]
    expected_rels = manifest["totals"]["relationships"]
    if (result.nodes, result.relationships) != (expected_nodes, expected_rels):
        state.loader.discard_staging()
        raise IntegrityError(
            f"neo4j-admin imported {result.nodes} nodes and {result.relationships} relationships, "
            f"the manifest has {expected_nodes} and {expected_rels}; see {result.report_file} "
            "(the database was not replaced)"
        )
    return result
