"""Child processes with bounded waits: start, read a line with a timeout, kill, reap."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("queue_worker.py")


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This environment without ``MPT_*`` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPT_")}
    env.update(extra)
    return env


class Child:
    """A ``python`` child process whose stdout is read line by line with timeouts.

    Every wait is bounded; a child that overstays is killed and the test fails with its
    stderr.
    """

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> None:
        self.args = [sys.executable, *args]
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
        )
        self._buffer = b""

    @classmethod
    def worker(cls, args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> Child:
        """Start the queue worker (``queue_worker.py``) with ``args``."""
        return cls([str(WORKER), *args], env=env, cwd=cwd)

    def read_line(self, *, timeout_s: float) -> str:
        """The next line printed; fails the test (killing the child) on timeout or EOF."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stop()
                    pytest.fail(f"no line from {self.args} in {timeout_s} s: {self.stderr()}")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.finish(timeout_s=5.0)
                    pytest.fail(f"{self.args} exited with {code} early: {self.stderr()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def kill(self) -> None:
        """SIGKILL the child and reap it (bounded); it must not have exited by itself."""
        os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        assert code == -signal.SIGKILL, f"{self.args} exited with {code} before the kill"

    def finish(self, *, timeout_s: float) -> int:
        """Wait for the child to exit (killing it after ``timeout_s``); its exit code."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"{self.args} did not exit within {timeout_s} s: {self.stderr()}")

    def stop(self) -> None:
        """Kill the child if it still runs, and close its pipes (for cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stderr(self) -> str:
        """The last lines the (exited) child wrote on stderr."""
        if self.proc.stderr is None or self.proc.poll() is None:
            return "<running>"
        lines = self.proc.stderr.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-20:]) or "<no stderr>"

    def close(self) -> None:
        """Stop the child and close its pipes."""
        self.stop()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
