"""Step 8: the ledger of a run, per table, label and relationship mapping, in ``etl_table_logs``.

* a **label**: rows read (PostgreSQL's count, NULL keys included) = written + rejected (NULL
  key) + duplicate (a repeated key: the first row wins); when the load counted the graph
  afterwards, the graph holds exactly what was written (a label that was empty before the load)
  or at least that (a label whose nodes were merged into);
* a **relationship mapping**: read + fan-out = written + rejected + orphaned, on its driving
  side (see :mod:`bulk360.plan.rules`), everything its file holds written; the graph holds at
  least what each type was written, exactly that when the type was empty before the load.

:func:`balance` is the arithmetic (no database); :func:`record` writes its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bulk360.control.runlog import RunLog
from bulk360.load import LoadResult
from bulk360.package.manifest import Manifest, NodeEntry, RelationshipEntry
from bulk360.totals import RunTotals

__all__ = ["Ledger", "balance", "record"]


@dataclass
class Ledger(RunTotals):
    """A run's ledger: its ``etl_table_logs`` rows and its totals."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unbalanced: list[str] = field(default_factory=list)
    """One line per label or mapping that does not balance."""

    @property
    def balanced(self) -> bool:
        return not self.unbalanced


def _changes(loaded: LoadResult | None, name: str) -> dict[str, int]:
    """A sync's inserted, updated and deleted rows of a label or mapping, as columns."""
    counts = (loaded.changes if loaded else {}).get(name, {})
    return {f"rows_{kind}": count for kind, count in counts.items()}


def _node_row(
    ledger: Ledger, entry: NodeEntry, loaded: LoadResult | None, failed: bool
) -> dict[str, Any]:
    label = entry.label
    read, expected = entry.rows_read, entry.nodes
    rejected, duplicate = entry.rejected_null_key, entry.rejected_duplicate_key
    written = expected if loaded is None else loaded.nodes.get(label, 0)
    balanced = read == written + rejected + duplicate
    if loaded is not None and label in loaded.graph_nodes:
        in_graph = loaded.graph_nodes[label]
        merged = label in loaded.merged_labels
        balanced = balanced and (in_graph >= written if merged else in_graph == written)
    if not balanced and not failed:
        ledger.unbalanced.append(
            f":{label} read {read:,} ≠ written {written:,} + rejected {rejected:,} "
            f"+ duplicate keys {duplicate:,}"
            + (
                f" (graph holds {loaded.graph_nodes[label]:,})"
                if loaded and label in loaded.graph_nodes
                else ""
            )
        )
    ledger.rows_read += read
    ledger.rows_rejected += rejected + duplicate
    ledger.nodes[label] = written
    ledger.bytes_written += entry.bytes
    return {
        **_changes(loaded, label),
        "object_kind": "node",
        "source_name": entry.source,
        "table_name": entry.table,
        "label": label,
        "status": "succeeded" if written == expected and not failed else "failed",
        "rows_processed": read,
        "rows_written": written,
        "rows_rejected": rejected,
        "rows_duplicate": duplicate,
        "bytes": entry.bytes,
        "seconds": entry.seconds,
        "ledger_balanced": balanced,
        "details": {
            "rejected_null_key": rejected,
            "rejected_duplicate_key": duplicate,
            "values": entry.values,
        },
    }


def _lost_types(ledger: Ledger, manifest: Manifest, loaded: LoadResult) -> set[str]:
    """Types the graph holds fewer relationships of than were written (or other than written,
    for a type that was empty before the load)."""
    written_by_type: dict[str, int] = {}
    for entry in manifest.relationships:
        written = loaded.relationships.get(entry.name, 0)
        written_by_type[entry.type] = written_by_type.get(entry.type, 0) + written
    lost: set[str] = set()
    for kind, written in written_by_type.items():
        in_graph = loaded.graph_relationships.get(kind, 0)
        if in_graph < written or (kind in loaded.created_types and in_graph != written):
            lost.add(kind)
            ledger.unbalanced.append(
                f"[:{kind}] {written:,} written but the graph holds {in_graph:,}"
            )
    return lost


def _relationship_row(
    ledger: Ledger,
    entry: RelationshipEntry,
    loaded: LoadResult | None,
    failed: bool,
    lost: set[str],
) -> dict[str, Any]:
    mapping, expected = entry.ledger, entry.relationships
    written = expected if loaded is None else loaded.relationships.get(entry.name, 0)
    balanced = mapping.balances(written, expected) and entry.type not in lost
    if not balanced and entry.type not in lost and not failed:
        ledger.unbalanced.append(
            f"{entry.type} #{entry.mapping_id} {mapping.equation(written, expected)}"
        )
    ledger.relationships[entry.type] = ledger.relationships.get(entry.type, 0) + written
    ledger.rows_orphaned += mapping.orphaned
    return {
        **_changes(loaded, entry.name),
        "object_kind": "relationship",
        "label": f"{entry.from_label}->{entry.to_label}",
        "relationship_type": entry.type,
        "mapping_id": entry.mapping_id,
        "status": "succeeded" if written == expected and not failed else "failed",
        "rows_processed": mapping.read,
        "rows_written": written,
        "rows_rejected": mapping.rejected,
        "rows_orphaned": mapping.orphaned,
        "rows_fanout": mapping.fanout(expected),
        "bytes": entry.bytes,
        "seconds": entry.seconds,
        "ledger_balanced": balanced,
        "details": {"orphans": dict(entry.orphans), "driving_side": mapping.driving},
    }


def balance(manifest: Manifest, loaded: LoadResult | None, failed: bool) -> Ledger:
    """The ledger of a run whose package is ``manifest``.

    ``loaded`` is what the load wrote and what the graph then holds (None: what the files
    hold, as in csv mode). A ``failed`` run's rows say what was written, unbalanced or not.
    """
    ledger = Ledger()
    for table in manifest.tables:
        ledger.rows.append(
            {
                "object_kind": "table",
                "source_name": table.source,
                "table_name": table.table,
                "status": "failed" if failed else "succeeded",
                "rows_processed": table.rows_read,
                "bytes": table.bytes,
                "seconds": table.seconds,
                "details": {"values": table.values},
            }
        )
        ledger.rows_read += table.rows_read
    ledger.rows += [_node_row(ledger, entry, loaded, failed) for entry in manifest.nodes]
    counted = loaded is not None and bool(loaded.graph_relationships) and not failed
    lost = _lost_types(ledger, manifest, loaded) if counted and loaded else set()
    ledger.rows += [
        _relationship_row(ledger, entry, loaded, failed, lost) for entry in manifest.relationships
    ]
    return ledger


def record(log: RunLog, ledger: Ledger) -> None:
    """Write the ledger's rows into ``etl_table_logs``."""
    for row in ledger.rows:
        log.table(**row)
