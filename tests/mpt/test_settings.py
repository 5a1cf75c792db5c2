"""Tests of mpt/settings.py: environment names, nesting, .env, errors, caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpt.errors import ConfigError
from mpt.settings import Settings, get_settings, load_settings


def test_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings init kwarg

    assert settings.data_dir == Path(".mpt")
    assert settings.cache_dir is None
    assert settings.engine.host == "127.0.0.1"
    assert settings.engine.port == 50051
    assert settings.security.private_key_path is None
    assert settings.security.public_key_path is None
    assert settings.security.access_ttl_s == 1800
    assert settings.redis.url is None
    assert settings.redis.key_prefix == "mpt"


def test_env_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MPT_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DATA_DIR", "/not/this/one")

    settings = Settings()

    assert settings.data_dir == tmp_path / "state"
    assert settings.cache_dir == tmp_path / "cache"


def test_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPT_ENGINE__HOST", "0.0.0.0")
    monkeypatch.setenv("MPT_ENGINE__PORT", "50052")

    settings = Settings()

    assert settings.engine.host == "0.0.0.0"
    assert settings.engine.port == 50052


def test_dotenv_in_current_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text("MPT_ENGINE__PORT=6000\nMPT_DATA_DIR=from-dotenv\nOTHER=x\n")

    assert Settings().engine.port == 6000
    monkeypatch.setenv("MPT_ENGINE__PORT", "7000")  # the environment wins over .env
    settings = Settings()
    assert settings.engine.port == 7000
    assert settings.data_dir == Path("from-dotenv")


def test_invalid_value_names_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPT_ENGINE__PORT", "99999")

    with pytest.raises(ConfigError) as info:
        load_settings()

    assert "MPT_ENGINE__PORT" in str(info.value)
    assert "99999" in str(info.value)


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("MPT_ENGINE__PORT", "50099")

    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().engine.port == 50099


def test_security_and_redis_groups(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MPT_SECURITY__PRIVATE_KEY_PATH", str(tmp_path / "k.pem"))
    monkeypatch.setenv("MPT_SECURITY__PUBLIC_KEY_PATH", str(tmp_path / "k.pub.pem"))
    monkeypatch.setenv("MPT_SECURITY__ACCESS_TTL_S", "900")
    monkeypatch.setenv("MPT_REDIS__URL", "redis://127.0.0.1:6379/2")
    monkeypatch.setenv("MPT_REDIS__KEY_PREFIX", "staging")

    settings = Settings()

    assert settings.security.private_key_path == tmp_path / "k.pem"
    assert settings.security.public_key_path == tmp_path / "k.pub.pem"
    assert settings.security.access_ttl_s == 900.0
    assert settings.redis.url == "redis://127.0.0.1:6379/2"
    assert settings.redis.key_prefix == "staging"


@pytest.mark.parametrize(
    ("name", "value"),
    [("MPT_SECURITY__ACCESS_TTL_S", "0"), ("MPT_REDIS__KEY_PREFIX", "has space")],
)
def test_invalid_security_and_redis_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=name):
        load_settings()
