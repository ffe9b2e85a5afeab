"""Progress and notes on stderr (citewatch.progress)."""

from __future__ import annotations

import io

from rich.console import Console

from citewatch.progress import RichReporter


def test_a_note_is_one_line_however_narrow_the_log() -> None:
    """cron logs and CI output are read line by line (grep): a note is never wrapped."""
    log = io.StringIO()
    reporter = RichReporter(Console(file=log, width=40, force_terminal=False))
    note = (
        "network unavailable: the canary https://web.archive.org/ is unreachable (cannot "
        "resolve web.archive.org: Name or service not known); nothing was judged"
    )
    reporter.note(note)
    reporter.close()
    assert log.getvalue() == note + "\n"


def test_a_note_is_printed_as_is_not_as_markup() -> None:
    log = io.StringIO()
    RichReporter(Console(file=log, width=200, force_terminal=False)).note("[bold]x[/bold] [link]")
    assert log.getvalue() == "[bold]x[/bold] [link]\n"
