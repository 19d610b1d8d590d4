"""What a run tells the API's cache: the keys it touched, within PostgreSQL's payload limit."""

from __future__ import annotations

import json

import polars as pl

from bulk360.control.notify import MAX_PAYLOAD, payload
from bulk360.load.writer import MAX_TOUCHED, DriverWriter


def test_keys_are_named_while_they_fit_then_their_label_is() -> None:
    few = json.loads(payload("graph", {"Customer": frozenset({"7", "3"}), "Order": None}))
    assert few == {"kind": "graph", "labels": {"Customer": ["3", "7"], "Order": None}}

    many = {str(n) for n in range(5000)}
    text = payload("graph", {"Customer": frozenset(many), "Product": frozenset({"1"})})
    assert len(text.encode()) <= MAX_PAYLOAD
    assert json.loads(text)["labels"] == {"Customer": None, "Product": ["1"]}

    labels = {f"Label{n:04}" + "x" * 60: None for n in range(200)}
    assert json.loads(payload("graph", labels)) == {"kind": "graph", "labels": None}
    assert json.loads(payload("recommendations")) == {"kind": "recommendations", "labels": None}


def test_the_writer_remembers_relationship_ends_and_deleted_labels() -> None:
    writer = DriverWriter(None, "neo4j", 10, 1, None)  # type: ignore[arg-type]
    writer.touch("Customer", pl.DataFrame({"id": [1, 2, None]}))
    writer.touch("Customer", pl.DataFrame({"id": [2, 5]}))
    writer.touch("Order", pl.DataFrame({"a": [1], "b": [2]}))  # a key of two columns
    writer.touch("Product", pl.DataFrame({"id": list(range(MAX_TOUCHED + 1))}))
    assert writer.take_touched() == {
        "Customer": frozenset({"1", "2", "5"}),
        "Order": None,
        "Product": None,
    }
    assert writer.take_touched() == {}
    writer.touch("Customer")
    writer.touch("Customer", pl.DataFrame({"id": [9]}))
    assert writer.take_touched() == {"Customer": None}
