"""The retry policy (tenacity): transient failures only, bounded, backing off, honouring Retry-After.

Transient means the same request may well succeed in a moment: connection errors, timeouts,
500/502/503/504 and 429. A 404 is never retried (it is an answer, not a hiccup). Waits grow
exponentially with jitter; a server's ``Retry-After`` replaces the computed wait (capped by
``retry_after_cap``) and pauses that host only — other hosts carry on.

>>> parse_retry_after("120"), parse_retry_after("soon")
(120.0, None)
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
)


class Retryable(Protocol):
    """What an attempt must tell the policy."""

    @property
    def transient(self) -> bool:
        """True if trying again could give a different answer."""

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait (Retry-After), if it did."""

    @property
    def rate_limited(self) -> bool:
        """True for a 429: the wait applies to the whole host."""


A = TypeVar("A", bound=Retryable)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and how long to wait between tries."""

    retries: int = 3
    """Attempts after the first."""
    backoff: float = 0.5
    """First wait in seconds; doubles each time, plus up to ``backoff`` of jitter."""
    max_wait: float = 30.0
    retry_after_cap: float = 30.0

    def wait(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        if self.backoff <= 0:
            return 0.0
        exponential = self.backoff * 2 ** (failures - 1)
        return min(exponential + rng.uniform(0, self.backoff), self.max_wait)


async def with_retries(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[A]],
    *,
    sleep: Callable[[float], Awaitable[None]],
    on_wait: Callable[[A, float], None] | None = None,
    rng: random.Random | None = None,
) -> tuple[A, int]:
    """Run ``attempt`` until it is not transient or attempts run out; (last result, attempts made).

    ``on_wait(result, seconds)`` is told before each wait (the prober pauses the host there);
    ``sleep`` does the waiting (the scheduler's idle-aware sleep).
    """
    generator = rng or random.Random()

    def compute_wait(state: RetryCallState) -> float:
        result: A = state.outcome.result()  # type: ignore[union-attr]
        return policy.wait(state.attempt_number, result.retry_after, generator)

    def before_sleep(state: RetryCallState) -> None:
        if on_wait is not None and state.next_action is not None:
            on_wait(state.outcome.result(), state.next_action.sleep)  # type: ignore[union-attr]

    # Fast path: most URLs answer definitively the first time; tenacity is not even built then.
    first = await attempt()
    if not first.transient or policy.retries <= 0:
        return first, 1
    replay = [first]
    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(0, policy.retries) + 1),
        retry=retry_if_result(lambda result: result.transient),
        wait=compute_wait,
        sleep=sleep,
        before_sleep=before_sleep,
        retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        reraise=True,
    )

    async def call() -> A:  # a real coroutine function, so tenacity awaits it
        return replay.pop() if replay else await attempt()

    result = await retrying(call)
    return result, int(retrying.statistics.get("attempt_number", 1))
