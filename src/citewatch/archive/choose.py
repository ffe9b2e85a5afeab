"""Choosing the snapshot that best stands for a citation (DESIGN §6).

The best snapshot is the latest 2xx capture at or before the citation date (the profile's
publication date), else the earliest 2xx capture after it. Revisits must already be resolved to their
real status; 3xx/4xx/5xx and unresolved revisit rows are never chosen. With no citation date, the
latest 2xx capture wins.

>>> rows = [{"timestamp": "20230101000000", "status": 200}, {"timestamp": "20231201000000", "status": 200}]
>>> best_snapshot(rows, "2023-11-01")["timestamp"]
'20230101000000'
>>> days_from_citation("20231031000000", "2023-11-01")
-1
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any


def _is_ok(row: Mapping[str, Any]) -> bool:
    status = row.get("status")
    try:
        return 200 <= int(status) < 300  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def citation_cutoff(citation_date: str | None) -> str | None:
    """The last 14-digit timestamp that counts as "at or before" an ISO citation date."""
    if not citation_date:
        return None
    return citation_date.replace("-", "")[:8] + "235959"


def best_snapshot(
    snapshots: Iterable[Mapping[str, Any]], citation_date: str | None
) -> Mapping[str, Any] | None:
    """The capture row to use for a citation made on ``citation_date`` (ISO date or None)."""
    good = sorted((s for s in snapshots if _is_ok(s)), key=lambda s: str(s["timestamp"]))
    if not good:
        return None
    cutoff = citation_cutoff(citation_date)
    if cutoff is None:
        return good[-1]
    before = [s for s in good if str(s["timestamp"]).ljust(14, "0") <= cutoff]
    if before:
        return before[-1]
    return good[0]


def timestamp_to_datetime(timestamp: str) -> datetime:
    """A (possibly short) Wayback timestamp as an aware UTC datetime."""
    padded = timestamp.ljust(14, "0")
    month = max(int(padded[4:6]), 1)
    day = max(int(padded[6:8]), 1)
    return datetime(
        int(padded[0:4]),
        month,
        day,
        int(padded[8:10]),
        int(padded[10:12]),
        int(padded[12:14]),
        tzinfo=UTC,
    )


def days_from_citation(timestamp: str, citation_date: str | None) -> int | None:
    """Whole days from the citation date to the capture (negative: captured before it was cited)."""
    if not citation_date:
        return None
    cited = date.fromisoformat(citation_date)
    return (timestamp_to_datetime(timestamp).date() - cited).days


def best_usable_snapshot(
    snapshots: Iterable[Mapping[str, Any]],
    citation_date: str | None,
    rejected: Collection[str] = (),
) -> Mapping[str, Any] | None:
    """:func:`best_snapshot` among the captures whose timestamps were not rejected on replay
    (``--verify`` found them to be soft-404s); the same rule picks the next candidate.

    >>> rows = [{"timestamp": "20230101000000", "status": 200}, {"timestamp": "20231201000000", "status": 200}]
    >>> best_usable_snapshot(rows, "2023-11-01", {"20230101000000"})["timestamp"]
    '20231201000000'
    """
    return best_snapshot(
        (s for s in snapshots if str(s["timestamp"]) not in rejected), citation_date
    )
