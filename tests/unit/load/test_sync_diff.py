"""Sync's comparison of two runs' files, by key and row hash, without a database."""

from __future__ import annotations

from pathlib import Path

from bulk360.load.diff import diff_mapping, diff_nodes
from bulk360.package.files import NodeFile, RelationshipFile

PEOPLE = [":ID", "id:long", "name:string", "born:date"]


def node_file(folder: Path, name: str, headers: list[str], *rows: str) -> NodeFile:
    path = folder / f"{name}.csv"
    path.write_text(",".join(headers) + "\n" + "".join(f"{row}\n" for row in rows))
    return NodeFile(name.split("-")[0], path, headers, ["id"])


def test_nodes_inserted_updated_and_deleted_by_key(tmp_path: Path) -> None:
    # Every run numbers nodes anew: the ids differ, the keys decide.
    old = node_file(tmp_path, "Person-old", PEOPLE, "0,1,Ada,1815-12-10", "1,2,Alan,", "2,3,Grace,")
    new = node_file(
        tmp_path, "Person-new", PEOPLE, "7,2,Alan,1912-06-23", "8,1,Ada,1815-12-10", "9,4,Linus,"
    )
    diff = diff_nodes(old, new)
    assert (diff.inserted, diff.updated, diff.deleted) == (1, 1, 1)
    assert sorted(diff.upserts[0][1].rows()) == [(2, "Alan", "1912-06-23"), (4, "Linus", None)]
    assert diff.deletes.rows() == [(3,)]
    assert diff.removed_properties == () and not diff.rebuilt


def test_a_value_that_became_null_is_an_update(tmp_path: Path) -> None:
    old = node_file(tmp_path, "Person-old", PEOPLE, "0,1,Ada,1815-12-10", '1,2,"",')
    new = node_file(tmp_path, "Person-new", PEOPLE, "0,1,Ada,", "1,2,,")
    diff = diff_nodes(old, new)
    # born became NULL for 1; name went from "" (an empty string) to NULL for 2.
    assert (diff.inserted, diff.updated, diff.deleted) == (0, 2, 0)
    assert sorted(diff.upserts[0][1].rows()) == [(1, "Ada", None), (2, None, None)]


def test_a_column_gone_updates_every_row_and_is_removed(tmp_path: Path) -> None:
    old = node_file(tmp_path, "Person-old", PEOPLE, "0,1,Ada,1815-12-10", "1,2,Alan,")
    new = node_file(tmp_path, "Person-new", PEOPLE[:3], "0,1,Ada", "1,2,Alan")
    diff = diff_nodes(old, new)
    assert (diff.inserted, diff.updated, diff.deleted) == (0, 2, 0)
    assert diff.removed_properties == ("born",)


def test_a_label_added_or_gone(tmp_path: Path) -> None:
    spec = node_file(tmp_path, "Person-new", PEOPLE, "0,1,Ada,", "1,2,Alan,")
    added = diff_nodes(None, spec)
    assert (added.inserted, added.deleted) == (2, 0)
    gone = diff_nodes(spec, None)
    assert (gone.inserted, gone.deleted) == (0, 2) and gone.node is None


def test_relationships_compare_as_multisets_of_pairs(tmp_path: Path) -> None:
    people_old = node_file(tmp_path, "Person-old", PEOPLE, "0,1,Ada,", "1,2,Alan,", "2,3,Grace,")
    people_new = node_file(tmp_path, "Person-new", PEOPLE, "5,1,Ada,", "6,2,Alan,", "7,3,Grace,")
    headers = [":START_ID", ":END_ID", "since:long"]

    def rels(name: str, start: NodeFile, *rows: str) -> RelationshipFile:
        path = tmp_path / f"{name}.csv"
        path.write_text(",".join(headers) + "\n" + "".join(f"{row}\n" for row in rows))
        return RelationshipFile("KNOWS.1", "KNOWS", start, start, path, headers)

    # Ada knows Alan twice (a repeated pair), Alan knows Grace since 1950.
    old = rels("old", people_old, "0,1,1936", "0,1,1936", "1,2,1950")
    # One of the repeated pair is gone, Alan-Grace changed, Grace-Ada is new.
    new = rels("new", people_new, "5,6,1936", "6,7,1951", "7,5,")
    diff = diff_mapping(old, new)
    assert (diff.added, diff.removed) == (2, 2)
    replaced = {(r[0], r[1]): r[2] for r in diff.replace.rows()}
    assert replaced == {
        (1, 2): [{"p0": 1936}],  # the pair keeps one relationship
        (2, 3): [{"p0": 1951}],
        (3, 1): [{"p0": None}],
    }
    assert diff_mapping(new, new).replace.height == 0
