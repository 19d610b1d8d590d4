"""The Spark session of the Spark engine: its master, its settings and its jars, all local files.

PySpark (the ``spark`` extra) starts Spark from ``SPARK_HOME``; ``scripts/spark install`` builds
one from Maven Central: Spark 3.5 for Scala 2.13 in ``jars/``, pyspark's own ``bin/``, and in
``bulk360-jars/`` what bulk360 hands to Spark as ``spark.jars`` (the PostgreSQL JDBC driver, the
Neo4j connector and its dependencies). Spark ships those to the executors of a cluster itself;
nothing is downloaded at run time. One session serves a whole process (a test session too).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from bulk360.errors import ConfigError, one_line
from bulk360.settings import Settings

__all__ = ["JDBC_DRIVER", "first_line", "parse_conf", "spark_session"]

JDBC_DRIVER = "org.postgresql.Driver"

# Settings bulk360 chooses unless the user's --spark-conf does.
_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # Small shuffles for the joins; a cluster user sets their own.
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
}


def parse_conf(items: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` items as a dict; a malformed item is a :class:`ConfigError`."""
    conf: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key.startswith("spark.") or not value.strip():
            raise ConfigError(
                f"--spark-conf '{key if equals else item}': expected spark.<name>=<value>"
            )
        conf[key] = value.strip()
    return conf


def _jars(settings: Settings) -> list[Path]:
    home = settings.spark_home
    if not (home / "jars").is_dir() or not (home / "bin").exists():
        raise ConfigError(
            f"Spark is not installed in {home} (SPARK_HOME): run scripts/spark install"
        )
    jars = sorted((home / "bulk360-jars").glob("*.jar"))
    if not any(j.name.startswith("postgresql-") for j in jars):
        raise ConfigError(
            f"the PostgreSQL JDBC driver is missing from {home / 'bulk360-jars'}: "
            "run scripts/spark install"
        )
    return jars


def spark_session(settings: Settings, master: str, conf: dict[str, str]) -> Any:
    """The process's Spark session, started with ``master`` and ``conf`` if none runs yet."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "--engine spark needs PySpark: pip install 'bulk360[spark]' (make setup does)"
        ) from None
    jars = _jars(settings)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ["SPARK_HOME"] = str(settings.spark_home)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # nothing listens beyond loopback
    # Python workers run this interpreter, which has pyspark (and bulk360) installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("bulk360")
    for key, value in {**_DEFAULTS, **conf}.items():
        builder = builder.config(key, value)
    extra = conf.get("spark.jars")
    builder = builder.config(
        "spark.jars", ",".join([*(str(j) for j in jars), *([extra] if extra else [])])
    )
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise ConfigError(f"Spark did not start (master {master}): {first_line(exc)}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def first_line(exc: BaseException) -> str:
    """The Java exception's own message when there is one, else the Python one, on one line."""
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            cause = java
            while cause.getCause() is not None:
                cause = cause.getCause()
            text = str(cause.toString())
        except Exception:
            text = str(java)
        return one_line(Exception(text))
    return one_line(exc)
