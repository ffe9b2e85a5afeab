"""Provenance reports from the database: Markdown, HTML, JSON and CSV (docs/reports.md).

:func:`write_reports` gathers everything once (:mod:`.data`) and hands the same records to each
writer, so the four formats never disagree. Files are written atomically (temp file + rename), so a
reader never sees half a report.

Files written into ``out_dir``:

- ``md``:   ``<slug>.md`` per profile, ``index.md`` (corpus summary), ``trend.svg`` (its chart)
- ``html``: ``<slug>.html`` per profile, ``index.html`` (corpus summary with the chart inline)
- ``json``: ``citations.json``
- ``csv``:  ``citations.csv``
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..store import Store
from .data import ReportData, gather

FORMATS = ("md", "html", "json", "csv")

__all__ = ["FORMATS", "ReportData", "corpus_summary", "gather", "write_reports"]


def _write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8, ``\\n`` line ends as given)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_reports(
    store: Store,
    out_dir: Path,
    formats: Sequence[str] = FORMATS,
    *,
    wayback_url: str = "https://web.archive.org",
    run_id: int | None = None,
    data: ReportData | None = None,
) -> list[Path]:
    """Write the chosen report formats into ``out_dir``; returns the paths written.

    ``run_id`` is the run the reports describe (for "since the previous audit"); by default the
    newest run in the database. ``data`` reuses records already gathered (``audit`` also prints
    their summary), instead of reading the database again.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown report format(s): {', '.join(unknown)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = gather(store, run_id, wayback_url)
    written: list[Path] = []
    if "md" in formats:
        from .markdown import index_markdown, profile_markdown
        from .svg import trend_chart

        for group in data.profiles:
            written.append(_write(out_dir / f"{group.slug}.md", profile_markdown(group, data)))
        chart = None
        if data.trend:
            written.append(_write(out_dir / "trend.svg", trend_chart(data.trend) + "\n"))
            chart = "trend.svg"
        written.append(_write(out_dir / "index.md", index_markdown(data, chart)))
    if "html" in formats:
        from .html import index_html, profile_html

        for group in data.profiles:
            written.append(_write(out_dir / f"{group.slug}.html", profile_html(group, data)))
        written.append(_write(out_dir / "index.html", index_html(data)))
    if "json" in formats:
        from .json_report import report_json

        written.append(_write(out_dir / "citations.json", report_json(data)))
    if "csv" in formats:
        from .csv_report import report_csv

        written.append(_write(out_dir / "citations.csv", report_csv(data)))
    return written


def corpus_summary(store: Store, run_id: int | None = None) -> dict[str, Any]:
    """The corpus summary as plain JSON-ready data (the same as ``index.md`` and ``citations.json``).

    Keys: run_id, profiles, citations, skipped_citations, archive_link_citations, urls, by_verdict,
    citations_by_verdict, broken_citations, ignored_urls, link_rot_rate, link_rot, archive_coverage,
    archived_urls, roles, previous_run, previous_run_started, newly_broken, recovered, changes,
    trend_basis, trend.
    """
    return gather(store, run_id).summary
