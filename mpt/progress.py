"""Stage progress on stderr for long inputs: a bar while decoding, a spinner while analysing.

Short files finish before a display would help, so nothing is shown until the input is known
to be longer than a threshold (60 s of audio by default), and nothing at all when the console
is not a terminal (logs and pipes stay clean). rich's progress display is imported only when
it is shown.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["StageProgress"]


class StageProgress:
    """Context manager showing the decode and analysis stages of one input.

    Parameters
    ----------
    console : Console or None
        Where to draw (the CLI passes a stderr console when stderr is a terminal); None shows
        nothing.
    threshold_s : float, default 60.0
        Audio length in seconds above which progress is shown.
    """

    def __init__(self, console: Console | None, *, threshold_s: float = 60.0) -> None:
        self._console = console
        self._threshold_s = threshold_s
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @property
    def active(self) -> bool:
        """Whether a display is on screen."""
        return self._progress is not None

    def decoding(self, decoded_s: float, total_s: float | None) -> None:
        """Progress callback for :func:`audio_engine.io.load_audio` (seconds of audio)."""
        if not self._start_if_long(max(decoded_s, total_s or 0.0)):
            return
        assert self._progress is not None
        if self._task is None:
            self._task = self._progress.add_task("Decoding", total=total_s)
        self._progress.update(self._task, completed=decoded_s, total=total_s)

    def stage(self, description: str, audio_s: float) -> None:
        """Start an open-ended stage (a spinner) for ``audio_s`` seconds of audio."""
        if not self._start_if_long(audio_s):
            return
        assert self._progress is not None
        if self._task is not None:
            previous = next(t for t in self._progress.tasks if t.id == self._task)
            if previous.total is not None:
                self._progress.update(self._task, completed=previous.total)
            self._progress.stop_task(self._task)
        self._task = self._progress.add_task(description, total=None)

    def _start_if_long(self, audio_s: float) -> bool:
        if self._progress is not None:
            return True
        console = self._console
        if audio_s <= self._threshold_s or console is None or not console.is_terminal:
            return False
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._progress.start()
        return True
