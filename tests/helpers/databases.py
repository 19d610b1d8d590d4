"""Databases the integration tests create: control databases and the type probe."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

from bulk360.apps.samples import load_sample
from bulk360.control import init_schema
from bulk360.settings import Settings

__all__ = [
    "EDGE_VALUE_CHANGES",
    "PROBE_DB",
    "PROBE_SQL",
    "TEST_CONTROL_DB",
    "add_type_probe",
    "recreate_database",
    "sample_control",
]

TEST_CONTROL_DB = "bulk360_test_control"
PROBE_DB = "bulk360_type_probe"


PROBE_SQL = """
CREATE TABLE all_types (
    id integer PRIMARY KEY, small smallint, big bigint, real_value real, double_value double precision,
    exact numeric(10, 3), flag boolean, body text, short varchar(20), code char(4), day date,
    local_moment timestamp, moment timestamptz, clock time, span interval, numbers integer[],
    words text[], uid uuid, doc jsonb, address inet, raw bytea, nothing text
);
INSERT INTO all_types VALUES
    (1, -32768, 9007199254740993, 1.5, 2.718281828459045, 1234.567, true,
     E'She said "hi", then left;\\nline two, café ☕ — 日本', '', '0042', DATE '2024-02-29',
     TIMESTAMP '2024-03-10 02:30:15.123456', TIMESTAMPTZ '2024-03-10 02:30:15.5+02', TIME '23:59:58',
     INTERVAL '1 month 2 days 03:04:05', '{1,2,3}', '{"a","b;c","d,e"}',
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, 2]}', '192.168.0.1', '\\xdeadbeef', NULL),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL);
-- Values Neo4j cannot hold as they are: counted and named by every run, never changed silently.
CREATE TABLE edge_values (
    id integer PRIMARY KEY, wide numeric(38, 10), loose numeric, approx numeric(38, 10),
    cents numeric(6, 2), whole numeric(12, 0), price money, tags text[], grid integer[]
);
INSERT INTO edge_values VALUES
    (1, 99999999999999999999999999.9999999999, 12345678901234567890.5,
     99999999999999999999999999.9999999999, 12.34, 123456789012, 12.5, '{NULL,a,NULL}',
     '{{1,2},{3,4}}'),
    (2, 1.5, 1, 0.5, 0.10, 7, NULL, '{}', '{}'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""
EDGE_VALUE_CHANGES = {
    "tags": {"null_elements": 1, "empty_arrays": 1},
    "grid": {"nested_arrays": 1, "empty_arrays": 1},
    "approx": {"rounded": 1},
}
"""What a run counts in edge_values (``approx`` has a double override)."""


def recreate_database(settings: Settings, database: str) -> None:
    """Drop ``database`` (closing its sessions) and create it empty."""
    with psycopg.connect(**settings.control_conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def add_type_probe(settings: Settings) -> None:
    """The type probe's tables (in :data:`PROBE_DB`, made by the session) as labels of the
    control database of ``settings``."""
    with psycopg.connect(**settings.control_conninfo()) as conn:
        conn.execute(
            "INSERT INTO source_databases (name, db_host, db_port, db_name, db_user, db_password_env)"
            " VALUES ('probe', %s, %s, %s, %s, 'ETL_DB_PASSWORD')",
            [settings.etl_db_host, settings.etl_db_port, PROBE_DB, settings.etl_db_user],
        )
        conn.execute(
            "INSERT INTO node_label_mappings (source_name, table_name, label)"
            " VALUES ('probe', 'all_types', 'TypeProbe'), ('probe', 'edge_values', 'EdgeValue')"
        )
        conn.execute(
            "INSERT INTO column_type_overrides (source_name, table_name, column_name, neo4j_type,"
            " reason) VALUES ('probe', 'edge_values', 'approx', 'double', 'used in arithmetic')"
        )


def sample_control(
    settings: Settings, control_db: str, import_dir: Path, prefix: str = "", *samples: str
) -> Settings:
    """A control database of a test module's own (created anew, its tables made) with
    ``samples`` loaded into source databases named ``<prefix><database>``; settings that point
    at it and ``import_dir``."""
    recreate_database(settings, control_db)
    ours = replace(settings, etl_db_name=control_db, import_dir=import_dir)
    init_schema(ours)
    for sample in samples:
        load_sample(ours, sample, database_prefix=prefix)
    return ours
