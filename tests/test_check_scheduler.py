"""The scheduler: hard per-host and global limits per request, fair dispatch, spacing, pauses."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from citewatch.check.scheduler import DISPATCH_FACTOR, Scheduler


def test_request_limits_per_host_and_global() -> None:
    async def go() -> tuple[Counter[str], int]:
        scheduler: Scheduler[str] = Scheduler(concurrency=5, per_host=2)
        in_flight: Counter[str] = Counter()
        peak: Counter[str] = Counter()
        total_peak = 0

        async def one(host: str) -> None:
            nonlocal total_peak
            async with scheduler.request(host):
                in_flight[host] += 1
                peak[host] = max(peak[host], in_flight[host])
                total_peak = max(total_peak, sum(in_flight.values()))
                await asyncio.sleep(0.01)
                in_flight[host] -= 1

        await asyncio.gather(*(one(f"h{i % 4}") for i in range(40)))
        assert scheduler.stats()["h0"].max_in_flight == 2
        return peak, total_peak

    peak, total_peak = asyncio.run(go())
    assert max(peak.values()) == 2 and total_peak == 5


def test_dispatch_keeps_a_slow_host_from_stalling_others() -> None:
    """Work for one slow host is queued first; the others still finish long before it."""

    async def go() -> list[str]:
        scheduler: Scheduler[tuple[str, float]] = Scheduler(concurrency=3, per_host=1)
        done: list[str] = []

        async def work(item: tuple[str, float]) -> None:
            host, delay = item
            async with scheduler.request(host):
                await asyncio.sleep(delay)
            done.append(host)

        items = [("slow", ("slow", 0.2)) for _ in range(3)]
        items += [(f"fast{i % 4}", (f"fast{i % 4}", 0.001)) for i in range(20)]
        started = await scheduler.run(items, work)
        assert started == 23
        return done

    done = asyncio.run(go())
    assert done[-3:] == ["slow"] * 3 and "slow" not in done[:20]


def test_dispatch_alternates_hosts_in_order() -> None:
    async def go() -> list[str]:
        scheduler: Scheduler[str] = Scheduler(concurrency=1, per_host=1)
        order: list[str] = []

        async def work(item: str) -> None:
            order.append(item)

        await scheduler.run([("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2")], work)
        return order

    assert asyncio.run(go()) == ["a1", "b1", "a2", "b2"]


def test_interval_spaces_request_starts() -> None:
    async def go() -> list[float]:
        scheduler: Scheduler[str] = Scheduler(concurrency=10, per_host=10, interval=0.05)
        starts: list[float] = []

        async def one() -> None:
            async with scheduler.request("h"):
                starts.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(4)))
        return starts

    starts = asyncio.run(go())
    assert all(b - a >= 0.045 for a, b in zip(starts, starts[1:], strict=False))


def test_pause_holds_only_that_host() -> None:
    async def go() -> dict[str, float]:
        scheduler: Scheduler[str] = Scheduler(concurrency=4, per_host=2)
        began = time.monotonic()
        scheduler.pause("limited", 0.2)
        scheduler.pause("limited", 0.05)  # a shorter pause never shortens a longer one
        assert scheduler.paused("limited") > 0.1 and scheduler.paused("free") == 0
        seen: dict[str, float] = {}

        async def one(host: str) -> None:
            async with scheduler.request(host):
                seen[host] = time.monotonic() - began

        await asyncio.gather(one("limited"), one("free"))
        return seen

    seen = asyncio.run(go())
    assert seen["free"] < 0.1 <= 0.19 <= seen["limited"]


def test_stop_starts_nothing_more_and_errors_surface() -> None:
    async def go() -> list[int]:
        scheduler: Scheduler[int] = Scheduler(concurrency=1, per_host=1)
        seen: list[int] = []

        async def work(item: int) -> None:
            seen.append(item)
            if item == 2:
                scheduler.stop()

        await scheduler.run([("h", i) for i in range(10)], work)
        assert scheduler.stopped
        return seen

    assert asyncio.run(go()) == [0, 1, 2]

    async def failing() -> None:
        scheduler: Scheduler[int] = Scheduler(concurrency=2, per_host=2)

        async def work(item: int) -> None:
            raise ValueError(f"boom {item}")

        await scheduler.run([("h", 1)], work)

    try:
        asyncio.run(failing())
    except ValueError as exc:
        assert "boom 1" in str(exc)
    else:
        raise AssertionError("the worker's error was lost")


def test_idle_tasks_give_their_dispatch_place_away() -> None:
    async def go() -> list[str]:
        scheduler: Scheduler[str] = Scheduler(concurrency=1, per_host=1)
        order: list[str] = []

        async def work(item: str) -> None:
            if item == "sleeper":
                async with scheduler.idle():
                    await asyncio.sleep(0.1)
            order.append(item)

        await scheduler.run([("a", "sleeper"), ("b", "b1"), ("c", "c1")], work)
        return order

    assert asyncio.run(go()) == ["b1", "c1", "sleeper"]


def test_urgent_requests_take_the_next_free_slot_first() -> None:
    """A probe's next hop (urgent) overtakes new probes already waiting for a global slot."""

    async def go() -> list[str]:
        scheduler: Scheduler[str] = Scheduler(concurrency=1, per_host=5)
        order: list[str] = []
        holder_in = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with scheduler.request("a"):
                holder_in.set()
                await release.wait()

        async def one(name: str, urgent: bool) -> None:
            async with scheduler.request(f"host-{name}", urgent=urgent):
                order.append(name)

        first = asyncio.create_task(holder())
        await holder_in.wait()
        waiting = [
            asyncio.create_task(one("new-1", False)),
            asyncio.create_task(one("new-2", False)),
            asyncio.create_task(one("hop", True)),
        ]
        await asyncio.sleep(0.01)  # all three are queued behind the holder
        release.set()
        await asyncio.gather(first, *waiting)
        return order

    assert asyncio.run(go()) == ["hop", "new-1", "new-2"]


def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    async def go() -> list[str]:
        scheduler: Scheduler[str] = Scheduler(concurrency=1, per_host=5)
        order: list[str] = []

        async def one(name: str, hold: float = 0.0) -> None:
            async with scheduler.request(name):
                order.append(name)
                await asyncio.sleep(hold)

        first = asyncio.create_task(one("first", hold=0.02))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(one("doomed"))
        last = asyncio.create_task(one("last"))
        await asyncio.sleep(0.005)
        doomed.cancel()
        await asyncio.gather(first, last)
        assert doomed.cancelled()
        return order

    assert asyncio.run(go()) == ["first", "last"]


def test_dispatch_runs_more_tasks_than_request_slots() -> None:
    """Tasks outside a request (classifying, recording) must not keep request slots idle."""

    async def go() -> int:
        scheduler: Scheduler[int] = Scheduler(concurrency=4, per_host=100)
        running = peak = 0

        async def work(item: int) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            async with scheduler.request("h"):
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.01)  # post-processing, slot already free
            running -= 1

        await scheduler.run((("h", i) for i in range(40)), work)
        return peak

    assert asyncio.run(go()) == 4 * DISPATCH_FACTOR


def test_a_waiter_cancelled_after_its_turn_was_skipped_is_simply_cancelled() -> None:
    """release() drops a cancelled waiter before it resumes: it must still end as cancelled
    (a ValueError there became a false connect_error probe during shutdown)."""

    async def go() -> tuple[bool, int]:
        scheduler: Scheduler[str] = Scheduler(concurrency=1, per_host=5)
        holding = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with scheduler.request("a"):
                holding.set()
                await release.wait()

        async def waiter() -> None:
            async with scheduler.request("b"):
                pass

        first = asyncio.create_task(holder())
        await holding.wait()
        second = asyncio.create_task(waiter())
        await asyncio.sleep(0)  # queued behind the holder
        release.set()  # the holder runs first and releases, skipping the cancelled waiter…
        second.cancel()  # …which resumes only afterwards
        await first
        outcome = await asyncio.gather(second, return_exceptions=True)
        later = asyncio.create_task(waiter())
        await asyncio.wait_for(later, timeout=1)  # the slot is free again
        return isinstance(outcome[0], asyncio.CancelledError), scheduler._global._free

    cancelled, free = asyncio.run(go())
    assert cancelled and free == 1
