"""The one place that decides the order of the stages of a run.

STEP 1  start      the run row in etl_run_logs (runs found dead are marked failed first)
STEP 2  validate   the control rows against the live catalogs (:mod:`bulk360.plan`), the
                   schema-drift gate, and the target as the mode's loader needs it
STEP 3  extract    the engine's readers, one snapshot per source (:mod:`bulk360.engines`)
STEP 4  transform  node id checks and relationship joins by the plan's join rules
STEP 5  write      the manifest and the published import package (:mod:`bulk360.package`;
                   a Parquet package's files made from the CSV files here)
STEP 6  load       the package into Neo4j by the mode's loader (:mod:`bulk360.load`)
STEP 7  swap       the staging store in place of the target (a loader that stages)
STEP 8  record     the ledger per table, label and mapping (:mod:`bulk360.ledger`)
STEP 9  announce   what the load changed, to the API's cache (after a load; never fails a run)

The package is the only input of steps 6 to 8, so a failed run whose package was published can
be resumed (``--resume``): the package is verified by its checksums instead of steps 2-5, and
only the load and the records are repeated. A run that failed before publishing starts again
from step 2. A run that does not balance its ledger fails; values Neo4j cannot hold as they are
are counted and named (``--strict-values`` fails instead).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bulk360.control.history import graph_run
from bulk360.control.notify import tell_cache
from bulk360.control.runlog import RunLog, keep_failure
from bulk360.engines import Engine, SparkOptions, start_engine
from bulk360.errors import (
    Bulk360Error,
    IntegrityError,
    InternalError,
    Interrupted,
    SchemaDrift,
    one_line,
)
from bulk360.ledger import balance, record
from bulk360.load import LoadContext, loader_for
from bulk360.modes import LOADERS
from bulk360.options import Reporter, RunOptions, SilentReporter
from bulk360.package import ImportPackage
from bulk360.package.manifest import Control, Manifest
from bulk360.package.paths import MANIFEST_FILE, RunPaths, folder_errors
from bulk360.package.publish import as_parquet, manifest_of, publish
from bulk360.package.results import ExtractResult, Joined
from bulk360.package.resume import Resumable, resumable
from bulk360.plan import Plan, prepare_plan
from bulk360.settings import Settings
from bulk360.summary import RunSummary
from bulk360.version import __version__

__all__ = ["run"]


class _Run:
    """One run while its steps execute: its options, run row, folder, engine and loader."""

    def __init__(
        self,
        settings: Settings,
        options: RunOptions,
        reporter: Reporter,
        resumed: Resumable | None,
        snapshots: Mapping[str, str] | None = None,
    ) -> None:
        self.settings, self.options, self.reporter = settings, options, reporter
        self.snapshots = snapshots
        self.resumed = resumed.folder if resumed else None
        self._engine: Engine | None = None
        context = LoadContext(settings, options, reporter, self.note, self._graph_writer)
        self.loader = loader_for(options.mode, context)
        reuse = ["verify"] if self.resumed else ["validate", "extract", "transform", "write"]
        self.steps = ["start", *reuse, *(["load"] if self.loader.writes else [])]
        self.steps += [*(["swap"] if self.loader.swaps else []), "record"]
        resumed_from = resumed.row["run_id"] if resumed else None
        recorded = options.recorded(settings) | ({"resumed_from": resumed_from} if resumed else {})
        self.log = RunLog(settings, options.mode, recorded, __version__, resumed_from)
        self.step_number, self.step_key = 1, "start"
        title = f"start run {self.log.run_id} ({options.mode} mode)"
        title += f", resuming run {resumed_from}" if resumed else ""
        reporter.step(1, len(self.steps), title)
        for run_id in self.log.reconciled:
            reporter.note(f"run {run_id} had stopped without finishing: marked failed")
        found = RunPaths.of_folder(self.resumed) if self.resumed else None
        if resumed is not None and found is not None:
            self.paths = found
            # The folder stays published under this run too, so a failed resume resumes.
            self.log.published(resumed.row["manifest_sha256"], resumed.row["published_at"])
        else:
            self.paths = RunPaths(settings.import_dir, self.log.run_id, self.log.token)
        self.log.folder(self.paths.final_dir)
        self.summary = RunSummary(self.log.run_id, options.mode, resumed_from=resumed_from)
        self.published = self.resumed is not None
        self.package: ImportPackage | None = None
        self.loading = False

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
        """The run's engine, started when first needed (a Spark session takes seconds)."""
        if self._engine is None:
            spark = SparkOptions(self.options.spark_master, self.options.spark_conf)
            self._engine = start_engine(
                self.settings, self.options.engine, self.options.workers, spark, self.snapshots
            )
        return self._engine

    def _graph_writer(self) -> Any:
        return (
            self._engine.graph_writer(self.options.batch_size, self.options.workers)
            if self._engine
            else None
        )

    def close(self) -> None:
        self.loader.close()
        if self._engine is not None:
            self._engine.close()
        self.log.close()

    def check_values(self, manifest: Manifest) -> None:
        over_bolt, strict = LOADERS[self.options.mode].over_bolt, self.options.strict_values
        self.summary.values_changed = manifest.checked_value_changes(over_bolt, strict)
        for line in self.summary.values_changed:
            self.note(line)

    # ---- the steps -------------------------------------------------------------------------

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
        self.loader.preflight()
        if self.options.engine == "spark":  # its start is not extraction's
            started = time.perf_counter()
            self.engine  # noqa: B018 (started here, so that extraction's time is its own)
            self.note(
                f"Spark session ({self.options.spark_master}) ready in "
                f"{time.perf_counter() - started:.1f}s"
            )
        return plan

    def extract(self, plan: Plan) -> list[ExtractResult]:
        self.paths.create()
        with self.reporter.bytes_progress(list(plan.tables)) as advance:
            return self.engine.extract(plan, self.paths, advance)

    def write(self, plan: Plan, extracted: list[ExtractResult], joined: Joined) -> ImportPackage:
        package_format = self.options.package_format
        if package_format == "parquet":
            extracted, joined = as_parquet(extracted, joined, self.options.workers)
        manifest = manifest_of(
            run_id=self.log.run_id,
            control=Control(self.log.instance, self.settings.etl_db_name),
            mode=self.options.mode,
            neo4j_database=self.settings.neo4j_database,
            engine=self.options.engine,
            version=__version__,
            extracted=extracted,
            joined=joined,
            work_dir=self.paths.work_dir,
            package_format=package_format,
        )
        self.check_values(manifest)
        built = graph_run(self.settings)
        protect = [Path(built["import_dir"])] if built and built["import_dir"] else []
        digest = publish(self.paths, manifest, self.options.keep_runs, protect)
        self.published = True
        self.log.published(digest)
        self.log.schema(plan.schema_columns())
        return ImportPackage(self.paths.final_dir, manifest, digest)

    def verify(self, resumed: Resumable) -> ImportPackage:
        """The resumed run's package, verified by its checksums, and the target checked."""
        assert resumed.folder is not None
        run_id = resumed.row["run_id"]
        package = ImportPackage.verified(
            resumed.folder, resumed.row["manifest_sha256"], self.log.instance, run_id
        )
        files = len(package.manifest.files())
        self.note(f"{resumed.folder}: manifest and {files} files verified (SHA-256)")
        self.paths.failure_file(published=True).unlink(missing_ok=True)
        self.log.copy_schema(run_id)
        self.check_values(package.manifest)
        self.loader.preflight()
        return package

    def load(self, package: ImportPackage) -> None:
        self.loading = True
        self.summary.load = self.loader.load(package)
        self.loading = False
        for line in self.summary.load.notes:
            self.note(line)
        if self.summary.load.diffed_against is not None:
            self.summary.diffed_against = self.summary.load.diffed_against
            self.log.diffed_against(self.summary.load.diffed_against)

    def record(self, package: ImportPackage, failed: bool = False) -> None:
        """The ledger's rows; raises if a label or mapping does not balance."""
        ledger = balance(package.manifest, self.summary.load, failed)
        record(self.log, ledger)
        self.summary.take(ledger)
        if not ledger.balanced and not failed:
            raise IntegrityError(
                f"the ledger of run {self.log.run_id} does not balance: "
                + "; ".join(ledger.unbalanced)
            )

    def finish(self, status: str, error: str | None = None, trace: str | None = None) -> None:
        extra = {"traceback": trace} if trace else {}
        self.log.finish(status, error=error, **self.summary.run_row(), **extra)
        self.summary.status = status

    def fail(self, error: str, trace: str | None = None) -> str | None:
        """Log the run as failed; a failed load also records what it wrote so far.

        When the control database cannot take the record, the failure goes to
        ``failure.json`` in the run's folder (the next run marks the run failed with that
        text), and the returned line says so.
        """
        self.summary.status = "failed"
        if not self.published:
            self.paths.discard()
        try:
            partial = self.loader.written_so_far() if self.loading else None
            if partial is not None and self.package is not None:
                self.summary.load = partial
                self.record(self.package, failed=True)
                self.finish("failed", error, trace)
            else:
                extra = {"traceback": trace} if trace else {}
                balanced = self.summary.ledger_balanced
                self.log.finish("failed", error=error, ledger_balanced=balanced, **extra)
        except Bulk360Error as exc:
            failure = self.paths.failure_file(self.published)
            keep_failure(failure, self.log.run_id, error, str(exc), trace)
            unrecorded = (
                f"the control database could not record this failure ({exc}); see {failure}"
            )
            self.note(unrecorded)
            return unrecorded
        return None


def _steps(state: _Run, resumed: Resumable | None) -> None:
    """Steps 2 to 8 (STEP 1 is the run row :class:`_Run` starts with)."""
    options, folder = state.options, folder_errors(state.settings.import_dir)
    if resumed is not None and resumed.folder is not None:
        with state.step("verify", f"verify run {resumed.row['run_id']}'s import folder"):
            state.package = state.verify(resumed)
    else:
        with state.step("validate", "validate the control rows against the live catalogs"):
            plan = state.validate()
        how = (
            f"over JDBC with Spark ({options.spark_master})"
            if options.engine == "spark"
            else f"with {options.workers} COPY readers"
        )
        with state.step("extract", f"extract {len(plan.tables)} tables {how}"), folder:
            extracted = state.extract(plan)
        joins = f"check node ids and join {len(plan.relationships)} relationship mappings"
        with state.step("transform", joins), folder_errors(state.settings.import_dir):
            joined = state.engine.transform(plan, extracted, state.paths)
        with (
            state.step("write", "write the manifest and publish the import folder"),
            folder_errors(state.settings.import_dir),
        ):
            state.package = state.write(plan, extracted, joined)
    package = state.package
    state.summary.import_dir = package.folder
    if state.loader.writes:
        with state.step("load", state.loader.load_title()):
            state.load(package)
    if state.loader.swaps:
        with state.step(
            "swap", f"swap the import in as database '{state.settings.neo4j_database}'"
        ):
            state.note(state.loader.swap())
    with state.step("record", "record the results and balance the ledger"):
        state.record(package)
        path = str(package.folder / MANIFEST_FILE)
        state.log.artifact("manifest", path, package.sha256, state.loader.writes)
        state.finish("succeeded")
    if state.loader.writes:  # STEP 9
        touched = state.summary.load.touched if state.summary.load else None
        unheard = tell_cache(state.settings, touched)
        if unheard:
            state.note(unheard)


def run(
    settings: Settings,
    options: RunOptions,
    reporter: Reporter | None = None,
    snapshots: Mapping[str, str] | None = None,
) -> RunSummary:
    """Run the pipeline once (``snapshots``: per source, the snapshot to read in; None: exported
    now); raises a :class:`Bulk360Error` after logging the run as failed."""
    started = time.perf_counter()
    resumed = resumable(settings, options.resume_run) if options.resume else None
    if resumed is not None:
        options = options.resuming(resumed.row["mode"], resumed.row["options"] or {})
    state = _Run(settings, options, reporter or SilentReporter(), resumed, snapshots)
    try:
        _steps(state, resumed)
    except Bulk360Error as exc:
        unrecorded = state.fail(str(exc))
        if unrecorded:
            exc.args = (f"{exc}; {unrecorded}",)
        raise
    except (KeyboardInterrupt, Interrupted) as exc:
        state.fail(f"interrupted ({exc.args[0] if exc.args else 'SIGINT'})")
        raise
    except Exception as exc:
        # A bug: one line naming the step and the run; the traceback stays in the run row.
        where = f"step {state.step_number}/{len(state.steps)} ({state.step_key})"
        error = f"unexpected {type(exc).__name__} in {where}: {one_line(exc)}"
        unrecorded = state.fail(error, traceback.format_exc())
        kept = (
            unrecorded or f"the traceback is in the run row (bulk360 runs show {state.log.run_id})"
        )
        raise InternalError(
            f"run {state.log.run_id} stopped: {error}; this is a bug in bulk360: {kept}"
        ) from exc
    except BaseException as exc:
        state.fail(f"unexpected {type(exc).__name__}: {one_line(exc)}")
        raise
    finally:
        state.close()
        state.summary.seconds = round(time.perf_counter() - started, 3)
    return state.summary
