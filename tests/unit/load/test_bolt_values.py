"""How bolt mode turns the text of a header-typed file into driver values and Cypher."""

from __future__ import annotations

import polars as pl

from bulk360.graph import quoted
from bulk360.package.files import Field


def parsed(header: str, *values: str | None) -> list[object]:
    field = Field.of(header)
    frame = pl.DataFrame({header: list(values)}, schema={header: pl.String})
    return frame.select(field.parse(pl.col(header))).to_series().to_list()


def test_scalars_are_parsed_by_their_header_type() -> None:
    assert parsed("n:long", "9007199254740993", None) == [9007199254740993, None]
    assert parsed("x:double", "1.5", "NaN", "-Infinity")[0] == 1.5
    assert parsed("flag:boolean", "true", "false", None) == [True, False, None]
    assert parsed("s:string", "", None, "a,b") == ["", None, "a,b"]


def test_arrays_split_on_the_array_delimiter() -> None:
    assert parsed("ns:long[]", "1\x1f2\x1f3", "", None) == [[1, 2, 3], [], None]
    assert parsed("ws:string[]", "a\x1fb;c") == [["a", "b;c"]]
    assert parsed("bs:boolean[]", "true\x1ffalse", "") == [[True, False], []]
    assert parsed("ws:string[]", "\x1fa", "") == [["", "a"], []]


def test_temporal_values_are_parsed_by_the_server() -> None:
    assert parsed("d:date", "2024-02-29") == ["2024-02-29"]
    assert Field.of("d:date").cypher("r[1]") == "date(r[1])"
    assert Field.of("ds:datetime[]").cypher("r[2]") == "[v IN r[2] | datetime(v)]"
    assert Field.of("n:long").cypher("r[0]") == "r[0]"
    assert Field.of("weird:name:duration").name == "weird:name"


def test_names_are_backtick_quoted() -> None:
    assert quoted("Account") == "`Account`"
    assert quoted("odd`name") == "`odd``name`"
