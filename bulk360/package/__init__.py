"""The import package: a run folder and its typed manifest, the hand-over between every stage.

The engines write files into a run's work folder (:mod:`.paths` declares every path) and hand
back what they read and joined (:mod:`.results`); :mod:`.publish` turns that into the manifest
(:mod:`.manifest`) and renames the folder into place. From then on the folder is an
:class:`ImportPackage`: the loaders read its files (:mod:`.files`), the ledger its counts,
``verify`` its totals, and ``--resume`` and sync read it again, verified by its checksums.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bulk360.errors import IntegrityError
from bulk360.package.files import NodeFile, RelationshipFile
from bulk360.package.manifest import Manifest, NodeEntry, RelationshipEntry
from bulk360.package.paths import MANIFEST_FILE, file_sha256

__all__ = ["ImportPackage"]


@dataclass(frozen=True)
class ImportPackage:
    """A published run folder, its manifest and the manifest's SHA-256."""

    folder: Path
    manifest: Manifest
    sha256: str

    @classmethod
    def read(cls, folder: Path) -> ImportPackage:
        """The package in ``folder``; an :class:`IntegrityError` when its manifest cannot be
        read."""
        path = folder / MANIFEST_FILE
        try:
            digest = file_sha256(path)
        except OSError as exc:
            raise IntegrityError(f"the manifest {path} cannot be read: {exc}") from None
        return cls(folder, Manifest.read(path), digest)

    @classmethod
    def verified(cls, folder: Path, sha256: str, instance: str, run_id: int) -> ImportPackage:
        """Run ``run_id``'s package, after its manifest's checksum (``sha256``, as recorded
        when it was published), its control database (``instance``) and every file's checksum
        are verified; an :class:`IntegrityError` saying to start a new run otherwise."""
        try:
            package = cls.read(folder)
        except IntegrityError as exc:
            raise IntegrityError(f"run {run_id}'s {exc}; start a new run") from None
        if package.sha256 != sha256:
            raise IntegrityError(
                f"run {run_id}'s manifest {folder / MANIFEST_FILE} changed since it was "
                "published; start a new run"
            )
        if package.manifest.control.instance != instance:
            raise IntegrityError(f"{folder} belongs to another control database; start a new run")
        for entry in package.manifest.files():
            path = package.path(entry)
            if not path.is_file() or file_sha256(path) != entry.sha256:
                raise IntegrityError(
                    f"run {run_id}'s file {path} is missing or differs from its manifest "
                    "(SHA-256); start a new run"
                )
        return package

    def path(self, entry: NodeEntry | RelationshipEntry) -> Path:
        """Where a file of the manifest is."""
        return self.folder / entry.file

    def node_files(self) -> list[NodeFile]:
        """Every node file, with its key properties."""
        return [
            NodeFile(n.label, self.path(n), n.headers, n.keys, n.nodes, n.group_label)
            for n in self.manifest.nodes
        ]

    def relationship_files(self) -> list[RelationshipFile]:
        """Every relationship mapping's file, with the node files of its two ends."""
        nodes = {n.label: n for n in self.node_files()}
        return [
            RelationshipFile(
                name=r.name,
                type=r.type,
                start=nodes[r.from_label],
                end=nodes[r.to_label],
                path=self.path(r),
                headers=r.headers,
                rows=r.relationships,
            )
            for r in self.manifest.relationships
        ]
