"""Access tokens: EdDSA (Ed25519) JWTs signed by the API and verified by every service.

Claims (``docs/ARCHITECTURE.md``, "Identity and tokens"): ``sub`` (user id), ``role``
(``student``, ``teacher`` or ``admin``), ``exp``, ``iat``, ``jti``, ``iss`` (``mpt``) and
``aud`` (``mpt-api``, ``mpt-engine``). Only ``EdDSA`` is accepted when verifying, so a token
whose header names another algorithm (``none``, or ``HS256`` keyed with the public key's
bytes) is rejected before its signature is looked at.

Keys are PEM files. On the embedded defaults :func:`ensure_keypair` generates them into
``<data_dir>/keys/`` on first use; the private key is written with mode 0600 and never
replaced once it exists, so several processes starting at once end up with one pair.

Every failure is a :class:`~mpt.errors.TokenError`: loading a key names the path; a rejected
token gives the reason only, never the token or its claims.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mpt.datadir import ensure_subdir
from mpt.errors import TokenError
from mpt.settings import Settings

__all__ = [
    "ALGORITHM",
    "ISSUER",
    "ROLES",
    "Claims",
    "KeyPaths",
    "Role",
    "TokenVerifier",
    "ensure_keypair",
    "key_paths",
    "load_private_key",
    "load_public_key",
    "local_token",
    "sign_token",
    "signing_key",
    "verification_key",
    "verify_token",
]

Role = Literal["student", "teacher", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
ALGORITHM: Final = "EdDSA"
ISSUER: Final = "mpt"
KEYS_SUBDIR: Final = "keys"
PRIVATE_KEY_NAME: Final = "jwt_ed25519.pem"
PUBLIC_KEY_NAME: Final = "jwt_ed25519.pub.pem"
PRIVATE_KEY_MODE: Final = 0o600
PUBLIC_KEY_MODE: Final = 0o644
REQUIRED_CLAIMS: Final = ("sub", "role", "exp", "iat", "jti", "iss", "aud")


@dataclass(frozen=True, slots=True)
class KeyPaths:
    """Where a key pair lives.

    Attributes
    ----------
    private_key : Path
        PKCS8 PEM private key (mode 0600 when generated here).
    public_key : Path
        SubjectPublicKeyInfo PEM public key.
    """

    private_key: Path
    public_key: Path


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims of a token.

    Attributes
    ----------
    sub : str
        The user id.
    role : {"student", "teacher", "admin"}
        The user's role.
    audience : tuple of str
        Every audience the token names (one of them is the verifier's).
    expires_at : datetime
        ``exp``, timezone-aware UTC.
    issued_at : datetime
        ``iat``, timezone-aware UTC.
    jti : str
        The token's unique id.
    """

    sub: str
    role: Role
    audience: tuple[str, ...]
    expires_at: datetime
    issued_at: datetime
    jti: str


# --------------------------------------------------------------------------------------------
# Key files


def ensure_keypair(data_dir: Path) -> KeyPaths:
    """Return the data directory's key pair, generating it on first use.

    The private key is written to a temporary file (mode 0600) and hard-linked to its final
    name, which fails if the name exists: of several processes generating at once exactly
    one wins, and the others load the winner's key. The public key is then derived from the
    private key on disk and written with a temporary file and ``os.replace``, so it always
    matches and a reader never sees a partial file. A crash between the two steps leaves a
    private key alone, and the next call writes its public key.

    Parameters
    ----------
    data_dir : Path
        The data directory; ``<data_dir>/keys/`` is created with mode 0700.

    Returns
    -------
    KeyPaths
        ``<data_dir>/keys/jwt_ed25519.pem`` and ``<data_dir>/keys/jwt_ed25519.pub.pem``.

    Raises
    ------
    TokenError
        A key cannot be written, an existing private key cannot be loaded, or an existing
        public key does not belong to the private key (the message names the file).
    DataDirError
        The data directory or its ``keys`` directory cannot be created.
    """
    keys_dir = ensure_subdir(data_dir, KEYS_SUBDIR)
    paths = KeyPaths(keys_dir / PRIVATE_KEY_NAME, keys_dir / PUBLIC_KEY_NAME)
    if not paths.private_key.exists():
        _create_private_key(paths.private_key)
    private_key = load_private_key(paths.private_key)
    public_pem = _public_pem(private_key.public_key())
    if paths.public_key.exists():
        if _public_raw(load_public_key(paths.public_key)) != _public_raw(private_key.public_key()):
            raise TokenError(
                f"public key {str(paths.public_key)!r} does not belong to the private key "
                f"{str(paths.private_key)!r}; remove the public key to have it rewritten"
            )
    else:
        _write_replace(paths.public_key, public_pem, PUBLIC_KEY_MODE)
    return paths


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an unencrypted PEM Ed25519 private key.

    Raises
    ------
    TokenError
        The file is missing or unreadable, is not a PEM private key, is encrypted, or holds
        another kind of key; the message names the path.
    """
    data = _read_key_file(path, "private")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TokenError(
            f"private key {str(path)!r} is encrypted; an unencrypted PKCS8 key is needed"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TokenError(f"private key {str(path)!r} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TokenError(
            f"private key {str(path)!r} is a {type(key).__name__.removeprefix('_')}, "
            "not an Ed25519 key"
        )
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load a PEM Ed25519 public key.

    Raises
    ------
    TokenError
        The file is missing or unreadable, is not a PEM public key, or holds another kind of
        key; the message names the path.
    """
    data = _read_key_file(path, "public")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise TokenError(f"public key {str(path)!r} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TokenError(
            f"public key {str(path)!r} is a {type(key).__name__.removeprefix('_')}, "
            "not an Ed25519 key"
        )
    return key


def key_paths(settings: Settings) -> KeyPaths:
    """The configured key paths: ``settings.security``'s, each defaulting to the data
    directory's pair. Nothing is created or read."""
    keys_dir = settings.data_dir.expanduser().absolute() / KEYS_SUBDIR
    security = settings.security
    return KeyPaths(
        private_key=(security.private_key_path or keys_dir / PRIVATE_KEY_NAME).expanduser(),
        public_key=(security.public_key_path or keys_dir / PUBLIC_KEY_NAME).expanduser(),
    )


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The private key that signs tokens: ``settings.security.private_key_path`` when set,
    else the data directory's, generated on first use (:func:`ensure_keypair`).

    Raises
    ------
    TokenError
        The key cannot be loaded or generated.
    DataDirError
        The data directory cannot be created.
    """
    configured = settings.security.private_key_path
    if configured is not None:
        return load_private_key(configured.expanduser())
    return load_private_key(ensure_keypair(settings.data_dir).private_key)


def verification_key(settings: Settings) -> Ed25519PublicKey:
    """The public key that verifies tokens: ``settings.security.public_key_path`` when set,
    else the data directory's, generated on first use (:func:`ensure_keypair`).

    Raises
    ------
    TokenError
        The key cannot be loaded or generated.
    DataDirError
        The data directory cannot be created.
    """
    configured = settings.security.public_key_path
    if configured is not None:
        return load_public_key(configured.expanduser())
    return load_public_key(ensure_keypair(settings.data_dir).public_key)


# --------------------------------------------------------------------------------------------
# Tokens


def sign_token(
    private_key: Ed25519PrivateKey,
    *,
    sub: str,
    role: Role,
    audience: str | list[str],
    ttl_s: float,
    issuer: str = ISSUER,
    now: float | None = None,
) -> str:
    """Sign an access token.

    Parameters
    ----------
    private_key : Ed25519PrivateKey
        The signing key (:func:`load_private_key`).
    sub : str
        The user id (non-empty).
    role : {"student", "teacher", "admin"}
        The user's role.
    audience : str or list of str
        The service(s) the token is for, e.g. ``"mpt-engine"``.
    ttl_s : float
        Lifetime in seconds (> 0); ``exp`` is ``iat + ttl_s`` rounded up to a whole second.
    issuer : str, optional
        ``iss``; verifiers accept only ``"mpt"`` unless told otherwise.
    now : float, optional
        The current time in seconds since the epoch (for tests); defaults to ``time.time()``.

    Returns
    -------
    str
        The compact JWS.

    Raises
    ------
    TokenError
        An argument is invalid; the message names it.
    """
    if not isinstance(sub, str) or not sub:
        raise TokenError(f"token subject must be a non-empty string, got {sub!r}")
    if role not in ROLES:
        raise TokenError(f"token role must be one of {', '.join(ROLES)}, got {role!r}")
    audiences = [audience] if isinstance(audience, str) else list(audience)
    if not audiences or not all(isinstance(a, str) and a for a in audiences):
        raise TokenError(f"token audience must be non-empty strings, got {audience!r}")
    if not (math.isfinite(ttl_s) and ttl_s > 0):
        raise TokenError(f"token lifetime must be positive seconds, got ttl_s={ttl_s!r}")
    issued = time.time() if now is None else now
    iat = math.floor(issued)
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role,
        "iat": iat,
        "exp": math.ceil(issued + ttl_s),
        "jti": uuid.uuid4().hex,
        "iss": issuer,
        "aud": audiences[0] if len(audiences) == 1 else audiences,
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


def verify_token(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    audience: str,
    leeway_s: float = 30.0,
    issuer: str = ISSUER,
    now: float | None = None,
) -> Claims:
    """Verify a token and return its claims.

    Parameters
    ----------
    token : str
        The compact JWS (without a ``Bearer`` prefix).
    public_key : Ed25519PublicKey
        The verification key (:func:`load_public_key`).
    audience : str
        This service's audience; the token's ``aud`` must name it.
    leeway_s : float, optional
        Clock skew tolerated on ``exp`` and ``iat``, in seconds.
    issuer : str, optional
        The ``iss`` required (``"mpt"``).
    now : float, optional
        The current time in seconds since the epoch (for tests); defaults to ``time.time()``.

    Returns
    -------
    Claims
        The verified claims.

    Raises
    ------
    TokenError
        The token is malformed, names an algorithm other than EdDSA, has a bad signature,
        has expired or was issued in the future, is for another audience or issuer, lacks a
        claim, or holds an invalid ``sub``, ``role`` or ``jti``. The message gives only the
        reason.
    """
    payload = _verified_payload(token, public_key, audience=audience, issuer=issuer)
    return _claims(payload, now=time.time() if now is None else now, leeway_s=leeway_s)


class TokenVerifier:
    """Verifies tokens for one key and audience, remembering the tokens already verified.

    A service sees the same access token on every request of a client for the token's whole
    life. Checking an Ed25519 signature and parsing the JWT costs far more than the rest of a
    light request, so the payload of a token whose signature, algorithm, audience and issuer
    have verified is kept, keyed by the whole token string: the same bytes verify the same
    way under the same key. The time claims (``exp``, ``iat``, ``nbf``) and the claim values
    are checked again on every call, so a remembered token still expires on time. Tokens that
    fail are not remembered. At most ``max_cached`` tokens are kept; the oldest go first.

    Parameters
    ----------
    public_key : Ed25519PublicKey
        The verification key.
    audience : str
        This service's audience.
    leeway_s : float, optional
        Clock skew tolerated on ``exp`` and ``iat``, in seconds.
    issuer : str, optional
        The ``iss`` required.
    max_cached : int, optional
        How many verified tokens to remember (0 remembers none).
    """

    __slots__ = ("_audience", "_issuer", "_key", "_leeway_s", "_max_cached", "_payloads")

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        *,
        audience: str,
        leeway_s: float = 30.0,
        issuer: str = ISSUER,
        max_cached: int = 4096,
    ) -> None:
        if max_cached < 0:
            raise ValueError(f"max_cached must be >= 0, got {max_cached}")
        self._key = public_key
        self._audience = audience
        self._leeway_s = leeway_s
        self._issuer = issuer
        self._max_cached = max_cached
        self._payloads: dict[str, dict[str, Any]] = {}

    def verify(self, token: str, *, now: float | None = None) -> Claims:
        """Verify a token and return its claims (see :func:`verify_token`).

        Raises
        ------
        TokenError
            As :func:`verify_token`.
        """
        payload = self._payloads.get(token)
        if payload is None:
            payload = _verified_payload(token, self._key, audience=self._audience,
                                        issuer=self._issuer)
            if self._max_cached:
                if len(self._payloads) >= self._max_cached:
                    del self._payloads[next(iter(self._payloads))]
                self._payloads[token] = payload
        return _claims(payload, now=time.time() if now is None else now, leeway_s=self._leeway_s)

    @property
    def cached(self) -> int:
        """How many verified tokens are remembered now."""
        return len(self._payloads)


def local_token(
    settings: Settings,
    *,
    audience: str = "mpt-engine",
    role: Role = "student",
    sub: str = "local-user",
    ttl_s: float = 3600.0,
) -> str:
    """Sign a token for a local user with the local signing key (for ``mpt stream`` against
    a local ``mpt up``).

    Uses :func:`signing_key`: the configured private key, else the data directory's pair,
    generated on first use — the same pair a local engine verifies with.

    Returns
    -------
    str
        The compact JWS.

    Raises
    ------
    TokenError
        The key cannot be loaded or generated, or an argument is invalid.
    DataDirError
        The data directory cannot be created.
    """
    return sign_token(signing_key(settings), sub=sub, role=role, audience=audience, ttl_s=ttl_s)


# --------------------------------------------------------------------------------------------
# Helpers


def _verified_payload(
    token: str, public_key: Ed25519PublicKey, *, audience: str, issuer: str
) -> dict[str, Any]:
    """The payload of a token whose signature, algorithm, audience and issuer verify (time
    claims are checked by :func:`_claims`)."""
    try:
        payload = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            # Time is checked below against `now`; PyJWT would read the clock itself.
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token rejected: the {exc.claim!r} claim is missing") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"token rejected: its algorithm is not {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise TokenError("token rejected: the signature does not verify") from None
    except jwt.InvalidAudienceError:
        raise TokenError(f"token rejected: it is not for audience {audience!r}") from None
    except jwt.InvalidIssuerError:
        raise TokenError(f"token rejected: it was not issued by {issuer!r}") from None
    except jwt.exceptions.InvalidSubjectError:
        raise TokenError("token rejected: the 'sub' claim is not a non-empty string") from None
    except jwt.exceptions.InvalidJTIError:
        raise TokenError("token rejected: the 'jti' claim is not a non-empty string") from None
    except jwt.DecodeError:
        raise TokenError("token rejected: it is malformed") from None
    except jwt.InvalidTokenError:
        raise TokenError("token rejected: a claim is invalid") from None
    return payload


def _claims(payload: dict[str, Any], *, now: float, leeway_s: float) -> Claims:
    exp, iat = payload["exp"], payload["iat"]
    if not _is_number(exp):
        raise TokenError("token rejected: the 'exp' claim is not a number")
    if not _is_number(iat):
        raise TokenError("token rejected: the 'iat' claim is not a number")
    if exp <= now - leeway_s:
        raise TokenError("token rejected: it has expired")
    if iat > now + leeway_s:
        raise TokenError("token rejected: it was issued in the future")
    if "nbf" in payload and (not _is_number(payload["nbf"]) or payload["nbf"] > now + leeway_s):
        raise TokenError("token rejected: it is not valid yet")
    sub, role, jti = payload["sub"], payload["role"], payload["jti"]
    if not isinstance(sub, str) or not sub:
        raise TokenError("token rejected: the 'sub' claim is not a non-empty string")
    if role not in ROLES:
        raise TokenError(f"token rejected: the 'role' claim is not one of {', '.join(ROLES)}")
    if not isinstance(jti, str) or not jti:
        raise TokenError("token rejected: the 'jti' claim is not a non-empty string")
    aud = payload["aud"]
    return Claims(
        sub=sub,
        role=role,
        audience=(aud,) if isinstance(aud, str) else tuple(aud),
        expires_at=datetime.fromtimestamp(exp, tz=UTC),
        issued_at=datetime.fromtimestamp(iat, tz=UTC),
        jti=jti,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_key_file(path: Path, kind: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TokenError(f"{kind} key {str(path)!r} does not exist") from None
    except OSError as exc:
        raise TokenError(f"cannot read {kind} key {str(path)!r}: {exc.strerror or exc}") from None


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _create_private_key(path: Path) -> None:
    """Write a new private key to ``path`` unless a key is already there (no clobbering)."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = _write_temp(path, pem, PRIVATE_KEY_MODE)
    try:
        os.link(tmp, path)  # atomic, and fails if another process got there first
    except FileExistsError:
        pass
    except OSError:
        # No hard links on this file system: os.replace is still atomic, but two processes
        # generating at the same instant may then replace each other's key (a public key
        # derived from the loser's then fails the check in ensure_keypair, clearly).
        try:
            if not path.exists():
                os.replace(tmp, path)
        except OSError as exc:
            raise TokenError(
                f"cannot write private key {str(path)!r}: {exc.strerror or exc}"
            ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


def _write_replace(path: Path, data: bytes, mode: int) -> None:
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise TokenError(f"cannot write key {str(path)!r}: {exc.strerror or exc}") from None
    _fsync_dir(path.parent)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` with ``mode`` and fsync it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, mode)  # the umask may have filtered the mode
            file.write(data)
            file.flush()
            os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise TokenError(f"cannot write key {str(path)!r}: {exc.strerror or exc}") from None
    return tmp


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
