"""A small process supervisor: the engine of ``mpt up``.

Each child (:class:`ChildSpec`: a name, an argument list, an environment and a readiness
check) runs in its own process and process group. The supervisor starts every child, waits
until each is ready (a ready file it writes, or a TCP port that accepts connections), prints
where each listens, and then watches them:

- a child that exits while it should be running is reported on stderr with its exit code
  (or the signal that killed it), what is left of its process group is killed, and it is
  restarted after a backoff that doubles with every recent crash; after
  :attr:`RestartPolicy.max_crashes` crashes within :attr:`RestartPolicy.window_s` the
  supervisor gives up, stops the others and :meth:`Supervisor.run` returns 1. A child that
  does not become ready in time counts as a crash;
- SIGINT (Ctrl-C) or SIGTERM to the supervisor sends SIGTERM to every child's process group,
  waits up to the grace period for them to exit, then sends SIGKILL to whatever is left
  (a second Ctrl-C kills at once); :meth:`Supervisor.run` then returns 0;
- on Linux each child also gets SIGTERM from the kernel if the supervisor itself dies
  (``PR_SET_PDEATHSIG``), so a killed supervisor leaves no service running.

Nothing polls in a tight loop: the supervisor sleeps in ``select`` on a wake-up socket that
signals (SIGCHLD included) and :meth:`Supervisor.request_stop` write to, with a timeout that
is the next deadline (a scheduled restart, a readiness check every 50 ms while a child
starts, or one second as a safety net). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, Literal, TextIO

from mpt.errors import SupervisorError

__all__ = [
    "ChildSpec",
    "ReadyFile",
    "ReadyInfo",
    "RestartPolicy",
    "Supervisor",
    "TcpPort",
]

ReadyInfo = Mapping[str, Any]
"""What a child reported when it became ready: the ready file's JSON object, or
``{"host", "port"}`` for a TCP check, or ``{}`` without a check."""

_READY_POLL_S: Final = 0.05
_IDLE_WAKE_S: Final = 1.0
_TCP_CONNECT_TIMEOUT_S: Final = 0.2
_KILL_WAIT_S: Final = 5.0
_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>


@dataclass(frozen=True, slots=True)
class ReadyFile:
    """The child is ready once it has written a JSON object to ``path`` (atomically, e.g.
    with a rename). The file is removed before every start."""

    path: Path


@dataclass(frozen=True, slots=True)
class TcpPort:
    """The child is ready once ``host:port`` accepts a TCP connection."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised child.

    Attributes
    ----------
    name : str
        Short name used in every message (``engine``).
    argv : sequence of str
        The command and its arguments (run without a shell).
    env : mapping, optional
        The child's whole environment; None inherits the supervisor's.
    cwd : Path, optional
        Working directory; None keeps the supervisor's.
    ready : ReadyFile, TcpPort or None
        How to tell that the child is ready; None: as soon as it has started.
    ready_timeout_s : float
        How long a start may take before it counts as a crash.
    describe : callable, optional
        ``describe(info) -> str``: where the ready child listens, printed after its name.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    ready: ReadyFile | TcpPort | None = None
    ready_timeout_s: float = 60.0
    describe: Callable[[ReadyInfo], str] | None = None


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When and how often a crashed child is restarted.

    Attributes
    ----------
    max_crashes : int
        Crashes of one child within ``window_s`` after which the supervisor gives up.
    window_s : float
        The window, in seconds, over which crashes are counted.
    backoff_initial_s, backoff_max_s : float
        Delay before the first restart; it doubles with every crash still in the window, up
        to ``backoff_max_s``.
    """

    max_crashes: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0

    def backoff_s(self, recent_crashes: int) -> float:
        """The delay before restarting a child that crashed ``recent_crashes`` times."""
        exponent = max(0, recent_crashes - 1)
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2.0**exponent))


_State = Literal["starting", "ready", "waiting", "stopped"]


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    state: _State = "stopped"
    deadline: float = 0.0  # ready deadline while starting, restart time while waiting
    starts: int = 0
    crashes: deque[float] = field(default_factory=deque)
    info: ReadyInfo = field(default_factory=dict)


class Supervisor:
    """Runs children, restarts crashed ones, stops them all on SIGINT/SIGTERM.

    Parameters
    ----------
    specs : sequence of ChildSpec
        The children, started in this order (without waiting for one another).
    policy : RestartPolicy, optional
        Restart backoff and when to give up.
    grace_s : float
        How long children get to exit after SIGTERM before SIGKILL.
    label : str
        Prefix of the supervisor's own messages (``mpt up``).
    out, err : text file, optional
        Where "listening" lines and reports go (default ``sys.stdout``/``sys.stderr``).
    on_ready : callable, optional
        Called once with ``{name: info}`` when every child has become ready the first time.

    A supervisor runs once: :meth:`run` closes its wake-up socket when it returns.
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        policy: RestartPolicy | None = None,
        grace_s: float = 15.0,
        label: str = "mpt up",
        out: TextIO | None = None,
        err: TextIO | None = None,
        on_ready: Callable[[dict[str, ReadyInfo]], None] | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names}")
        self._children = [_Child(spec) for spec in specs]
        self._policy = policy or RestartPolicy()
        self._grace_s = grace_s
        self._label = label
        self._out = out
        self._err = err
        self._on_ready = on_ready
        self._announced = False
        self._stop_requested = False
        self._signals_received = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)

    # ----------------------------------------------------------------------------------
    # Public

    def run(self) -> int:
        """Start the children and supervise them until stopped.

        Signal handlers (SIGINT, SIGTERM, SIGCHLD) are installed for the duration when
        called from the main thread, and restored afterwards.

        Returns
        -------
        int
            0 after a stop on request (signal or :meth:`request_stop`), 1 when a child
            crashed too often.

        Raises
        ------
        SupervisorError
            A child's command cannot be executed (the others are stopped first).
        """
        try:
            with self._signal_handlers():
                code = 1
                try:
                    for child in self._children:
                        self._start(child)
                    code = self._supervise()
                finally:
                    self._stop_all()
                return code
        finally:
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop every child and return (safe from any thread)."""
        self._stop_requested = True
        self._wake()

    def pids(self) -> dict[str, int]:
        """The process id of every running child, by name."""
        return {
            c.spec.name: c.proc.pid
            for c in self._children
            if c.proc is not None and c.proc.poll() is None
        }

    # ----------------------------------------------------------------------------------
    # The loop

    def _supervise(self) -> int:
        while True:
            if self._stop_requested:
                return 0
            now = time.monotonic()
            for child in self._children:
                if not self._step(child, now):
                    return 1
            if not self._announced and all(c.state == "ready" for c in self._children):
                self._announced = True
                if self._on_ready is not None:
                    self._on_ready({c.spec.name: c.info for c in self._children})
            self._sleep(self._next_wake(time.monotonic()))

    def _step(self, child: _Child, now: float) -> bool:
        """Advance one child's state; False when the supervisor must give up."""
        if child.state == "waiting":
            if now >= child.deadline:
                self._start(child)
            return True
        proc = child.proc
        if proc is None or child.state == "stopped":
            return True
        code = proc.poll()
        if code is not None:
            return self._crashed(child, _describe_exit(code))
        if child.state == "starting":
            info = self._check_ready(child.spec)
            if info is not None:
                child.state = "ready"
                child.info = info
                where = child.spec.describe(info) if child.spec.describe else "ready"
                again = ", restarted" if child.starts > 1 else ""
                self._say(f"{child.spec.name:<8} {where} (pid {proc.pid}{again})")
            elif now >= child.deadline:
                self._terminate(child)
                timeout = child.spec.ready_timeout_s
                return self._crashed(child, f"did not become ready within {timeout:g} s")
        return True

    def _next_wake(self, now: float) -> float:
        wake = now + _IDLE_WAKE_S
        for child in self._children:
            if child.state == "waiting":
                wake = min(wake, child.deadline)
            elif child.state == "starting":
                wake = min(wake, now + _READY_POLL_S, child.deadline)
        return max(0.0, wake - now)

    # ----------------------------------------------------------------------------------
    # Children

    def _start(self, child: _Child) -> None:
        spec = child.spec
        if isinstance(spec.ready, ReadyFile):
            with contextlib.suppress(FileNotFoundError):
                spec.ready.path.unlink()
        child.starts += 1
        child.info = {}
        try:
            child.proc = subprocess.Popen(
                list(spec.argv),
                env=None if spec.env is None else dict(spec.env),
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: signals reach all of it
                preexec_fn=_parent_death_signal(),
            )
        except OSError as exc:
            child.proc = None
            child.state = "stopped"
            raise SupervisorError(
                f"cannot start {spec.name} ({spec.argv[0]!r}): {exc.strerror or exc}"
            ) from None
        child.state = "starting"
        child.deadline = time.monotonic() + spec.ready_timeout_s

    def _crashed(self, child: _Child, how: str) -> bool:
        """Report a crash and schedule the restart; False when giving up."""
        self._kill_group(child)  # what the child left behind (its workers) must go too
        child.proc = None
        now = time.monotonic()
        policy = self._policy
        child.crashes.append(now)
        while child.crashes and child.crashes[0] < now - policy.window_s:
            child.crashes.popleft()
        recent = len(child.crashes)
        name = child.spec.name
        if recent >= policy.max_crashes:
            child.state = "stopped"
            self._report(
                f"{name} {how}; it crashed {recent} times within {policy.window_s:g} s, giving up"
            )
            return False
        delay = policy.backoff_s(recent)
        child.state = "waiting"
        child.deadline = now + delay
        self._report(
            f"{name} {how}; restarting in {delay:g} s "
            f"(crash {recent} of at most {policy.max_crashes} within {policy.window_s:g} s)"
        )
        return True

    def _check_ready(self, spec: ChildSpec) -> ReadyInfo | None:
        ready = spec.ready
        if ready is None:
            return {}
        if isinstance(ready, ReadyFile):
            try:
                data = json.loads(ready.path.read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
                return None  # not written yet (or not completely)
            return data if isinstance(data, dict) else {"value": data}
        try:
            with socket.create_connection((ready.host, ready.port), timeout=_TCP_CONNECT_TIMEOUT_S):
                return {"host": ready.host, "port": ready.port}
        except OSError:
            return None

    def _terminate(self, child: _Child) -> None:
        """SIGTERM the child's group, wait briefly, then SIGKILL it (used on a failed start)."""
        proc = child.proc
        if proc is None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_KILL_WAIT_S)

    def _kill_group(self, child: _Child) -> None:
        """SIGKILL what is left of an exited child's process group, right after reaping it."""
        if child.proc is not None:
            _signal_group(child.proc, signal.SIGKILL)

    def _stop_all(self) -> None:
        """SIGTERM every running child's group, wait for the grace period, SIGKILL the rest."""
        for child in self._children:
            if child.state == "waiting":
                child.state = "stopped"
        running = [c for c in self._children if c.proc is not None and c.proc.poll() is None]
        stopping = bool(running)
        if running:
            names = ", ".join(c.spec.name for c in running)
            hint = " (Ctrl-C again to kill)" if self._signals_received else ""
            self._report(f"stopping {names}{hint}")
        for child in running:
            assert child.proc is not None
            _signal_group(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + self._grace_s
        signals_before = self._signals_received
        while running:
            running = [c for c in running if c.proc is not None and c.proc.poll() is None]
            remaining = deadline - time.monotonic()
            if not running or remaining <= 0 or self._signals_received > signals_before:
                break
            self._sleep(min(remaining, _IDLE_WAKE_S))
        for child in running:
            self._report(f"{child.spec.name} did not stop in time; killing it")
            assert child.proc is not None
            _signal_group(child.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=_KILL_WAIT_S)
        for child in self._children:
            if child.proc is not None:
                child.proc.poll()
                self._kill_group(child)  # stragglers of a group whose leader has exited
            child.state = "stopped"
        if stopping:
            self._report("stopped")

    # ----------------------------------------------------------------------------------
    # Signals and sleeping

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self._signals_received += 1
            self._stop_requested = True

        def on_child(signum: int, _frame: FrameType | None) -> None:
            pass  # the wake-up fd already woke the loop

        previous_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        previous = {
            signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
            signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
            signal.SIGCHLD: signal.signal(signal.SIGCHLD, on_child),
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(previous_fd)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full buffer: a wake-up is pending anyway
            self._wake_w.send(b"\0")

    def _sleep(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a signal, a child's exit or :meth:`request_stop`."""
        if self._selector.select(timeout_s):
            with contextlib.suppress(OSError):  # BlockingIOError once drained
                while self._wake_r.recv(4096):
                    pass

    # ----------------------------------------------------------------------------------
    # Output

    def _say(self, line: str) -> None:
        print(line, file=self._out or sys.stdout, flush=True)

    def _report(self, line: str) -> None:
        print(f"{self._label}: {line}", file=self._err or sys.stderr, flush=True)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, a function for ``preexec_fn`` that asks the kernel to SIGTERM the child when
    the supervisor dies without stopping it (SIGKILL), so no service outlives it; else None.

    libc is looked up here, before the fork; the child only makes the one system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the call took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to the process group led by ``proc`` (its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)
