"""Admin mode: ``neo4j-admin database import full`` into a staging store, then the swap.

For a full rebuild of a self-hosted Neo4j whose server is stopped: the import runs with the
files' own node ids (:mod:`.neo4j_admin`) into a staging database, its totals must equal the
manifest's, and only then is the target replaced (:mod:`.store`); a failed import costs nothing.
"""

from __future__ import annotations

import os
from typing import ClassVar

from bulk360.errors import IntegrityError, ValidationFailed
from bulk360.load import LoadContext, LoadResult, Server
from bulk360.load.admin.neo4j_admin import AdminImport, ImportRequest, Neo4jAdmin
from bulk360.load.admin.store import StagingStore
from bulk360.package import ImportPackage
from bulk360.package.paths import RunPaths

__all__ = ["AdminImport", "AdminLoader", "ImportRequest"]


class AdminLoader:
    """Imports a package with the real ``neo4j-admin`` of ``NEO4J_HOME`` and swaps it in."""

    server: ClassVar[Server] = "stopped"
    writes: ClassVar[bool] = True
    swaps: ClassVar[bool] = True

    def __init__(self, context: LoadContext) -> None:
        self.context = context
        settings = context.settings
        self.settings = settings
        self.store = StagingStore(settings.neo4j_home, settings.neo4j_database)
        self.neo4j_admin = Neo4jAdmin(settings)

    def problems(self) -> list[str]:
        """What would stop the import, found before anything is read or written; a swap a
        process death interrupted is finished or undone first."""
        problems = []
        admin = self.settings.neo4j_admin
        if not os.access(admin, os.X_OK):
            problems.append(
                f"neo4j-admin not found at {admin}: set NEO4J_HOME to a Neo4j home, or use "
                "--mode bolt"
            )
        pid = self.store.server_pid()
        if pid is not None:
            problems.append(
                f"Neo4j is running (pid {pid}, home {self.settings.neo4j_home}): stop it first "
                "(scripts/services neo4j stop); admin mode imports into a stopped server"
            )
        elif self.store.interrupted:
            recovered = self.store.recover()
            if recovered:
                self.context.note(recovered)
        if self.store.database_exists() and not self.context.options.overwrite:
            problems.append(
                f"database '{self.store.database}' already exists in {self.settings.neo4j_home}; "
                "pass --overwrite to replace it"
            )
        return problems

    def preflight(self) -> None:
        problems = self.problems()
        if problems:
            raise ValidationFailed(problems)
        # The checks passed: neo4j-admin's JVM starts now and waits while the run extracts.
        self.neo4j_admin.warm_up()

    def close(self) -> None:
        self.neo4j_admin.close()

    def load_title(self) -> str:
        return "neo4j-admin database import full into a staging store"

    def load(self, package: ImportPackage) -> LoadResult:
        """Import into the staging store; its totals must equal the manifest's."""
        manifest = package.manifest
        self.store.check_space(sum(entry.bytes for entry in manifest.files()))
        paths = RunPaths.of_folder(package.folder)
        assert paths is not None
        result = self._stage(
            ImportRequest(
                nodes=[(":".join(n.labels), package.path(n)) for n in manifest.nodes],
                relationships=[(r.type, package.path(r)) for r in manifest.relationships],
                multiline=[package.path(e) for e in manifest.files() if e.multiline],
                report_file=paths.admin_report,
                log_file=paths.admin_log,
                tolerance=self.context.options.tolerance,
                input_type=manifest.package_format,
            )
        )
        totals = manifest.totals
        if (result.nodes, result.relationships) != (totals.nodes, totals.relationships):
            self.store.discard_staging()
            raise IntegrityError(
                f"neo4j-admin imported {result.nodes} nodes and {result.relationships} "
                f"relationships, the manifest has {totals.nodes} and {totals.relationships}; see "
                f"{result.report_file} (the database was not replaced)"
            )
        return LoadResult(
            nodes={n.label: n.nodes for n in manifest.nodes},
            relationships={r.name: r.relationships for r in manifest.relationships},
            details={
                "nodes": result.nodes,
                "relationships": result.relationships,
                "properties": result.properties,
                "bad_entries": result.bad_entries,
                "report_file": str(result.report_file),
                "started": result.started,
            },
            notes=(
                *result.notes,
                f"{result.nodes:,} nodes and {result.relationships:,} relationships with their "
                f"actual ids (neo4j-admin started as {result.started})",
            ),
        )

    def _stage(self, request: ImportRequest) -> AdminImport:
        """Import into the staging database; the target is not touched."""
        self.store.require_stopped()
        self.store.discard_staging()
        try:
            return self.neo4j_admin.import_into(self.store.staging, request)
        except BaseException:
            self.store.discard_staging()
            raise

    def swap(self) -> str:
        database = self.store.database
        if self.store.swap():
            return f"database '{database}' replaced (the previous store was kept until the swap completed)"
        return f"database '{database}' created"

    def written_so_far(self) -> LoadResult | None:
        return None  # the staging store is discarded: the target holds what it held
