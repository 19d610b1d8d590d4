"""Sample datasets under ``sql/samples/<name>/``, loaded into the control database's server.

A sample folder holds ``<database>.sql`` for each source database (each is dropped and created
again), an optional ``common.sql`` run first in each of them, and ``control.sql`` with the
control rows, which reads the connection of the sources from a temporary table
``sample_target(host, port, db_user)``.

A sample made of data bulk360 does not ship also has ``dataset.toml``: the archive its raw rows
are read from (in ``BULK360_DATASETS_DIR``, checked against its SHA-256) and the temporary table
each member of the archive fills, as text columns, before the sample's scripts run.
"""

from __future__ import annotations

import hashlib
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bulk360.control import connect_control, init_schema, sql_dir
from bulk360.errors import ConfigError, SourceError
from bulk360.settings import Settings

__all__ = [
    "SampleLoad",
    "available_samples",
    "load_sample",
    "scale_multiplier",
    "write_sample_rows",
]


@dataclass(frozen=True)
class SampleLoad:
    """What loading a sample created."""

    name: str
    databases: dict[str, dict[str, int]]
    """Rows per table of each database created."""


def available_samples() -> list[str]:
    return sorted(p.name for p in (sql_dir() / "samples").iterdir() if (p / "control.sql").exists())


def _folder(name: str) -> Path:
    folder = sql_dir() / "samples" / name
    if not (folder / "control.sql").exists():
        raise ConfigError(f"no sample called '{name}'; samples: {', '.join(available_samples())}")
    return folder


def _row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    tables = conn.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY relname"
    ).fetchall()
    counts = {}
    for (table,) in tables:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def scale_multiplier(scale: float | None) -> int:
    """How many times the sample's rows a scale factor means (scale 1 is 100 times the sample)."""
    if scale is None:
        return 1
    if scale <= 0:
        raise ConfigError(f"--scale must be positive, not {scale}")
    return max(1, round(scale * 100))


def read_dataset(settings: Settings, folder: Path) -> dict[str, bytes]:
    """The raw rows a sample's ``dataset.toml`` names, by temporary table (none without one)."""
    spec_file = folder / "dataset.toml"
    if not spec_file.exists():
        return {}
    spec = tomllib.loads(spec_file.read_text())
    path = settings.datasets_dir / spec["file"]
    where, fetch = f"sample {folder.name}", f"fetch it with `{spec['fetch']}`"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: the dataset file {path} is missing; {fetch}") from None
    except OSError as exc:
        raise ConfigError(
            f"{where}: the dataset file {path} cannot be read: {exc.strerror}"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec["sha256"]:
        raise ConfigError(
            f"{where}: {path} is not the dataset file expected (SHA-256 {digest[:16]}, "
            f"not {spec['sha256'][:16]}); {fetch} again"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            return {table: archive.read(member) for table, member in spec["tables"].items()}
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ConfigError(f"{where}: {path} does not hold the sample's files ({exc})") from None


def _stage(conn: psycopg.Connection[Any], tables: dict[str, bytes]) -> None:
    """Each raw file into a temporary table of text columns named by its ``name:type`` header."""
    for table, data in tables.items():
        header = data.split(b"\n", 1)[0].decode().rstrip("\r").split("\t")
        columns = [sql.Identifier(name.partition(":")[0]) for name in header]
        conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
                sql.Identifier(table),
                sql.SQL(", ").join(sql.SQL("{} text").format(c) for c in columns),
            )
        )
        # Tab-separated, no quoting (a byte the files never hold stands for the quote).
        copy = sql.SQL(
            "COPY {} FROM STDIN (FORMAT csv, DELIMITER E'\\t', HEADER true, QUOTE E'\\x01')"
        ).format(sql.Identifier(table))
        with conn.cursor().copy(copy) as writer:
            writer.write(data)


def _create_database(
    settings: Settings,
    folder: Path,
    script: Path,
    database: str,
    multiplier: int,
    dataset: dict[str, bytes],
) -> dict[str, int]:
    with connect_control(settings) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    common = folder / "common.sql"
    conninfo = {**settings.control_conninfo(), "dbname": database}
    try:
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            conn.execute("SELECT set_config('bulk360.sample_scale', %s, false)", [str(multiplier)])
            with conn.transaction():
                _stage(conn, dataset)
                if common.exists():
                    conn.execute(common.read_text())
                conn.execute(script.read_text())
            conn.execute("ANALYZE")
            return _row_counts(conn)
    except psycopg.Error as exc:
        raise SourceError(
            f"sample {folder.name}: {script.name} failed in {database}: "
            f"{exc.diag.message_primary or exc}"
        ) from None


def load_sample(
    settings: Settings, name: str, scale: float | None = None, database_prefix: str = ""
) -> SampleLoad:
    """Create the sample's databases, fill them, and write its control rows.

    ``scale`` multiplies the sample's rows (None: the sample as shipped; 1: about a million rows
    in all, generated by PostgreSQL itself); the databases are filled in parallel.
    ``database_prefix`` names the databases ``<prefix><database>`` (the benchmark's own copies).
    """
    folder = _folder(name)
    multiplier = scale_multiplier(scale)
    # Read before any database is dropped: a missing dataset file costs nothing.
    dataset = read_dataset(settings, folder)
    if dataset and scale is not None:
        raise ConfigError(f"sample {name} is a real dataset as it was published: it has no --scale")
    init_schema(settings)
    scripts = [
        p for p in sorted(folder.glob("*.sql")) if p.name not in {"common.sql", "control.sql"}
    ]
    with ThreadPoolExecutor(len(scripts) or 1) as pool:
        jobs = {
            database_prefix + script.stem: pool.submit(
                _create_database,
                settings,
                folder,
                script,
                database_prefix + script.stem,
                multiplier,
                dataset,
            )
            for script in scripts
        }
        created = {database: job.result() for database, job in jobs.items()}
    write_sample_rows(settings, name, database_prefix)
    return SampleLoad(name, created)


def write_sample_rows(settings: Settings, name: str, database_prefix: str = "") -> None:
    """Write the sample's control rows (its ``control.sql``), for databases already created;
    the sample's rows are replaced, the others stay."""
    folder = _folder(name)
    with connect_control(settings) as conn, conn.transaction():
        conn.execute(
            "CREATE TEMPORARY TABLE sample_target ON COMMIT DROP AS"
            " SELECT %s::text AS host, %s::integer AS port, %s::text AS db_user,"
            " %s::text AS db_prefix",
            [settings.etl_db_host, settings.etl_db_port, settings.etl_db_user, database_prefix],
        )
        conn.execute((folder / "control.sql").read_text())
