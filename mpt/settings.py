"""Typed configuration from ``MPT_*`` environment variables and an optional ``.env`` file.

Nested groups use ``__``: ``MPT_ENGINE__PORT=50052`` sets ``settings.engine.port``. Groups for
the database, Redis, object storage and Ray are added by the parts that need them.
Settings are built on first use (:func:`get_settings`) and passed down, never read at import.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mpt.errors import ConfigError

__all__ = ["EngineSettings", "Settings", "get_settings", "load_settings"]


class EngineSettings(BaseModel):
    """Where the audio engine's gRPC server listens (``MPT_ENGINE__HOST``, ``__PORT``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)


class Settings(BaseSettings):
    """All settings of the product; see the module docstring for the environment names.

    Attributes
    ----------
    data_dir : Path
        State of the embedded defaults (``MPT_DATA_DIR``, default ``./.mpt``).
    cache_dir : Path or None
        Base directory for caches (``MPT_CACHE_DIR``); None uses ``$XDG_CACHE_HOME/mpt``.
    engine : EngineSettings
        The audio engine service.
    """

    model_config = SettingsConfigDict(
        env_prefix="MPT_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Path(".mpt")
    cache_dir: Path | None = None
    engine: EngineSettings = Field(default_factory=EngineSettings)


def load_settings() -> Settings:
    """Build settings from the environment and ``.env``, as a :class:`ConfigError` on failure.

    Raises
    ------
    ConfigError
        A variable holds an invalid value; the message names the variable and the value.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "MPT_" + "__".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise ConfigError("invalid setting " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, built on first call (``get_settings.cache_clear()``
    makes the next call re-read the environment)."""
    return load_settings()
