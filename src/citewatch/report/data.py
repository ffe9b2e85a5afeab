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
- **reported run**: the run given (``audit`` passes its own), else the newest *finished* run; a run
  that never finished (killed, or still going) is never reported on nor drawn in the trend, and is
  named as interrupted.
- **previous audit**: the latest finished ``audit`` run before the reported run **with the same
  policy** (periodic, or an editor's ``--one-shot``); a URL's verdict as of a run is its latest
  ``verdicts`` row with ``run_id`` at or before that run (``unchecked`` if none).
- **newly broken / no longer broken**: computed on citations, not URLs: the broken citations now
  against the citations that were broken as of the previous audit (derived from the history:
  citations by ``scan_run``/``superseded_run``, verdicts, replays and ignore rules as of that run),
  a citation being identified by its profile, its URL as cited and its occurrence among that
  profile's citations of the same URL.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from ..archive.choose import best_snapshot, days_from_citation
from ..config import ignore_reason
from ..models import BROKEN_VERDICTS, CONNECTION_FAILURES, Verdict
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
    offline_checked: str | None = None
    """When a probe newer than the last check was made by a run whose network was offline: no
    evidence (the ``last_*`` fields describe the newest probe from a run that was not offline)."""
    offline_outcome: str | None = None
    """What that offline probe got (``connect_error``, ``dns_error``…)."""

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


#: Audit policies: a periodic audit (dead = confirmed by repeated failures) or an editor's one-shot one.
PERIODIC, ONE_SHOT = "periodic", "one-shot"
#: Why a citation is newly broken…
NEWLY_CITED, NOW_DEAD, NO_LONGER_REPLAYS, UNIGNORED = (
    "newly cited",
    "now dead",
    "does not replay",
    "no longer ignored",
)
#: …or no longer broken.
RECOVERED, NO_LONGER_DEAD, REMOVED, PROFILE_REMOVED, NOW_IGNORED = (
    "recovered",
    "no longer dead",
    "removed",
    "profile removed",
    "ignored",
)


@dataclass(frozen=True, slots=True)
class CitationChange:
    """A citation that is broken now and was not at the previous audit, or the other way round."""

    profile: str
    line: int
    column: int
    cited_url: str
    url: str | None
    """The URL the lists show: the cited archive link itself, else the checked URL."""
    why: str
    """Newly broken: ``newly cited`` (not cited at the previous audit), ``now dead``, ``does not
    replay`` (a cited archive link), ``no longer ignored``. No longer broken: ``recovered`` (still
    cited, and the URL works again or the cited capture replays), ``no longer dead`` (still cited,
    now failing, blocked…), ``removed`` (no longer cited in its profile), ``profile removed`` (the
    profile left the corpus), ``ignored`` (now under an ignore rule)."""
    detail: str
    """One sentence: what it was, what it is now."""

    @property
    def location(self) -> str:
        return f"{self.profile}:{self.line}"


@dataclass(frozen=True, slots=True)
class RunDiff:
    """What changed between the previous audit (same policy) and now."""

    run_id: int | None
    previous_run: int | None
    previous_started: str | None
    newly_broken: tuple[str, ...]
    """Distinct URLs of the newly broken citations."""
    recovered: tuple[str, ...]
    """Distinct URLs of the citations no longer broken because they work again."""
    changes: tuple[VerdictChange, ...]
    """URL verdict changes (``dead (unconfirmed)`` → ``dead`` included), a separate detail."""
    newly_broken_citations: tuple[CitationChange, ...] = ()
    no_longer_broken: tuple[CitationChange, ...] = ()
    """Recovered, removed, ignored or no longer dead: ``why`` says which."""
    removed: tuple[str, ...] = ()
    """Distinct URLs of the broken citations that are no longer cited."""
    broken_before: int | None = None
    """Broken citations as of the previous audit."""
    policy: str = PERIODIC
    """The reported run's policy; the previous audit had the same."""
    not_compared: tuple[tuple[int, str], ...] = ()
    """(run id, policy) of the audits since the previous one that had another policy."""

    def count(self, *why: str) -> int:
        return sum(1 for c in self.no_longer_broken if c.why in why)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run, as the reports name it."""

    run_id: int
    command: str
    started: str


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """The network health of the run the report describes (of its check)."""

    run_id: int
    health: str
    """``ok``, ``degraded`` or ``offline``."""
    explanation: str | None
    """One line: why (None when the network was fine)."""

    @property
    def offline(self) -> bool:
        return self.health == "offline"

    def label(self) -> str:
        text = f"network {self.health} (run {self.run_id})"
        return text + (f": {self.explanation}" if self.explanation else "")


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
    network: NetworkInfo | None = None
    """The network health of the reported run's check (None: no run has checked links)."""
    interrupted: tuple[RunInfo, ...] = ()
    """Runs that never finished since the previous audit (killed, or still going)."""

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
    *,
    one_shot: bool | None = None,
    network_note: str | None = None,
) -> ReportData:
    """Read the store once and build every record the reports need. ``ignore_patterns`` are the
    config's ``ignore`` globs: URLs they match count as ignored, as for the exit code.

    ``run_id`` is the run reported on (``audit`` passes its own, still running); by default the
    newest finished run. ``one_shot`` is that run's policy when the caller knows it (else it is
    read from the run's recorded arguments); ``network_note`` the check's own one-line account
    of a degraded or offline network, when the caller has it."""
    rows = store.current_citations()
    url_ids = {r["url_id"] for r in rows if r["url_id"] is not None}
    latest, offline = _latest_checks(store)
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
            offline.get(url_id),
        )
        by_profile[row["path"]].append(record)

    groups = _profile_groups(profiles, by_profile, findings)
    current = _run_row(store, reported_run(store, run_id))
    records = [c for g in groups for c in g.citations]
    diff = run_diff(
        store, current, url_ids, records, ignore_patterns, one_shot=one_shot, run_id=run_id
    )
    trend, basis = trend_series(store, run_id)
    network = network_info(store, current, network_note)
    interrupted = interrupted_runs(store, current, diff.previous_run)
    summary = _summary(groups, snapshots, url_ids, diff, trend, basis, run_id)
    summary["network"] = network_dict(network)
    summary["interrupted_runs"] = [
        {"run_id": r.run_id, "command": r.command, "started": r.started} for r in interrupted
    ]
    return ReportData(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        run_id=diff.run_id,
        profiles=groups,
        summary=summary,
        diff=diff,
        trend=trend,
        trend_basis=basis,
        wayback_url=wayback_url,
        network=network,
        interrupted=interrupted,
    )


def _grouped(store: Store, sql: str) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in store.db.query(sql):
        grouped[row["url_id"]].append(row)
    return grouped


#: A check's network: its run's final word, else its own, else ok (``verdict.network_of``).
_CHECK_NETWORK = "COALESCE(NULLIF(r.network, ''), NULLIF(c.network, ''), 'ok')"


def _latest_checks(
    store: Store,
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """(url_id → the newest check made by a run that was not offline, url_id → the newest check
    made by an offline run). An offline run's probes are no evidence about the URL (its own
    network was down), so the reports never describe them as the URL's last check."""

    def newest(offline: bool) -> dict[int, dict[str, Any]]:
        sql = (
            "SELECT * FROM (SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.url_id"
            " ORDER BY c.checked_at DESC, c.id DESC) AS rn FROM checks c"
            f" LEFT JOIN runs r ON r.id = c.run_id WHERE {_CHECK_NETWORK}"
            f" {'=' if offline else '!='} 'offline') WHERE rn = 1"
        )
        return {r["url_id"]: r for r in store.db.query(sql)}

    return newest(False), newest(True)


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


def replay_evidence(
    store: Store, url_id: int | None = None, *, up_to_run: int | None = None
) -> ReplayEvidence:
    """Every replayed capture's newest conclusive check and newest check, in one query
    (``up_to_run``: only the replays recorded by that run or earlier ones)."""
    where, params = [], []
    if url_id is not None:
        where.append("url_id = ?")
        params.append(url_id)
    if up_to_run is not None:
        where.append("run_id <= ?")
        params.append(up_to_run)
    sql = (
        "SELECT id, url_id, timestamp, checked_at, status, memento_datetime, soft_404, error"
        " FROM snapshot_checks"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY checked_at, id"
    )
    evidence: ReplayEvidence = {}
    for row in store.db.query(sql, params):
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
    offline: Mapping[str, Any] | None = None,
) -> CitationRecord:
    url = row["url"]
    if offline is not None and latest is not None and offline["checked_at"] <= latest["checked_at"]:
        offline = None  # an older offline attempt: the last check says more
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
        offline_checked=offline.get("checked_at") if offline else None,
        offline_outcome=offline.get("outcome") if offline else None,
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
        "SELECT v.url_id, v.run_id, v.verdict, v.confirmed, u.url FROM verdicts v"
        " JOIN urls u ON u.id = v.url_id ORDER BY v.run_id, v.id"
    )


def verdicts_as_of(rows: Iterable[Mapping[str, Any]], run_id: int) -> dict[int, str]:
    """url_id → verdict as of ``run_id`` (the latest change at or before it)."""
    return {url_id: verdict for url_id, (verdict, _) in states_as_of(rows, run_id).items()}


def states_as_of(
    rows: Iterable[Mapping[str, Any]], run_id: int | None
) -> dict[int, tuple[str, bool]]:
    """url_id → (verdict, confirmed) as of ``run_id`` (None: now, every change)."""
    state: dict[int, tuple[str, bool]] = {}
    for row in rows:
        if run_id is not None and row["run_id"] > run_id:
            break
        confirmed = row.get("confirmed")
        state[row["url_id"]] = (row["verdict"], True if confirmed is None else bool(confirmed))
    return state


def verdict_label(verdict: str, confirmed: bool = True) -> str:
    """``dead (unconfirmed)`` for a one-shot dead verdict, else the verdict."""
    return "dead (unconfirmed)" if verdict == Verdict.DEAD and not confirmed else verdict


def reported_run(store: Store, run_id: int | None) -> int | None:
    """The run a report describes: the given one, else the newest *finished* run in the database
    (a run killed with ``kill -9`` stays ``running`` forever: it is named, never reported on)."""
    if run_id is not None:
        return run_id
    row = store.db.execute("SELECT max(id) FROM runs WHERE finished IS NOT NULL").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _run_row(store: Store, run_id: int | None) -> dict[str, Any] | None:
    if run_id is None:
        return None
    rows = store.query("SELECT * FROM runs WHERE id = ?", [run_id])
    return rows[0] if rows else {"id": run_id, "command": "", "argv": "[]", "counts": None}


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def run_policy(run: Mapping[str, Any]) -> str:
    """``one-shot`` or ``periodic``: the policy recorded in ``runs.counts`` (``{"policy":
    {"one_shot": …}}``) when there is one, else the run's command line (the last of
    ``--one-shot`` / ``--no-one-shot`` wins; neither: periodic).

    >>> run_policy({"argv": '["audit", "citations/p.md", "--one-shot"]'})
    'one-shot'
    >>> run_policy({"argv": '["audit", "citations/"]'})
    'periodic'
    """
    counts = _json(run.get("counts"))
    policy = counts.get("policy") if isinstance(counts, dict) else None
    if isinstance(policy, dict) and isinstance(policy.get("one_shot"), bool):
        return ONE_SHOT if policy["one_shot"] else PERIODIC
    one_shot = False
    argv = _json(run.get("argv"))
    for arg in argv if isinstance(argv, list) else []:
        if arg == "--one-shot":
            one_shot = True
        elif arg == "--no-one-shot":
            one_shot = False
    return ONE_SHOT if one_shot else PERIODIC


def previous_audit(
    store: Store, current: int, policy: str
) -> tuple[dict[str, Any] | None, tuple[tuple[int, str], ...]]:
    """(the latest finished audit before ``current`` run with ``policy``, the (id, policy) of the
    finished audits after it that had another policy — an editor's one-shot audit between two
    periodic ones is not what the periodic audit compares with)."""
    skipped: list[tuple[int, str]] = []
    for run in store.db.query(
        "SELECT * FROM runs WHERE command = 'audit' AND id < ? AND finished IS NOT NULL"
        " ORDER BY id DESC",
        [current],
    ):
        other = run_policy(run)
        if other == policy:
            return run, tuple(reversed(skipped))
        skipped.append((int(run["id"]), other))
    return None, tuple(reversed(skipped))


@dataclass(frozen=True, slots=True)
class _Then:
    """A citation as of a past run."""

    profile: str
    line: int
    column: int
    cited_url: str
    url: str
    archived: bool
    broken: bool
    ignored: bool
    label: str
    """The verdict (``dead (unconfirmed)``…) or, for a cited archive link, its replay state."""


def _keyed(items: Iterable[Any], key: Any) -> dict[tuple[str, str, int], Any]:
    """Items by (profile, URL as cited, occurrence): a citation's identity across rescans (the
    rows of a changed profile are replaced, and its lines may shift). ``items`` in document order."""
    seen: Counter[tuple[str, str]] = Counter()
    keyed = {}
    for item in items:
        base = key(item)
        keyed[(*base, seen[base])] = item
        seen[base] += 1
    return keyed


def citations_as_of(
    store: Store,
    run: Mapping[str, Any],
    verdict_rows: Sequence[Mapping[str, Any]],
    patterns: Sequence[str] = (),
) -> dict[tuple[str, str, int], _Then]:
    """Every checkable citation current at the end of ``run``, and whether it was broken then —
    the rule of :meth:`Store.broken_citations` (what exit code 1 meant), applied to the history: the
    citations scanned by then and not yet superseded, the verdicts and the replays recorded up to
    that run, the ignore rules in force when it finished. The config's ``ignore`` globs are not
    recorded per run: the current ones (``patterns``) are applied."""
    rid = int(run["id"])
    at = run.get("finished") or run.get("started") or ""
    rows = store.query(
        "SELECT ci.id, ci.url_id, ci.cited_url, ci.raw, ci.line, ci.col, ci.archived_timestamp,"
        " p.path, u.url FROM citations ci JOIN profiles p ON p.id = ci.profile_id"
        " JOIN urls u ON u.id = ci.url_id WHERE ci.scan_run <= ?"
        " AND (ci.superseded_run IS NULL OR ci.superseded_run > ?)"
        " ORDER BY p.path, ci.line, ci.col, ci.id",
        [rid, rid],
    )
    states = states_as_of(verdict_rows, rid)
    replays = (
        replay_evidence(store, up_to_run=rid) if any(r["archived_timestamp"] for r in rows) else {}
    )
    rules: dict[str, str] = {}
    for rule in store.db.query(
        "SELECT url, reason FROM ignores WHERE created_at <= ?"
        " AND (removed_at IS NULL OR removed_at > ?) ORDER BY id",
        [at, at],
    ):
        rules[rule["url"]] = rule["reason"]
    then: list[_Then] = []
    for r in rows:
        ignored = ignore_reason(r["url"], patterns, rules) is not None
        timestamp = r["archived_timestamp"]
        if timestamp:
            decisive, _ = replays.get((r["url_id"], str(timestamp)), (None, None))
            state = (replay_state(decisive) if decisive else None) or NOT_VERIFIED
            broken, label = state in DOES_NOT_REPLAY, state
        else:
            verdict, confirmed = states.get(r["url_id"], (str(Verdict.UNCHECKED), True))
            broken, label = verdict in BROKEN_VERDICTS, verdict_label(verdict, confirmed)
        then.append(
            _Then(
                profile=r["path"],
                line=r["line"],
                column=r["col"] or 0,
                cited_url=r["cited_url"] or r["raw"] or "",
                url=r["url"],
                archived=bool(timestamp),
                broken=broken and not ignored,
                ignored=ignored,
                label=label,
            )
        )
    return _keyed(then, lambda t: (t.profile, t.cited_url))


def _shown(cited_url: str, url: str | None, archived: bool) -> str | None:
    return cited_url if archived else url


def _capture_label(state: str) -> str:
    if state in REPLAYS:
        return "replays"
    return "does not replay" if state in DOES_NOT_REPLAY else "not verified"


def citation_changes(
    then: Mapping[tuple[str, str, int], _Then],
    now: Mapping[tuple[str, str, int], CitationRecord],
    previous_run: int,
    removed_profiles: Mapping[str, int],
) -> tuple[list[CitationChange], list[CitationChange]]:
    """(newly broken, no longer broken) citations between the previous audit and now."""
    newly: list[CitationChange] = []
    for key, c in now.items():
        if not c.broken:
            continue
        old = then.get(key)
        if old is not None and old.broken:
            continue
        reason = c.broken_reason or "broken"
        if old is None:
            why, detail = NEWLY_CITED, f"not cited at audit run {previous_run}; {reason}"
        elif old.ignored:
            why, detail = UNIGNORED, f"ignored at audit run {previous_run}; {reason}"
        elif c.archived_timestamp:
            was = _capture_label(old.label)
            why = NO_LONGER_REPLAYS
            detail = f"the cited capture {was} at audit run {previous_run}; {reason}"
        else:
            why, detail = NOW_DEAD, f"was {old.label} at audit run {previous_run}; {reason}"
        newly.append(
            CitationChange(
                c.profile,
                c.line,
                c.column,
                c.cited_url,
                _shown(c.cited_url, c.url, bool(c.archived_timestamp)),
                why,
                detail,
            )
        )
    gone: list[CitationChange] = []
    for key, old in then.items():
        if not old.broken:
            continue
        c = now.get(key)
        if c is not None and c.broken:
            continue
        was = (
            f"the cited capture did not replay at audit run {previous_run}"
            if old.archived
            else f"was {old.label} at audit run {previous_run}"
        )
        if c is None:
            removed_at = removed_profiles.get(old.profile)
            if removed_at is not None:
                why = PROFILE_REMOVED
                detail = f"{was}; {old.profile} left the corpus (run {removed_at})"
            else:
                why = REMOVED
                detail = f"{was}; no longer cited in {old.profile} (it was at line {old.line})"
        elif c.ignored is not None:
            why, detail = NOW_IGNORED, f"{was}; now ignored: {c.ignored}"
        elif c.archived_timestamp and c.cited_capture is not None and c.cited_capture.replays:
            why, detail = RECOVERED, f"{was}; now the cited capture {c.cited_capture.label()}"
        elif not c.archived_timestamp and c.verdict in WORKING_VERDICTS:
            why, detail = RECOVERED, f"{was}; now {c.verdict_label}"
        else:
            now_is = (
                c.cited_capture.label()
                if c.archived_timestamp and c.cited_capture
                else c.verdict_label
            )
            why, detail = NO_LONGER_DEAD, f"{was}; now {now_is}"
        line = c.line if c is not None else old.line
        column = c.column if c is not None else old.column
        gone.append(
            CitationChange(
                old.profile,
                line,
                column,
                old.cited_url,
                _shown(old.cited_url, old.url, old.archived),
                why,
                detail,
            )
        )
    order = lambda ch: (ch.url or ch.cited_url, ch.profile, ch.line, ch.column)  # noqa: E731
    return sorted(newly, key=order), sorted(gone, key=order)


def _renamed_profiles(
    profiles: Sequence[Mapping[str, Any]], paths_then: set[str], previous_run: int
) -> dict[str, str]:
    """old path → new path for each profile that left the corpus after ``previous_run`` while a
    file with the same bytes (sha256) that was not in the corpus then is in it now: a rename."""
    renamed: dict[str, str] = {}
    for old in profiles:
        if old["removed_run"] is None or old["removed_run"] <= previous_run:
            continue
        if old["path"] not in paths_then or not old["sha256"]:
            continue
        matches = [
            p["path"]
            for p in profiles
            if p["removed_run"] is None
            and p["sha256"] == old["sha256"]
            and p["path"] not in paths_then
            and p["path"] not in renamed.values()
        ]
        if len(matches) == 1:
            renamed[old["path"]] = matches[0]
    return renamed


def _distinct(changes: Iterable[CitationChange], *why: str) -> tuple[str, ...]:
    return tuple(sorted({c.url or c.cited_url for c in changes if not why or c.why in why}))


def run_diff(
    store: Store,
    current: Mapping[str, Any] | None,
    url_ids: Iterable[int],
    records: Sequence[CitationRecord] = (),
    patterns: Sequence[str] = (),
    *,
    one_shot: bool | None = None,
    run_id: int | None = None,
) -> RunDiff:
    """What changed since the previous audit with the same policy as ``current`` (the reported
    run): the broken citations (``records``, the current state) against those broken as of that
    audit, and the verdicts of the currently cited URLs (``dead (unconfirmed)`` → ``dead``
    included)."""
    if current is None:
        return RunDiff(run_id, None, None, (), (), ())
    rid = int(current["id"])
    policy = run_policy(current) if one_shot is None else (ONE_SHOT if one_shot else PERIODIC)
    previous, skipped = previous_audit(store, rid, policy)
    if previous is None:
        return RunDiff(rid, None, None, (), (), (), policy=policy, not_compared=skipped)
    pid = int(previous["id"])
    rows = _verdict_rows(store)
    urls = {r["url_id"]: r["url"] for r in rows}
    before = states_as_of(rows, pid)
    after = states_as_of(rows, None)  # now: what the citation records show
    changes = []
    for url_id in sorted(set(url_ids), key=lambda i: urls.get(i, "")):
        if url_id not in urls:
            continue
        old = verdict_label(*before.get(url_id, (str(Verdict.UNCHECKED), True)))
        new = verdict_label(*after.get(url_id, (str(Verdict.UNCHECKED), True)))
        if old != new:
            changes.append(VerdictChange(urls[url_id], old, new))
    then = citations_as_of(store, previous, rows, patterns)
    profiles = store.query("SELECT path, sha256, removed_run FROM profiles")
    removed_profiles = {
        r["path"]: int(r["removed_run"]) for r in profiles if r["removed_run"] is not None
    }
    renamed = _renamed_profiles(profiles, {t.profile for t in then.values()}, pid)
    if renamed:  # the same file under a new name: its citations are the same citations
        then = {(renamed.get(k[0], k[0]), *k[1:]): t for k, t in then.items()}
    now = _keyed((c for c in records if c.url is not None), lambda c: (c.profile, c.cited_url))
    newly, gone = citation_changes(then, now, pid, removed_profiles)
    return RunDiff(
        rid,
        pid,
        previous["started"],
        _distinct(newly),
        _distinct(gone, RECOVERED),
        tuple(changes),
        newly_broken_citations=tuple(newly),
        no_longer_broken=tuple(gone),
        removed=_distinct(gone, REMOVED, PROFILE_REMOVED),
        broken_before=sum(1 for t in then.values() if t.broken),
        policy=policy,
        not_compared=skipped,
    )


def interrupted_runs(
    store: Store, current: Mapping[str, Any] | None, previous_run: int | None
) -> tuple[RunInfo, ...]:
    """Runs that never finished, after the previous audit (all of them without one), other than
    the reported run: killed (``kill -9``, a crash, a reboot) or still going."""
    rows = store.query(
        "SELECT id, command, started FROM runs WHERE finished IS NULL AND id > ? AND id != ?"
        " ORDER BY id",
        [previous_run or 0, int(current["id"]) if current else -1],
    )
    return tuple(RunInfo(int(r["id"]), r["command"] or "", r["started"] or "") for r in rows)


def network_info(
    store: Store, current: Mapping[str, Any] | None, note: str | None = None
) -> NetworkInfo | None:
    """The network health of the reported run's check — or, when that run checked nothing (a
    scan, an archive run), of the latest earlier run that did — with a one-line explanation when
    it was not ok: ``note`` (the check's own words), else the one recorded in ``runs.counts``
    (``network_note``), else one told from the run's probes."""
    if current is None:
        return None
    run: Mapping[str, Any] | None = current
    if not current.get("network"):
        rows = store.query(
            "SELECT * FROM runs WHERE id < ? AND finished IS NOT NULL"
            " AND network IS NOT NULL AND network != '' ORDER BY id DESC LIMIT 1",
            [int(current["id"])],
        )
        run, note = (rows[0] if rows else None), None
    if run is None:
        return None
    health = str(run["network"])
    if health == "ok":
        return NetworkInfo(int(run["id"]), health, None)
    counts = _json(run.get("counts"))
    stored = counts.get("network_note") if isinstance(counts, dict) else None
    return NetworkInfo(
        int(run["id"]),
        health,
        note
        or (stored if isinstance(stored, str) and stored else None)
        or _network_explanation(store, int(run["id"]), health),
    )


def _network_explanation(store: Store, run_id: int, health: str) -> str:
    outcomes = Counter(
        r["outcome"]
        for r in store.db.query("SELECT outcome FROM checks WHERE run_id = ?", [run_id])
    )
    failed = {o: n for o, n in outcomes.items() if o in CONNECTION_FAILURES}
    total = sum(outcomes.values())
    what = ", ".join(f"{o} {n}" for o, n in sorted(failed.items(), key=lambda kv: (-kv[1], kv[0])))
    probes = f": {sum(failed.values())} of {total} probes got no answer ({what})" if failed else ""
    if health == "offline":
        return (
            f"our own network was unavailable{probes}; nothing was judged — verdicts and last"
            " checks are from earlier runs"
        )
    return (
        f"our own network was degraded{probes}; connection failures were not counted against"
        " the links"
    )


def network_dict(network: NetworkInfo | None) -> dict[str, Any] | None:
    if network is None:
        return None
    return {
        "run_id": network.run_id,
        "health": network.health,
        "explanation": network.explanation,
        "label": network.label(),
    }


def trend_series(store: Store, run_id: int | None = None) -> tuple[tuple[TrendPoint, ...], str]:
    """Verdict counts per finished audit run (the last TREND_MAX_RUNS, up to the reported run,
    which is drawn even while it runs), over the URLs cited at that run.

    Falls back to every run that changed a verdict when the database has no audit run yet. A run
    that never finished (killed) is never drawn.
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
            " AND (finished IS NOT NULL OR id = ?) ORDER BY id",
            [limit, limit],
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
        "policy": diff.policy,
        "previous_run": diff.previous_run,
        "previous_run_started": diff.previous_started,
        "audits_not_compared": [{"run_id": r, "policy": p} for r, p in diff.not_compared],
        "broken_citations_before": diff.broken_before,
        "newly_broken": list(diff.newly_broken),
        "recovered": list(diff.recovered),
        "removed": list(diff.removed),
        "newly_broken_citations": [asdict(ch) for ch in diff.newly_broken_citations],
        "no_longer_broken_citations": [asdict(ch) for ch in diff.no_longer_broken],
        "changes": [{"url": ch.url, "before": ch.before, "after": ch.after} for ch in diff.changes],
        "trend_basis": basis,
        "trend": [{"run_id": p.run_id, "started": p.started, "counts": p.counts} for p in trend],
    }
