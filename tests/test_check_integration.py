"""`check` end-to-end: the real runner, prober and client against simweb over real sockets
(HTTP and HTTPS, trustme CA, --connect-to routing) and a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.checking import (
    by_url,
    check,
    checks_of,
    fake_resolver,
    seed,
    settings_for,
    url_row,
)
from support.simweb import STANDARD_HOSTS, Host, SimWeb

from citewatch.check.runner import plan_run
from citewatch.config import Settings
from citewatch.models import Outcome, ProbeResult
from citewatch.net import RoutingBackend
from citewatch.store import Store

HEALTHY = [f"http://site{i}.test/ok/page" for i in range(8)]

# url path on news.test (or full URL) → (outcome, status, verdict after one run)
EXPECTED: dict[str, tuple[str, int | None, str]] = {
    "http://news.test/": ("ok", 200, "alive"),
    "http://news.test/ok/a": ("ok", 200, "alive"),
    "https://news.test/ok/tls": ("ok", 200, "alive"),
    "http://news.test/dead/a": ("not_found", 404, "failing"),
    "https://news.test/dead/tls": ("not_found", 404, "failing"),
    "http://news.test/gone/a": ("gone", 410, "failing"),
    "http://news.test/redirect/2/a": ("redirected", 200, "moved"),
    "http://news.test/redir/308/z": ("redirected", 200, "moved"),
    "http://news.test/goto/301/https/other.test/ok/x": ("redirected", 200, "moved"),
    "http://news.test/redir/301-302/b": ("ok", 200, "alive"),
    "http://news.test/redir/302/c": ("ok", 200, "alive"),
    "http://news.test/redir/307/d": ("ok", 200, "alive"),
    "http://news.test/redir/303/e": ("ok", 200, "alive"),
    "http://news.test/chain/3/a": ("ok", 200, "alive"),
    "http://news.test/loop/a": ("too_many_redirects", 302, "failing"),
    "http://news.test/chain/12/a": ("too_many_redirects", 302, "failing"),
    "http://news.test/to-home/a": ("soft_404", 200, "failing"),
    "http://news.test/to-error/a": ("soft_404", 200, "failing"),
    "http://news.test/soft404/a": ("soft_404", 200, "failing"),
    "http://news.test/soft404-ar/a": ("soft_404", 200, "failing"),
    "http://news.test/soft404-body/a": ("soft_404", 200, "failing"),
    "http://soft.test/missing/article": ("soft_404", 200, "failing"),
    "http://soft.test/ok/real": ("ok", 200, "alive"),
    "http://news.test/head405/a": ("ok", 200, "alive"),
    "http://news.test/status/401/a": ("blocked", 401, "blocked"),
    "http://news.test/status/403/a": ("blocked", 403, "blocked"),
    "http://news.test/status/451/a": ("blocked", 451, "blocked"),
    "http://news.test/botwall/a": ("blocked", 403, "blocked"),
    "http://news.test/429/1/a": ("blocked", 429, "blocked"),
    "http://news.test/429/none/a": ("blocked", 429, "blocked"),
    "http://news.test/ratelimit/a": ("ok", 200, "alive"),
    "http://news.test/flaky/a": ("ok", 200, "alive"),
    "http://news.test/flaky-reset/a": ("ok", 200, "alive"),
    "http://news.test/flakyn/5/a": ("server_error", 503, "failing"),
    "http://news.test/status/500/a": ("server_error", 500, "failing"),
    "http://news.test/status/400/a": ("client_error", 400, "failing"),
    "http://news.test/slow/300/a": ("ok", 200, "alive"),
    "http://news.test/reset/a": ("connect_error", None, "failing"),
    "http://news.test/hang/a": ("timeout", None, "failing"),
    "http://hang.test/any": ("timeout", None, "failing"),
    "http://news.test/endless/a": ("ok", 200, "alive"),
    "http://news.test/gzipbomb/a": ("ok", 200, "alive"),
    "http://news.test/bigheaders/a": ("server_error", None, "failing"),
    "https://expired.test/ok/a": ("tls_error", None, "failing"),
    "https://wrong.test/ok/a": ("tls_error", None, "failing"),
    "http://closed.test/ok/a": ("connect_error", None, "failing"),
    "https://closed.test/ok/a": ("connect_error", None, "failing"),
    "http://nxdomain.invalid:8081/a": ("dns_error", None, "failing"),
    "http://localhost:8082/": ("skipped", None, "skipped"),
    **{url: ("ok", 200, "alive") for url in HEALTHY},
}


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real DNS in tests: *.invalid does not exist, localhost is 127.0.0.1."""
    monkeypatch.setattr(RoutingBackend, "_resolve", fake_resolver(RoutingBackend._resolve))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store.open(tmp_path / "citewatch.db")
    yield db
    db.close()


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One run over every behaviour (shared by the assertions below: it takes a few seconds)."""
    tmp = tmp_path_factory.mktemp("everything")
    with pytest.MonkeyPatch.context() as patch, SimWeb(STANDARD_HOSTS(), workdir=tmp) as web:
        patch.setattr(RoutingBackend, "_resolve", fake_resolver(RoutingBackend._resolve))
        private = f"http://127.0.0.1:{web.http_port}/ok/private"
        store = Store.open(tmp / "citewatch.db")
        seed(store, [*EXPECTED, private])
        seed(store, ["http://news.test/ok/a", "http://news.test/dead/a"], path="profiles/q.md")
        result = check(store, settings_for(web))
        yield {"store": store, "result": result, "web": web, "private": private}
        store.close()


@pytest.mark.parametrize("url", list(EXPECTED))
def test_every_behaviour_has_its_outcome_and_verdict(everything: dict[str, Any], url: str) -> None:
    outcome, status, verdict = EXPECTED[url]
    item = by_url(everything["result"])[url]
    assert (item["outcome"], item["status"], item["verdict"]) == (outcome, status, verdict), item
    (row,) = checks_of(everything["store"], url)  # recorded, once
    assert row["outcome"] == outcome and row["network"] == "ok"


def test_run_is_healthy_and_counts_everything(everything: dict[str, Any]) -> None:
    result = everything["result"]
    assert result.network == "ok" and result.message is None
    assert result.probed == len(EXPECTED) + 1 and result.skipped_fresh == 0
    assert sum(result.summary.values()) == len(EXPECTED) + 1
    assert result.summary["dead"] == 0 and result.exit_code == 0
    assert everything["store"].run(result.run_id)["network"] == "ok"
    keys = {"url", "outcome", "status", "final_url", "verdict", "confirmed", "checked_at"}
    keys |= {"elapsed_ms", "error", "moved_to", "title", "attempts"}
    assert all(set(item) == keys for item in result.urls)
    json.dumps(result.urls)


def test_urls_cited_twice_are_probed_once(everything: dict[str, Any]) -> None:
    web: SimWeb = everything["web"]
    gets = [r for r in web.requests_to("news.test") if r.path == "/ok/a"]
    assert len(gets) == 1


def test_redirect_chains_are_stored(everything: dict[str, Any]) -> None:
    store = everything["store"]
    (row,) = checks_of(store, "http://news.test/redirect/2/a")
    assert json.loads(row["redirects"]) == [
        [301, "http://news.test/redirect/1/a"],
        [301, "http://news.test/redirect/0/a"],
    ]
    assert row["permanent_redirect"] == 1 and row["final_url"] == "http://news.test/redirect/0/a"
    (mixed,) = checks_of(store, "http://news.test/redir/301-302/b")
    assert [hop[0] for hop in json.loads(mixed["redirects"])] == [301, 302]
    assert mixed["permanent_redirect"] == 0
    (loop,) = checks_of(store, "http://news.test/loop/a")
    assert "loop" in loop["error"] and len(json.loads(loop["redirects"])) == 2
    (chain,) = checks_of(store, "http://news.test/chain/12/a")
    assert len(json.loads(chain["redirects"])) == 11 and "more than 10" in chain["error"]


def test_moved_urls_suggest_the_new_url(everything: dict[str, Any]) -> None:
    items = by_url(everything["result"])
    assert items["http://news.test/redir/308/z"]["moved_to"] == "http://news.test/ok/z"
    cross = items["http://news.test/goto/301/https/other.test/ok/x"]
    assert cross["moved_to"] == "https://other.test/ok/x"
    row = url_row(everything["store"], "http://news.test/redir/308/z")
    assert row["verdict"] == "moved" and row["moved_to"] == "http://news.test/ok/z"


def test_retries_are_counted(everything: dict[str, Any]) -> None:
    items = by_url(everything["result"])
    assert items["http://news.test/flaky/a"]["attempts"] == 2
    assert items["http://news.test/ratelimit/a"]["attempts"] == 2
    assert items["http://news.test/flaky-reset/a"]["attempts"] == 2
    assert items["http://news.test/flakyn/5/a"]["attempts"] == 2  # retries=1: bounded
    assert items["http://news.test/429/1/a"]["attempts"] == 2
    assert items["http://news.test/dead/a"]["attempts"] == 1  # a 404 is an answer, never retried
    assert items["https://expired.test/ok/a"]["attempts"] == 1  # certificates do not heal
    assert items["http://nxdomain.invalid:8081/a"]["attempts"] == 1


def test_evidence_is_recorded(everything: dict[str, Any]) -> None:
    store = everything["store"]
    (ok,) = checks_of(store, "http://news.test/ok/a")
    assert ok["title"] == "Article /ok/a — news.test" and ok["sha1"] and len(ok["sha1"]) == 32
    assert ok["content_type"].startswith("text/html") and ok["text_sample"]
    assert len(ok["text_sample"].encode()) <= 2048
    assert ok["method"] == "GET" and ok["elapsed_ms"] >= 0
    for capped in ("http://news.test/endless/a", "http://news.test/gzipbomb/a"):
        (row,) = checks_of(store, capped)
        assert row["sha1"] is None  # not read whole: no digest
    (soft,) = checks_of(store, "http://soft.test/missing/article")
    assert "random never-existing path" in soft["error"]
    (ar,) = checks_of(store, "http://news.test/soft404-ar/a")
    assert ar["title"] == "الصفحة غير موجودة"
    (tls,) = checks_of(store, "https://expired.test/ok/a")
    assert "expired" in tls["error"]


def test_private_addresses_are_skipped_unless_allowed(everything: dict[str, Any]) -> None:
    item = by_url(everything["result"])[everything["private"]]
    assert item["outcome"] == "skipped" and item["verdict"] == "skipped"
    assert "private address" in item["error"]
    web: SimWeb = everything["web"]
    assert not [r for r in web.log if r.path == "/ok/private"]  # never connected


def test_allow_private_checks_loopback(make_simweb: Any, store: Store) -> None:
    web = make_simweb()
    url = f"http://127.0.0.1:{web.http_port}/ok/private"
    seed(store, [url])
    result = check(store, settings_for(web, allow_private=True))
    assert by_url(result)[url]["outcome"] == "ok"


def test_soft_404_host_probe_happens_once_per_host(everything: dict[str, Any]) -> None:
    web: SimWeb = everything["web"]
    probes = [r for r in web.requests_to("soft.test") if "citewatch-" in r.path]
    assert len(probes) == 1


def test_host_prints_are_reused_across_runs_for_a_week(make_simweb: Any, store: Store) -> None:
    """The soft-404 host probe is kept: the next runs within 7 days send no random-path request,
    and still see the soft-404 host for what it is; after 7 days the host is asked again."""
    web = make_simweb(STANDARD_HOSTS())
    soft, real, plain = (
        "http://soft.test/missing/article",
        "http://soft.test/ok/real",
        "http://news.test/ok/page",
    )
    seed(store, [soft, real, plain])
    start = datetime.now(UTC)

    def run(at: datetime) -> tuple[dict[str, Any], int]:
        web.log.clear()
        result = check(store, settings_for(web, check_all=True), now=lambda: at)
        random_paths = sum(1 for r in web.log if "citewatch-" in r.path)
        return by_url(result), random_paths

    first, asked = run(start)
    assert asked == 2  # soft.test (a catch-all host) and news.test (a 404 host)
    kept = store.query("SELECT origin, status FROM host_prints ORDER BY origin")
    assert [(r["origin"], r["status"]) for r in kept] == [
        ("http://news.test", 404),
        ("http://soft.test", 200),
    ]
    again, asked = run(start + timedelta(days=6))
    assert asked == 0
    for url in (soft, real, plain):
        assert again[url]["outcome"] == first[url]["outcome"]
    assert again[soft]["outcome"] == "soft_404" and again[real]["outcome"] == "ok"
    _, asked = run(start + timedelta(days=8))
    assert asked == 2


def test_an_inconclusive_host_probe_is_not_kept(make_simweb: Any, store: Store) -> None:
    """A host whose answer to the random path is a passing failure (503) gives no print to keep:
    the next run asks again."""
    web = make_simweb({"shaky.test": Host(unknown_status=503)})
    seed(store, ["http://shaky.test/ok/page"])
    result = check(store, settings_for(web))
    assert by_url(result)["http://shaky.test/ok/page"]["outcome"] == "ok"
    assert any("citewatch-" in r.path for r in web.log)
    assert store.query("SELECT count(*) AS n FROM host_prints")[0]["n"] == 0


def test_dead_needs_k_failures_spanning_d(make_simweb: Any, store: Store) -> None:
    web = make_simweb()
    url, alive = "http://news.test/dead/k", "http://news.test/ok/k"
    seed(store, [url, alive])
    settings = settings_for(web)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    seen = []
    for days in (0, 1.1, 2.2, 3.3):  # > max_age (1 day) apart, so each run probes again
        result = check(store, settings, now=lambda d=days: t0 + timedelta(days=d))
        item = by_url(result)[url]
        seen.append((item["verdict"], item["confirmed"], result.exit_code))
    # 3 failures spanning 2.2 days are not enough; the 4th (span 3.3 days) is
    assert seen == [
        ("failing", True, 0),
        ("failing", True, 0),
        ("failing", True, 0),
        ("dead", True, 1),
    ]
    assert len(checks_of(store, url)) == 4
    assert url_row(store, alive)["verdict"] == "alive"


def test_a_job_run_every_max_age_reprobes_every_url_each_time(
    make_simweb: Any, store: Store
) -> None:
    """A daily cron with the default --max-age 1d: yesterday's probes were made a little after
    yesterday's run started, so they are a little under a day old when today's run starts —
    still every URL is probed again (a grace of a tenth of max-age, at most an hour)."""
    web = make_simweb()
    urls = ["http://news.test/ok/daily-1", "http://news.test/ok/daily-2"]
    seed(store, urls)
    settings = settings_for(web)
    t0 = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    probed = []
    for moment in (t0 + timedelta(seconds=40), t0 + timedelta(days=1), t0 + timedelta(hours=36)):
        result = check(store, settings, now=lambda m=moment: m)
        probed.append((result.probed, result.skipped_fresh))
    assert probed == [(2, 0), (2, 0), (0, 2)]  # the third run, 12 hours on, finds them fresh


def test_a_long_runs_late_probes_are_as_old_as_its_first(make_simweb: Any, store: Store) -> None:
    """A daily audit whose check takes hours: tomorrow's run re-probes what it probed last,
    not only what it probed in its first hour (freshness dates from the run's first probe)."""

    web = make_simweb()
    urls = ["http://news.test/ok/early", "http://news.test/ok/late"]
    seed(store, urls)
    t0 = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    run_id = store.begin_run("check")
    for url, hours in zip(urls, (0, 5), strict=True):
        url_id = store.query("SELECT id FROM urls WHERE url = ?", [url])[0]["id"]
        stamp = (t0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        store.record_check(run_id, url_id, ProbeResult(url, Outcome.OK, stamp), "ok")
    store.finish_run(run_id, network="ok")
    result = check(store, settings_for(web), now=lambda: t0 + timedelta(days=1))
    assert (result.probed, result.skipped_fresh) == (2, 0)


def test_one_shot_gives_unconfirmed_dead(make_simweb: Any, store: Store) -> None:
    web = make_simweb()
    url = "https://news.test/gone/one-shot"
    seed(store, [url])
    result = check(store, settings_for(web, one_shot=True))
    item = by_url(result)[url]
    assert (item["verdict"], item["confirmed"], result.exit_code) == ("dead", False, 1)


def test_the_urls_slowest_last_time_are_probed_first(store: Store) -> None:
    """Longest first (LPT): a slow URL or long redirect chain started last would keep the run
    going alone at its end. Never-probed URLs count as typical (the median)."""
    urls = [f"http://h{i}.test/p" for i in range(5)]
    seed(store, urls)
    ids = {row["url"]: row["id"] for row in store.cited_urls()}
    run_id = store.begin_run("check")
    for url, elapsed in zip(urls[:3], [10, 900, 50], strict=True):
        result = ProbeResult(
            url, Outcome.OK, "2026-01-01T00:00:00.000000Z", status=200, elapsed_ms=elapsed
        )
        store.record_check(run_id, ids[url], result, "ok")
    # A timeout's time is the timeout: h4's last probe got no answer, it ranks as typical.
    timed_out = ProbeResult(
        urls[4], Outcome.TIMEOUT, "2026-01-01T00:00:00.000000Z", elapsed_ms=30_000
    )
    store.record_check(run_id, ids[urls[4]], timed_out, "ok")
    plan, _ = plan_run(store, Settings(check_all=True), datetime.now(UTC), None)
    order = [target.url.split("/")[2] for target in plan.targets]
    # h3 (never probed) and h4 (no answer) are typical (50 ms, the median), after h2 in store order
    assert order == ["h1.test", "h2.test", "h3.test", "h4.test", "h0.test"]


def test_recent_checks_are_not_repeated_and_killed_runs_resume(
    make_simweb: Any, store: Store
) -> None:
    web = make_simweb()
    first, second = "http://news.test/ok/r1", "http://news.test/ok/r2"
    seed(store, [first, second])
    settings = settings_for(web)
    partial = check(store, settings, only_urls=[first])  # as if killed after the first URL
    assert [item["url"] for item in partial.urls] == [first]
    resumed = check(store, settings)
    assert [item["url"] for item in resumed.urls] == [second] and resumed.skipped_fresh == 1
    again = check(store, settings_for(web, check_all=True))
    assert again.probed == 2 and again.skipped_fresh == 0
    assert len(checks_of(store, first)) == 2


def test_ignored_urls_are_listed_not_probed(make_simweb: Any, store: Store) -> None:
    web = make_simweb()
    by_glob, by_rule = "http://news.test/dead/ignored", "http://news.test/dead/ruled"
    seed(store, [by_glob, by_rule])
    store.add_ignore(by_rule, "paywalled")
    result = check(store, settings_for(web, ignore=["*/dead/ignored"]))
    items = by_url(result)
    assert items[by_glob]["outcome"] == "skipped" and "ignore pattern" in items[by_glob]["error"]
    assert items[by_rule]["error"] == "ignored: paywalled"
    assert items[by_rule]["verdict"] == "unchecked" and result.ignored == 2
    assert [record.host for record in web.log] == ["canary.test"]  # only the network's health
    assert not checks_of(store, by_glob) and result.network == "ok"


def test_head_first_falls_back_to_get(make_simweb: Any, store: Store) -> None:
    web = make_simweb()
    urls = ["http://news.test/head405/h", "http://news.test/ok/h", "http://news.test/dead/h"]
    seed(store, urls)
    result = check(store, settings_for(web, head_first=True, soft404_probe=False))
    items = by_url(result)
    assert [items[u]["outcome"] for u in urls] == ["ok", "ok", "not_found"]
    methods = {u: checks_of(store, u)[0]["method"] for u in urls}
    assert methods == {urls[0]: "GET", urls[1]: "HEAD", urls[2]: "GET"}
    assert [r.method for r in web.log if r.path == "/head405/h"] == ["HEAD", "GET"]


def test_head_first_still_reads_pages_for_soft_404s(make_simweb: Any, store: Store) -> None:
    """--head must not turn soft-404 detection off: a 2xx page is read with GET; with the
    soft-404 checks switched off (soft404_probe = false) the run is HEAD-only."""
    web = make_simweb(STANDARD_HOSTS())
    soft = [
        "http://news.test/soft404/y",
        "http://news.test/soft404-ar/y",
        "https://soft.test/deep/x",
    ]
    seed(store, [*soft, "http://news.test/ok/y"])
    items = by_url(check(store, settings_for(web, head_first=True)))
    assert [items[u]["outcome"] for u in soft] == ["soft_404"] * 3
    assert items["http://news.test/ok/y"]["outcome"] == "ok"
    assert [r.method for r in web.log if r.path == "/ok/y"] == ["HEAD", "GET"]

    web.log.clear()
    quick = check(store, settings_for(web, head_first=True, soft404_probe=False, check_all=True))
    assert by_url(quick)["http://news.test/ok/y"]["outcome"] == "ok"
    assert {r.method for r in web.log if r.host != "canary.test"} == {"HEAD"}


def test_network_down_judges_nothing(make_simweb: Any, store: Store, fake_dns: None) -> None:
    web = make_simweb()
    urls = [f"http://host{i}.test/ok/{i}" for i in range(40)]
    seed(store, urls)
    earlier = datetime.now(UTC) - timedelta(days=2)
    healthy = check(store, settings_for(web), now=lambda: earlier)
    assert healthy.network == "ok" and healthy.summary["alive"] == 40
    verdict_rows = store.query("SELECT count(*) AS n FROM verdicts")[0]["n"]
    down = settings_for(web)
    closed = web.closed_port
    from citewatch.net import ConnectTo

    down.net.connect_to = [ConnectTo.parse(f":80:127.0.0.1:{closed}")]
    down.net.connect_to.append(ConnectTo.parse(f":443:127.0.0.1:{closed}"))
    result = check(store, down)
    assert (result.network, result.exit_code) == ("offline", 3)
    assert result.message.startswith("network unavailable: the canary http://canary.test/")
    # fail fast: only the probes sent out with the canary (one per global slot), not all 40
    assert down.net.concurrency == 16 and result.probed == 16
    assert "16 of 16 hosts unreachable" in result.message and "nothing was judged" in result.message
    assert "stopped after probing 16 of 40 URLs" in result.message
    assert all(item["outcome"] == "connect_error" for item in result.urls)
    assert all(item["verdict"] == "alive" for item in result.urls)
    assert store.query("SELECT count(*) AS n FROM verdicts")[0]["n"] == verdict_rows
    assert {row["verdict"] for row in store.query("SELECT verdict FROM urls")} == {"alive"}
    assert store.run(result.run_id)["network"] == "offline"
    recorded = store.query("SELECT network FROM checks WHERE run_id = ?", [result.run_id])
    assert len(recorded) == 16 and {row["network"] for row in recorded} == {"degraded"}
    # the outage's connection errors stay in the history but never pass for the page's last check
    last = store.query("SELECT DISTINCT last_outcome, last_checked FROM urls")
    assert [row["last_outcome"] for row in last] == ["ok"]
    assert all(row["last_checked"] < result.started for row in last)
    latest = store.query("SELECT DISTINCT outcome FROM latest_check")
    assert [row["outcome"] for row in latest] == ["ok"]
    # the offline run's evidence is not "fresh": the next healthy run probes everything again
    back = check(store, settings_for(web))
    assert back.probed == 40 and back.network == "ok"


def test_probing_does_not_wait_for_the_canary(make_simweb: Any, store: Store) -> None:
    """The first probes go out with the canary; their results are recorded once it answers."""
    web = make_simweb(STANDARD_HOSTS())
    urls = [f"http://site{i}.test/ok/early" for i in range(5)]
    seed(store, urls)
    result = check(store, settings_for(web, canary="http://canary.test/slow/400/c"))
    assert result.network == "ok" and result.summary["alive"] == 5
    canary = next(r for r in web.log if r.host == "canary.test")
    probes = [r for r in web.log if r.path == "/ok/early"]
    assert len(probes) == 5 and canary.end is not None
    assert all(r.end is not None and r.end < canary.end for r in probes)  # done before it answered
    recorded = store.query("SELECT network FROM checks WHERE run_id = ?", [result.run_id])
    assert [row["network"] for row in recorded] == ["ok"] * 5


def test_a_failing_database_while_the_canary_answers_ends_the_run_not_hangs_it(
    make_simweb: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probes beyond the first wave wait for the canary's answer; if recording it fails, the
    run must end with that error, and the probes already made must stay recorded."""
    import asyncio
    import sqlite3

    from citewatch.check.runner import run_check
    from citewatch.progress import NullReporter

    web = make_simweb()
    urls = [f"http://site{i}.test/ok/w" for i in range(6)]
    seed(store, urls)
    original = Store.update_run

    def locked(self: Store, run_id: int, **fields: Any) -> None:
        if "network" in fields:
            raise sqlite3.OperationalError("database is locked")
        original(self, run_id, **fields)

    monkeypatch.setattr(Store, "update_run", locked)
    settings = settings_for(web, concurrency=2, canary="http://canary.test/slow/200/c")
    run_id = store.begin_run("check", ["check"])

    async def go() -> None:
        await asyncio.wait_for(run_check(store, run_id, settings, NullReporter()), timeout=20)

    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(go())
    recorded = store.query("SELECT network FROM checks WHERE run_id = ?", [run_id])
    assert recorded and {row["network"] for row in recorded} == {"degraded"}


def test_degraded_network_does_not_count_connection_failures(
    make_simweb: Any, store: Store
) -> None:
    web = make_simweb(STANDARD_HOSTS())
    refused, missing = "http://closed.test/ok/d", "http://news.test/dead/d"
    seed(store, [refused, missing, "http://news.test/ok/d"])
    settings = settings_for(web, canary="http://closed.test/", one_shot=True)
    result = check(store, settings)
    assert result.network == "degraded" and "network degraded" in result.message
    items = by_url(result)
    assert items[refused]["outcome"] == "connect_error"
    assert items[refused]["verdict"] == "unchecked"  # not evidence against the URL
    assert items[missing]["verdict"] == "dead"  # a 404 is still an answer


def test_no_false_dead_under_transient_faults(make_simweb: Any, store: Store) -> None:
    """Even with K=1, D=0 (the hair trigger), transient faults never give dead."""
    web = make_simweb(STANDARD_HOSTS())
    faults = [
        "http://news.test/flaky/t",
        "http://news.test/flakyn/1/t",
        "http://news.test/flaky-reset/t",
        "http://news.test/ratelimit/t",
        "http://news.test/reset/t",
        "http://news.test/hang/t",
        "http://news.test/status/503/t",
        "http://news.test/429/none/t",
        "http://hang.test/t",
        "https://expired.test/t",
        "http://closed.test/t",
        "http://news.test/botwall/t",
    ]
    seed(store, faults + HEALTHY)
    settings = settings_for(web, confirm_failures=1, confirm_span=0.0, check_all=True)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    for day in range(3):
        result = check(store, settings, now=lambda d=day: t0 + timedelta(days=d))
        assert result.summary["dead"] == 0 and result.exit_code == 0, result.urls
    assert {item["verdict"] for item in result.urls} <= {"alive", "failing", "blocked"}


def test_one_host_per_host_limit_and_slow_host_does_not_stall_others(
    make_simweb: Any, store: Store
) -> None:
    web = make_simweb()
    slow = [f"http://slow.test/slow/800/{i}" for i in range(3)]
    busy = [f"http://busy.test/slow/100/{i}" for i in range(8)]
    fast = [f"http://fast{i % 3}.test/ok/{i}" for i in range(12)]
    seed(store, slow + busy + fast)  # slow host first in line
    settings = settings_for(web, concurrency=4, per_host=2, soft404_probe=False, timeout=3.0)
    check(store, settings)
    assert web.max_in_flight["busy.test"] == 2  # used, never exceeded
    assert max(web.max_in_flight.values()) <= 2
    fast_ends = [r.end for r in web.log if r.host.startswith("fast")]
    slow_ends = sorted(r.end for r in web.log if r.host == "slow.test")
    assert len(fast_ends) == 12 and max(fast_ends) < slow_ends[0]


def test_host_interval_spaces_requests(make_simweb: Any, store: Store) -> None:
    web = make_simweb()
    seed(store, [f"http://spaced.test/ok/{i}" for i in range(4)])
    check(store, settings_for(web, host_interval=0.15, per_host=4, soft404_probe=False))
    starts = sorted(r.start for r in web.requests_to("spaced.test"))
    assert len(starts) == 4
    assert all(b - a >= 0.13 for a, b in zip(starts, starts[1:], strict=False))


def test_retry_after_pauses_only_that_host(make_simweb: Any, store: Store) -> None:
    web = make_simweb()
    limited = "http://limited.test/429/1/p"
    others = [f"http://free.test/slow/50/{i}" for i in range(6)]
    seed(store, [limited, *others])
    settings = settings_for(web, retry_after_cap=0.6, retries=1, soft404_probe=False)
    check(store, settings)
    tries = [r for r in web.requests_to("limited.test") if r.path == "/429/1/p"]
    assert len(tries) == 2 and tries[1].start - tries[0].end >= 0.55  # waited, capped at 0.6 s
    free_ends = [r.end for r in web.requests_to("free.test")]
    assert max(free_ends) < tries[1].start  # the other host went on meanwhile
