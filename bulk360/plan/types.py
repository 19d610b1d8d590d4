"""How a PostgreSQL column becomes a typed Neo4j property.

Every mapped column is formatted by PostgreSQL itself inside the reader's ``COPY (SELECT ...)``,
so that its text is already what ``neo4j-admin`` parses for the header type; Python never
touches the values. The readers' sessions set ``DateStyle=ISO``, ``IntervalStyle=iso_8601`` and
``TimeZone=UTC`` (see :data:`SESSION_SETTINGS`).

| PostgreSQL | Neo4j | how |
|---|---|---|
| smallint, integer, bigint, oid | long | as is |
| real, double precision | double | as is (NaN and Infinity included) |
| numeric(p, s), s <= 0, p - s <= 18 | long | every value is an integer that a long holds |
| numeric(p, s), p <= 15 | double | a double holds 15 significant digits exactly |
| numeric, wider or unconstrained; money | string | every digit kept (``money`` without its currency sign) |
| boolean | boolean | ``true`` / ``false`` |
| text, varchar, char(n), name, citext | string | as is (char(n) keeps its padding and leading zeros) |
| date | date | ISO ``YYYY-MM-DD`` |
| timestamp | localdatetime | ISO with ``T`` |
| timestamptz | datetime | ISO with ``T``, in UTC (``+00``) |
| time / timetz | localtime / time | ISO |
| interval | duration | ISO 8601 (``P1Y2M3DT4H``) |
| uuid, json, jsonb, inet, cidr, macaddr, xml, enums | string | their text form |
| bytea | string | lower-case hex, without ``\\x`` |
| arrays of the above | ``<type>[]`` | elements joined by U+001F |
| anything else | string | its text form |

A ``column_type_overrides`` row chooses ``double`` for a numeric or money column knowingly, or
``string`` for any column (its PostgreSQL text form).

Values Neo4j cannot hold as they are never change silently: each column whose values could change
carries :class:`ValueAudit` predicates, which the reader counts in its snapshot before the COPY;
the run names every count in its summary and ledger, and ``--strict-values`` fails instead:

- ``null_elements``: an array with NULL elements (Neo4j arrays cannot hold NULL): dropped;
- ``nested_arrays``: a multidimensional array: flattened;
- ``empty_arrays``: an empty array, which ``neo4j-admin`` stores as no property from a CSV package
  (bolt mode writes ``[]``, and so does neo4j-admin from a Parquet package);
- ``rounded``: a numeric value under a ``double`` override that a double does not hold exactly;
- ``empty_strings``: an empty string in a Parquet package, which ``neo4j-admin``'s Parquet reader
  stores as no property (counted while the file is written, :mod:`bulk360.package.parquet`).

NULL becomes "no property": ``COPY ... CSV`` writes NULL as an empty unquoted field, which
``neo4j-admin`` skips, while an empty string is written quoted and stays an empty string.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

__all__ = [
    "ARRAY_DELIMITER",
    "OVERRIDE_TYPES",
    "SESSION_SETTINGS",
    "VALUE_CHANGES",
    "PropertyType",
    "ValueAudit",
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
    "numeric": "{c}",
    "timestamp": "replace({c}::text, ' ', 'T')",
    "timestamptz": "replace({c}::text, ' ', 'T')",
    "bytea": "encode({c}, 'hex')",
}

_TEXT_FAMILY = {"text", "varchar", "bpchar", "name", "citext", "char"}
_INTEGER_FAMILY = {"int2", "int4", "int8", "oid"}


# Column types whose Neo4j type a column_type_overrides row may choose.
OVERRIDE_TYPES = ("double", "string")

# What each counted change does to a value, as the summary says it.
VALUE_CHANGES = {
    "null_elements": "had NULL elements: dropped",
    "nested_arrays": "were multidimensional arrays: flattened",
    "empty_arrays": "were empty arrays: stored as no property (neo4j-admin cannot store one)",
    "rounded": "do not fit a double exactly: rounded",
    "empty_strings": "were empty strings: stored as no property (neo4j-admin's Parquet reader "
    "cannot store one)",
}

# A numeric a double does not hold as it is: more than 15 significant digits, or out of range.
_NOT_A_DOUBLE = (
    "CASE WHEN {c}::text IN ('NaN', 'Infinity', '-Infinity') THEN false"
    " WHEN abs({c}) >= 1e308 OR (abs({c}) < 1e-307 AND {c} <> 0) THEN true"
    " ELSE {c}::float8::numeric <> {c} END"
)
_ARRAY_AUDITS = (
    ("null_elements", "array_to_string({c}, ',', '*') <> array_to_string({c}, ',')"),
    ("nested_arrays", "array_ndims({c}) > 1"),
    ("empty_arrays", "cardinality({c}) = 0"),
)


@dataclass(frozen=True)
class ValueAudit:
    """Values of a column that Neo4j cannot hold as they are, and how to count them in SQL."""

    kind: str
    """A key of :data:`VALUE_CHANGES`."""
    predicate_template: str
    """A boolean SQL expression over ``{c}``, the quoted column."""

    def predicate(self, column: str) -> sql.Composable:
        """The predicate for ``column``."""
        return sql.SQL(self.predicate_template.format(c=sql.Identifier(column).as_string(None)))


@dataclass(frozen=True)
class PropertyType:
    """The Neo4j header type of a column, the SQL that formats it, and what to count."""

    neo4j_type: str
    select_template: str
    audits: tuple[ValueAudit, ...] = ()

    def expression(self, column: str) -> sql.Composable:
        """The SQL expression that formats ``column``'s value."""
        return sql.SQL(self.select_template.format(c=sql.Identifier(column).as_string(None)))

    def select(self, column: str) -> sql.Composable:
        """The SELECT expression for ``column``, named after the column."""
        return sql.SQL("{} AS {}").format(self.expression(column), sql.Identifier(column))


def _numeric(precision: int | None, scale: int | None) -> str:
    """The Neo4j type that holds every value of ``numeric(precision, scale)`` exactly."""
    if precision is None or scale is None:
        return "string"
    if scale <= 0 and precision - scale <= 18:
        return "long"
    return "double" if precision <= 15 else "string"


def property_type(
    typname: str,
    category: str,
    element: str | None,
    precision: int | None = None,
    scale: int | None = None,
    override: str | None = None,
) -> PropertyType:
    """Map a column's catalog type (``pg_type.typname``, ``typcategory``, array element).

    ``precision`` and ``scale`` are a numeric column's declared ones; ``override`` is the
    ``neo4j_type`` of its ``column_type_overrides`` row, checked by the plan.
    """
    if override == "string":
        template = "{c}::numeric::text" if typname == "money" else "{c}::text"
        return PropertyType("string", template)
    if override == "double":
        rounded = ValueAudit("rounded", _NOT_A_DOUBLE.replace("{c}", "{c}::numeric"))
        return PropertyType("double", _FORMATS.get(typname, "{c}"), (rounded,))
    if category == "A" and element:
        inner = _numeric(precision, scale) if element == "numeric" else None
        inner = inner or _SCALARS.get(element, "string")
        source = "{c}::text[]" if element == "bool" else "{c}"
        joined = f"array_to_string({source}, E'\\x1f')"
        if element in {"timestamp", "timestamptz"}:
            joined = f"replace({joined}, ' ', 'T')"
        if element == "bytea":
            inner, joined = "string", "array_to_string({c}::text[], E'\\x1f')"
        audits = tuple(ValueAudit(kind, predicate) for kind, predicate in _ARRAY_AUDITS)
        return PropertyType(f"{inner}[]", joined, audits)
    if typname == "numeric":
        return PropertyType(_numeric(precision, scale), "{c}")
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
