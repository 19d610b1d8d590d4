"""csv mode: no load. The run stops at its published import folder (for ``neo4j-admin`` run
elsewhere, e.g. inside a container, on the files of ``import/current``)."""

from __future__ import annotations

from typing import ClassVar

from bulk360.load import LoadContext, LoadResult, Server
from bulk360.package import ImportPackage

__all__ = ["CsvLoader"]


class CsvLoader:
    """Writes nothing; what the files hold is what the run produced."""

    server: ClassVar[Server] = None
    writes: ClassVar[bool] = False
    swaps: ClassVar[bool] = False

    def __init__(self, context: LoadContext) -> None:
        self.context = context

    def preflight(self) -> None:
        return None

    def load_title(self) -> str:
        return "nothing to load"

    def load(self, package: ImportPackage) -> LoadResult:
        return LoadResult(
            {n.label: n.nodes for n in package.manifest.nodes},
            {r.name: r.relationships for r in package.manifest.relationships},
        )

    def swap(self) -> str:
        raise NotImplementedError("csv mode loads nothing")

    def written_so_far(self) -> LoadResult | None:
        return None

    def close(self) -> None:
        return None
