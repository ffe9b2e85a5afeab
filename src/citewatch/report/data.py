"""Everything the reports show, gathered from the store once into plain typed records.

The writers (markdown, html, json, csv) only format these records; none of them queries SQLite.
Gathering is a handful of bulk queries (never one per citation), so a corpus of 100,000 citations
reports in seconds.

Definitions used throughout (also in docs/reports.md):

- **broken citation**: not ignored, and either the URL's verdict is ``dead`` (confirmed or one-shot) and
  the citation is not itself an archive link, or the citation is a Wayback link whose cited capture is
  known not to replay (the newest replay that got an answer from the archive found no capture, a
  "page not found" capture or a non-2xx capture). A replay that got no answer (rate limit, 5xx,
  archive unreachable) is no evidence: such a link is "not verified", never broken.
- **link-rot rate**: distinct URLs cited as ``source`` whose verdict is ``dead``, divided by the distinct
  source URLs that could be judged (verdict ``alive``, ``moved``, ``failing`` or ``dead``; ``blocked``,
  ``skipped``, ignored and ``unchecked`` URLs are left out because nothing is known about them).
- **archive coverage**: share of distinct cited URLs with at least one 2xx snapshot known.
- **previous audit**: the latest finished ``audit`` run before the run being reported; a URL's verdict
  as of a run is its latest ``verdicts`` row with ``run_id`` at or before that run (``unchecked`` if none).
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from ..archive.choose import best_snapshot, days_from_citation
from ..config import ignore_reason
from ..models import BROKEN_VERDICTS, Verdict
from ..store import Store
from ..urls import wayback_replay_url
from .drift import Drift, compare

#: Display order of verdicts: what needs attention first.
VERDICT_ORDER: tuple[str, ...] = (
    "dead",
    "failing",
    "blocked",
    "moved",
    "alive",
    "skipped",
    "unchecked",
)
#: Verdicts that say something about the page (the link-rot denominator).
JUDGED_VERDICTS = frozenset({"alive", "moved", "failing", "dead"})
#: Verdicts that count as "working again" for the recovered list.
WORKING_VERDICTS = frozenset({"alive", "moved"})
ROLE_ORDER: tuple[str, ...] = ("source", "navigation", "media")
#: At most this many audit runs are drawn in the trend chart (the most recent ones).
TREND_MAX_RUNS = 50
_RESERVED_SLUGS = frozenset({"index", "citations", "trend"})


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The capture that best stands for a citation (DESIGN §6)."""

    timestamp: str
    original: str
    status: int | None
    mimetype: str
    digest: str
    replay_url: str
    days_from_citation: int | None
    """Whole days from the citation date to the capture; negative = captured before citing."""


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """One Save Page Now request made for the URL."""

    requested_at: str
    status: str
    timestamp: str | None
    status_ext: str | None
    message: str | None

    def label(self) -> str:
        text = f"{self.status} {self.requested_at[:10]}"
        if self.timestamp:
            text += f" → {self.timestamp}"
        if self.status_ext:
            text += f" ({self.status_ext})"
        return text


#: Replay states of a capture (see :func:`replay_state`): the capture replays…
REPLAYS = frozenset({"verified", "redirected"})
#: …or it is known not to (the archive answered, and the answer is about the capture).
DOES_NOT_REPLAY = frozenset({"not_archived", "soft_404", "bad_capture"})
#: A cited capture never replayed, or whose replays all went unanswered (rate limit, 5xx…).
NOT_VERIFIED = "not_verified"
#: Display order of cited captures' states.
CITED_CAPTURE_STATES: tuple[str, ...] = (
    "verified",
    "redirected",
    "not_archived",
    "soft_404",
    "bad_capture",
    NOT_VERIFIED,
)


@dataclass(frozen=True, slots=True)
class CitedCapture:
    """What replaying the capture a Wayback citation points at showed (``snapshot_checks``)."""

    timestamp: str
    """The capture as cited."""
    state: str
    """``verified``, ``redirected`` (the archive serves the nearest capture), ``not_archived``,
    ``soft_404`` (a captured "page not found"), ``bad_capture`` (the capture served is not a 2xx
    page) or ``not_verified`` (never replayed, or no replay got an answer)."""
    checked_at: str | None
    """When the replay that decided the state ran (for ``not_verified``: the last attempt, if any)."""
    http_status: int | None
    served_timestamp: str | None
    """The capture the archive actually served (its Memento-Datetime)."""
    detail: str | None
    """The archive's error, the soft-404 reason, or why the last attempt proved nothing."""

    @property
    def replays(self) -> bool:
        return self.state in REPLAYS

    @property
    def fails(self) -> bool:
        """True when the cited capture is known not to replay (never for an unanswered replay)."""
        return self.state in DOES_NOT_REPLAY

    def _when(self) -> str:
        return f"checked {self.checked_at[:10]}" if self.checked_at else ""

    def _failure(self) -> str:
        when = self._when()
        if self.state == "not_archived":
            extra = ", ".join(
                x for x in (f"HTTP {self.http_status}" if self.http_status else "", when) if x
            )
            return f"the archive has no capture at {self.timestamp}" + (
                f" ({extra})" if extra else ""
            )
        if self.state == "soft_404":
            what = f" ({self.detail})" if self.detail else ""
            return f'the capture is a "page not found" page{what}' + (f", {when}" if when else "")
        served = self.served_timestamp or self.timestamp
        status = f"HTTP {self.http_status}" if self.http_status is not None else "an error"
        return f"the capture served ({served}) is {status}, not a page" + (
            f", {when}" if when else ""
        )

    def label(self) -> str:
        """One line for a reviewer: does the cited archive link work, and how do we know."""
        when = self._when()
        if self.state == "verified":
            return "replays: the cited capture was verified" + (f" ({when})" if when else "")
        if self.state == "redirected":
            served = (
                f"the nearest capture, {self.served_timestamp}"
                if self.served_timestamp
                else "another capture"
            )
            return f"replays, but the archive serves {served}, not the one cited" + (
                f" ({when})" if when else ""
            )
        if self.fails:
            return "does not replay: " + self._failure()
        if self.checked_at:
            why = f": {self.detail}" if self.detail else ""
            return (
                f"not verified: the last replay attempt ({self.checked_at[:10]}) got no answer"
                f" from the archive{why}"
            )
        return (
            "not verified: the cited capture has never been replayed (citewatch archive replays it)"
        )

    def reason(self) -> str | None:
        """Why the citation is broken, when the capture does not replay."""
        return "the cited archive link does not replay: " + self._failure() if self.fails else None


@dataclass(frozen=True, slots=True)
class CitationRecord:
    """One citation with everything a reviewer needs about it."""

    id: int
    profile: str
    """Path of the profile file."""
    published: str | None
    """The citation date (the profile's publication date)."""
    line: int
    column: int
    page: int | None
    section: str
    anchor_text: str
    sentence: str
    role: str
    raw: str
    """The text exactly as it stands in the profile."""
    cited_url: str
    """The URL as cited, resolved against the profile's base URL (a Wayback link stays one)."""
    url: str | None
    """The URL whose liveness is checked (the original for archive links); None if skipped."""
    fragment: str
    skip_reason: str | None
    archived_timestamp: str | None
    """Set when the citation is itself a Wayback link."""
    verdict: str
    confirmed: bool
    verdict_since: str | None
    moved_to: str | None
    ignored: str | None
    """The reason recorded with ``citewatch ignore``, when the URL is ignored."""
    last_checked: str | None
    last_outcome: str | None
    last_status: int | None
    last_final_url: str | None
    last_error: str | None
    best_snapshot: SnapshotInfo | None
    replacement: str | None
    """What to cite instead (what ``citewatch fix`` writes): the best snapshot of a broken link (for a
    cited archive link that does not replay, the best other capture of its original), or a moved
    link's new URL."""
    replacement_kind: str | None
    """``snapshot`` or ``moved``."""
    captures: tuple[CaptureInfo, ...]
    drift: Drift | None
    evidence: str | None
    """The command that prints the URL's full evidence trail."""
    cited_capture: CitedCapture | None
    """For a citation that is itself a Wayback link: what replaying the cited capture showed."""
    archive_asked: bool
    """The Wayback Machine answered a lookup of the URL (found, none, blocked), or captures are known."""

    @property
    def broken(self) -> bool:
        if self.ignored is not None:
            return False
        if self.archived_timestamp:
            return self.cited_capture is not None and self.cited_capture.fails
        return self.verdict in BROKEN_VERDICTS

    @property
    def broken_reason(self) -> str | None:
        """Why the citation is broken (None when it is not)."""
        if not self.broken:
            return None
        if self.cited_capture is not None and self.archived_timestamp:
            return self.cited_capture.reason()
        text = f"the cited URL is {self.verdict_label}"
        if self.last_outcome:
            last = self.last_outcome + (
                f" · HTTP {self.last_status}" if self.last_status is not None else ""
            )
            text += f" (last check: {last})"
        return text

    @property
    def checkable(self) -> bool:
        """False for a skipped link (``mailto:``, ``javascript:``…): recorded, never checked."""
        return self.url is not None and not self.skip_reason

    @property
    def attention_label(self) -> str:
        """The verdict, or what is wrong with a cited archive link (tables of broken citations)."""
        if self.archived_timestamp and self.cited_capture is not None and self.cited_capture.fails:
            return "archive link does not replay"
        return self.verdict_label

    @property
    def replacement_note(self) -> str:
        """What the suggested replacement is, or why there is none (the same words in every format).

        With no archived copy, Save Page Now is never the answer: it is not asked for dead URLs, and
        a capture made now would only archive the error page.
        """
        cited = self.cited_capture if self.archived_timestamp else None
        if self.replacement is not None:
            if cited is not None:
                return "best snapshot of the original URL (the cited capture does not replay)"
            return (
                "best snapshot" if self.replacement_kind == "snapshot" else "new location (moved)"
            )
        if cited is not None and not cited.fails:
            if cited.replays:
                return "none needed: the cited archive link replays"
            return "none suggested: the cited archive link is not verified"
        if not self.broken:
            return "none needed"
        if not self.archive_asked:
            return (
                "no archived copy known yet: the Wayback Machine has not been asked about this URL"
                " (run citewatch archive); otherwise look for the page's new location or another"
                " source"
            )
        return "no archived copy is known: look for the page's new location or another source"

    @property
    def location(self) -> str:
        return f"{self.profile}:{self.line}"

    @property
    def verdict_label(self) -> str:
        if self.ignored is not None:
            return f"{self.verdict} (ignored)"
        if self.verdict == Verdict.DEAD and not self.confirmed:
            return "dead (unconfirmed)"
        return self.verdict


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    line: int | None
    message: str
    raw: str


@dataclass(frozen=True, slots=True)
class ProfileGroup:
    """One profile and its citations, in document order."""

    path: str
    slug: str
    """File name stem of its report files (``<slug>.md``, ``<slug>.html``)."""
    title: str
    authors: tuple[str, ...]
    published: str | None
    format: str
    base_url: str | None
    citations: tuple[CitationRecord, ...]
    findings: tuple[Finding, ...]

    @property
    def broken(self) -> int:
        return sum(1 for c in self.citations if c.broken)

    @property
    def sources(self) -> int:
        """Citations used as evidence: role ``source``, and checkable (a skipped link is no source)."""
        return sum(1 for c in self.citations if c.role == "source" and c.checkable)

    @property
    def by_verdict(self) -> dict[str, int]:
        """Citations per verdict (skipped links count as ``skipped``)."""
        counts = Counter(c.verdict for c in self.citations)
        return {v: counts[v] for v in VERDICT_ORDER if counts[v]}

    @property
    def display_title(self) -> str:
        return self.title or PurePosixPath(self.path).name


@dataclass(frozen=True, slots=True)
class VerdictChange:
    url: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class RunDiff:
    """Verdict changes between the previous audit and the reported run."""

    run_id: int | None
    previous_run: int | None
    previous_started: str | None
    newly_broken: tuple[str, ...]
    recovered: tuple[str, ...]
    changes: tuple[VerdictChange, ...]


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """Verdict counts (distinct cited URLs) as of one run."""

    run_id: int
    started: str
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class ReportData:
    generated_at: str
    run_id: int | None
    profiles: tuple[ProfileGroup, ...]
    summary: dict[str, Any]
    diff: RunDiff
    trend: tuple[TrendPoint, ...]
    trend_basis: str
    """``audit`` (one point per audit run) or ``runs`` (every run with verdict changes)."""
    wayback_url: str = "https://web.archive.org"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def citations(self) -> Iterable[CitationRecord]:
        for group in self.profiles:
            yield from group.citations


# ------------------------------------------------------------------------------------------------
# gathering


def gather(
    store: Store,
    run_id: int | None = None,
    wayback_url: str = "https://web.archive.org",
    ignore_patterns: Sequence[str] = (),
) -> ReportData:
    """Read the store once and build every record the reports need. ``ignore_patterns`` are the
    config's ``ignore`` globs: URLs they match count as ignored, as for the exit code."""
    rows = store.current_citations()
    url_ids = {r["url_id"] for r in rows if r["url_id"] is not None}
    latest = _latest_checks(store)
    latest_ok = _latest_ok_checks(store)
    snapshots = _grouped(store, "SELECT * FROM snapshots ORDER BY url_id, timestamp")
    captures = _grouped(store, "SELECT * FROM captures ORDER BY url_id, requested_at, id")
    samples = _snapshot_samples(store)
    replays = replay_evidence(store)
    asked = {
        r["url_id"]
        for r in store.db.query(
            "SELECT DISTINCT url_id FROM archive_lookups WHERE result IN ('found', 'none', 'blocked')"
        )
    } | set(snapshots)
    rejected = _rejected(replays, snapshots)
    rules = store.ignored()
    ignored = {
        url: reason
        for url in {row["url"] for row in rows if row.get("url")}
        if (reason := ignore_reason(url, ignore_patterns, rules)) is not None
    }
    profiles = {
        p["path"]: p for p in store.query("SELECT * FROM profiles WHERE removed_run IS NULL")
    }
    findings = _findings(store)

    best_cache: dict[tuple[int, str | None], Mapping[str, Any] | None] = {}
    by_profile: dict[str, list[CitationRecord]] = defaultdict(list)
    for row in rows:
        url_id = row["url_id"]
        best = cited = None
        if row["archived_timestamp"] and url_id is not None:
            timestamp = str(row["archived_timestamp"])
            cited = cited_capture(timestamp, *replays.get((url_id, timestamp), (None, None)))
        if cited is not None and cited.fails:
            # What fix writes: never the capture cited, nor the one served in its place.
            best = other_usable_capture(
                snapshots.get(url_id, ()), row["published"], rejected.get(url_id, ()), cited
            )
        elif url_id is not None:
            key = (url_id, row["published"])
            if key not in best_cache:
                best_cache[key] = usable_best_snapshot(
                    snapshots.get(url_id, ()), row["published"], rejected.get(url_id, ())
                )
            best = best_cache[key]
        record = _citation_record(
            row,
            latest.get(url_id),
            latest_ok.get(url_id),
            best,
            samples.get((url_id, best["timestamp"])) if best else None,
            captures.get(url_id, ()),
            ignored,
            wayback_url,
            cited,
            url_id in asked,
        )
        by_profile[row["path"]].append(record)

    groups = _profile_groups(profiles, by_profile, findings)
    diff = run_diff(store, run_id, url_ids)
    trend, basis = trend_series(store, run_id)
    summary = _summary(groups, snapshots, url_ids, diff, trend, basis, run_id)
    return ReportData(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        run_id=diff.run_id,
        profiles=groups,
        summary=summary,
        diff=diff,
        trend=trend,
        trend_basis=basis,
        wayback_url=wayback_url,
    )


def _grouped(store: Store, sql: str) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in store.db.query(sql):
        grouped[row["url_id"]].append(row)
    return grouped


def _latest_checks(store: Store) -> dict[int, dict[str, Any]]:
    return {r["url_id"]: r for r in store.db.query("SELECT * FROM latest_check")}


def _latest_ok_checks(store: Store) -> dict[int, dict[str, Any]]:
    """The newest successful check of each URL: the live page whose digest drift compares."""
    sql = (
        "SELECT * FROM (SELECT url_id, checked_at, sha1, content_type, text_sample,"
        " ROW_NUMBER() OVER (PARTITION BY url_id ORDER BY checked_at DESC, id DESC) AS rn"
        " FROM checks WHERE outcome IN ('ok', 'redirected')) WHERE rn = 1"
    )
    return {r["url_id"]: r for r in store.db.query(sql)}


def replay_state(row: Mapping[str, Any]) -> str | None:
    """What one ``snapshot_checks`` row says about the capture asked for (the rule of
    ``archive.runner``: ``rejected_timestamps`` and its replay cache):

    ``verified`` / ``redirected`` (a 2xx page came back: the capture asked for, or the nearest),
    ``soft_404``, ``not_archived`` (HTTP 404 with no Memento-Datetime: the archive has no such
    capture), ``bad_capture`` (a capture was served, but it is not a 2xx page) — or None when the
    archive gave no answer about the capture (a 5xx that stayed, a redirect loop…): no evidence.

    >>> replay_state({"timestamp": "20171017230858", "status": 404, "memento_datetime": None, "soft_404": 0})
    'not_archived'
    >>> replay_state({"timestamp": "20171017230858", "status": 503, "memento_datetime": None, "soft_404": 0})
    """
    status, memento = row.get("status"), row.get("memento_datetime")
    if row.get("soft_404"):
        return "soft_404"
    if status == 404 and not memento:
        return "not_archived"
    try:
        ok = status is not None and 200 <= int(status) < 300
    except (TypeError, ValueError):
        ok = False
    if ok:
        asked = str(row.get("timestamp") or "")
        memento = str(memento or "")
        same = memento == asked if len(asked) >= 14 else bool(memento) and memento.startswith(asked)
        return "verified" if same else "redirected"
    if memento:
        return "bad_capture"
    return None


#: (url_id, timestamp) → (the newest replay with an answer about the capture, the newest of all).
ReplayEvidence = dict[tuple[int, str], tuple[dict[str, Any] | None, dict[str, Any] | None]]


def replay_evidence(store: Store, url_id: int | None = None) -> ReplayEvidence:
    """Every replayed capture's newest conclusive check and newest check, in one query."""
    sql = (
        "SELECT id, url_id, timestamp, checked_at, status, memento_datetime, soft_404, error"
        " FROM snapshot_checks"
        + (" WHERE url_id = ?" if url_id is not None else "")
        + " ORDER BY checked_at, id"
    )
    evidence: ReplayEvidence = {}
    for row in store.db.query(sql, [url_id] if url_id is not None else []):
        key = (row["url_id"], str(row["timestamp"]))
        decisive, _ = evidence.get(key, (None, None))
        if replay_state(row) is not None:
            decisive = row
        evidence[key] = (decisive, row)
    return evidence


def cited_capture(
    timestamp: str, decisive: Mapping[str, Any] | None, latest: Mapping[str, Any] | None
) -> CitedCapture:
    """A cited Wayback link's capture as the newest conclusive replay left it (else not verified)."""
    row = decisive or latest
    state = (replay_state(decisive) if decisive else None) or NOT_VERIFIED
    if row is None:
        return CitedCapture(timestamp, state, None, None, None, None)
    detail = row.get("error")
    if state == NOT_VERIFIED and not detail and row.get("status") is not None:
        detail = f"the archive answered HTTP {row['status']}"
    return CitedCapture(
        timestamp=timestamp,
        state=state,
        checked_at=row.get("checked_at"),
        http_status=row.get("status"),
        served_timestamp=row.get("memento_datetime"),
        detail=detail,
    )


def _rejected(
    evidence: ReplayEvidence, snapshots: Mapping[int, Sequence[Mapping[str, Any]]]
) -> dict[int, set[str]]:
    """url_id → capture timestamps whose newest conclusive replay showed they do not replay (a
    soft-404, no capture, a non-2xx capture), plus the captures with the same digest as a soft-404
    one (the same "not found" page) unless their own newest replay was fine."""
    rejected: dict[int, set[str]] = defaultdict(set)
    soft: dict[int, set[str]] = defaultdict(set)
    fine: dict[int, set[str]] = defaultdict(set)
    for (url_id, timestamp), (decisive, _latest) in evidence.items():
        state = replay_state(decisive) if decisive else None
        if state in DOES_NOT_REPLAY:
            rejected[url_id].add(timestamp)
        if state == "soft_404":
            soft[url_id].add(timestamp)
        elif state in REPLAYS:
            fine[url_id].add(timestamp)
    for url_id, stamps in soft.items():
        rows = snapshots.get(url_id, ())
        digests = {r["digest"] for r in rows if str(r["timestamp"]) in stamps and r["digest"]}
        rejected[url_id] |= {
            str(r["timestamp"])
            for r in rows
            if r["digest"] in digests and str(r["timestamp"]) not in fine[url_id]
        }
    return rejected


def rejected_captures(store: Store, url_id: int | None = None) -> dict[int, set[str]]:
    """url_id → capture timestamps never to suggest: their newest conclusive replay check found a
    soft-404, no capture or a non-2xx capture (and same-digest copies of a soft-404)."""
    sql = "SELECT url_id, timestamp, digest FROM snapshots" + (
        " WHERE url_id = ?" if url_id is not None else ""
    )
    snapshots: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in store.db.query(sql, [url_id] if url_id is not None else []):
        snapshots[row["url_id"]].append(row)
    return _rejected(replay_evidence(store, url_id), snapshots)


def usable_best_snapshot(
    snapshots: Iterable[Mapping[str, Any]], published: str | None, rejected: Iterable[str] = ()
) -> Mapping[str, Any] | None:
    """The best snapshot (archive.choose's rule) among captures not rejected on replay."""
    bad = set(rejected)
    return best_snapshot((s for s in snapshots if str(s["timestamp"]) not in bad), published)


def other_usable_capture(
    snapshots: Iterable[Mapping[str, Any]],
    published: str | None,
    rejected: Iterable[str],
    cited: CitedCapture,
) -> Mapping[str, Any] | None:
    """What to cite instead of a Wayback link whose cited capture does not replay: the best usable
    snapshot of its original URL (:func:`usable_best_snapshot`, the rule for dead URLs), never the
    capture cited nor the one the archive served in its place (for a short timestamp, the nearest
    capture, which the replay found to be a "page not found" or a non-2xx page), nor any capture
    ``rejected`` on replay.

    ``citewatch fix`` writes it and the reports suggest it: both call this.
    """
    bad = {cited.timestamp, *([cited.served_timestamp] if cited.served_timestamp else [])}
    return usable_best_snapshot(snapshots, published, {*rejected, *bad})


def _snapshot_samples(store: Store) -> dict[tuple[int, str], str]:
    """(url_id, timestamp) → the newest text sample of a replay of that capture."""
    sql = (
        "SELECT url_id, timestamp, text_sample FROM snapshot_checks"
        " WHERE text_sample IS NOT NULL AND text_sample != '' ORDER BY checked_at, id"
    )
    return {(r["url_id"], r["timestamp"]): r["text_sample"] for r in store.db.query(sql)}


def _findings(store: Store) -> dict[int, list[Finding]]:
    grouped: dict[int, list[Finding]] = defaultdict(list)
    sql = (
        "SELECT profile_id, kind, line, message, raw FROM findings"
        " WHERE superseded_run IS NULL ORDER BY profile_id, line, id"
    )
    for r in store.db.query(sql):
        grouped[r["profile_id"]].append(
            Finding(r["kind"], r["line"], r["message"] or "", r["raw"] or "")
        )
    return grouped


def snapshot_info(
    best: Mapping[str, Any], url: str, published: str | None, wayback_url: str
) -> SnapshotInfo:
    """A best-snapshot row as a record with its replay URL and distance from the citation date."""
    timestamp = str(best["timestamp"])
    original = best.get("original") or url
    return SnapshotInfo(
        timestamp=timestamp,
        original=original,
        status=best.get("status"),
        mimetype=best.get("mimetype") or "",
        digest=best.get("digest") or "",
        replay_url=wayback_replay_url(timestamp, original, wayback_url),
        days_from_citation=_days(timestamp, published),
    )


def with_fragment(url: str, fragment: str | None) -> str:
    """``url`` with the citation's ``#fragment`` put back (the checked URL never has one)."""
    return f"{url}#{fragment}" if fragment and "#" not in url else url


def suggested_replacement(
    verdict: str, moved_to: str | None, snapshot: SnapshotInfo | None, fragment: str | None
) -> tuple[str | None, str | None]:
    """(what to cite instead, ``snapshot`` | ``moved``) for a citation that is not an archive link.

    The reports suggest exactly what ``citewatch fix`` writes: both call this.
    """
    if verdict in BROKEN_VERDICTS and snapshot is not None:
        return with_fragment(snapshot.replay_url, fragment), "snapshot"
    if verdict == Verdict.MOVED and moved_to:
        return with_fragment(moved_to, fragment), "moved"
    return None, None


def _days(timestamp: str, published: str | None) -> int | None:
    try:
        return days_from_citation(timestamp, published)
    except ValueError:  # a malformed publication date in the profile: no distance
        return None


def evidence_command(url: str) -> str:
    return f"citewatch history {shlex.quote(url)}"


def _citation_record(
    row: Mapping[str, Any],
    latest: Mapping[str, Any] | None,
    latest_ok: Mapping[str, Any] | None,
    best: Mapping[str, Any] | None,
    snapshot_text: str | None,
    captures: Sequence[Mapping[str, Any]],
    ignored: Mapping[str, str],
    wayback_url: str,
    cited: CitedCapture | None = None,
    archive_asked: bool = False,
) -> CitationRecord:
    url = row["url"]
    verdict = row["verdict"] or ("skipped" if row["skip_reason"] or url is None else "unchecked")
    snap = snapshot_info(best, url, row["published"], wayback_url) if best and url else None
    replacement = kind = None
    if not row["archived_timestamp"]:
        replacement, kind = suggested_replacement(verdict, row["moved_to"], snap, row["fragment"])
    elif cited is not None and cited.fails and snap is not None:
        # The cited capture does not replay: ``best`` is the other capture (other_usable_capture).
        replacement, kind = with_fragment(snap.replay_url, row["fragment"]), "snapshot"
    drift = compare(latest_ok, best, snapshot_text) if url else None
    return CitationRecord(
        id=row["id"],
        profile=row["path"],
        published=row["published"],
        line=row["line"],
        column=row["col"] or 0,
        page=row["page"],
        section=row["section"] or "",
        anchor_text=row["anchor_text"] or "",
        sentence=row["sentence"] or "",
        role=row["role"] or "source",
        raw=row["raw"] or "",
        cited_url=row["cited_url"] or row["raw"] or "",
        url=url,
        fragment=row["fragment"] or "",
        skip_reason=row["skip_reason"],
        archived_timestamp=row["archived_timestamp"],
        verdict=verdict,
        confirmed=bool(row["confirmed"]),
        verdict_since=row["verdict_since"],
        moved_to=row["moved_to"],
        ignored=ignored.get(url) if url else None,
        last_checked=latest.get("checked_at") if latest else None,
        last_outcome=latest.get("outcome") if latest else None,
        last_status=latest.get("status") if latest else None,
        last_final_url=latest.get("final_url") if latest else None,
        last_error=latest.get("error") if latest else None,
        best_snapshot=snap,
        replacement=replacement,
        replacement_kind=kind,
        captures=tuple(
            CaptureInfo(
                c["requested_at"] or "",
                c["status"] or "",
                c["timestamp"],
                c["status_ext"],
                c["message"],
            )
            for c in captures
        ),
        drift=drift,
        evidence=evidence_command(url) if url else None,
        cited_capture=cited,
        archive_asked=archive_asked,
    )


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "profile"


def _slugs(paths: Sequence[str]) -> dict[str, str]:
    """Report file stems: the file's stem when unique, else the whole path, never a reserved name."""
    stems = Counter(slugify(PurePosixPath(p).stem) for p in paths)
    result: dict[str, str] = {}
    used: set[str] = set()
    for path in sorted(paths):
        slug = slugify(PurePosixPath(path).stem)
        if stems[slug] > 1:
            slug = slugify(path)
        if slug in _RESERVED_SLUGS:
            slug = "profile-" + slug
        base, n = slug, 2
        while slug in used:
            slug, n = f"{base}-{n}", n + 1
        used.add(slug)
        result[path] = slug
    return result


def _profile_groups(
    profiles: Mapping[str, Mapping[str, Any]],
    by_profile: Mapping[str, list[CitationRecord]],
    findings: Mapping[int, list[Finding]],
) -> tuple[ProfileGroup, ...]:
    slugs = _slugs(list(profiles))
    groups = []
    for path in sorted(profiles):
        p = profiles[path]
        try:
            authors = tuple(json.loads(p["authors"] or "[]"))
        except ValueError:
            authors = ()
        groups.append(
            ProfileGroup(
                path=path,
                slug=slugs[path],
                title=p["title"] or "",
                authors=tuple(str(a) for a in authors),
                published=p["published"],
                format=p["format"] or "",
                base_url=p["base_url"],
                citations=tuple(by_profile.get(path, ())),
                findings=tuple(findings.get(p["id"], ())),
            )
        )
    return tuple(groups)


# ------------------------------------------------------------------------------------------------
# run-to-run diff and trend


def _verdict_rows(store: Store) -> list[dict[str, Any]]:
    return store.query(
        "SELECT v.url_id, v.run_id, v.verdict, u.url FROM verdicts v JOIN urls u ON u.id = v.url_id"
        " ORDER BY v.run_id, v.id"
    )


def verdicts_as_of(rows: Iterable[Mapping[str, Any]], run_id: int) -> dict[int, str]:
    """url_id → verdict as of ``run_id`` (the latest change at or before it)."""
    state: dict[int, str] = {}
    for row in rows:
        if row["run_id"] > run_id:
            break
        state[row["url_id"]] = row["verdict"]
    return state


def reported_run(store: Store, run_id: int | None) -> int | None:
    """The run a report describes: the given one, else the newest run in the database."""
    if run_id is not None:
        return run_id
    row = store.db.execute("SELECT max(id) FROM runs").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def run_diff(store: Store, run_id: int | None, url_ids: Iterable[int]) -> RunDiff:
    """What changed, among the currently cited URLs, since the audit before ``run_id``."""
    current = reported_run(store, run_id)
    previous = store.previous_run("audit", current) if current is not None else None
    if current is None or previous is None:
        return RunDiff(current, None, None, (), (), ())
    rows = _verdict_rows(store)
    urls = {r["url_id"]: r["url"] for r in rows}
    before = verdicts_as_of(rows, int(previous["id"]))
    after = verdicts_as_of(rows, current)
    newly_broken, recovered, changes = [], [], []
    for url_id in sorted(set(url_ids), key=lambda i: urls.get(i, "")):
        old = before.get(url_id, "unchecked")
        new = after.get(url_id, "unchecked")
        if old == new or url_id not in urls:
            continue
        changes.append(VerdictChange(urls[url_id], old, new))
        if new in BROKEN_VERDICTS and old not in BROKEN_VERDICTS:
            newly_broken.append(urls[url_id])
        elif old in BROKEN_VERDICTS and new in WORKING_VERDICTS:
            recovered.append(urls[url_id])
    return RunDiff(
        current,
        int(previous["id"]),
        previous["started"],
        tuple(newly_broken),
        tuple(recovered),
        tuple(changes),
    )


def trend_series(store: Store, run_id: int | None = None) -> tuple[tuple[TrendPoint, ...], str]:
    """Verdict counts per audit run (the last TREND_MAX_RUNS), over the URLs cited at that run.

    Falls back to every run that changed a verdict when the database has no audit run yet.
    """
    limit = reported_run(store, run_id)
    if limit is None:
        return (), "audit"
    runs = store.query(
        "SELECT id, started FROM runs WHERE command = 'audit' AND id <= ?"
        " AND (finished IS NOT NULL OR id = ?) ORDER BY id",
        [limit, limit],
    )
    basis = "audit"
    if not runs:
        basis = "runs"
        runs = store.query(
            "SELECT id, started FROM runs WHERE id <= ? AND id IN (SELECT run_id FROM verdicts)"
            " ORDER BY id",
            [limit],
        )
    runs = runs[-TREND_MAX_RUNS:]
    if not runs:
        return (), basis
    verdict_rows = _verdict_rows(store)
    # Citations grouped by their lifetime (scan_run, superseded_run): few groups, however many rows.
    lifetimes: dict[tuple[int, int | None], set[int]] = defaultdict(set)
    for c in store.db.query(
        "SELECT url_id, scan_run, superseded_run FROM citations WHERE url_id IS NOT NULL"
    ):
        lifetimes[(c["scan_run"], c["superseded_run"])].add(c["url_id"])
    points = []
    state: dict[int, str] = {}
    cursor = 0
    for run in runs:
        rid = int(run["id"])
        while cursor < len(verdict_rows) and verdict_rows[cursor]["run_id"] <= rid:
            state[verdict_rows[cursor]["url_id"]] = verdict_rows[cursor]["verdict"]
            cursor += 1
        live: set[int] = set()
        for (added, superseded), ids in lifetimes.items():
            if added <= rid and (superseded is None or superseded > rid):
                live |= ids
        counts = Counter(state.get(u, "unchecked") for u in live)
        points.append(TrendPoint(rid, run["started"] or "", {v: counts[v] for v in VERDICT_ORDER}))
    return tuple(points), basis


# ------------------------------------------------------------------------------------------------
# corpus summary


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _summary(
    groups: Sequence[ProfileGroup],
    snapshots: Mapping[int, Sequence[Mapping[str, Any]]],
    url_ids: set[int],
    diff: RunDiff,
    trend: Sequence[TrendPoint],
    basis: str,
    run_id: int | None,
) -> dict[str, Any]:
    citations = [c for g in groups for c in g.citations]
    by_url: dict[str, CitationRecord] = {}
    roles_of_url: dict[str, set[str]] = defaultdict(set)
    for c in citations:
        if c.url:
            by_url.setdefault(c.url, c)
            roles_of_url[c.url].add(c.role)
    url_verdicts = Counter(c.verdict for c in by_url.values())
    archive_links = Counter(c.cited_capture.state for c in citations if c.cited_capture)
    citation_verdicts = Counter(c.verdict for c in citations)

    def judged(url: str) -> bool:
        c = by_url[url]
        return c.verdict in JUDGED_VERDICTS and c.ignored is None

    source_urls = [u for u, roles in roles_of_url.items() if "source" in roles]
    judged_sources = [u for u in source_urls if judged(u)]
    dead_sources = [u for u in judged_sources if by_url[u].verdict in BROKEN_VERDICTS]
    archived = sum(
        1
        for url_id in url_ids
        if best_snapshot(snapshots.get(url_id, ()), None) is not None  # any 2xx capture
    )
    roles: dict[str, dict[str, int]] = {}
    present = {c.role for c in citations if c.checkable}
    for role in ROLE_ORDER + tuple(sorted(present - set(ROLE_ORDER))):
        # A skipped link (mailto:, javascript:…) is recorded but is no source: it counts under no role.
        role_citations = [c for c in citations if c.role == role and c.checkable]
        if not role_citations and role == "media":
            continue  # sources and navigation are always shown; media only when present
        role_urls = {u for u, r in roles_of_url.items() if role in r}
        roles[role] = {
            "citations": len(role_citations),
            "urls": len(role_urls),
            "broken_citations": sum(1 for c in role_citations if c.broken),
            "dead_urls": sum(1 for u in role_urls if by_url[u].verdict in BROKEN_VERDICTS),
        }
    return {
        "run_id": run_id if run_id is not None else diff.run_id,
        "profiles": len(groups),
        "citations": len(citations),
        "skipped_citations": sum(1 for c in citations if c.url is None),
        "archive_link_citations": sum(1 for c in citations if c.archived_timestamp),
        "archive_links": {s: archive_links[s] for s in CITED_CAPTURE_STATES if archive_links[s]},
        "urls": len(by_url),
        "by_verdict": {v: url_verdicts[v] for v in VERDICT_ORDER if url_verdicts[v]},
        "citations_by_verdict": {
            v: citation_verdicts[v] for v in VERDICT_ORDER if citation_verdicts[v]
        },
        "broken_citations": sum(1 for c in citations if c.broken),
        "ignored_urls": sum(1 for c in by_url.values() if c.ignored is not None),
        "link_rot_rate": _rate(len(dead_sources), len(judged_sources)),
        "link_rot": {
            "dead_source_urls": len(dead_sources),
            "judged_source_urls": len(judged_sources),
        },
        "archive_coverage": _rate(archived, len(url_ids)),
        "archived_urls": archived,
        "roles": roles,
        "previous_run": diff.previous_run,
        "previous_run_started": diff.previous_started,
        "newly_broken": list(diff.newly_broken),
        "recovered": list(diff.recovered),
        "changes": [{"url": ch.url, "before": ch.before, "after": ch.after} for ch in diff.changes],
        "trend_basis": basis,
        "trend": [{"run_id": p.run_id, "started": p.started, "counts": p.counts} for p in trend],
    }
