from __future__ import annotations

import pytest

from bulk360.types import join_family, property_type


@pytest.mark.parametrize(
    ("typname", "category", "element", "neo4j_type", "sql"),
    [
        ("int4", "N", None, "long", '"c" AS "c"'),
        ("int8", "N", None, "long", '"c" AS "c"'),
        ("float8", "N", None, "double", '"c" AS "c"'),
        ("numeric", "N", None, "double", '"c" AS "c"'),
        ("bool", "B", None, "boolean", '"c"::text AS "c"'),
        ("bpchar", "S", None, "string", '"c" AS "c"'),
        ("date", "D", None, "date", '"c" AS "c"'),
        ("timestamp", "D", None, "localdatetime", "replace(\"c\"::text, ' ', 'T') AS \"c\""),
        ("timestamptz", "D", None, "datetime", "replace(\"c\"::text, ' ', 'T') AS \"c\""),
        ("time", "D", None, "localtime", '"c" AS "c"'),
        ("interval", "T", None, "duration", '"c" AS "c"'),
        ("uuid", "U", None, "string", '"c" AS "c"'),
        ("jsonb", "U", None, "string", '"c" AS "c"'),
        ("inet", "I", None, "string", '"c" AS "c"'),
        ("bytea", "U", None, "string", 'encode("c", \'hex\') AS "c"'),
        ("_int4", "A", "int4", "long[]", 'array_to_string("c", E\'\\x1f\') AS "c"'),
        ("_bool", "A", "bool", "boolean[]", 'array_to_string("c"::text[], E\'\\x1f\') AS "c"'),
        ("tsvector", "U", None, "string", '"c" AS "c"'),
    ],
)
def test_property_types(
    typname: str, category: str, element: str | None, neo4j_type: str, sql: str
) -> None:
    kind = property_type(typname, category, element)
    assert kind.neo4j_type == neo4j_type
    assert kind.select("c").as_string(None) == sql


def test_join_families() -> None:
    assert join_family("int4", "N") == join_family("int8", "N") == "integer"
    assert join_family("varchar", "S") == join_family("text", "S") == "text"
    assert join_family("int4", "N") != join_family("text", "S")
    assert join_family("_int4", "A") is None
