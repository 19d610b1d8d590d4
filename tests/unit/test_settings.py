from __future__ import annotations

from pathlib import Path

import pytest

from bulk360.errors import ConfigError
from bulk360.settings import load_settings


def write_env(tmp_path: Path, text: str) -> Path:
    env = tmp_path / ".env"
    env.write_text(text)
    return env


def test_settings_come_from_env_file_with_relative_paths_from_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ETL_DB_USER", "ETL_DB_PASSWORD", "ETL_DB_PORT", "NEO4J_HOME"):
        monkeypatch.delenv(name, raising=False)
    env = write_env(
        tmp_path,
        "ETL_DB_USER=alice\nETL_DB_PASSWORD=s3cret-value\nETL_DB_PORT=6543\nNEO4J_HOME=n4j\n",
    )
    settings = load_settings(env)
    assert settings.etl_db_user == "alice"
    assert settings.etl_db_port == 6543
    assert settings.neo4j_admin == tmp_path / "n4j" / "bin" / "neo4j-admin"
    assert settings.import_dir == tmp_path / "import"


def test_environment_wins_over_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = write_env(tmp_path, "ETL_DB_USER=alice\nETL_DB_PASSWORD=x\n")
    monkeypatch.setenv("ETL_DB_USER", "bob")
    assert load_settings(env).etl_db_user == "bob"


def test_password_is_never_in_the_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_DB_PASSWORD", raising=False)
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    env = write_env(
        tmp_path, "ETL_DB_USER=a\nETL_DB_PASSWORD=pg-secret-1\nNEO4J_PASSWORD=neo-secret-2\n"
    )
    text = repr(load_settings(env))
    assert "pg-secret-1" not in text
    assert "neo-secret-2" not in text


def test_missing_setting_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETL_DB_USER", raising=False)
    monkeypatch.delenv("ETL_DB_PASSWORD", raising=False)
    env = write_env(tmp_path, "ETL_DB_PASSWORD=x\n")
    with pytest.raises(ConfigError, match="ETL_DB_USER"):
        load_settings(env)


def test_bad_port_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETL_DB_PORT", "fifty")
    env = write_env(tmp_path, "ETL_DB_USER=a\nETL_DB_PASSWORD=x\n")
    with pytest.raises(ConfigError, match="ETL_DB_PORT"):
        load_settings(env)


@pytest.mark.parametrize("value", ["soon", "-5"])
def test_a_wrong_cache_lifetime_is_named(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULK360_API_CACHE_SECONDS", value)
    env = write_env(tmp_path, "ETL_DB_USER=a\nETL_DB_PASSWORD=x\n")
    with pytest.raises(ConfigError, match="BULK360_API_CACHE_SECONDS"):
        load_settings(env)


def test_the_redis_url_is_never_in_the_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULK360_REDIS_URL", "redis://:cache-secret-3@127.0.0.1:6379/0")
    monkeypatch.delenv("BULK360_API_CACHE_SECONDS", raising=False)
    settings = load_settings(write_env(tmp_path, "ETL_DB_USER=a\nETL_DB_PASSWORD=x\n"))
    assert settings.redis_url == "redis://:cache-secret-3@127.0.0.1:6379/0"
    assert settings.api_cache_seconds == 300
    assert "cache-secret-3" not in repr(settings)
