"""The retry policy: transient only, bounded, exponential with jitter, Retry-After capped."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from citewatch.check.retry import RetryPolicy, parse_retry_after, with_retries


@dataclass(frozen=True)
class Try:
    transient: bool
    retry_after: float | None = None
    rate_limited: bool = False
    label: str = ""


def run(policy: RetryPolicy, results: list[Try]) -> tuple[Try, int, list[float], list[Try]]:
    slept: list[float] = []
    told: list[Try] = []
    queue = list(results)

    async def attempt() -> Try:
        return queue.pop(0)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def go() -> tuple[Try, int]:
        return await with_retries(
            policy,
            attempt,
            sleep=sleep,
            on_wait=lambda result, seconds: told.append(result),
            rng=random.Random(1),
        )

    result, attempts = asyncio.run(go())
    return result, attempts, slept, told


def test_non_transient_results_are_not_retried() -> None:
    result, attempts, slept, _ = run(RetryPolicy(retries=3), [Try(False, label="404")])
    assert (result.label, attempts, slept) == ("404", 1, [])


def test_transient_results_are_retried_until_success() -> None:
    tries = [Try(True), Try(True), Try(False, label="ok")]
    result, attempts, slept, told = run(RetryPolicy(retries=3, backoff=0.1), tries)
    assert (result.label, attempts, len(slept), len(told)) == ("ok", 3, 2, 2)
    assert 0.1 <= slept[0] <= 0.2 and 0.2 <= slept[1] <= 0.3  # exponential, with jitter


def test_attempts_are_bounded_and_the_last_result_returned() -> None:
    tries = [Try(True, label=str(i)) for i in range(10)]
    result, attempts, slept, _ = run(RetryPolicy(retries=2, backoff=0.0), tries)
    assert (result.label, attempts, slept) == ("2", 3, [0.0, 0.0])


def test_retry_after_is_honoured_and_capped() -> None:
    tries = [Try(True, retry_after=2.0), Try(True, retry_after=500.0), Try(False)]
    _, attempts, slept, told = run(RetryPolicy(retries=3, retry_after_cap=30.0), tries)
    assert attempts == 3 and slept == [2.0, 30.0]
    assert [t.retry_after for t in told] == [2.0, 500.0]


def test_waits_never_exceed_the_maximum() -> None:
    policy = RetryPolicy(backoff=10.0, max_wait=15.0)
    assert policy.wait(5, None, random.Random(0)) == 15.0


def test_parse_retry_after() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Tue, 01 Jan 2030 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("Mon, 31 Dec 2029 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("tomorrow") is None and parse_retry_after(None) is None
