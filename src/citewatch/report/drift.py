"""Content drift: has the cited page changed since the capture that stands for the citation?

Two fingerprints are directly comparable because both are base32 SHA-1 of the whole body: the live
page's ``checks.sha1`` (from its latest successful check) and the best snapshot's CDX ``digest``. Equal
digests prove the page is byte-identical to the capture. Different digests say little on their own
(a timestamp in a footer changes the hash), so where both sides are HTML and both have a text sample
(``checks.text_sample``, ``snapshot_checks.text_sample``) a difflib similarity score says *how much*
the words changed.

>>> compare({"sha1": "AAA", "content_type": "text/html"}, {"digest": "AAA", "mimetype": "text/html"}).state
'identical'
>>> text_similarity("the militia was founded in 2012", "the militia was founded in 2015")
0.833
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"\w+", re.UNICODE)

IDENTICAL = "identical"
CHANGED = "changed"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Drift:
    """How the live page compares with the best snapshot."""

    state: str
    """``identical`` (same digest), ``changed`` (digests differ) or ``unknown`` (nothing to compare)."""
    similarity: float | None
    """Word-level similarity 0..1 of the two text samples (only when ``changed`` and both are HTML)."""
    reason: str
    """One line a reviewer can read: why this state, and what was compared."""
    live_sha1: str | None = None
    snapshot_digest: str | None = None
    live_checked_at: str | None = None
    snapshot_timestamp: str | None = None

    def label(self) -> str:
        """Short form for tables: ``identical``, ``changed 0.82``, ``changed``, ``unknown``."""
        if self.state == CHANGED and self.similarity is not None:
            return f"changed {self.similarity:.2f}"
        return self.state


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def text_similarity(a: str, b: str) -> float:
    """Similarity of two texts' word sequences, rounded to 3 places (1.0 = same words, same order)."""
    wa, wb = _words(a), _words(b)
    if not wa and not wb:
        return 1.0
    return round(difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio(), 3)


def _is_html(kind: str | None) -> bool:
    return bool(kind) and "html" in str(kind).lower()


def compare(
    live: Mapping[str, Any] | None,
    snapshot: Mapping[str, Any] | None,
    snapshot_text: str | None = None,
) -> Drift:
    """Compare the latest ok check (``live``) with the best snapshot row (CDX fields).

    ``snapshot_text`` is the text sample of a replay of that capture, when one was verified.
    """
    if snapshot is None:
        return Drift(UNKNOWN, None, "no 2xx snapshot to compare with")
    timestamp = str(snapshot.get("timestamp") or "") or None
    digest = (snapshot.get("digest") or "").strip().upper() or None
    if live is None or not live.get("sha1"):
        return Drift(
            UNKNOWN,
            None,
            "no successful check with a content digest",
            snapshot_digest=digest,
            snapshot_timestamp=timestamp,
        )
    sha1 = str(live["sha1"]).strip().upper()
    common = {
        "live_sha1": sha1,
        "snapshot_digest": digest,
        "live_checked_at": live.get("checked_at"),
        "snapshot_timestamp": timestamp,
    }
    if digest is None:
        return Drift(UNKNOWN, None, "the snapshot has no CDX digest", **common)
    if sha1 == digest:
        return Drift(IDENTICAL, 1.0, "live page is byte-identical to the snapshot", **common)
    if not (_is_html(live.get("content_type")) and _is_html(snapshot.get("mimetype"))):
        return Drift(CHANGED, None, "digests differ (not both HTML: no text comparison)", **common)
    live_text = live.get("text_sample")
    if not live_text or not snapshot_text:
        missing = "live page" if not live_text else "snapshot (verify it to get one)"
        return Drift(CHANGED, None, f"digests differ; no text sample of the {missing}", **common)
    score = text_similarity(str(live_text), str(snapshot_text))
    return Drift(CHANGED, score, f"digests differ; text similarity {score:.2f}", **common)
