"""Messages to users (password reset links), behind a small pluggable interface.

On the embedded defaults :class:`LogNotifier` writes the message to the log (logger
``api.notify``), so a local user can copy the link; production plugs in an e-mail sender.
:class:`MemoryNotifier` keeps messages for tests that must read the token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["LogNotifier", "MemoryNotifier", "Notice", "Notifier"]

log = logging.getLogger("api.notify")


@dataclass(frozen=True, slots=True)
class Notice:
    """One message: to whom, what kind, the text and the secret it carries (if any)."""

    to: str
    kind: str
    text: str
    token: str | None = None


class Notifier(Protocol):
    async def send(self, notice: Notice) -> None: ...


class LogNotifier:
    """Writes each notice to the log (the embedded default)."""

    async def send(self, notice: Notice) -> None:
        log.warning("notice for %s (%s): %s", notice.to, notice.kind, notice.text)


@dataclass
class MemoryNotifier:
    """Keeps every notice in ``sent`` (tests)."""

    sent: list[Notice] = field(default_factory=list)

    async def send(self, notice: Notice) -> None:
        self.sent.append(notice)
