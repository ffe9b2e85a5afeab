"""Plain-text formatting shared by the Markdown and HTML writers, so both say the same thing.

>>> pct(0.0421), pct(None)
('4.2%', 'n/a')
>>> days_label(-2206), days_label(0), days_label(3), days_label(None)
('2206 days before citing', 'on the citation date', '3 days after citing', '')
"""

from __future__ import annotations

from typing import Any

from .data import (
    DOES_NOT_REPLAY,
    NOT_VERIFIED,
    REPLAYS,
    CitationRecord,
    NetworkInfo,
    RunDiff,
    RunInfo,
)


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


def offline_attempt_label(c: CitationRecord) -> str:
    """A probe newer than the last check, made while our own network was offline (no evidence)."""
    if not c.offline_checked:
        return ""
    return (
        f"a later probe ({c.offline_outcome or '?'} · {day(c.offline_checked)}) was made while"
        " our own network was offline: not counted"
    )


def network_text(network: NetworkInfo | None) -> str:
    """``Network: offline (run 4) — why`` for the top of the reports."""
    if network is None:
        return "Network: no run has checked the links yet."
    text = f"Network: {network.health} (run {network.run_id})"
    return text + (f" — {network.explanation}" if network.explanation else "") + "."


def interrupted_text(run: RunInfo, reported: int | None) -> str:
    """One line about a run that never finished."""
    when = run.started[:19].replace("T", " ")
    text = (
        f"Run {run.run_id} ({run.command or 'run'}, started {when}) never finished: it was"
        " interrupted (killed) or is still running."
    )
    if reported is not None and run.run_id > reported:
        text += (
            f" This report describes run {reported}, the last finished one; what run"
            f" {run.run_id} recorded before it stopped is included."
        )
    return text


def comparison_text(diff: RunDiff) -> str:
    """``Run 10 (periodic) compared with audit run 8 (periodic, 2026-03-04)``."""
    return (
        f"Run {diff.run_id} ({diff.policy}) compared with audit run {diff.previous_run}"
        f" ({diff.policy}, {day(diff.previous_started)})"
    )


def not_compared_text(diff: RunDiff) -> str:
    """Audits since the previous one that had another policy, and why they are not compared."""
    if not diff.not_compared:
        return ""
    runs = ", ".join(f"{rid} ({policy})" for rid, policy in diff.not_compared)
    return (
        f"Not compared: audit run{'s' if len(diff.not_compared) > 1 else ''} {runs} — an audit"
        f" compares with the previous audit of the same policy ({diff.policy})."
    )
