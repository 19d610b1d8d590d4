from __future__ import annotations

import pytest

from bulk360.plan.types import join_family, property_type


@pytest.mark.parametrize(
    ("typname", "category", "element", "neo4j_type", "sql"),
    [
        ("int4", "N", None, "long", '"c" AS "c"'),
        ("int8", "N", None, "long", '"c" AS "c"'),
        ("float8", "N", None, "double", '"c" AS "c"'),
        ("numeric", "N", None, "string", '"c" AS "c"'),
        ("money", "N", None, "string", '"c"::numeric AS "c"'),
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


@pytest.mark.parametrize(
    ("precision", "scale", "neo4j_type"),
    [
        (10, 2, "double"),  # 15 significant digits or fewer: a double holds them exactly
        (15, 5, "double"),
        (16, 2, "string"),  # more: every digit is kept as text
        (38, 10, "string"),
        (12, 0, "long"),  # integers up to 18 digits are longs
        (18, 0, "long"),
        (19, 0, "string"),
        (3, -2, "long"),  # numeric(3, -2) holds integers up to 99,900
        (None, None, "string"),  # unconstrained
    ],
)
def test_numeric_follows_its_declared_precision(
    precision: int | None, scale: int | None, neo4j_type: str
) -> None:
    assert property_type("numeric", "N", None, precision, scale).neo4j_type == neo4j_type
    array = property_type("_numeric", "A", "numeric", precision, scale)
    assert array.neo4j_type == f"{neo4j_type}[]"


def test_an_override_chooses_the_type_and_a_double_counts_rounded_values() -> None:
    double = property_type("numeric", "N", None, 38, 10, override="double")
    assert double.neo4j_type == "double"
    assert [a.kind for a in double.audits] == ["rounded"]
    predicate = double.audits[0].predicate("c").as_string(None)
    assert '"c"::numeric::float8::numeric <> "c"::numeric' in predicate
    text = property_type("timestamptz", "D", None, override="string")
    assert (text.neo4j_type, text.select("c").as_string(None)) == ("string", '"c"::text AS "c"')
    assert property_type("numeric", "N", None, 10, 2).audits == ()


def test_arrays_count_what_neo4j_cannot_hold() -> None:
    kinds = [a.kind for a in property_type("_text", "A", "text").audits]
    assert kinds == ["null_elements", "nested_arrays", "empty_arrays"]
    assert property_type("text", "S", None).audits == ()
