"""The change set's comparison of relationships (sync's and follow's), against a plain-Python
reference: relationships as multisets of (start key, end key, properties); every pair whose
relationships differ, and only those, is replaced by exactly its new relationships, and the
counts of added and removed relationships are the multisets' differences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk360.load.changeset import ChangeSet, NodeChanges, differing_pairs, pair_changes
from bulk360.package.files import NodeFile, RelationshipFile

PERSON = NodeFile("Person", Path("person.csv"), [":ID", "id:long"], ["id"])
KNOWS = RelationshipFile(
    "KNOWS.1", "KNOWS", PERSON, PERSON, Path("knows.csv"), [":START_ID", ":END_ID", "since:long"]
)
BARE = RelationshipFile("MET.2", "MET", PERSON, PERSON, Path("met.csv"), [":START_ID", ":END_ID"])

Relationship = tuple[int, int, int | None]
relationships = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.sampled_from([None, 1936, 1950])),
    max_size=8,
)


def frame(rows: list[Relationship], file: RelationshipFile) -> pl.LazyFrame:
    """Relationships as the change set compares them: key values and properties as text."""
    columns: dict[str, Any] = {
        "s0": [str(s) for s, _, _ in rows],
        "e0": [str(e) for _, e, _ in rows],
    }
    if file.fields:
        columns["since:long"] = [None if p is None else str(p) for _, _, p in rows]
    return pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String)).lazy()


def reference(
    old: list[Relationship], new: list[Relationship], with_properties: bool
) -> tuple[dict[tuple[int, int], Counter[Any]], int, int]:
    """Pairs whose relationships differ, each with its new multiset; added; removed."""

    def of(rows: list[Relationship]) -> dict[tuple[int, int], Counter[Any]]:
        found: dict[tuple[int, int], Counter[Any]] = {}
        for s, e, p in rows:
            found.setdefault((s, e), Counter())[p if with_properties else None] += 1
        return found

    before, after = of(old), of(new)
    differing = {
        pair: after.get(pair, Counter())
        for pair in before.keys() | after.keys()
        if before.get(pair, Counter()) != after.get(pair, Counter())
    }
    every_old = Counter((s, e, p if with_properties else None) for s, e, p in old)
    every_new = Counter((s, e, p if with_properties else None) for s, e, p in new)
    return differing, sum((every_new - every_old).values()), sum((every_old - every_new).values())


@settings(max_examples=300, deadline=None)
@given(relationships, relationships, st.booleans())
def test_pairs_replaced_are_exactly_those_whose_relationships_differ(
    old: list[Relationship], new: list[Relationship], with_properties: bool
) -> None:
    file = KNOWS if with_properties else BARE
    changes = pair_changes(file.name, file, frame(old, file), frame(new, file))
    differing, added, removed = reference(old, new, with_properties)
    assert (changes.added, changes.removed) == (added, removed)
    replaced = {}
    for s0, e0, listed in changes.replace.iter_rows():
        assert (s0, e0) not in replaced  # each pair once
        replaced[(s0, e0)] = Counter(p["p0"] if with_properties else None for p in listed)
    assert replaced == differing
    # Applied to the old graph, the replacements give the new one.
    graph = Counter((s, e, p if with_properties else None) for s, e, p in old)
    for (s, e), now in replaced.items():
        for key in [k for k in graph if k[:2] == (s, e)]:
            del graph[key]
        for p, count in now.items():
            graph[(s, e, p)] += count
    assert graph == Counter((s, e, p if with_properties else None) for s, e, p in new)


def test_equal_sides_change_nothing() -> None:
    rows: list[Relationship] = [(1, 2, 1936), (1, 2, 1936), (2, 3, None)]
    touched, added, removed = differing_pairs(KNOWS, frame(rows, KNOWS), frame(rows[::-1], KNOWS))
    assert (touched.height, added, removed) == (0, 0, 0)
    empty = ChangeSet(
        nodes={"Person": NodeChanges("Person", PERSON, (), pl.DataFrame(), PERSON, 0, 0)}
    )
    assert not empty.changed and empty.tasks() == {}
