"""How a PostgreSQL column becomes a typed Neo4j property.

Every mapped column is formatted by PostgreSQL itself inside the reader's ``COPY (SELECT ...)``,
so that its text is already what ``neo4j-admin`` parses for the header type; Python never
touches the values. The readers' sessions set ``DateStyle=ISO``, ``IntervalStyle=iso_8601`` and
``TimeZone=UTC`` (see :data:`SESSION_SETTINGS`).

| PostgreSQL | Neo4j | how |
|---|---|---|
| smallint, integer, bigint, oid | long | as is |
| real, double precision | double | as is (NaN and Infinity included) |
| numeric, money | double | Neo4j has no decimal type; exact text would lose arithmetic |
| boolean | boolean | ``true`` / ``false`` |
| text, varchar, char(n), name, citext | string | as is (char(n) keeps its padding and leading zeros) |
| date | date | ISO ``YYYY-MM-DD`` |
| timestamp | localdatetime | ISO with ``T`` |
| timestamptz | datetime | ISO with ``T``, in UTC (``+00``) |
| time / timetz | localtime / time | ISO |
| interval | duration | ISO 8601 (``P1Y2M3DT4H``) |
| uuid, json, jsonb, inet, cidr, macaddr, xml, enums | string | their text form |
| bytea | string | lower-case hex, without ``\\x`` |
| arrays of the above | ``<type>[]`` | elements joined by U+001F; NULL elements are dropped |
| anything else | string | its text form |

NULL becomes "no property": ``COPY ... CSV`` writes NULL as an empty unquoted field, which
``neo4j-admin`` skips, while an empty string is written quoted and stays an empty string.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

__all__ = [
    "ARRAY_DELIMITER",
    "SESSION_SETTINGS",
    "PropertyType",
    "join_family",
    "property_type",
]

# Between array elements; a control character, so it cannot clash with ordinary text.
ARRAY_DELIMITER = "\x1f"

# Session settings of every reader, which the formats below rely on.
SESSION_SETTINGS = {
    "DateStyle": "ISO,YMD",
    "IntervalStyle": "iso_8601",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}

_SCALARS: dict[str, str] = {
    "int2": "long",
    "int4": "long",
    "int8": "long",
    "oid": "long",
    "float4": "double",
    "float8": "double",
    "numeric": "double",
    "money": "double",
    "bool": "boolean",
    "date": "date",
    "timestamp": "localdatetime",
    "timestamptz": "datetime",
    "time": "localtime",
    "timetz": "time",
    "interval": "duration",
}

# Types whose text form needs a change before Neo4j parses it; {c} is the quoted column.
_FORMATS: dict[str, str] = {
    "bool": "{c}::text",
    "money": "{c}::numeric",
    "timestamp": "replace({c}::text, ' ', 'T')",
    "timestamptz": "replace({c}::text, ' ', 'T')",
    "bytea": "encode({c}, 'hex')",
}

_TEXT_FAMILY = {"text", "varchar", "bpchar", "name", "citext", "char"}
_INTEGER_FAMILY = {"int2", "int4", "int8", "oid"}


@dataclass(frozen=True)
class PropertyType:
    """The Neo4j header type of a column and the SQL that formats it for that type."""

    neo4j_type: str
    select_template: str

    def select(self, column: str) -> sql.Composable:
        """The SELECT expression for ``column``, named after the column."""
        expression = self.select_template.format(c=sql.Identifier(column).as_string(None))
        return sql.SQL("{} AS {}").format(sql.SQL(expression), sql.Identifier(column))


def property_type(typname: str, category: str, element: str | None) -> PropertyType:
    """Map a column's catalog type (``pg_type.typname``, ``typcategory``, array element)."""
    if category == "A" and element:
        inner = _SCALARS.get(element, "string")
        source = "{c}::text[]" if element == "bool" else "{c}"
        joined = f"array_to_string({source}, E'\\x1f')"
        if element in {"timestamp", "timestamptz"}:
            joined = f"replace({joined}, ' ', 'T')"
        if element == "bytea":
            inner, joined = "string", "array_to_string({c}::text[], E'\\x1f')"
        return PropertyType(f"{inner}[]", joined)
    neo4j_type = _SCALARS.get(typname, "string")
    # COPY writes every other type in its own output format, already what Neo4j should get
    # (``inet::text`` would add a /32 that the output format leaves out).
    template = _FORMATS.get(typname, "{c}")
    return PropertyType(neo4j_type, template)


def join_family(typname: str, category: str) -> str | None:
    """Types whose values compare equal as text; None for types that cannot be join keys."""
    if category == "A":
        return None
    if typname in _INTEGER_FAMILY:
        return "integer"
    if typname in _TEXT_FAMILY:
        return "text"
    if typname in {"float4", "float8"}:
        return "float"
    return typname
