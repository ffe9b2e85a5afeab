"""Provenance reports from the database: Markdown, HTML, JSON and CSV (docs/reports.md).

:func:`write_reports` gathers everything once (:mod:`.data`) and hands the same records to each
writer, so the four formats never disagree. Files are written atomically (temp file + rename), so a
reader never sees half a report.

Files written into ``out_dir``:

- ``md``:   ``<slug>.md`` per profile, ``index.md`` (corpus summary), ``trend.svg`` (its chart)
- ``html``: ``<slug>.html`` per profile, ``index.html`` (corpus summary with the chart inline)
- ``json``: ``citations.json``
- ``csv``:  ``citations.csv``

A manifest, ``.citewatch-reports.json``, lists what each format wrote last time, so that the report
of a profile that has left the corpus (or a chart with nothing left to draw) is removed when its
format is written again: the folder never shows a stale report beside current ones. Nothing that
citewatch did not write is ever removed, and formats not being written are left as they are.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..store import Store
from .data import ReportData, gather

FORMATS = ("md", "html", "json", "csv")
MANIFEST = ".citewatch-reports.json"
_SUFFIXES = {"md": {".md", ".svg"}, "html": {".html"}, "json": {".json"}, "csv": {".csv"}}

__all__ = ["FORMATS", "ReportData", "corpus_summary", "gather", "write_reports"]


class ReportTargetIsProfile(OSError):
    """A report file would replace a profile file."""


def _write_file(path: Path, text: str) -> Path:
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
    ignore_patterns: Sequence[str] = (),
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
        data = gather(store, run_id, wayback_url, ignore_patterns)
    protected = {store.profile_file(path).resolve() for path in store.active_profile_paths()}

    def _write(path: Path, text: str) -> Path:
        # A report never replaces a profile of the corpus (say, --out pointed into the corpus).
        if path.resolve() in protected:
            raise ReportTargetIsProfile(
                f"refusing to overwrite {path}: it is a profile of the corpus"
            )
        return _write_file(path, text)

    by_format: dict[str, list[Path]] = {}
    if "md" in formats:
        from .markdown import index_markdown, profile_markdown
        from .svg import trend_chart

        files = by_format["md"] = []
        for group in data.profiles:
            files.append(_write(out_dir / f"{group.slug}.md", profile_markdown(group, data)))
        chart = None
        if data.trend:
            files.append(_write(out_dir / "trend.svg", trend_chart(data.trend) + "\n"))
            chart = "trend.svg"
        files.append(_write(out_dir / "index.md", index_markdown(data, chart)))
    if "html" in formats:
        from .html import index_html, profile_html

        files = by_format["html"] = []
        for group in data.profiles:
            files.append(_write(out_dir / f"{group.slug}.html", profile_html(group, data)))
        files.append(_write(out_dir / "index.html", index_html(data)))
    if "json" in formats:
        from .json_report import report_json

        by_format["json"] = [_write(out_dir / "citations.json", report_json(data))]
    if "csv" in formats:
        from .csv_report import report_csv

        by_format["csv"] = [_write(out_dir / "citations.csv", report_csv(data))]
    _remove_stale(out_dir, by_format, str(store.location or ":memory:"))
    return [path for fmt in FORMATS for path in by_format.get(fmt, [])]


def _remove_stale(out_dir: Path, by_format: dict[str, list[Path]], database: str) -> None:
    """Remove what a rewritten format wrote last time and not this time; update the manifest.
    Files another database's reports wrote there are not this database's to remove."""
    manifest = out_dir / MANIFEST
    try:
        previous = json.loads(manifest.read_text(encoding="utf-8"))
        if not isinstance(previous, dict):
            previous = {}
    except (OSError, ValueError):
        previous = {}
    if previous.get("database", database) != database:
        previous = {}
    current = {fmt: sorted(path.name for path in paths) for fmt, paths in by_format.items()}
    for fmt, names in current.items():
        old = previous.get(fmt)
        for name in old if isinstance(old, list) else []:
            # Only plain names, in out_dir, of the kind this format writes: a hand-edited manifest
            # cannot make us remove anything else.
            if (
                isinstance(name, str)
                and name not in names
                and name == Path(name).name
                and not name.startswith(".")
                and Path(name).suffix in _SUFFIXES[fmt]
                and (out_dir / name).is_file()
            ):
                (out_dir / name).unlink()
    kept = {fmt: names for fmt, names in previous.items() if fmt in FORMATS and fmt not in current}
    document = {"database": database, **kept, **current}
    _write_file(manifest, json.dumps(document, indent=1, sort_keys=True) + "\n")


def corpus_summary(store: Store, run_id: int | None = None) -> dict[str, Any]:
    """The corpus summary as plain JSON-ready data (the same as ``index.md`` and ``citations.json``).

    Keys: run_id, profiles, citations, skipped_citations, archive_link_citations, urls, by_verdict,
    citations_by_verdict, broken_citations, ignored_urls, link_rot_rate, link_rot, archive_coverage,
    archived_urls, roles, policy, previous_run, previous_run_started, audits_not_compared,
    broken_citations_before, newly_broken, recovered, removed, newly_broken_citations,
    no_longer_broken_citations, changes, trend_basis, trend, network, interrupted_runs.
    """
    return gather(store, run_id).summary
