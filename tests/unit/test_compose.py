"""docker-compose.yml cannot run here (no Docker engine); it must agree with .env.example."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def env_example() -> dict[str, str]:
    return {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}


def published_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(port).rsplit(":", 2)[-2]) for port in service["ports"]}


def test_postgres_service_matches_env_example() -> None:
    env, postgres = env_example(), compose()["services"]["postgres"]
    assert int(env["ETL_DB_PORT"]) in published_ports(postgres)
    assert postgres["environment"]["POSTGRES_USER"] == env["ETL_DB_USER"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == env["ETL_DB_PASSWORD"]
    assert postgres["environment"]["POSTGRES_DB"] == env["ETL_DB_NAME"]
    assert "healthcheck" in postgres


def test_neo4j_service_matches_env_example() -> None:
    env, neo4j = env_example(), compose()["services"]["neo4j"]
    assert neo4j["image"] == "neo4j:5.26-community"
    assert urlparse(env["NEO4J_URI"]).port in published_ports(neo4j)
    assert int(env["NEO4J_BOLT_PORT"]) in published_ports(neo4j)
    assert int(env["NEO4J_HTTP_PORT"]) in published_ports(neo4j)  # Neo4j Browser
    assert all(str(port).startswith("127.0.0.1:") for port in neo4j["ports"])
    assert neo4j["environment"]["NEO4J_AUTH"] == f"{env['NEO4J_USERNAME']}/{env['NEO4J_PASSWORD']}"
    assert "apoc" in neo4j["environment"]["NEO4J_PLUGINS"]
    assert any(volume.endswith(":/import") for volume in neo4j["volumes"])
    assert "healthcheck" in neo4j


def test_volumes_are_named() -> None:
    document = compose()
    named = set(document["volumes"])
    for service in document["services"].values():
        data_volumes = [v for v in service["volumes"] if not v.startswith("./")]
        assert all(v.split(":")[0] in named for v in data_volumes)
