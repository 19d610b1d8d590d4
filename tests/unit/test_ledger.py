"""The ledger's arithmetic, without a database: what balances, what does not, and what a failed
load records."""

from __future__ import annotations

from dataclasses import replace

from bulk360.ledger import balance
from bulk360.load import LoadResult
from bulk360.package.manifest import Control, Manifest, NodeEntry, RelationshipEntry, TableEntry
from bulk360.plan.rules import MappingLedger


def node(label: str, read: int, nodes: int, null_key: int = 0, duplicate: int = 0) -> NodeEntry:
    return NodeEntry(
        label=label,
        source="src",
        table=f"public.{label.lower()}",
        rows_read=read,
        bytes=100,
        seconds=0.1,
        file=f"nodes/{label}.csv",
        headers=(":ID", "id:long"),
        keys=("id",),
        excluded_columns=0,
        rejected_null_key=null_key,
        rejected_duplicate_key=duplicate,
        nodes=nodes,
        ids=(0, nodes - 1),
        sha256="x",
        multiline=False,
    )


def mapping(kind: str, mapping_id: int, rows: int, ledger: MappingLedger) -> RelationshipEntry:
    return RelationshipEntry(
        type=kind,
        mapping_id=mapping_id,
        from_label="Account",
        to_label="Card",
        file=f"relationships/{kind}.{mapping_id}.csv",
        headers=(":START_ID", ":END_ID"),
        relationships=rows,
        orphans={ledger.driving: ledger.orphaned},
        ledger=ledger,
        bytes=10,
        seconds=0.01,
        sha256="y",
        multiline=False,
    )


# 10 accounts read: 8 nodes, 1 NULL key, 1 repeated key. 12 cards, all nodes. HAS_CARD counted
# on the cards' side: 12 read, 1 with a NULL account, 2 whose account is gone, 9 matched.
MANIFEST = Manifest(
    run_id=7,
    control=Control("instance", "etl_control_db"),
    created_at="2026-11-30T00:00:00+00:00",
    mode="bolt",
    neo4j_database="neo4j",
    nodes=(node("Account", 10, 8, null_key=1, duplicate=1), node("Card", 12, 12)),
    tables=(TableEntry("src", "public.links", 5, 50, 0.1),),
    relationships=(
        mapping("HAS_CARD", 1, 9, MappingLedger("to", read=12, rejected=1, orphaned=2, matched=9)),
        # Fan-out: 4 rows matched, one of them twice: 5 relationships.
        mapping("OWNS", 2, 5, MappingLedger("from", read=6, rejected=0, orphaned=2, matched=4)),
    ),
)
WRITTEN = LoadResult({"Account": 8, "Card": 12}, {"HAS_CARD.1": 9, "OWNS.2": 5})


def test_what_the_files_hold_balances() -> None:
    ledger = balance(MANIFEST, None, failed=False)
    assert ledger.balanced, ledger.unbalanced
    assert ledger.nodes == {"Account": 8, "Card": 12}
    assert ledger.relationships == {"HAS_CARD": 9, "OWNS": 5}
    assert (ledger.rows_read, ledger.rows_rejected, ledger.rows_orphaned) == (27, 2, 4)
    rows = {row.get("label") or row["table_name"]: row for row in ledger.rows}
    assert rows["public.links"]["object_kind"] == "table"
    assert rows["Account"]["rows_duplicate"] == 1 and rows["Account"]["rows_rejected"] == 1
    owns = next(r for r in ledger.rows if r.get("relationship_type") == "OWNS")
    assert owns["rows_fanout"] == 1 and owns["ledger_balanced"] is True


def test_a_label_short_of_its_rows_does_not_balance() -> None:
    short = replace(WRITTEN, nodes={"Account": 7, "Card": 12})
    ledger = balance(MANIFEST, short, failed=False)
    assert ledger.unbalanced == [":Account read 10 ≠ written 7 + rejected 1 + duplicate keys 1"]


def test_a_mapping_whose_counts_disagree_does_not_balance() -> None:
    wrong = MappingLedger("to", read=12, rejected=1, orphaned=3, matched=9)
    manifest = replace(
        MANIFEST, relationships=(mapping("HAS_CARD", 1, 9, wrong), MANIFEST.relationships[1])
    )
    ledger = balance(manifest, WRITTEN, failed=False)
    assert ledger.unbalanced == [
        "HAS_CARD #1 read 12 + fan-out 0 ≠ written 9 + rejected 1 + orphaned 3"
    ]


def test_the_graph_must_hold_what_was_written() -> None:
    counted = replace(
        WRITTEN,
        graph_nodes={"Account": 8, "Card": 12},
        graph_relationships={"HAS_CARD": 9, "OWNS": 4},
        created_types=("OWNS",),
    )
    ledger = balance(MANIFEST, counted, failed=False)
    assert ledger.unbalanced == ["[:OWNS] 5 written but the graph holds 4"]
    # A label merged into may hold more than was written; an empty one exactly that.
    merged = replace(counted, graph_nodes={"Account": 9, "Card": 12}, merged_labels=("Account",))
    merged = replace(merged, graph_relationships={"HAS_CARD": 9, "OWNS": 5})
    assert balance(MANIFEST, merged, failed=False).balanced
    exact = replace(merged, merged_labels=())
    assert balance(MANIFEST, exact, failed=False).unbalanced == [
        ":Account read 10 ≠ written 8 + rejected 1 + duplicate keys 1 (graph holds 9)"
    ]


def test_a_failed_load_records_what_it_wrote_without_judging() -> None:
    partial = LoadResult({"Account": 8}, {})
    ledger = balance(MANIFEST, partial, failed=True)
    assert ledger.unbalanced == []
    status = {row.get("label"): row["status"] for row in ledger.rows if row.get("label")}
    assert status["Account"] == "failed" and status["Card"] == "failed"
    assert ledger.nodes == {"Account": 8, "Card": 0}


def test_sync_changes_become_columns() -> None:
    synced = replace(WRITTEN, changes={"Account": {"inserted": 1, "updated": 2, "deleted": 3}})
    ledger = balance(MANIFEST, synced, failed=False)
    account = next(row for row in ledger.rows if row.get("label") == "Account")
    assert (account["rows_inserted"], account["rows_updated"], account["rows_deleted"]) == (1, 2, 3)
