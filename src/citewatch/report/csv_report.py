"""``citations.csv``: one row per citation, safe to open in a spreadsheet.

Spreadsheet formula injection: a text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab, CR or
LF (or their full-width forms) could be run as a formula by Excel/LibreOffice/Sheets, so it is
prefixed with ``'``. Numbers are written as numbers (and a text cell that is just a plain number,
such as ``-12``, stays as it is: it cannot be a formula).

>>> neutralise("=HYPERLINK(\\"http://x\\")"), neutralise("-12"), neutralise(-12), neutralise("ok")
('\\'=HYPERLINK("http://x")', '-12', -12, 'ok')
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from .data import CitationRecord, ReportData

_FORMULA_START = tuple("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

COLUMNS: tuple[str, ...] = (
    "profile",
    "line",
    "column",
    "page",
    "section",
    "role",
    "anchor_text",
    "sentence",
    "cited_url",
    "url",
    "skip_reason",
    "archived_timestamp",
    "verdict",
    "confirmed",
    "verdict_since",
    "ignored",
    "broken",
    "last_checked",
    "last_outcome",
    "last_status",
    "last_final_url",
    "moved_to",
    "suggested_replacement",
    "replacement_kind",
    "best_snapshot_timestamp",
    "best_snapshot_url",
    "best_snapshot_status",
    "snapshot_days_from_citation",
    "captures",
    "drift",
    "drift_similarity",
    "evidence",
    "published",
    # Added later: new columns go at the end, so existing column positions never change.
    "broken_reason",
    "cited_capture_state",
    "cited_capture_checked_at",
    "cited_capture_http_status",
    "cited_capture_served_timestamp",
    "cited_capture_label",
    "replacement_note",
    "offline_checked",
    "offline_outcome",
)


def neutralise(value: Any) -> Any:
    """A cell value that no spreadsheet will evaluate as a formula."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def citation_row(c: CitationRecord) -> dict[str, Any]:
    s = c.best_snapshot
    cc = c.cited_capture
    return {
        "profile": c.profile,
        "line": c.line,
        "column": c.column,
        "page": c.page,
        "section": c.section,
        "role": c.role,
        "anchor_text": c.anchor_text,
        "sentence": c.sentence,
        "cited_url": c.cited_url,
        "url": c.url,
        "skip_reason": c.skip_reason,
        "archived_timestamp": c.archived_timestamp,
        "verdict": c.verdict,
        "confirmed": int(c.confirmed),
        "verdict_since": c.verdict_since,
        "ignored": c.ignored,
        "broken": int(c.broken),
        "last_checked": c.last_checked,
        "last_outcome": c.last_outcome,
        "last_status": c.last_status,
        "last_final_url": c.last_final_url,
        "moved_to": c.moved_to,
        "suggested_replacement": c.replacement,
        "replacement_kind": c.replacement_kind,
        "best_snapshot_timestamp": s.timestamp if s else None,
        "best_snapshot_url": s.replay_url if s else None,
        "best_snapshot_status": s.status if s else None,
        "snapshot_days_from_citation": s.days_from_citation if s else None,
        "captures": "; ".join(cap.label() for cap in c.captures),
        "drift": c.drift.state if c.drift else None,
        "drift_similarity": c.drift.similarity if c.drift else None,
        "evidence": c.evidence,
        "published": c.published,
        "broken_reason": c.broken_reason,
        "cited_capture_state": cc.state if cc else None,
        "cited_capture_checked_at": cc.checked_at if cc else None,
        "cited_capture_http_status": cc.http_status if cc else None,
        "cited_capture_served_timestamp": cc.served_timestamp if cc else None,
        "cited_capture_label": cc.label() if cc else None,
        "replacement_note": c.replacement_note,
        "offline_checked": c.offline_checked,
        "offline_outcome": c.offline_outcome,
    }


def report_csv(data: ReportData) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for c in data.citations:
        writer.writerow({k: neutralise(v) for k, v in citation_row(c).items()})
    return buffer.getvalue()
