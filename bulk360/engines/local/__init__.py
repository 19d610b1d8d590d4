"""The local engine: ``COPY`` readers (:mod:`.extract`) and Polars joins (:mod:`.transform`) in
this process. Memory holds the join and id columns of every table (not the other properties),
so one machine's RAM bounds the size of a run; see :mod:`bulk360.engines.spark` beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from bulk360.engines.base import Progress
from bulk360.engines.local.extract import Extractor
from bulk360.engines.local.transform import build_relationship, check_nodes, needed_columns
from bulk360.package.paths import RunPaths, file_sha256
from bulk360.package.results import ExtractResult, Joined, RelationshipResult
from bulk360.package.writer import GraphWriter
from bulk360.plan import Plan, RelationshipPlan
from bulk360.settings import Settings

__all__ = ["LocalEngine"]


class LocalEngine:
    def __init__(
        self, settings: Settings, workers: int, snapshots: Mapping[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.workers = max(1, workers)
        self.snapshots = snapshots

    def extract(self, plan: Plan, paths: RunPaths, progress: Progress) -> list[ExtractResult]:
        extractor = Extractor(
            self.settings,
            plan,
            lambda table: paths.file_of(table),
            self.workers,
            progress,
            needed_columns(plan),
            self.snapshots,
        )
        return extractor.run()

    def transform(self, plan: Plan, extracted: list[ExtractResult], paths: RunPaths) -> Joined:
        """Node checks and joins on the frames the readers parsed; each relationship file is hashed."""
        frames = {r.table.name: r.keys for r in extracted if r.keys is not None}
        with ThreadPoolExecutor(self.workers) as pool:
            node_jobs = {
                r.table.name: pool.submit(check_nodes, r.table, frames.get(r.table.name), r.ids)
                for r in extracted
                if r.table.label and r.ids is not None
            }

            def relationship(rel: RelationshipPlan) -> RelationshipResult:
                result = build_relationship(rel, frames, paths.relationship_file(rel.name))
                return result.with_sha256(file_sha256(result.path))

            rel_jobs = [pool.submit(relationship, rel) for rel in plan.relationships]
            checks = {name: job.result() for name, job in node_jobs.items()}
            relationships = [job.result() for job in rel_jobs]
        return Joined(checks, relationships)

    def graph_writer(self, batch_size: int, workers: int) -> GraphWriter | None:
        return None  # the Python driver's writers, from the published files

    def close(self) -> None:
        return None
