"""``citewatch archive``: look up, choose, verify and save — recording everything as it goes.

The run works on the URLs of current citations, in four steps, all through one :class:`Gateway`
(so one set of rate limiters and one circuit breaker):

1. **lookups** — CDX for every URL not looked up within ``lookup_max_age`` (host-batched where a
   host has many URLs); every capture row and every lookup is stored;
2. **cited archive links** — each Wayback link cited is replayed: verified, or redirected to the
   nearest capture (noted), or missing; stored in ``snapshot_checks``;
3. **best snapshot** per URL by :func:`~citewatch.archive.choose.best_usable_snapshot`; with
   ``--verify`` the candidate is replayed and a soft-404 capture is rejected in favour of the next
   one by the same rule; and by default (``verify_replacements``) the capture ``fix`` would write
   for each currently broken citation is replayed the same way, so the replacement suggested is
   one that replays;
4. **Save Page Now** for live sources without a recent capture (:mod:`.policy`), paced, polled,
   every request stored in ``captures``.

If the circuit breaker trips, the remaining network work is skipped (what is already stored
stays), the run is marked ``rate_limited`` or ``unreachable`` and the message says why; URLs not
reached say ``lookup: "not_done"``, never "no snapshot", and URLs looked up whose snapshot the run
did not get to choose count as ``not_finished``, never ``without_snapshot``. A replay the archive
did not answer before the breaker tripped is still a ``snapshot_checks`` row (an attempt with no
answer: never evidence against the capture). URLs due a Save Page Now capture that the run stopped
before submitting count as ``saves_not_submitted``; nothing records them as requested, so the next
run submits them.

The archive.org keys never leave the run: the gateway filters every answer as it arrives, and the
run sees the store, the reporter and its own result only through the same
:class:`~.gateway.KeyFilter` — every value written, every note and every JSON item — so no
message quoted from archive.org can carry a key to the database, stdout or stderr.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from ..config import Settings
from ..models import CaptureRequest, Snapshot
from ..progress import Reporter
from ..report.data import ReplayEvidence, cited_capture, rejected_captures, replay_evidence
from ..store import Store, utcnow
from ..urls import wayback_replay_url
from .choose import best_usable_snapshot, days_from_citation
from .gateway import ArchiveStopped, Family, Gateway, GatewayTuning, KeyFilter
from .lookup import CdxService, LookupResult
from .policy import SaveDecision, Target, collect_targets, is_fresh, iso_z, save_decision
from .replay import ReplayResult, replay
from .spn import SpnOutcome, classify_error, submit, wait_for


@dataclass
class ArchiveRunResult:
    run_id: int
    archive: str
    """ok | rate_limited | unreachable"""
    urls: list[dict[str, Any]]
    summary: dict[str, int]
    message: str | None


@dataclass
class ArchiveTuning:
    """Knobs beyond Settings (tests turn them; defaults suit archive.org)."""

    gateway: GatewayTuning = field(default_factory=GatewayTuning)
    page_limit: int = 10000
    max_pages: int = 20
    batch_threshold: int = 5
    max_verify_candidates: int = 3
    now: Callable[[], datetime] | None = None


@dataclass
class _UrlState:
    """What the run learned about one URL (becomes one JSON item)."""

    target: Target
    lookup: str = "not_done"
    """found | none | blocked | error | cached | not_done | skipped"""
    lookup_error: str | None = None
    cited: list[dict[str, Any]] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    best: Mapping[str, Any] | None = None
    verified: ReplayResult | None = None
    chosen: bool = False
    """The run chose (and with ``--verify`` verified) the best snapshot: only then can it say
    "without snapshot"."""
    save: dict[str, Any] | None = None
    save_note: str | None = None


async def run_archive(
    store: Store,
    run_id: int,
    settings: Settings,
    reporter: Reporter,
    keys: tuple[str, str] | None,
    *,
    tuning: ArchiveTuning | None = None,
) -> ArchiveRunResult:
    """Do the archive work for every currently cited URL; never finishes the run (the CLI does)."""
    hide = KeyFilter(keys)
    if hide:  # every write, note and item of the run passes the key filter
        store = cast(Store, _Filtered(store, hide))
        reporter = cast(Reporter, _FilteredReporter(reporter, hide))
    tune = tuning or ArchiveTuning()
    clock = tune.now or (lambda: datetime.now(UTC))
    targets = collect_targets(store.current_citations())
    states = [_UrlState(t) for t in targets]
    summary: dict[str, int] = dict.fromkeys(_SUMMARY_KEYS, 0)
    async with Gateway(settings, keys=keys, tuning=tune.gateway, reporter=reporter) as gateway:
        work = _Run(store, run_id, settings, reporter, gateway, tune, clock, summary)
        try:
            await work.lookups(states)
            await work.cited_links(states)
            await work.choose(states)
            await work.saves(states)
        except ArchiveStopped:
            pass  # the breaker's state and reason say what happened
        breaker = gateway.breaker
    for state in states:  # whatever was not reached still gets its stored best snapshot
        if state.best is None and not state.chosen:
            state.best = best_usable_snapshot(
                store.snapshots_for(state.target.url_id),
                state.target.citation_date,
                rejected_timestamps(store, state.target.url_id),
            )
    archive = str(breaker.state)
    store.update_run(run_id, archive=archive)
    items = [_item(store, settings, state) for state in states]
    summary["urls"] = len(states)
    summary["with_snapshot"] = sum(1 for i in items if i["best_snapshot"])
    # "Without snapshot" is a finding, so only where the run made the choice; a URL looked up
    # but left before its choice (the archive stopped the run) is "not finished" instead.
    summary["without_snapshot"] = sum(
        1
        for s, i in zip(states, items, strict=True)
        if not i["best_snapshot"] and s.lookup in _ANSWERED and s.chosen
    )
    summary["blocked"] = sum(1 for s in states if s.lookup == "blocked")
    summary["not_looked_up"] = sum(1 for s in states if s.lookup == "not_done")
    summary["not_finished"] = sum(1 for s in states if s.lookup in _ANSWERED and not s.chosen)
    message = None
    if breaker.open:
        message = (
            f"archive work stopped for this run: {breaker.reason}; "
            f"{summary['not_looked_up']} of {len(states)} URLs not looked up"
        )
        if summary["not_finished"]:
            what = "chosen or verified" if work.verifying else "chosen"
            message += (
                f", {summary['not_finished']} looked up but not finished (snapshot not {what})"
            )
        if summary["saves_not_submitted"]:
            message += (
                f", {summary['saves_not_submitted']} due a Save Page Now capture not submitted"
            )
        message = hide.text(message)
        reporter.note(message or "")
    return ArchiveRunResult(run_id, archive, hide.deep(items), summary, message)


_SUMMARY_KEYS = (
    "urls",
    "lookups",
    "lookups_cached",
    "lookup_errors",
    "with_snapshot",
    "without_snapshot",
    "blocked",
    "not_looked_up",
    "not_finished",
    "cited_verified",
    "cited_redirected",
    "cited_failed",
    "snapshots_rejected",
    "saves_requested",
    "saves_succeeded",
    "saves_pending",
    "saves_failed",
    "saves_not_submitted",
    "saves_dry_run",
)
_ANSWERED = frozenset({"found", "none", "cached"})


class _Run:
    """The steps of one run, sharing the store, gateway, clock and counters."""

    def __init__(
        self,
        store: Store,
        run_id: int,
        settings: Settings,
        reporter: Reporter,
        gateway: Gateway,
        tuning: ArchiveTuning,
        clock: Callable[[], datetime],
        summary: dict[str, int],
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.settings = settings
        self.reporter = reporter
        self.gateway = gateway
        self.tuning = tuning
        self.clock = clock
        self.summary = summary
        self.verifying = False
        """The choice step replays captures (``--verify``, or replacements to verify)."""

    # -- 1. lookups ------------------------------------------------------------------------------
    async def lookups(self, states: list[_UrlState]) -> None:
        pending: dict[str, _UrlState] = {}
        now = self.clock()
        for state in states:
            if state.target.verdict == "skipped":
                state.lookup = "skipped"
                continue
            last = self.store.query(
                "SELECT result, looked_up_at FROM archive_lookups WHERE url_id = ?"
                " ORDER BY looked_up_at DESC, id DESC LIMIT 1",
                [state.target.url_id],
            )
            if is_fresh(last[0] if last else None, now, self.settings.lookup_max_age):
                state.lookup = "blocked" if last[0]["result"] == "blocked" else "cached"
                self.summary["lookups_cached"] += 1
            else:
                pending.setdefault(state.target.url, state)
        self.reporter.stage("archive lookups", len(pending))
        service = CdxService(
            self.gateway,
            page_limit=self.tuning.page_limit,
            max_pages=self.tuning.max_pages,
            batch_threshold=self.tuning.batch_threshold,
            citation_timestamps={
                url: s.target.citation_date.replace("-", "")
                for url, s in pending.items()
                if s.target.citation_date
            },
        )
        async for result in service.lookup_many(list(pending)):
            self._record_lookup(pending[result.url], result)
            self.reporter.advance()

    def _record_lookup(self, state: _UrlState, result: LookupResult) -> None:
        url_id = state.target.url_id
        existing = {
            (r["timestamp"], r["original"], r["status"], r["digest"])
            for r in self.store.snapshots_for(url_id)
        }
        fresh = []
        for row in result.rows:
            snapshot = row.snapshot(state.target.url)
            key = (snapshot.timestamp, snapshot.original, snapshot.status, snapshot.digest)
            if key not in existing:  # SQLite's unique index lets NULL statuses repeat
                existing.add(key)
                fresh.append(snapshot)
        self.store.record_snapshots(url_id, self.run_id, fresh)
        self.store.record_lookup(
            url_id, self.run_id, result.source, result.result, len(result.rows), result.error
        )
        state.lookup, state.lookup_error = result.result, result.error
        self.summary["lookups"] += 1
        if result.result == "error":
            self.summary["lookup_errors"] += 1

    # -- 2. cited archive links ------------------------------------------------------------------
    async def cited_links(self, states: list[_UrlState]) -> None:
        work = [(s, ref) for s in states for ref in s.target.cited]
        if not work:
            return
        self.reporter.stage("cited archive links", len(work))
        for state, (timestamp, original) in work:
            try:
                result = await self._replay(state.target.url_id, timestamp, original)
            except _ReplayStopped as stop:  # tried, no answer: say so, then stop the run
                self._note_cited(state, timestamp, original, stop.result)
                raise
            self._note_cited(state, timestamp, original, result)
            self.reporter.advance()

    def _note_cited(
        self, state: _UrlState, timestamp: str, original: str, result: ReplayResult
    ) -> None:
        outcome = result.outcome
        key = {"verified": "cited_verified", "redirected": "cited_redirected"}.get(
            outcome, "cited_failed"
        )
        self.summary[key] += 1
        state.cited.append(
            {
                "timestamp": timestamp,
                "url": wayback_replay_url(timestamp, original, self.settings.wayback_url),
                "status": outcome,
                "http_status": result.status,
                "actual_timestamp": result.memento,
                "redirected": outcome == "redirected",
                "error": result.error,
            }
        )

    async def _replay(self, url_id: int, timestamp: str, original: str) -> ReplayResult:
        """Replay a capture, unless a recent check of it already answered.

        Every replay asked for is recorded, answered or not: one the archive left unanswered
        until the circuit breaker tripped is an error row too (no answer about the capture, so
        never evidence against it), and :class:`_ReplayStopped` carries it to the caller."""
        since = iso_z(_minus(self.clock(), self.settings.lookup_max_age))
        rows = self.store.query(
            "SELECT * FROM snapshot_checks WHERE url_id = ? AND timestamp = ? AND checked_at >= ?"
            " AND (memento_datetime IS NOT NULL OR soft_404 = 1 OR status = 404)"
            " ORDER BY checked_at DESC, id DESC LIMIT 1",
            [url_id, timestamp, since],
        )
        if rows:
            return _from_check_row(rows[0])
        sent = self.gateway.sent[Family.REPLAY]
        try:
            result = await replay(self.gateway, timestamp, original)
        except ArchiveStopped as stop:
            if self.gateway.sent[Family.REPLAY] == sent:
                raise  # stopped before asking: there is no attempt to record
            unanswered = ReplayResult(
                timestamp,
                "error",
                None,
                None,
                self.gateway.endpoints.replay(timestamp, original, raw=True),
                error=f"{stop.reason}; archive work stopped for this run",
            )
            self._record_replay(url_id, unanswered)
            raise _ReplayStopped(stop, unanswered) from None
        self._record_replay(url_id, result)
        return result

    def _record_replay(self, url_id: int, result: ReplayResult) -> None:
        self.store.record_snapshot_check(self.run_id, url_id, **result.check_fields())

    # -- 3. best snapshot (--verify, and the replacements of broken citations) ---------------------
    async def choose(self, states: list[_UrlState]) -> None:
        verify = self.settings.verify_snapshots
        replacements = self._replacement_work(states) if self.settings.verify_replacements else {}
        self.verifying = verify or bool(replacements)
        # Choosing needs no network: a URL with nothing to replay is chosen at once, so a run
        # stopped while replaying leaves unfinished only the URLs it had still to verify.
        pending: list[tuple[_UrlState, list[dict[str, Any]]]] = []
        for state in states:
            url_id = state.target.url_id
            rows = self.store.snapshots_for(url_id)
            state.rejected = rejected_timestamps(self.store, url_id)
            state.best = best_usable_snapshot(rows, state.target.citation_date, state.rejected)
            if verify or url_id in replacements:
                pending.append((state, rows))
            else:
                state.chosen = True
        if not pending:
            return
        self.reporter.stage("verify snapshots" if verify else "verify replacements", len(pending))
        for state, rows in pending:
            if verify:
                await self._verify(state, rows)
            for published, exclude in replacements.get(state.target.url_id, ()):
                await self._verify_replacement(state, rows, published, exclude)
            state.chosen = True
            self.reporter.advance()

    def _replacement_work(
        self, states: list[_UrlState]
    ) -> dict[int, list[tuple[str | None, frozenset[str]]]]:
        """url_id → (publication date, captures never to suggest) of each distinct replacement
        ``fix`` would write for a currently broken citation: the best usable snapshot for that
        profile's date — for a cited archive link that does not replay, never the capture cited
        nor the one served in its place (``report.data.other_usable_capture``)."""
        broken = {row["id"] for row in self.store.broken_citations()}
        if not broken:
            return {}
        wanted = {s.target.url_id for s in states if s.target.verdict != "skipped"}
        evidence: ReplayEvidence | None = None
        work: dict[int, list[tuple[str | None, frozenset[str]]]] = {}
        for row in self.store.current_citations():
            url_id = row["url_id"]
            if row["id"] not in broken or url_id not in wanted:
                continue
            exclude: frozenset[str] = frozenset()
            if row["archived_timestamp"]:
                if evidence is None:
                    evidence = replay_evidence(self.store)
                timestamp = str(row["archived_timestamp"])
                cited = cited_capture(timestamp, *evidence.get((url_id, timestamp), (None, None)))
                exclude = frozenset({timestamp, *filter(None, [cited.served_timestamp])})
            entry = (row["published"], exclude)
            if entry not in work.setdefault(url_id, []):
                work[url_id].append(entry)
        return work

    async def _verify_replacement(
        self,
        state: _UrlState,
        rows: list[dict[str, Any]],
        published: str | None,
        exclude: frozenset[str],
    ) -> None:
        """Replay the capture ``fix`` would write for a broken citation of this URL (the rule of
        :func:`~citewatch.report.data.rejected_captures`, so both pick alike) and, while the
        archive shows it does not replay, the next one — up to ``max_verify_candidates``. A
        replay with no answer rejects nothing: the choice stands, unverified."""
        url_id = state.target.url_id
        tried: set[str] = set()
        for _ in range(self.tuning.max_verify_candidates):
            rejected = rejected_captures(self.store, url_id).get(url_id, set())
            best = best_usable_snapshot(rows, published, rejected | exclude | tried)
            if best is None:
                return
            try:
                result = await self._replay(url_id, best["timestamp"], best["original"])
            except _ReplayStopped as stop:
                self._refresh(state, rows, stop.result)
                raise
            self._refresh(state, rows, result)
            if not result.rejects_capture:
                return  # verified — or the archive failed to answer: keep the choice, unverified
            self.summary["snapshots_rejected"] += 1
            tried.add(str(best["timestamp"]))

    def _refresh(self, state: _UrlState, rows: list[dict[str, Any]], result: ReplayResult) -> None:
        """The URL's best snapshot again, after a replay of one of its captures."""
        state.rejected = rejected_timestamps(self.store, state.target.url_id)
        state.best = best_usable_snapshot(rows, state.target.citation_date, state.rejected)
        chosen = str(state.best["timestamp"]) if state.best is not None else None
        if state.verified is not None and state.verified.asked != chosen:
            state.verified = None
        if result.asked == chosen:
            state.verified = result

    async def _verify(self, state: _UrlState, rows: list[dict[str, Any]]) -> None:
        for _ in range(self.tuning.max_verify_candidates):
            best = state.best
            if best is None:
                return
            try:
                result = await self._replay(
                    state.target.url_id, best["timestamp"], best["original"]
                )
            except _ReplayStopped as stop:  # the choice stands, unverified; the run stops
                state.verified = stop.result
                raise
            state.verified = result
            if result.usable or not result.rejects_capture:
                return  # verified — or the archive failed to answer: keep the choice, unverified
            self.summary["snapshots_rejected"] += 1
            state.rejected.add(str(best["timestamp"]))
            if result.outcome == "soft_404" and best.get("digest"):
                # Captures with the same digest are the same "not found" page.
                state.rejected |= {
                    str(r["timestamp"]) for r in rows if r["digest"] == best["digest"]
                }
            state.best = best_usable_snapshot(rows, state.target.citation_date, state.rejected)
            state.verified = None

    # -- 4. Save Page Now ------------------------------------------------------------------------
    async def saves(self, states: list[_UrlState]) -> None:
        if not self.settings.save:
            return
        now = self.clock()
        plan: list[tuple[_UrlState, SaveDecision]] = []
        for state in states:
            if state.lookup not in _ANSWERED:
                continue  # blocked, unknown (error/not done): SPN would fail or we cannot tell
            decision = save_decision(
                state.target,
                self.store.snapshots_for(state.target.url_id),
                self.store.captures_for(state.target.url_id),
                now,
                self.settings.save_if_older,
            )
            if decision.action != "skip":
                plan.append((state, decision))
        if not plan:
            return
        if self.settings.dry_run:
            for state, _decision in plan:
                state.save = {
                    "status": "dry_run",
                    "job_id": None,
                    "timestamp": None,
                    "status_ext": None,
                }
                self.summary["saves_dry_run"] += 1
            return
        self.reporter.stage("save page now", len(plan))
        polls: list[asyncio.Task[None]] = []
        stop_reason: str | None = None
        # Due a capture request and not (yet) submitted: what a stopped run leaves for the next.
        unsent = {i for i, (_state, decision) in enumerate(plan) if not _polls(decision)}
        try:
            for index, (state, decision) in enumerate(plan):
                if stop_reason is not None:
                    state.save_note = stop_reason
                    continue
                if decision.capture is not None and _polls(decision):
                    capture_id = int(decision.capture["id"])
                    job_id = str(decision.capture["job_id"])
                else:
                    # The breaker may stop the run here (ArchiveStopped): nothing is recorded,
                    # the URL stays unsent and the next run submits it.
                    outcome = await submit(self.gateway, state.target.url)
                    unsent.discard(index)
                    self.summary["saves_requested"] += 1
                    capture_id = self._record_capture(state, outcome)
                    if outcome.status == "error":
                        self.reporter.advance()
                        if outcome.kind == "service":
                            stop_reason = (
                                f"Save Page Now refused further captures ({outcome.status_ext})"
                            )
                            self.reporter.note(
                                f"{stop_reason}; {len(unsent)} due a capture not submitted,"
                                " for a later run"
                            )
                        continue
                    job_id = str(outcome.job_id)
                polls.append(asyncio.create_task(self._poll(state, capture_id, job_id)))
        except ArchiveStopped as stop:
            note = f"not submitted: archive work stopped for this run ({stop.reason})"
            for index in unsent:
                plan[index][0].save_note = note
            raise
        finally:
            self.summary["saves_not_submitted"] = len(unsent)
            results = await asyncio.gather(*polls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _record_capture(self, state: _UrlState, outcome: SpnOutcome) -> int:
        capture = CaptureRequest(
            url=state.target.url,
            requested_at=utcnow(),
            status=outcome.status,
            job_id=outcome.job_id,
            timestamp=outcome.timestamp,
            status_ext=outcome.status_ext,
            message=outcome.message,
        )
        capture_id = self.store.record_capture(self.run_id, state.target.url_id, capture)
        self._note_save(state, outcome)
        return capture_id

    async def _poll(self, state: _UrlState, capture_id: int, job_id: str) -> None:
        outcome = await wait_for(
            self.gateway, job_id, self.settings.spn_poll_interval, self.settings.spn_poll_timeout
        )
        self.store.update_capture(
            capture_id,
            status=outcome.status,
            timestamp=outcome.timestamp,
            status_ext=outcome.status_ext,
            message=outcome.message,
        )
        self._note_save(state, outcome)
        self.reporter.advance()

    def _remember_capture(self, state: _UrlState, timestamp: str) -> None:
        """A capture Save Page Now made is a snapshot like any CDX row: CDX lists it only later,
        and a lookup cached until then would hide it from reports and ``fix``. Pages are saved
        only while they answer 2xx, so its status is the latest successful check's."""
        url_id = state.target.url_id
        rows = self.store.query(
            "SELECT status, content_type FROM checks WHERE url_id = ?"
            " AND outcome IN ('ok', 'redirected') ORDER BY id DESC LIMIT 1",
            [url_id],
        )
        status = rows[0]["status"] if rows and rows[0]["status"] else 200
        mimetype = (rows[0]["content_type"] or "").split(";")[0].strip() if rows else ""
        url = state.target.url
        self.store.record_snapshots(
            url_id, self.run_id, [Snapshot(url, timestamp, url, status, mimetype, "", None)]
        )

    def _note_save(self, state: _UrlState, outcome: SpnOutcome) -> None:
        if outcome.status == "success" and outcome.timestamp:
            self._remember_capture(state, outcome.timestamp)
        previous = state.save
        state.save = {
            "status": outcome.status,
            "job_id": outcome.job_id,
            "timestamp": outcome.timestamp,
            "status_ext": outcome.status_ext,
        }
        if outcome.status == "error":
            state.save["retry"] = classify_error(outcome.status_ext) != "permanent"
            state.save["message"] = outcome.message
        if previous is not None and previous["status"] == "pending":
            self.summary["saves_pending"] -= 1
        key = {"success": "saves_succeeded", "pending": "saves_pending"}.get(
            outcome.status, "saves_failed"
        )
        self.summary[key] += 1


def _polls(decision: SaveDecision) -> bool:
    """The decision polls a pending job rather than asking for a new capture."""
    return decision.action == "poll" and decision.capture is not None


class _Filtered:
    """The store as the run uses it: every argument of every call (the rows, messages and
    errors written) passes through the key filter first."""

    def __init__(self, store: Store, hide: KeyFilter) -> None:
        self._store = store
        self._hide = hide

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr
        hide = self._hide

        def call(*args: Any, **kwargs: Any) -> Any:
            return attr(*hide.deep(args), **hide.deep(kwargs))

        return call


class _FilteredReporter:
    """The reporter as the run (and its gateway) uses it: notes pass through the key filter."""

    def __init__(self, reporter: Reporter, hide: KeyFilter) -> None:
        self._reporter = reporter
        self._hide = hide

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)

    def note(self, message: str) -> None:
        self._reporter.note(self._hide.text(message) or "")


class _ReplayStopped(ArchiveStopped):
    """The breaker tripped during a replay that was asked for; carries the recorded attempt."""

    def __init__(self, stop: ArchiveStopped, result: ReplayResult) -> None:
        super().__init__(stop.state, stop.reason)
        self.result = result


def _minus(moment: datetime, seconds: float) -> datetime:
    return moment - timedelta(seconds=seconds)


def rejected_timestamps(store: Store, url_id: int) -> set[str]:
    """Timestamps a replay showed to be unusable (soft-404, missing, or not a 2xx page), plus
    every capture with the same digest as a soft-404 one (the same "not found" page).

    Reports and ``fix`` can pass these to :func:`~citewatch.archive.choose.best_usable_snapshot`
    to agree with ``archive --verify`` about the best snapshot."""
    rows = store.query(
        "SELECT timestamp FROM snapshot_checks WHERE url_id = ? AND (soft_404 = 1"
        " OR (status = 404 AND memento_datetime IS NULL)"
        " OR (memento_datetime IS NOT NULL AND (status < 200 OR status >= 300)))",
        [url_id],
    )
    same = store.query(
        "SELECT s2.timestamp FROM snapshot_checks c"
        " JOIN snapshots s1 ON s1.url_id = c.url_id AND s1.timestamp = c.timestamp"
        " JOIN snapshots s2 ON s2.url_id = s1.url_id AND s2.digest = s1.digest"
        " WHERE c.url_id = ? AND c.soft_404 = 1 AND s1.digest != ''",
        [url_id],
    )
    return {str(r["timestamp"]) for r in rows + same}


def _from_check_row(row: Mapping[str, Any]) -> ReplayResult:
    """A stored snapshot check, read back as a replay result."""
    asked = str(row["timestamp"])
    status = row["status"]
    memento = row["memento_datetime"]
    if row["soft_404"]:
        outcome = "soft_404"
    elif status == 404 and not memento:
        outcome = "not_archived"
    elif status is not None and 200 <= int(status) < 300:
        same = memento == asked if len(asked) >= 14 else bool(memento and memento.startswith(asked))
        outcome = "verified" if same else "redirected"
    else:
        outcome = "error"
    return ReplayResult(
        asked,
        outcome,
        status,
        memento,
        row["final_url"],
        row["sha1"],
        None,
        row["text_sample"],
        row["error"],
    )


def _item(store: Store, settings: Settings, state: _UrlState) -> dict[str, Any]:
    target = state.target
    rows = store.snapshots_for(target.url_id)
    best = state.best
    best_json = None
    if best is not None:
        best_json = {
            "timestamp": best["timestamp"],
            "url": wayback_replay_url(best["timestamp"], best["original"], settings.wayback_url),
            "status": best["status"],
            "days_from_citation": days_from_citation(best["timestamp"], target.citation_date),
        }
        if settings.verify_snapshots or state.verified is not None:
            best_json["verified"] = state.verified.outcome if state.verified else "unchecked"
    item: dict[str, Any] = {
        "url": target.url,
        "citation_date": target.citation_date,
        "best_snapshot": best_json,
        "captures": len(rows),
        "first_capture": rows[0]["timestamp"] if rows else None,
        "last_capture": rows[-1]["timestamp"] if rows else None,
        "save": state.save,
        "lookup": state.lookup,
        "verdict": target.verdict,
    }
    if state.lookup_error:
        item["lookup_error"] = state.lookup_error
    if state.save_note:
        item["save_skipped"] = state.save_note
    if state.cited:
        item["cited_snapshot"] = state.cited[0]
        item["cited_snapshots"] = state.cited
    return item


__all__ = ["ArchiveRunResult", "ArchiveTuning", "rejected_timestamps", "run_archive"]
