"""Plain-text formatting shared by the Markdown and HTML writers, so both say the same thing.

>>> pct(0.0421), pct(None)
('4.2%', 'n/a')
>>> days_label(-2206), days_label(0), days_label(3), days_label(None)
('2206 days before citing', 'on the citation date', '3 days after citing', '')
"""

from __future__ import annotations

from typing import Any

from .data import DOES_NOT_REPLAY, NOT_VERIFIED, REPLAYS, CitationRecord


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def day(timestamp: str | None) -> str:
    """The date part of an ISO timestamp (or of a 14-digit Wayback timestamp)."""
    if not timestamp:
        return ""
    if timestamp[:8].isdigit() and "-" not in timestamp[:8]:
        return f"{timestamp[0:4]}-{timestamp[4:6]}-{timestamp[6:8]}"
    return timestamp[:10]


def days_label(days: int | None) -> str:
    if days is None:
        return ""
    if days == 0:
        return "on the citation date"
    unit = "day" if abs(days) == 1 else "days"
    return f"{abs(days)} {unit} {'before' if days < 0 else 'after'} citing"


def last_check_label(c: CitationRecord) -> str:
    """``not_found · HTTP 404 · 2026-03-01`` or ``never checked``."""
    if not c.last_checked:
        return c.skip_reason or "never checked"
    parts = [c.last_outcome or "?"]
    if c.last_status is not None:
        parts.append(f"HTTP {c.last_status}")
    parts.append(day(c.last_checked))
    return " · ".join(parts)


def since_label(c: CitationRecord) -> str:
    return f"since {day(c.verdict_since)}" if c.verdict_since else ""


def archive_links_label(summary: dict[str, Any]) -> str:
    """``4: 2 replay, 1 does not replay, 1 not verified`` (citations that are Wayback links)."""
    states = summary.get("archive_links") or {}
    total = summary.get("archive_link_citations", sum(states.values()))
    if not total:
        return "none"
    replay = sum(states.get(s, 0) for s in REPLAYS)
    fail = sum(states.get(s, 0) for s in DOES_NOT_REPLAY)
    parts = [
        f"{replay} {'replays' if replay == 1 else 'replay'}" if replay else "",
        f"{fail} {'does' if fail == 1 else 'do'} not replay" if fail else "",
        f"{states.get(NOT_VERIFIED, 0)} not verified" if states.get(NOT_VERIFIED) else "",
    ]
    return f"{total}: " + ", ".join(p for p in parts if p)
