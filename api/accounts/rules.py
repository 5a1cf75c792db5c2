"""Business rules of accounts, as pure functions (no database, no I/O).

- :func:`normalize_email` and :func:`check_password` (10..256 characters) validate what a
  person types; :func:`check_timezone` accepts only IANA zone names.
- :func:`refresh_token_state` and :func:`refresh_action` say what presenting a refresh token
  does: an active one is rotated, an expired one is refused, and a rotated or revoked one is
  a reuse (the whole family is revoked).
- :func:`minor_flag_change_allowed` says who may change a student's ``is_minor``.

Validators raise ``ValueError`` with a message that names the offending value, so pydantic
turns them into 422 problem details.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from datetime import datetime
from typing import Final, Literal

__all__ = [
    "DELETED_EMAIL_DOMAIN",
    "PASSWORD_MAX_CHARS",
    "PASSWORD_MIN_CHARS",
    "RefreshAction",
    "RefreshState",
    "check_password",
    "check_timezone",
    "deleted_email",
    "hash_secret",
    "minor_flag_change_allowed",
    "normalize_email",
    "refresh_action",
    "refresh_token_state",
]

PASSWORD_MIN_CHARS: Final = 10
PASSWORD_MAX_CHARS: Final = 256
EMAIL_MAX_CHARS: Final = 320
TIMEZONE_MAX_CHARS: Final = 64
DELETED_EMAIL_DOMAIN: Final = "deleted.invalid"

# local@domain.tld: no spaces, one @, a dot in the domain, labels of letters, digits, hyphens.
_EMAIL_RE: Final = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)

RefreshState = Literal["active", "expired", "rotated", "revoked"]
RefreshAction = Literal["rotate", "refuse_expired", "reuse"]


def normalize_email(raw: str) -> str:
    """The canonical form of an e-mail address: stripped and lower-cased.

    Raises
    ------
    ValueError
        The address does not look like ``local@domain.tld``, is longer than 320 characters,
        or is in the domain reserved for erased accounts.
    """
    email = raw.strip().lower()
    if len(email) > EMAIL_MAX_CHARS:
        raise ValueError(f"e-mail address of {len(email)} characters is longer than "
                         f"{EMAIL_MAX_CHARS}")
    if not _EMAIL_RE.fullmatch(email) or ".." in email.split("@", 1)[0]:
        raise ValueError(f"{raw!r} is not an e-mail address")
    if email.endswith("@" + DELETED_EMAIL_DOMAIN):
        raise ValueError(f"{raw!r} is in a reserved domain")
    return email


def check_password(password: str) -> str:
    """Return ``password`` if it meets the policy (10 to 256 characters).

    Raises
    ------
    ValueError
        It is too short or too long (the message gives its length, never the password).
    """
    n = len(password)
    if n < PASSWORD_MIN_CHARS:
        raise ValueError(f"a password needs at least {PASSWORD_MIN_CHARS} characters; "
                         f"this one has {n}")
    if n > PASSWORD_MAX_CHARS:
        raise ValueError(f"a password may have at most {PASSWORD_MAX_CHARS} characters; "
                         f"this one has {n}")
    if not password.strip():
        raise ValueError("a password may not be only white space")
    return password


def check_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone (``Europe/Vienna``, ``UTC``).

    Raises
    ------
    ValueError
        It is not a zone name known to the system's time zone database.
    """
    if not name or len(name) > TIMEZONE_MAX_CHARS or name != name.strip():
        raise ValueError(f"{name!r} is not an IANA time zone")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. 'Europe/Vienna')") from None
    return name


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) of an opaque token: what the database stores instead of it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def deleted_email(user_id: object) -> str:
    """The address an erased account keeps (unique, and in a domain no one can register)."""
    return f"deleted-{user_id}@{DELETED_EMAIL_DOMAIN}"


def refresh_token_state(
    *,
    rotated_at: datetime | None,
    revoked_at: datetime | None,
    expires_at: datetime,
    now: datetime,
) -> RefreshState:
    """The state of a stored refresh token at ``now``.

    Revocation wins over rotation, rotation over expiry: a used token is reported as used
    even after it would have expired.
    """
    if revoked_at is not None:
        return "revoked"
    if rotated_at is not None:
        return "rotated"
    if expires_at <= now:
        return "expired"
    return "active"


def refresh_action(state: RefreshState) -> RefreshAction:
    """What presenting a token in ``state`` does: rotate it, refuse it, or treat it as a
    reuse (someone holds a copy: revoke the family)."""
    if state == "active":
        return "rotate"
    if state == "expired":
        return "refuse_expired"
    return "reuse"


def minor_flag_change_allowed(*, current: bool, new: bool, actor_is_admin: bool) -> bool:
    """A student may mark themselves a minor; only an admin may clear the mark."""
    return current == new or new or actor_is_admin
