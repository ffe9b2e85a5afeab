"""Politeness and throughput: global and per-host concurrency, per-host spacing and pauses.

Two layers, because a probe is more than one request (redirect hops, the soft-404 host probe,
retries):

* :meth:`Scheduler.request` is the hard limit, taken around every single HTTP exchange: at most
  ``per_host`` in flight to one host, at most ``concurrency`` in flight overall, request starts to
  one host at least ``interval`` apart, and nothing to a host while it is paused (Retry-After).
  Slots are held per request, never across hops, so two hosts redirecting to each other cannot
  deadlock.
* :meth:`Scheduler.run` dispatches work items round-robin over hosts, starting a task for a host
  only while it has fewer than ``per_host`` tasks, so the task pool never fills up with work queued
  behind one slow host: a slow host slows only itself. Tasks asleep in a retry backoff
  (:meth:`idle`) give their dispatch place to others. Up to ``DISPATCH_FACTOR × concurrency``
  tasks run at once: a task spends part of its life outside any request (reading the page,
  classifying, recording), and a request slot freed meanwhile goes at once to a task already
  waiting for one instead of idling until the first task ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

#: Tasks dispatched per global request slot (see the module docstring).
DISPATCH_FACTOR = 2


@dataclass(slots=True)
class HostStats:
    """What the scheduler saw of one host (for tests and notes)."""

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    paused_for: float = 0.0


class _Slots:
    """A counting semaphore that serves urgent waiters first, then the others in arrival order."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    async def acquire(self, urgent: bool = False) -> None:
        if self._free > 0 and not self._urgent and not self._normal:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            elif waiter in queue:  # release() may already have dropped the cancelled waiter
                queue.remove(waiter)
            raise

    def release(self) -> None:
        """Hand the slot to the next waiter (urgent ones first), or put it back."""
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


@dataclass(slots=True)
class _Host:
    semaphore: asyncio.Semaphore
    next_start: float = 0.0
    paused_until: float = 0.0
    stats: HostStats = field(default_factory=HostStats)


class _RequestSlot:
    """One request's hold on its host's slot and a global slot (see :meth:`Scheduler.request`).

    A plain class rather than an ``asynccontextmanager``: it is entered for every exchange of
    a run, and the generator machinery cost more than the bookkeeping it wraps."""

    __slots__ = ("scheduler", "state", "urgent")

    def __init__(self, scheduler: Scheduler[object], state: _Host, urgent: bool) -> None:
        self.scheduler = scheduler
        self.state = state
        self.urgent = urgent

    async def __aenter__(self) -> None:
        scheduler, state = self.scheduler, self.state
        await state.semaphore.acquire()
        try:
            while True:  # a pause may be extended while we sleep
                wait = state.paused_until - scheduler.clock()
                if wait <= 0:
                    break
                async with scheduler.idle():
                    await asyncio.sleep(wait)
            if scheduler.interval:
                now = scheduler.clock()
                start = max(now, state.next_start)
                state.next_start = start + scheduler.interval
                if start > now:
                    await asyncio.sleep(start - now)
            await scheduler._global.acquire(self.urgent)
        except BaseException:
            state.semaphore.release()
            raise
        stats = state.stats
        stats.requests += 1
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight

    async def __aexit__(self, *exc_info: object) -> None:
        self.state.stats.in_flight -= 1
        self.scheduler._global.release()
        self.state.semaphore.release()


class Scheduler(Generic[T]):
    """Per-host and global limits for one run."""

    def __init__(
        self,
        concurrency: int,
        per_host: int,
        interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = max(1, concurrency)
        self.dispatch_width = self.concurrency * DISPATCH_FACTOR
        self.per_host = max(1, per_host)
        self.interval = max(0.0, interval)
        self.clock = clock
        self._global = _Slots(self.concurrency)
        self._hosts: dict[str, _Host] = {}
        self._wake = asyncio.Event()
        self._active = 0
        self._stopped = False

    # -- request level ---------------------------------------------------------------------
    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(asyncio.Semaphore(self.per_host))
        return state

    def request(self, host: str, *, urgent: bool = False) -> _RequestSlot:
        """Hold one request slot for ``host`` (waits for pauses and spacing first):
        ``async with scheduler.request(host): …``.

        ``urgent`` requests (the next hop of a probe already under way) get the next free global
        slot before new probes: a redirect chain is not sent to the back of the queue at each
        hop, so it ends as soon as its hops allow, not one queue length later per hop.
        """
        return _RequestSlot(self, self._host(host), urgent)

    def pause(self, host: str, seconds: float) -> None:
        """Send nothing to ``host`` for ``seconds`` (e.g. it answered 429 with Retry-After)."""
        if seconds <= 0:
            return
        state = self._host(host)
        until = self.clock() + seconds
        if until > state.paused_until:
            state.stats.paused_for += until - max(state.paused_until, self.clock())
            state.paused_until = until

    def paused(self, host: str) -> float:
        """Seconds ``host`` stays paused (0 if not)."""
        state = self._hosts.get(host)
        return max(0.0, state.paused_until - self.clock()) if state else 0.0

    def stats(self) -> dict[str, HostStats]:
        return {host: state.stats for host, state in self._hosts.items()}

    # -- dispatch level --------------------------------------------------------------------
    @asynccontextmanager
    async def idle(self) -> AsyncIterator[None]:
        """Mark the current task as sleeping: its dispatch place goes to other work meanwhile."""
        self._active -= 1
        self._wake.set()
        try:
            yield
        finally:
            self._active += 1

    def stop(self) -> None:
        """Start no more work items (tasks already running finish)."""
        self._stopped = True
        self._wake.set()

    def resume(self) -> None:
        """Undo :meth:`stop` (for a further :meth:`run`)."""
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def run(
        self,
        items: Iterable[tuple[str, T]],
        worker: Callable[[T], Awaitable[None]],
    ) -> int:
        """Run ``worker(item)`` for every (host, item), politely. Returns how many were started.

        Items of one host start in the order given; hosts take turns.
        """
        queues: dict[Hashable, deque[T]] = defaultdict(deque)
        for host, item in items:
            queues[host].append(item)
        ready: deque[str] = deque(queues)  # type: ignore[arg-type]
        in_ready = set(ready)
        per_host: dict[str, int] = defaultdict(int)
        tasks: set[asyncio.Task[None]] = set()
        errors: list[BaseException] = []
        started = 0

        async def guarded(item: T) -> None:
            try:
                await worker(item)
            except Exception as exc:  # stop the run, report the first error
                errors.append(exc)
                self.stop()

        def finished(host: str, task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._active -= 1
            per_host[host] -= 1
            if queues.get(host) and host not in in_ready:
                ready.append(host)
                in_ready.add(host)
            self._wake.set()

        try:
            while True:
                while ready and self._active < self.dispatch_width and not self._stopped:
                    host = ready.popleft()
                    in_ready.discard(host)
                    queue = queues[host]
                    item = queue.popleft()
                    per_host[host] += 1
                    self._active += 1
                    started += 1
                    task = asyncio.create_task(guarded(item))
                    tasks.add(task)
                    task.add_done_callback(lambda t, h=host: finished(h, t))
                    if not queue:
                        del queues[host]
                    elif per_host[host] < self.per_host:
                        ready.append(host)
                        in_ready.add(host)
                if not tasks and (not queues or self._stopped):
                    break
                self._wake.clear()
                await self._wake.wait()
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if errors:
            raise errors[0]
        return started
