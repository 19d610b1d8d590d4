"""Parquet package files: typed columns made from a package's CSV file, read back as its text."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from bulk360.package.files import scan
from bulk360.package.parquet import to_parquet

HEADERS = [
    ":ID",
    "n:long",
    "x:double",
    "ok:boolean",
    "s:string",
    "at:datetime",
    "tags:string[]",
    "nums:long[]",
    "flags:boolean[]",
]
ROWS = (
    '0,-9007199254740993,0.1,true,"She said ""hi"",\nthen left ☕",2024-03-10T00:30:15.5+00,'
    '"a\x1fb;c","1\x1f2","true\x1ffalse"\n'
    '1,,NaN,false,"",,"","",""\n'
    "2,7,-Infinity,,,,,,\n"
    '3,0,1e+26,true,x,2024-02-29T23:59:59-05,"é\x1f","-1","false"\n'
)


def package_file(tmp_path: Path) -> Path:
    path = tmp_path / "Probe.csv"
    path.write_text(",".join(HEADERS) + "\n" + ROWS, encoding="utf-8")
    return path


def test_columns_are_typed_and_read_back_as_the_csv_text(tmp_path: Path) -> None:
    csv = package_file(tmp_path)
    text = scan(csv).collect()
    converted = to_parquet(csv, HEADERS)
    assert converted.path == tmp_path / "Probe.parquet" and not csv.exists()
    schema = pl.read_parquet_schema(converted.path)
    assert list(schema) == HEADERS
    assert (schema[":ID"], schema["n:long"], schema["x:double"]) == (pl.Int64, pl.Int64, pl.Float64)
    assert schema["ok:boolean"] == pl.Boolean and schema["at:datetime"] == pl.String
    assert schema["nums:long[]"] == pl.List(pl.Int64)
    assert schema["flags:boolean[]"] == pl.List(pl.Boolean)
    typed = pl.read_parquet(converted.path)
    assert typed["n:long"].to_list() == [-9007199254740993, None, 7, 0]
    assert typed["tags:string[]"].to_list() == [["a", "b;c"], [], None, ["é", ""]]
    assert typed["flags:boolean[]"].to_list() == [[True, False], [], None, [False]]
    back = scan(converted.path).collect()
    # Doubles come back as other text for the same double (0.1, NaN, -inf, 1e+26).
    assert back.drop("x:double").equals(text.drop("x:double"))
    assert back["x:double"].cast(pl.Float64).equals(text["x:double"].cast(pl.Float64))


def test_empty_strings_are_counted_per_string_column(tmp_path: Path) -> None:
    converted = to_parquet(package_file(tmp_path), HEADERS)
    assert converted.empty_strings == {"s:string": 1}
    assert converted.bytes == converted.path.stat().st_size and len(converted.sha256) == 64
