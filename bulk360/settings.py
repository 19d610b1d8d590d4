"""Settings, resolved once per command into one frozen object that is passed down.

Order of precedence: values given by the caller (CLI options), then the process environment,
then the ``.env`` file, then the defaults below. No other module reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values, find_dotenv

from bulk360.errors import ConfigError

__all__ = ["Settings", "check_settings_file", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """Everything a bulk360 command needs to know about its surroundings."""

    etl_db_host: str
    """Host of the control database (``ETL_DB_HOST``)."""
    etl_db_port: int
    """Port of the control database (``ETL_DB_PORT``)."""
    etl_db_name: str
    """Name of the control database (``ETL_DB_NAME``), normally ``etl_control_db``."""
    etl_db_user: str
    """Role bulk360 logs into the control database with (``ETL_DB_USER``)."""
    etl_db_password: str = field(repr=False)
    """Password of that role (``ETL_DB_PASSWORD``); never printed."""
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    """Bolt URI of the target (``NEO4J_URI``); ``neo4j+s://`` for Aura."""
    neo4j_username: str = "neo4j"
    """User for the target (``NEO4J_USERNAME``)."""
    neo4j_password: str = field(default="", repr=False)
    """Password for the target (``NEO4J_PASSWORD``); never printed."""
    neo4j_database: str = "neo4j"
    """Database admin mode imports into and bolt mode writes to (``NEO4J_DATABASE``)."""
    neo4j_home: Path = Path(".local/neo4j")
    """Home of a self-hosted Neo4j; admin mode runs ``bin/neo4j-admin`` from it (``NEO4J_HOME``)."""
    import_dir: Path = Path("import")
    """Folder that receives the CSV files and the manifest (``BULK360_IMPORT_DIR``)."""
    cache_dir: Path = Path.home() / ".cache" / "bulk360"
    """Files bulk360 may make again at any time, e.g. neo4j-admin's class-data archive
    (``BULK360_CACHE_DIR``; default ``$XDG_CACHE_HOME/bulk360`` or ``~/.cache/bulk360``)."""
    spark_home: Path = Path(".local/spark")
    """Spark for ``--engine spark`` (``SPARK_HOME``; ``scripts/spark install`` assembles it):
    its ``jars/`` is Spark itself, its ``bulk360-jars/`` the JDBC driver and Neo4j connector."""
    datasets_dir: Path = Path(".local/datasets")
    """Files a sample reads its rows from and bulk360 does not ship, e.g. the MovieLens archive
    (``BULK360_DATASETS_DIR``; ``make datasets`` downloads them)."""
    api_token: str | None = field(default=None, repr=False)
    """The bearer token ``bulk360 serve`` requires when set (``BULK360_API_TOKEN``); never printed."""
    api_cache_seconds: int = 300
    """How long ``bulk360 serve`` may keep a recommendation list it served (changes drop it
    sooner); 0 caches nothing (``BULK360_API_CACHE_SECONDS``)."""
    redis_url: str | None = field(default=None, repr=False)
    """The Redis that holds the API's cache, shared by its workers (``BULK360_REDIS_URL``;
    default: each worker's memory); never printed (it may hold a password)."""
    environment: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The merged environment, used only to resolve a source's ``db_password_env``."""

    @property
    def neo4j_admin(self) -> Path:
        """Path of the ``neo4j-admin`` launcher in ``neo4j_home``."""
        return self.neo4j_home / "bin" / "neo4j-admin"

    def control_conninfo(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` to the control database."""
        return {
            "host": self.etl_db_host,
            "port": self.etl_db_port,
            "dbname": self.etl_db_name,
            "user": self.etl_db_user,
            "password": self.etl_db_password,
            "connect_timeout": 10,
            "application_name": "bulk360",
        }

    def secret(self, variable: str) -> str | None:
        """The value of an environment variable named by a control row, or None."""
        return self.environment.get(variable)


def _cache_dir(merged: Mapping[str, str]) -> Path:
    if merged.get("BULK360_CACHE_DIR"):
        return Path(merged["BULK360_CACHE_DIR"])
    base = merged.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bulk360"


NEO4J_LTS = "5.26.30"
"""The Neo4j LTS release, assembled into ``.local/neo4j``."""
NEO4J_DEFAULT = "2026.08.1"
"""The release ``scripts/services`` assembles unless ``NEO4J_VERSION`` names another."""


def neo4j_version(env_file: Path | None = None) -> str:
    """The Neo4j release chosen for this checkout: ``NEO4J_VERSION`` from the environment, else
    from ``env_file`` (default: the nearest ``.env``), else :data:`NEO4J_DEFAULT`."""
    path = str(env_file) if env_file else find_dotenv(usecwd=True)
    from_file = dotenv_values(path).get("NEO4J_VERSION") if path else None
    return os.environ.get("NEO4J_VERSION") or from_file or NEO4J_DEFAULT


def _neo4j_home(version: str | None) -> str:
    """Where ``scripts/services`` assembles ``version``: the LTS in ``.local/neo4j``, any other
    release in ``.local/neo4j-<version>``."""
    version = version or NEO4J_DEFAULT
    return ".local/neo4j" if version == NEO4J_LTS else f".local/neo4j-{version}"


def _root_of(env_file: str | None) -> Path:
    return Path(env_file).resolve().parent if env_file else Path.cwd()


def check_settings_file(path: Path, named_by: str = "--env-file") -> None:
    """A :class:`ConfigError` unless ``path`` (named by ``named_by``) is a readable text file."""
    try:
        with path.open(encoding="utf-8") as handle:
            handle.read()
    except FileNotFoundError:
        raise ConfigError(f"the settings file {path} ({named_by}) does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"the settings file {path} ({named_by}) is a folder") from None
    except OSError as exc:
        raise ConfigError(
            f"the settings file {path} ({named_by}) cannot be read: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"the settings file {path} ({named_by}) is not UTF-8 text") from None


def load_settings(env_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Resolve the settings from ``overrides``, the environment and a ``.env`` file.

    ``env_file`` defaults to the nearest ``.env`` above the working directory (or
    ``BULK360_ENV_FILE``). Relative paths are taken from the folder of that file.
    """
    named = str(env_file) if env_file else os.environ.get("BULK360_ENV_FILE")
    path = named or find_dotenv(usecwd=True)
    if named:
        # A file someone named must be the one read: never run on whatever else is around.
        check_settings_file(Path(named), "--env-file" if env_file else "BULK360_ENV_FILE")
    file_values = {k: v for k, v in dotenv_values(path).items() if v is not None} if path else {}
    merged: dict[str, str] = {**file_values, **os.environ}
    root = _root_of(path or None)

    def pick(name: str, default: str | None = None) -> str:
        value = merged.get(name, default)
        if value is None or value == "":
            raise ConfigError(f"setting {name} is missing: set it in .env or the environment")
        return value

    def folder(name: str, default: str) -> Path:
        value = Path(merged.get(name) or default)
        return value if value.is_absolute() else root / value

    try:
        port = int(pick("ETL_DB_PORT", "5432"))
    except ValueError:
        raise ConfigError("setting ETL_DB_PORT must be a port number") from None

    try:
        cache_seconds = int(merged.get("BULK360_API_CACHE_SECONDS") or 300)
    except ValueError:
        raise ConfigError("setting BULK360_API_CACHE_SECONDS must be a number of seconds") from None
    if cache_seconds < 0:
        raise ConfigError("setting BULK360_API_CACHE_SECONDS must be 0 or more")

    values: dict[str, Any] = {
        "etl_db_host": pick("ETL_DB_HOST", "127.0.0.1"),
        "etl_db_port": port,
        "etl_db_name": pick("ETL_DB_NAME", "etl_control_db"),
        "etl_db_user": pick("ETL_DB_USER"),
        "etl_db_password": pick("ETL_DB_PASSWORD"),
        "neo4j_uri": pick("NEO4J_URI", "bolt://127.0.0.1:7687"),
        "neo4j_username": pick("NEO4J_USERNAME", "neo4j"),
        "neo4j_password": merged.get("NEO4J_PASSWORD", ""),
        "neo4j_database": pick("NEO4J_DATABASE", "neo4j"),
        "neo4j_home": folder("NEO4J_HOME", _neo4j_home(merged.get("NEO4J_VERSION"))),
        "import_dir": folder("BULK360_IMPORT_DIR", "import"),
        "cache_dir": _cache_dir(merged),
        "spark_home": folder("SPARK_HOME", ".local/spark"),
        "datasets_dir": folder("BULK360_DATASETS_DIR", ".local/datasets"),
        "api_token": merged.get("BULK360_API_TOKEN") or None,
        "api_cache_seconds": cache_seconds,
        "redis_url": merged.get("BULK360_REDIS_URL") or None,
        "environment": merged,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
