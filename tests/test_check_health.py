"""Network health: the canary plus the share of hosts unreachable; fail fast when offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from support.checking import seed

from citewatch.check.health import HealthMonitor, assess
from citewatch.check.runner import run_check
from citewatch.config import Settings
from citewatch.models import NetworkHealth, Outcome
from citewatch.progress import NullReporter
from citewatch.store import Store


@pytest.mark.parametrize(
    ("canary", "answered", "unreachable", "health"),
    [
        (True, 10, 0, NetworkHealth.OK),
        (True, 5, 5, NetworkHealth.OK),
        (True, 4, 6, NetworkHealth.DEGRADED),
        (True, 0, 0, NetworkHealth.OK),
        (True, 0, 4, NetworkHealth.DEGRADED),  # none answering: an outage or dead servers?
        (True, 0, 1, NetworkHealth.DEGRADED),
        (True, 1, 4, NetworkHealth.OK),  # others answer: a few dead servers are evidence
        (True, 0, 5, NetworkHealth.OFFLINE),  # only the canary gets through: judge nothing
        (True, 1, 9, NetworkHealth.DEGRADED),
        (False, 0, 0, NetworkHealth.OFFLINE),
        (False, 0, 5, NetworkHealth.OFFLINE),
        (False, 2, 8, NetworkHealth.OFFLINE),
        (False, 3, 7, NetworkHealth.DEGRADED),
        (False, 10, 0, NetworkHealth.DEGRADED),
    ],
)
def test_assess(canary: bool, answered: int, unreachable: int, health: NetworkHealth) -> None:
    assert assess(canary, answered, unreachable) is health


def test_monitor_counts_hosts_not_urls() -> None:
    monitor = HealthMonitor("https://canary.test/")
    for _ in range(5):
        monitor.observe("down.test", Outcome.TIMEOUT, got_answer=False)
    monitor.observe("up.test", Outcome.NOT_FOUND, got_answer=True)
    monitor.observe("flaky.test", Outcome.CONNECT_ERROR, got_answer=False)
    monitor.observe("flaky.test", Outcome.OK, got_answer=True)  # answered once: reachable
    monitor.observe("private.test", Outcome.SKIPPED, got_answer=False)  # says nothing
    assert (monitor.answered, monitor.unreachable) == (2, 1)
    assert monitor.status is NetworkHealth.OK and monitor.streak == 0
    assert "1 of 3 hosts unreachable" in monitor.explain()


def test_dead_domains_do_not_make_a_healthy_network_degraded() -> None:
    monitor = HealthMonitor("https://canary.test/")
    for i in range(8):
        monitor.observe(f"expired{i}.test", Outcome.DNS_ERROR, got_answer=False)
    monitor.observe("up.test", Outcome.OK, got_answer=True)
    monitor.observe("up2.test", Outcome.NOT_FOUND, got_answer=True)
    assert monitor.status is NetworkHealth.OK
    monitor.canary_ok = False  # our resolver may be the one failing: then they count
    assert monitor.status is NetworkHealth.OFFLINE and monitor.unreachable == 8


def test_bad_certificates_are_the_hosts_problem_while_the_canary_answers() -> None:
    """A small corpus with one expired certificate and one hanging host is not a degraded run."""
    monitor = HealthMonitor("https://canary.test/")
    monitor.observe("expired.test", Outcome.TLS_ERROR, got_answer=False)
    monitor.observe("hang.test", Outcome.TIMEOUT, got_answer=False)
    monitor.observe("up.test", Outcome.OK, got_answer=True)
    assert (monitor.unreachable, monitor.status) == (1, NetworkHealth.OK)
    monitor.canary_ok = False  # an intercepting proxy breaks every certificate, the canary's too
    assert monitor.unreachable == 2


def test_a_resolver_that_denies_nearly_every_name_is_our_problem() -> None:
    monitor = HealthMonitor("https://canary.test/")
    for i in range(10):
        monitor.observe(f"site{i}.test", Outcome.DNS_ERROR, got_answer=False)
    monitor.observe("up.test", Outcome.OK, got_answer=True)
    assert monitor.unreachable == 10  # DNS failures count: the run is not healthy
    assert monitor.status is not NetworkHealth.OK


def test_losing_the_network_mid_run_stops_probing(tmp_path: Path) -> None:
    """Ten hosts answer, then the wire goes dead (canary too): the run stops instead of
    timing out on every remaining URL, and counts as degraded (not judged on connection failures)."""
    answered = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        if request.url.host == "canary.test" and answered == 0:
            return httpx.Response(200)
        if answered < 10 and request.url.host != "canary.test":
            answered += 1
            return httpx.Response(200, content=b"<title>fine</title>")
        raise httpx.ConnectError("network is unreachable")

    store = Store.open(tmp_path / "db.sqlite")
    urls = [f"https://host{i}.test/" for i in range(200)]
    seed(store, urls)
    settings = Settings(retries=0, backoff=0.0, canary="https://canary.test/", per_host=1)
    settings.net.concurrency = 1

    async def go() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            run_id = store.begin_run("check")
            return await run_check(store, run_id, settings, NullReporter(), client=client)

    result = asyncio.run(go())
    assert result.probed < 40  # 10 answers + a streak of 20 failures, then the canary is asked
    assert result.network == "degraded" and "stopped after probing" in result.message
    summary = result.summary
    assert summary["alive"] == 10 and summary["failing"] == 0 and summary["dead"] == 0


def _run_with(
    handler, tmp_path: Path, urls: list[str], store: Store | None = None, check_all: bool = False
) -> object:
    store = store or Store.open(tmp_path / "db.sqlite")
    if urls:
        seed(store, urls)
    settings = Settings(
        retries=0, backoff=0.0, canary="https://canary.test/", one_shot=True, check_all=check_all
    )

    async def go() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            run_id = store.begin_run("check")
            return await run_check(store, run_id, settings, NullReporter(), client=client)

    return asyncio.run(go())


def test_a_small_outage_with_the_canary_up_never_judges(tmp_path: Path) -> None:
    """Four hosts, none answering, the canary up: an outage or four dead servers — cannot tell,
    so connection failures do not count (the earlier verdicts stand)."""
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        if "citewatch-" in request.url.path:
            return httpx.Response(404)
        if request.url.host == "canary.test" or up:
            if request.url.host == "d.test":
                return httpx.Response(404)
            return httpx.Response(200, content=b"<title>fine</title><p>a page</p>")
        raise httpx.ConnectError("connection refused")

    store = Store.open(tmp_path / "db.sqlite")
    urls = [f"https://{name}.test/p" for name in "abcd"]
    first = _run_with(handler, tmp_path, urls, store)
    assert (first.network, first.summary["alive"], first.summary["dead"]) == ("ok", 3, 1)
    up = False
    second = _run_with(handler, tmp_path, [], store, check_all=True)
    assert (second.network, second.exit_code) == ("degraded", 1)
    assert (second.summary["alive"], second.summary["dead"], second.summary["failing"]) == (3, 1, 0)


def test_only_the_canary_getting_through_is_an_offline_run(tmp_path: Path) -> None:
    """An egress filter or a resolver that fails every other name: the canary answers, none of
    the cited hosts does. Nothing can be judged, and the exit code must not say "all fine"."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "canary.test":
            return httpx.Response(200)
        raise httpx.ConnectError("connection refused")

    result = _run_with(handler, tmp_path, [f"https://host{i}.test/a" for i in range(6)])
    assert (result.network, result.exit_code) == ("offline", 3)
    assert "none of the 6 cited hosts answered" in result.message
    assert result.summary["unchecked"] == 6 and result.verdicts_changed == 0


def test_one_dead_server_is_judged_while_the_canary_answers(tmp_path: Path) -> None:
    """A small corpus whose only other host refuses connections: that is evidence about the
    host (it fails, never "dead" on connection errors alone), not a degraded network."""

    def handler(request: httpx.Request) -> httpx.Response:
        if "citewatch-" in request.url.path:  # the soft-404 probe of a path that cannot exist
            return httpx.Response(404)
        if request.url.host in ("canary.test", "up.test"):
            return httpx.Response(200, content=b"<title>fine</title><p>a page</p>")
        raise httpx.ConnectError("connection refused")

    result = _run_with(handler, tmp_path, ["https://up.test/a", "https://down.test/a"])
    assert (result.network, result.exit_code) == ("ok", 0)
    assert result.summary["failing"] == 1 and result.summary["dead"] == 0


def test_a_run_with_nothing_to_probe_still_asks_the_canary(tmp_path: Path) -> None:
    """Every URL fresh: the run's network health is what the canary says, not assumed "ok"."""
    up = True

    def handler(request: httpx.Request) -> httpx.Response:
        if up and "citewatch-" in request.url.path:
            return httpx.Response(404)
        if up:
            return httpx.Response(200, content=b"<title>fine</title><p>a page</p>")
        raise httpx.ConnectError("network is unreachable")

    store = Store.open(tmp_path / "db.sqlite")
    first = _run_with(handler, tmp_path, ["https://up.test/a"], store)
    assert (first.network, first.probed) == ("ok", 1)
    up = False
    second = _run_with(handler, tmp_path, [], store)
    assert (second.network, second.probed, second.exit_code) == ("offline", 0, 3)
    assert "canary https://canary.test/ is unreachable" in second.message
    assert second.summary["alive"] == 1  # nothing judged, nothing changed
