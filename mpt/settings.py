"""Typed configuration from ``MPT_*`` environment variables and an optional ``.env`` file.

Nested groups use ``__``: ``MPT_ENGINE__PORT=50052`` sets ``settings.engine.port``,
``MPT_SECURITY__ACCESS_TTL_S=900`` sets ``settings.security.access_ttl_s`` and
``MPT_REDIS__URL=redis://127.0.0.1:6379/0`` switches the durable queue and the API's rate limits
to Redis, ``MPT_DATABASE__URL=postgresql+asyncpg://...`` switches the API from the embedded SQLite
file to PostgreSQL. Groups for object storage and Ray are added by the parts that need them.
Settings are built on first use (:func:`get_settings`) and passed down, never read at import.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from mpt.errors import ConfigError

__all__ = [
    "ApiSettings",
    "DatabaseSettings",
    "EngineSettings",
    "PasswordHashSettings",
    "RateLimitSettings",
    "RedisSettings",
    "SecuritySettings",
    "Settings",
    "get_settings",
    "load_settings",
]


class EngineSettings(BaseModel):
    """The audio engine's gRPC server (``MPT_ENGINE__HOST``, ``__PORT``, ``__WORKERS`` ...).

    Attributes
    ----------
    host, port : str, int
        Where the gRPC server listens (port 0 picks a free port).
    workers : int
        Server processes sharing the port with ``SO_REUSEPORT`` (1 = serve in-process).
    metrics_port : int or None
        Port of the Prometheus ``/metrics`` endpoint on ``host`` (0 picks a free port);
        None disables it.
    analysis_threads : int or None
        Threads that run the (nogil) analysis of every stream of a process; None uses the
        CPU count.
    max_streams : int
        Concurrent streams per process beyond which new ones get RESOURCE_EXHAUSTED.
    max_chunk_bytes : int
        Largest audio chunk of a stream; a larger one is INVALID_ARGUMENT.
    max_recording_bytes : int
        Largest recording sent whole to ``AnalyzeRecording`` (also sets the server's
        maximum receive message size).
    resume_window_s : float
        How long a stream cut by the network is kept for a resume.
    shutdown_grace_s : float
        On SIGTERM/SIGINT, how long live streams get to finish their summary.
    token_leeway_s : float
        Clock skew tolerated on a token's ``exp`` and ``iat`` when a call opens.
    keepalive_time_s, keepalive_timeout_s : float
        HTTP/2 keepalive pings that detect dead connections (and so cut streams).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    metrics_port: int | None = Field(default=9464, ge=0, le=65535)
    analysis_threads: int | None = Field(default=None, ge=1, le=256)
    max_streams: int = Field(default=256, ge=1)
    max_chunk_bytes: int = Field(default=256 * 1024, ge=1024)
    max_recording_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    resume_window_s: float = Field(default=60.0, ge=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    token_leeway_s: float = Field(default=30.0, ge=0)
    keepalive_time_s: float = Field(default=10.0, gt=0)
    keepalive_timeout_s: float = Field(default=5.0, gt=0)


class SecuritySettings(BaseModel):
    """Token keys and lifetimes (``MPT_SECURITY__PRIVATE_KEY_PATH``, ``__PUBLIC_KEY_PATH``,
    ``__ACCESS_TTL_S``).

    Attributes
    ----------
    private_key_path : Path or None
        PKCS8 PEM Ed25519 private key that signs tokens (only the API needs it); None uses
        ``<data_dir>/keys/jwt_ed25519.pem``, generated on first use.
    public_key_path : Path or None
        PEM Ed25519 public key that verifies tokens; None uses
        ``<data_dir>/keys/jwt_ed25519.pub.pem``.
    access_ttl_s : float
        Lifetime of an access token, in seconds (default 1800).
    """

    private_key_path: Path | None = None
    public_key_path: Path | None = None
    access_ttl_s: float = Field(default=1800.0, gt=0)
    refresh_ttl_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    reset_ttl_s: float = Field(default=3600.0, gt=0)


class DatabaseSettings(BaseModel):
    """The API's database (``MPT_DATABASE__URL``, ``__POOL_SIZE``, ``__AUTO_MIGRATE``).

    Attributes
    ----------
    url : str or None
        A SQLAlchemy async URL: ``postgresql+asyncpg://user@host:5432/db`` in production, or
        ``sqlite+aiosqlite:///path``; None uses ``<data_dir>/api.sqlite3`` (embedded default).
    pool_size, max_overflow : int
        Connections kept open, and how many more may open under load (PostgreSQL only). A
        connection beyond ``pool_size`` is closed when it is returned, so a worker whose
        concurrency often exceeds the pool pays a new PostgreSQL connection (several ms of CPU
        on both sides) per request: the default keeps 20 open and opens no more (a request
        waits for a free one instead, up to ``pool_timeout_s``). Size ``workers x
        (pool_size + max_overflow)`` below PostgreSQL's ``max_connections``.
    pool_timeout_s : float
        How long a request waits for a free connection before failing with 503.
    auto_migrate : bool
        Upgrade the schema to the newest Alembic revision when the API starts.
    echo : bool
        Log every SQL statement (debugging only).
    """

    url: str | None = None
    pool_size: int = Field(default=20, ge=1, le=500)
    max_overflow: int = Field(default=0, ge=0, le=500)
    pool_timeout_s: float = Field(default=10.0, gt=0)
    auto_migrate: bool = True
    echo: bool = False


class RateLimitSettings(BaseModel):
    """Request limits per client (``MPT_API__RATE_LIMITS__ENABLED``, ``__LOGIN_PER_MIN`` ...).

    Each limit is a number of requests per window; exceeding it answers 429 with
    ``RateLimit``/``Retry-After`` headers. Counters live in Redis when it is configured
    (shared by every API worker), else in the process.

    Attributes
    ----------
    enabled : bool
        Turn every limit off (load tests that measure the server, not the limiter).
    login_per_min : int
        Logins per client address and per e-mail address per minute.
    register_per_hour : int
        Registrations per client address per hour.
    reset_per_hour : int
        Password reset requests per client address and per e-mail address per hour.
    user_per_min : int
        Requests of one authenticated user per minute, on every route.
    """

    enabled: bool = True
    login_per_min: int = Field(default=10, ge=1)
    register_per_hour: int = Field(default=20, ge=1)
    reset_per_hour: int = Field(default=5, ge=1)
    user_per_min: int = Field(default=600, ge=1)


class PasswordHashSettings(BaseModel):
    """argon2id's cost for account passwords (``MPT_API__PASSWORD_HASH__MEMORY_KIB``,
    ``__TIME_COST``, ``__PARALLELISM``).

    The default is OWASP's recommended minimum for argon2id (19 MiB, 2 passes, 1 lane:
    ~25 ms of one core here). RFC 9106's low-memory profile (65536 KiB, 3 passes, 4 lanes,
    pwdlib's ``PasswordHash.recommended()``) costs ~180 ms of CPU a hash: on one core the
    hash's threads then take the event loop's core from every other request for that long
    (benchmarks/api/README.md). A stored hash made with other parameters still verifies and
    is replaced by one with these at the next successful login.

    Attributes
    ----------
    memory_kib : int
        Memory per hash, in KiB (at least 8192).
    time_cost : int
        Passes over the memory.
    parallelism : int
        Lanes (threads) per hash.
    """

    memory_kib: int = Field(default=19456, ge=8192, le=4 * 1024 * 1024)
    time_cost: int = Field(default=2, ge=1, le=64)
    parallelism: int = Field(default=1, ge=1, le=64)


class ApiSettings(BaseModel):
    """The REST API (``MPT_API__HOST``, ``__PORT``, ``__CORS_ORIGINS`` ...).

    Attributes
    ----------
    host, port : str, int
        Where the HTTP server listens (port 0 picks a free port).
    workers : int
        uvicorn worker processes.
    cors_origins : list of str
        Origins allowed to call the API from a browser (``["*"]`` allows any, without
        credentials); empty disables CORS.
    max_body_bytes : int
        Largest request body; a larger one is refused with 413 before it is read whole.
    public_url : str
        The API's address as clients see it (links in reset e-mails).
    docs : bool
        Serve ``/docs`` and ``/openapi.json``.
    consume_events : bool
        Run the consumer of the engine's stream summaries (durable queue -> practice
        metrics) inside the API process.
    consumer_sweep_s : float
        How often the consumer retries events whose practice session arrived late.
    facts_cache_entries : int
        Students whose session facts each API process keeps in memory (LRU) between
        requests; an entry is reused only while the student's data version is unchanged.
    rate_limits : RateLimitSettings
        Per-client request limits.
    password_hash : PasswordHashSettings
        argon2id's cost for account passwords.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    public_url: str = "http://127.0.0.1:8000"
    docs: bool = True
    consume_events: bool = True
    consumer_sweep_s: float = Field(default=30.0, gt=0)
    facts_cache_entries: int = Field(default=2048, ge=1, le=1_000_000)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    password_hash: PasswordHashSettings = Field(default_factory=PasswordHashSettings)


class RedisSettings(BaseModel):
    """Redis, when configured (``MPT_REDIS__URL``, ``__KEY_PREFIX``).

    Attributes
    ----------
    url : str or None
        ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``); None keeps the
        embedded defaults (the durable queue is a SQLite file in the data directory).
    key_prefix : str
        Prefix of every key the product writes, so several deployments can share a server.
    """

    url: str | None = None
    key_prefix: str = Field(default="mpt", min_length=1, pattern=r"^[A-Za-z0-9._:-]+$")


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
    security : SecuritySettings
        Token signing and verification keys, token lifetime.
    redis : RedisSettings
        Redis (the durable queue's back end when its URL is set).
    database : DatabaseSettings
        The API's database.
    api : ApiSettings
        The REST API.
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
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)


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
