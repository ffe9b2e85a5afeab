"""Progress reporting behind a tiny interface, so pipeline stages never import rich themselves.

Progress always goes to stderr: stdout is reserved for results (``--json``).
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Reporter(Protocol):
    """What a pipeline stage may tell the user while it works."""

    def stage(self, name: str, total: int | None) -> None:
        """A new stage begins (``total`` items, or None when unknown)."""

    def advance(self, count: int = 1) -> None:
        """``count`` more items of the current stage are done."""

    def note(self, message: str) -> None:
        """A one-line message worth showing now (warnings, circuit breakers, pauses)."""

    def close(self) -> None:
        """The work is over; tear down any display."""


class NullReporter:
    """Shows nothing (tests, --quiet)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        self.notes.append(message)

    def close(self) -> None:
        pass


class RichReporter:
    """A rich progress bar on stderr; quiet when stderr is not a terminal except for notes."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: int | None = None
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()

    def stage(self, name: str, total: int | None) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(name, total=total)

    def advance(self, count: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)

    def note(self, message: str) -> None:
        # One line per note whatever the width: cron logs and CI output are read by grep.
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
