"""One ``check`` run: plan, ask the canary, probe politely, record every probe, then judge.

The order matters for honesty and resumability:

1. **Plan** — every currently cited URL once (however many profiles cite it); ignored URLs are
   listed but not probed; URLs with evidence younger than ``max_age`` are skipped unless
   ``check_all`` (so a killed run resumes where it stopped); the URLs that took longest last
   time go first (:func:`longest_first`).
2. **Canary** — asked while the first probes (at most ``concurrency`` of them) are already out, so
   a healthy run does not wait a round trip to the archive before it starts. Their results are held
   until it answers. If it is down, nothing more is started: those first probes decide whether the
   run is ``offline`` (it stops there instead of hammering thousands of URLs into timeouts) or
   ``degraded`` (it goes on, and connection failures do not count).
3. **Probe** — checks are committed in small batches (:class:`CheckBatch`: every
   ``FLUSH_EVERY`` results, and at most ``FLUSH_SECONDS`` after a result came in), so a run killed
   with ``kill -9`` loses at most the last fraction of a second of probes (plus, at the very start,
   the first probes held until the canary answers); those URLs are simply probed again by the next
   run. A long streak of connection failures makes us ask the canary
   again; if it has gone, probing stops (fail fast).
4. **Judge** — unless offline, verdicts are recomputed from the whole history of every cited URL
   (self-healing after a killed run), in one transaction.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ..config import Settings, ignore_reason
from ..httppool import declare_asyncio
from ..models import NetworkHealth, Outcome, ProbeResult, Verdict
from ..net import make_client
from ..progress import Reporter
from ..store import Store
from ..verdict import Decision, Policy, counts, decide
from .classify import HostPrint
from .health import HealthMonitor
from .probe import Prober, iso
from .scheduler import Scheduler

#: How long a host's answer to a never-existing path (the soft-404 host probe) is reused.
HOST_PRINT_MAX_AGE = timedelta(days=7)
#: Largest slack taken off ``--max-age`` when deciding what is fresh (see :func:`_age`).
MAX_AGE_GRACE = timedelta(hours=1)
#: Probe results are committed together, this many at a time…
FLUSH_EVERY = 100
#: …and never later than this many seconds after the first of them came in.
FLUSH_SECONDS = 0.2


@dataclass
class CheckRunResult:
    """Everything the CLI needs to print and exit with."""

    run_id: int
    network: str
    """ok | degraded | offline"""
    started: str
    finished: str
    urls: list[dict[str, Any]]
    """One item per URL probed (or ignored) in this run, in the store's URL order."""
    summary: dict[str, int]
    """Count of all currently cited URLs by verdict."""
    probed: int
    skipped_fresh: int
    exit_code: int
    """0 nothing broken; 1 a cited URL is dead; 3 offline (nothing judged)."""
    message: str | None = None
    ignored: int = 0
    verdicts_changed: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    """A URL to probe."""

    url_id: int
    url: str
    host: str


@dataclass(slots=True)
class Plan:
    """What this run will do with each cited URL."""

    targets: list[Target] = field(default_factory=list)
    ignored: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    fresh: int = 0


def fresh_url_ids(store: Store, since: datetime) -> set[int]:
    """URLs with a check that counts as evidence, made by a run that began probing at or after
    ``since``. The run's first probe, not each check's own time, so that a long run's late
    probes are as old as its early ones: a daily job re-probes them all the next day however
    long the run took (the clock is the checks' own, as tests set it)."""
    rows = store.db.query(
        "SELECT c.url_id, c.outcome, c.network, r.network AS run_network FROM checks c"
        " JOIN runs r ON r.id = c.run_id"
        " JOIN (SELECT run_id, MIN(checked_at) AS began FROM checks GROUP BY run_id) b"
        " ON b.run_id = c.run_id WHERE b.began >= ?",
        [iso(since)],
    )
    return {row["url_id"] for row in rows if counts(row)}


def plan_run(
    store: Store, settings: Settings, now: datetime, only_urls: list[str] | None
) -> tuple[Plan, list[dict[str, Any]]]:
    """Sort the cited URLs into targets, ignored and fresh; also returns the URL rows."""
    rows = list(store.cited_urls())
    if only_urls is not None:
        wanted = set(only_urls)
        rows = [row for row in rows if row["url"] in wanted]
    rules = store.ignored()
    fresh = set() if settings.check_all else fresh_url_ids(store, now - _age(settings))
    plan = Plan()
    for row in rows:
        reason = ignore_reason(row["url"], settings.ignore, rules)
        if reason is not None:
            plan.ignored.append((row, reason))
        elif row["id"] in fresh:
            plan.fresh += 1
        else:
            plan.targets.append(Target(row["id"], row["url"], row["host"] or ""))
    plan.targets = longest_first(store, plan.targets)
    return plan, rows


def known_prints(store: Store, since: str) -> dict[str, HostPrint | None]:
    """Host prints probed at or after ``since``: origin → print (None: the host answers a missing
    path with an error, so no page of it can be its catch-all)."""
    prints: dict[str, HostPrint | None] = {}
    for origin, row in store.host_prints(since).items():
        prints[origin] = (
            HostPrint(
                final_url=row["final_url"] or "",
                title=row["title"],
                sha1=row["sha1"],
                length=row["length"],
                redirected=bool(row["redirected"]),
            )
            if 200 <= row["status"] < 300
            else None
        )
    return prints


def longest_first(store: Store, targets: list[Target]) -> list[Target]:
    """The targets, the ones whose last probe took longest first (stable otherwise).

    A run ends when its slowest probe ends: a redirect chain or a slow host started last keeps
    the run going long after every slot but one is free. Starting the longest jobs first (the
    classic LPT rule) lets the short ones fill in around them. URLs never probed, or whose last
    probe got no HTTP answer, count as typical (the median); on a first run the order is the
    store's.
    """
    if len(targets) < 2:
        return targets
    # Only probes that got an HTTP answer rank by their time: a timeout's time is the timeout,
    # and front-loading last run's dead hosts would also make the first probes, which decide our
    # network's health when the canary is down, a sample of failures.
    last: dict[int, int] = {
        url_id: elapsed
        for url_id, elapsed in store.db.execute(
            "SELECT url_id, elapsed_ms FROM checks"
            " WHERE id IN (SELECT MAX(id) FROM checks GROUP BY url_id) AND status IS NOT NULL"
        ).fetchall()
        if elapsed is not None
    }
    known = sorted(last[t.url_id] for t in targets if t.url_id in last)
    if not known:
        return targets
    typical = known[len(known) // 2]
    return sorted(targets, key=lambda t: -last.get(t.url_id, typical))


def _age(settings: Settings) -> timedelta:
    """How old evidence may be and still spare a URL this run: ``max_age`` less a grace.

    A job scheduled every ``max_age`` (a daily cron with the default 1d) starts a little before
    the previous run's probes are ``max_age`` old — they were made after that run started — so
    without the grace every other run would skip every URL. The grace is a tenth of
    ``max_age``, at most :data:`MAX_AGE_GRACE`.
    """
    age = max(0.0, settings.max_age)
    return timedelta(seconds=age - min(age / 10, MAX_AGE_GRACE.total_seconds()))


def _item(target: Target, result: ProbeResult) -> dict[str, Any]:
    return {
        "url": target.url,
        "outcome": str(result.outcome),
        "status": result.status,
        "final_url": result.final_url,
        "verdict": None,
        "confirmed": None,
        "checked_at": result.checked_at,
        "elapsed_ms": result.elapsed_ms,
        "error": result.error,
        "moved_to": None,
        "title": result.title,
        "attempts": result.attempts,
        "_id": target.url_id,
    }


def _ignored_item(row: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "url": row["url"],
        "outcome": str(Outcome.SKIPPED),
        "status": None,
        "final_url": None,
        "verdict": None,
        "confirmed": None,
        "checked_at": None,
        "elapsed_ms": None,
        "error": f"ignored: {reason}",
        "moved_to": None,
        "title": None,
        "attempts": 0,
        "_id": row["id"],
    }


class CheckBatch:
    """Probe results waiting to be committed, one transaction per batch instead of one per URL.

    A batch is written when it holds ``size`` results, ``seconds`` after its first result (a timer
    on the running loop), and by :meth:`flush` (the runner flushes when probing ends, however it
    ends). A killed process therefore loses at most the results of the last ``seconds``.
    """

    def __init__(
        self,
        store: Store,
        run_id: int,
        size: int = FLUSH_EVERY,
        seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.size = max(1, size)
        self.seconds = seconds
        self._pending: list[tuple[int, ProbeResult, str]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._error: Exception | None = None

    def add(self, url_id: int, result: ProbeResult, network: str) -> None:
        if self._error is not None:  # a timed flush failed: fail the run as a direct write would
            error, self._error = self._error, None
            raise error
        self._pending.append((url_id, result, network))
        if len(self._pending) >= self.size:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        try:
            self.flush()
        except Exception as exc:  # raised by the next add() or flush(), in the runner's task
            self._error = exc

    def flush(self) -> None:
        """Commit everything pending, in the order it came in (all of it, or none of it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            with self.store.transaction():
                for url_id, result, network in pending:
                    self.store.record_check(self.run_id, url_id, result, network)
        except BaseException:
            self._pending[:0] = pending  # rolled back: still pending
            raise


def _histories(store: Store) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    rows = store.db.query(
        "SELECT c.url_id, c.outcome, c.checked_at, c.final_url, c.permanent_redirect, c.network,"
        " r.network AS run_network FROM checks c JOIN runs r ON r.id = c.run_id"
        " WHERE c.url_id IN (SELECT ci.url_id FROM citations ci WHERE ci.superseded_run IS NULL)"
        " ORDER BY c.url_id, c.checked_at, c.id"
    )
    for url_id, group in itertools.groupby(rows, key=lambda row: row["url_id"]):
        yield url_id, list(group)


def apply_verdicts(
    store: Store,
    run_id: int,
    policy: Policy,
    current: dict[int, dict[str, Any]],
    keep: set[int] = frozenset(),  # type: ignore[assignment]
) -> int:
    """Recompute every cited URL's verdict from its history; store the changed ones. Returns count."""
    changed = 0
    with store.transaction():
        for url_id, history in _histories(store):
            row = current.get(url_id)
            if row is None or url_id in keep:
                continue
            decision: Decision = decide(history, policy)
            if decision.verdict is Verdict.UNCHECKED:
                continue
            if (
                row["verdict"] == decision.verdict
                and bool(row["confirmed"]) == decision.confirmed
                and row["moved_to"] == decision.moved_to
                and row["verdict_since"]
            ):
                continue
            store.set_verdict(
                url_id, run_id, str(decision.verdict), decision.confirmed, decision.moved_to
            )
            changed += 1
    return changed


async def run_check(
    store: Store,
    run_id: int,
    settings: Settings,
    reporter: Reporter,
    only_urls: list[str] | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    client: httpx.AsyncClient | None = None,
) -> CheckRunResult:
    """Probe the cited URLs, record every probe, set the run's network health and the verdicts.

    ``now`` (for tests) replaces the clock used for check timestamps and freshness; ``client``
    replaces the client made by :func:`citewatch.net.make_client`. Does not finish the run.
    """
    clock = now or (lambda: datetime.now(UTC))
    started = iso(clock())
    plan, _ = plan_run(store, settings, clock(), only_urls)
    items: list[dict[str, Any]] = [_ignored_item(row, reason) for row, reason in plan.ignored]
    monitor = HealthMonitor(settings.canary_url)
    stopped_after: int | None = None
    reporter.stage("check", len(plan.targets))
    if plan.targets:
        gc.freeze()  # what exists now lives for the whole run: keep it out of every collection
        own_client = client is None
        active = client or make_client(settings.net, max_connections=_pool_size(settings))
        try:
            stopped_after = await _probe_all(
                store, run_id, settings, reporter, plan.targets, active, monitor, clock, items
            )
        finally:
            if own_client:
                await active.aclose()
            gc.unfreeze()
    else:  # nothing to probe: the run's network health is still recorded truthfully
        await _ask_canary_alone(settings, monitor, client)
    network = monitor.status
    store.update_run(run_id, network=str(network))
    if network is NetworkHealth.OFFLINE:
        store.restore_last_checks(run_id)
    changed = 0
    current = {row["id"]: row for row in store.cited_urls()}
    if network is not NetworkHealth.OFFLINE:
        keep = {row["id"] for row, _ in plan.ignored}
        changed = apply_verdicts(store, run_id, Policy.from_settings(settings), current, keep)
        if changed:
            current = {row["id"]: row for row in store.cited_urls()}
    summary: dict[str, int] = {str(v): 0 for v in Verdict}
    for row in current.values():
        summary[row["verdict"] or str(Verdict.UNCHECKED)] += 1
    order = {url_id: position for position, url_id in enumerate(current)}
    items.sort(key=lambda item: order.get(item["_id"], len(order)))
    for item in items:
        row = current.get(item.pop("_id"))
        if row is not None:
            item["verdict"] = row["verdict"]
            item["confirmed"] = bool(row["confirmed"])
            item["moved_to"] = row["moved_to"]
    if network is NetworkHealth.OFFLINE:
        exit_code = 3
    elif summary.get(str(Verdict.DEAD), 0):
        exit_code = 1
    else:
        exit_code = 0
    message = _message(network, monitor, stopped_after, len(plan.targets))
    if message:
        reporter.note(message)
    return CheckRunResult(
        run_id=run_id,
        network=str(network),
        started=started,
        finished=iso(clock()),
        urls=items,
        summary=summary,
        probed=sum(1 for item in items if item["attempts"]),
        skipped_fresh=plan.fresh,
        exit_code=exit_code,
        message=message,
        ignored=len(plan.ignored),
        verdicts_changed=changed,
    )


async def _ask_canary_alone(
    settings: Settings, monitor: HealthMonitor, client: httpx.AsyncClient | None
) -> None:
    """The canary's answer for a run with nothing to probe (every URL fresh or ignored)."""
    active = client or make_client(settings.net, max_connections=2)
    try:
        prober = Prober(active, Scheduler(1, 1), settings)
        monitor.canary_ok, monitor.canary_error = await prober.reachable(settings.canary_url)
    finally:
        if client is None:
            await active.aclose()


def _pool_size(settings: Settings) -> int:
    """Room for keep-alive connections to the hosts in play, beyond the requests in flight, so
    connections are reused rather than churned (the scheduler bounds the requests themselves)."""
    concurrency = max(settings.net.concurrency, 1)
    return concurrency + max(8, min(concurrency, 256))


def _message(
    network: NetworkHealth, monitor: HealthMonitor, stopped_after: int | None, total: int
) -> str | None:
    stopped = (
        f"; stopped after probing {stopped_after} of {total} URLs (the rest are checked next run)"
        if stopped_after is not None and stopped_after < total
        else ""
    )
    if network is NetworkHealth.OFFLINE:
        return f"network unavailable: {monitor.explain()}; nothing was judged{stopped}"
    if network is NetworkHealth.DEGRADED:
        return (
            f"network degraded: {monitor.explain()}; connection failures were not counted "
            f"against URLs{stopped}"
        )
    return None


async def _probe_all(
    store: Store,
    run_id: int,
    settings: Settings,
    reporter: Reporter,
    targets: list[Target],
    client: httpx.AsyncClient,
    monitor: HealthMonitor,
    clock: Callable[[], datetime],
    items: list[dict[str, Any]],
) -> int | None:
    """Probe ``targets``; returns how many were probed if the run stopped early, else None."""
    declare_asyncio()
    scheduler: Scheduler[Target] = Scheduler(
        settings.net.concurrency, settings.per_host, settings.host_interval
    )
    since = iso(clock() - HOST_PRINT_MAX_AGE)
    prober = Prober(client, scheduler, settings, now=clock, prints=known_prints(store, since))
    probed = 0
    rechecking: asyncio.Task[None] | None = None
    batch = CheckBatch(store, run_id)
    # Results that came in before the canary answered: their network health is not known yet.
    held: list[tuple[int, ProbeResult]] | None = []
    canary_answered = asyncio.Event()
    budget = max(1, settings.net.concurrency)  # probes allowed out before the canary answers
    started: set[int] = set()
    canary_down_at_start = False

    def health() -> str:
        return str(NetworkHealth.OK if monitor.canary_ok else NetworkHealth.DEGRADED)

    def release_held() -> None:
        """Record the held results with the health now known (each exactly once)."""
        nonlocal held
        waiting = held or []
        while waiting:
            url_id, result = waiting[0]
            batch.add(url_id, result, health())
            waiting.pop(0)  # only once it is in the batch: a failing add leaves it held
        held = None

    async def ask_canary() -> None:
        nonlocal canary_down_at_start
        try:
            monitor.canary_ok, monitor.canary_error = await prober.reachable(settings.canary_url)
            canary_down_at_start = not monitor.canary_ok
            store.update_run(run_id, network=health())
            release_held()
        except BaseException:
            monitor.canary_ok = False  # vouch for nothing; the error ends the run (below)
            scheduler.stop()
            raise
        finally:
            canary_answered.set()  # never leave a probe waiting for an answer that cannot come
        if not monitor.canary_ok:
            reporter.note(
                f"the canary {settings.canary_url} is unreachable ({monitor.canary_error}); "
                f"judging our network from the {len(started)} probes already out"
            )
            scheduler.stop()

    async def recheck_canary() -> None:
        ok, error = await prober.reachable(settings.canary_url)
        monitor.streak = 0
        if not ok:
            monitor.canary_ok, monitor.canary_error = False, error
            reporter.note(f"the canary {settings.canary_url} stopped answering; stopping")
            scheduler.stop()

    async def work(target: Target) -> None:
        nonlocal probed, rechecking
        if held is not None and len(started) >= budget:
            await canary_answered.wait()
        if scheduler.stopped:
            return  # not started: dispatched just before the run was stopped (canary down…)
        started.add(target.url_id)
        result = await prober.probe(target.url)
        monitor.observe(target.host, result.outcome, result.status is not None)
        if held is not None:
            held.append((target.url_id, result))
        else:
            batch.add(target.url_id, result, health())
        items.append(_item(target, result))
        probed += 1
        reporter.advance()
        if (
            held is None
            and monitor.suspicious
            and monitor.canary_ok
            and (rechecking is None or rechecking.done())
        ):
            rechecking = asyncio.create_task(recheck_canary())

    canary = asyncio.create_task(ask_canary())
    try:
        await scheduler.run(((t.host, t) for t in targets), work)
        await canary
        if canary_down_at_start:
            if monitor.status is NetworkHealth.OFFLINE:
                return probed
            remaining = [t for t in targets if t.url_id not in started]
            scheduler.resume()
            await scheduler.run(((t.host, t) for t in remaining), work)
        if rechecking is not None:
            await rechecking
        return probed if scheduler.stopped else None
    finally:
        if not canary.done():
            canary.cancel()
        if (
            held is not None
        ):  # broke off before the canary answered: keep them, vouching for nothing
            monitor.canary_ok = False
            release_held()
        batch.flush()
        if monitor.canary_ok:  # a print taken while our own network was in doubt is not kept
            store.save_host_prints(run_id, prober.probed_prints)
