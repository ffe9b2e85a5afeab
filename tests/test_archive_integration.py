# ruff: noqa: F811 - the make_simwayback fixture is imported, and test parameters name it
"""`archive` end-to-end: the real runner, gateway and client against simwayback over real loopback
sockets (``--connect-to``, and TLS with a trustme CA where it says so) and a real SQLite file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.simwayback import (  # noqa: F401 - make_simwayback is a fixture
    FIELDS,
    Capture,
    Scripted,
    SimWayback,
    SpnPlan,
    make_simwayback,
    page,
    wayback_settings,
)

from citewatch.archive.gateway import GatewayTuning
from citewatch.archive.runner import ArchiveRunResult, ArchiveTuning, run_archive
from citewatch.config import Settings
from citewatch.models import ArchivedRef, Citation, Profile, Role
from citewatch.net import ConnectTo
from citewatch.progress import NullReporter
from citewatch.store import Store

Make = Callable[..., SimWayback]
CITED = "2020-06-15"
RECENT = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y%m%d%H%M%S")
#: Fast pauses, and replay/availability (no Settings knob) as generous as wayback_settings' CDX.
FAST_RATES = {"replay": 600.0, "availability": 600.0}
FAST = ArchiveTuning(gateway=GatewayTuning(pause_on_429=0.05, rates=FAST_RATES))


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "citewatch.db")
    yield opened
    opened.close()


def cite(url: str, role: Role = Role.SOURCE, archived: tuple[str, str] | None = None) -> Citation:
    ref = ArchivedRef(original=archived[1], timestamp=archived[0]) if archived else None
    return Citation(url=url, raw=url, line=1, column=1, role=role, archived=ref)


def seed(
    store: Store,
    citations: list[Citation],
    *,
    published: str | None = CITED,
    path: str = "profiles/p.md",
    verdicts: dict[str, str] | None = None,
    verdict: str = "alive",
) -> None:
    """One profile citing ``citations``; every URL gets ``verdict`` unless ``verdicts`` says otherwise."""
    run_id = store.begin_run("scan")
    digest = hashlib.sha256(repr((path, published, citations)).encode()).hexdigest()
    store.save_profile(
        Profile(path=path, published=published, sha256=digest, citations=citations), run_id
    )
    for row in store.query("SELECT id, url FROM urls"):
        store.set_verdict(row["id"], run_id, (verdicts or {}).get(row["url"], verdict))
    store.finish_run(run_id)


def archive(
    store: Store,
    settings: Settings,
    keys: tuple[str, str] | None = None,
    tuning: ArchiveTuning | None = None,
    reporter: NullReporter | None = None,
) -> ArchiveRunResult:
    """One ``archive`` run, as the CLI does it."""
    run_id = store.begin_run("archive", ["archive"])
    result = asyncio.run(
        run_archive(
            store, run_id, settings, reporter or NullReporter(), keys, tuning=tuning or FAST
        )
    )
    store.finish_run(run_id, counts=result.summary, archive=result.archive)
    return result


def by_url(result: ArchiveRunResult) -> dict[str, dict[str, Any]]:
    return {item["url"]: item for item in result.urls}


def best_ts(item: dict[str, Any]) -> str | None:
    return item["best_snapshot"]["timestamp"] if item["best_snapshot"] else None


def closed_port() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    return sock, sock.getsockname()[1]


# -- choosing the snapshot --------------------------------------------------------------------
def test_best_snapshot_before_after_and_around_the_citation_date(
    make_simwayback: Make, store: Store
) -> None:
    soft = "http://news.test/"
    wayback = make_simwayback(
        {
            soft + "before": [
                Capture("20190101000000"),
                Capture("20200301120000"),
                Capture("20210101000000"),
            ],
            soft + "after": [Capture("20220101000000"), Capture("20210105000000")],
            soft + "same-day": [Capture("20200101000000"), Capture("20200615230000")],
            soft + "bad-near": [
                Capture("20190101000000"),
                Capture("20200601000000", status=404),
                Capture("20200605000000", status=302, location="http://news.test/x"),
                Capture("20200610000000", status=503),
                Capture("20200612000000", revisit=True, digest="UNKNOWNDIGEST"),
            ],
            soft + "dupes": [Capture("20200101000000", repeat=3), Capture("20200102000000")],
            soft + "none": [],
        },
        tls=True,
    )
    seed(
        store,
        [
            cite(soft + name)
            for name in ("before", "after", "same-day", "bad-near", "dupes", "none")
        ],
    )
    result = archive(store, wayback_settings(wayback, save=False))

    items = by_url(result)
    assert result.archive == "ok" and result.message is None
    assert best_ts(items[soft + "before"]) == "20200301120000"
    assert items[soft + "before"]["best_snapshot"]["days_from_citation"] == -106
    assert items[soft + "before"]["best_snapshot"]["url"] == (
        "https://web.archive.org/web/20200301120000/http://news.test/before"
    )
    assert best_ts(items[soft + "after"]) == "20210105000000"
    assert items[soft + "after"]["best_snapshot"]["days_from_citation"] == 204
    assert best_ts(items[soft + "same-day"]) == "20200615230000"
    # a 404, a 302, a 503 and an unresolvable revisit are all nearer: none is chosen
    assert best_ts(items[soft + "bad-near"]) == "20190101000000"
    assert items[soft + "bad-near"]["captures"] == 5
    assert items[soft + "dupes"]["captures"] == 2  # three identical rows stored once
    # "[]" is an answer: no snapshot, not an error
    none = items[soft + "none"]
    assert none["best_snapshot"] is None and none["lookup"] == "none" and none["captures"] == 0
    assert result.summary["without_snapshot"] == 1 and result.summary["lookup_errors"] == 0
    statuses = {
        r["timestamp"]: r["status"]
        for r in store.query(
            "SELECT s.* FROM snapshots s JOIN urls u ON u.id = s.url_id WHERE u.url = ?",
            [soft + "bad-near"],
        )
    }
    assert statuses["20200612000000"] is None  # stored, status unknown
    assert store.run(result.run_id)["archive"] == "ok"
    lookups = store.query("SELECT result, source FROM archive_lookups ORDER BY id")
    assert [r["result"] for r in lookups] == ["found"] * 5 + ["none"]


def test_revisits_are_resolved_by_digest_when_the_server_does_not(
    make_simwayback: Make, store: Store
) -> None:
    url = "http://news.test/rev"
    real = Capture("20190101000000", body="<title>Real</title><p>" + "words " * 200)
    gone = Capture("20190201000000", status=404, body="<title>Gone</title>")
    wayback = make_simwayback(
        {
            url: [
                real,
                gone,
                Capture("20200101000000", revisit=True, digest=_digest(real.body)),
                Capture("20200610000000", revisit=True, digest=_digest(gone.body)),
            ]
        },
        resolve_revisits=False,
    )
    seed(store, [cite(url)])
    result = archive(store, wayback_settings(wayback, save=False))
    # the revisit of the 200 stands for it; the later revisit of the 404 is never chosen
    assert best_ts(by_url(result)[url]) == "20200101000000"
    rows = {r["timestamp"]: r for r in store.query("SELECT * FROM snapshots")}
    assert rows["20200101000000"]["status"] == 200
    assert rows["20200101000000"]["mimetype"] == "warc/revisit"
    assert rows["20200610000000"]["status"] == 404
    assert "resolveRevisits=true" in wayback.requests("cdx")[0].raw_target


def _digest(body: bytes | str | None) -> str:
    from support.simwayback import digest_of

    assert body is not None
    return digest_of(body.encode() if isinstance(body, str) else body)


def test_blocked_site_is_recorded_as_blocked(make_simwayback: Make, store: Store) -> None:
    url = "http://excluded.test/page"
    wayback = make_simwayback({url: [Capture("20200101000000")]}, blocked=["excluded.test"])
    seed(store, [cite(url)])
    result = archive(store, wayback_settings(wayback))
    item = by_url(result)[url]
    assert item["lookup"] == "blocked" and item["best_snapshot"] is None
    assert item["save"] is None  # SPN would refuse an excluded site
    assert result.summary["blocked"] == 1 and result.summary["without_snapshot"] == 0
    assert store.query("SELECT result FROM archive_lookups")[0]["result"] == "blocked"
    assert not wayback.requests("save")
    assert result.archive == "ok"


def test_availability_api_is_a_fallback_when_cdx_fails(make_simwayback: Make, store: Store) -> None:
    url = "http://news.test/flaky-cdx"
    wayback = make_simwayback(
        {url: [Capture("20200101000000"), Capture("20230101000000")]},
        script={"cdx": [500, 500, 500]},
    )
    seed(store, [cite(url)])
    result = archive(store, wayback_settings(wayback, save=False, retries=2))
    item = by_url(result)[url]
    assert best_ts(item) == "20200101000000"  # closest to the citation date
    lookup = store.query("SELECT * FROM archive_lookups")[0]
    assert (lookup["source"], lookup["result"]) == ("availability", "found")
    assert "HTTP 500" in lookup["error"]
    assert len(wayback.requests("cdx")) == 3 and len(wayback.requests("availability")) == 1
    assert wayback.requests("availability")[0].query["timestamp"] == ["20200615"]


# -- batching, pagination, caching --------------------------------------------------------------
def test_many_urls_on_one_host_take_one_prefix_query(make_simwayback: Make, store: Store) -> None:
    host = "https://www.big.test/news/2020/"
    urls = [f"{host}story-{i}" for i in range(6)]
    captures = {url: [Capture(f"2020010{i + 1}000000")] for i, url in enumerate(urls)}
    # captured under another spelling of the same page: no www, http, trailing slash
    captures["http://big.test/news/2020/story-0/"] = [Capture("20200301000000")]
    captures[f"{host}not-cited"] = [Capture("20200101000000")]
    captures["https://other.test/a"] = [Capture("20200101000000")]
    wayback = make_simwayback(captures)
    seed(store, [cite(u) for u in [*urls, "https://other.test/a"]])
    result = archive(store, wayback_settings(wayback, save=False))

    cdx = wayback.requests("cdx")
    assert len(cdx) == 2, [h.raw_target for h in cdx]
    prefix = [h for h in cdx if h.query.get("matchType") == ["prefix"]]
    assert len(prefix) == 1 and prefix[0].query["url"] == ["big.test/news/2020/"]
    items = by_url(result)
    assert [items[u]["captures"] for u in urls] == [2, 1, 1, 1, 1, 1]
    assert best_ts(items[urls[0]]) == "20200301000000"
    assert best_ts(items[urls[5]]) == "20200106000000"
    assert items["https://other.test/a"]["captures"] == 1
    stored = {r["original"] for r in store.query("SELECT original FROM snapshots")}
    assert f"{host}not-cited" not in stored
    sources = {r["source"] for r in store.query("SELECT source FROM archive_lookups")}
    assert sources == {"cdx-prefix", "cdx"}


def test_resume_key_pagination_and_batch_fallback(make_simwayback: Make, store: Store) -> None:
    url = "http://paged.test/a"
    wayback = make_simwayback({url: [Capture(f"2019010{i}000000") for i in range(1, 8)]})
    seed(store, [cite(url)])
    result = archive(
        store, wayback_settings(wayback, save=False), tuning=ArchiveTuning(page_limit=3)
    )
    assert by_url(result)[url]["captures"] == 7
    cdx = wayback.requests("cdx")
    assert [h.status for h in cdx] == [200, 200, 200]  # a mangled resume key would get a 400
    assert "resumeKey" not in cdx[0].query and all("resumeKey" in h.query for h in cdx[1:])
    assert "+" in cdx[1].query["resumeKey"][0] and "%" in cdx[1].query["resumeKey"][0]

    # A host batch may take no more pages than it has URLs; past that it falls back to one exact
    # query per URL (here 5 URLs and 6 rows on the host at one row per page).
    many = [f"http://huge.test/p{i}" for i in range(5)]
    everything = {u: [Capture("20200101000000")] for u in [*many, "http://huge.test/zz"]}
    wayback2 = make_simwayback(everything)
    seed(store, [cite(u) for u in many], path="profiles/q.md")
    archive(store, wayback_settings(wayback2, save=False), tuning=ArchiveTuning(page_limit=1))
    cdx2 = wayback2.requests("cdx")
    assert [h.query.get("matchType") for h in cdx2[:5]] == [["prefix"]] * 5
    assert sorted(h.query["url"][0] for h in cdx2[5:]) == sorted(many)
    assert len(store.query("SELECT DISTINCT url_id FROM snapshots")) == 6


def test_recent_lookups_are_not_repeated(make_simwayback: Make, store: Store) -> None:
    urls = ["http://a.test/1", "http://b.test/2", "http://c.test/3"]
    unresolved = Capture("20200201000000", revisit=True, digest="NOSUCHDIGEST")
    wayback = make_simwayback({urls[0]: [Capture("20200101000000"), unresolved], urls[1]: []})
    seed(store, [cite(u) for u in urls])
    settings = wayback_settings(wayback, save=False)
    first = archive(store, settings)
    assert first.summary["lookups"] == 3 and len(wayback.requests("cdx")) == 3

    second = archive(store, settings)
    assert len(wayback.requests("cdx")) == 3  # nothing asked again
    assert second.summary["lookups_cached"] == 3 and second.summary["lookups"] == 0
    assert best_ts(by_url(second)[urls[0]]) == "20200101000000"
    assert by_url(second)[urls[1]]["best_snapshot"] is None

    settings.lookup_max_age = 0.0
    third = archive(store, settings)
    assert len(wayback.requests("cdx")) == 6
    # asked again, nothing stored twice (not even the revisit whose status stays NULL)
    assert by_url(third)[urls[0]]["captures"] == 2


# -- politeness -------------------------------------------------------------------------------
def test_request_rate_stays_under_the_configured_limit(make_simwayback: Make, store: Store) -> None:
    urls = [f"http://site{i}.test/a" for i in range(6)]
    wayback = make_simwayback(
        {u: [Capture("20200101000000")] for u in urls}, limits={"cdx": (3, 0.5)}
    )
    seed(store, [cite(u) for u in urls])
    result = archive(store, wayback_settings(wayback, save=False, cdx_per_minute=240.0))
    hits = wayback.requests("cdx")
    assert len(hits) == 6 and all(h.status == 200 for h in hits)  # never over the server's budget
    gaps = [b.t - a.t for a, b in zip(hits, hits[1:], strict=False)]
    assert min(gaps) >= 0.25 * 0.9, gaps
    assert wayback.max_in_window("cdx", 0.5) <= 3
    assert result.archive == "ok"


def test_a_429_pauses_the_whole_family_and_the_run_finishes(
    make_simwayback: Make, store: Store
) -> None:
    urls = [f"http://site{i}.test/a" for i in range(6)]
    wayback = make_simwayback(
        {u: [Capture("20200101000000")] for u in urls}, limits={"cdx": (3, 0.4)}
    )
    seed(store, [cite(u) for u in urls])
    reporter = NullReporter()
    result = archive(
        store,
        wayback_settings(wayback, save=False),
        tuning=ArchiveTuning(gateway=GatewayTuning(pause_on_429=0.4, rates=FAST_RATES)),
        reporter=reporter,
    )
    hits = wayback.requests("cdx")
    limited = [i for i, h in enumerate(hits) if h.status == 429]
    assert limited, "the budget should have been exceeded"
    for index in limited:  # nothing of the family was sent during the pause
        assert hits[index + 1].t - hits[index].t >= 0.4 * 0.9
    assert result.archive == "ok"
    assert all(item["captures"] == 1 for item in result.urls)
    assert any("429" in note for note in reporter.notes)


def test_repeated_429s_trip_the_circuit_breaker(make_simwayback: Make, store: Store) -> None:
    urls = [f"http://site{i}.test/a" for i in range(4)]
    wayback = make_simwayback(
        {u: [Capture("20200101000000")] for u in urls}, script={"cdx": [429] * 20}
    )
    seed(store, [cite(u) for u in urls])
    result = archive(store, wayback_settings(wayback, retries=5))
    assert result.archive == "rate_limited"
    assert "429" in (result.message or "")
    assert len(wayback.requests("cdx")) == 3  # three in a row, then nothing more
    assert not wayback.requests("save") and not wayback.requests("availability")
    assert all(item["lookup"] == "not_done" for item in result.urls)
    assert result.summary["not_looked_up"] == 4 and result.summary["without_snapshot"] == 0
    assert store.run(result.run_id)["archive"] == "rate_limited"


def test_urls_looked_up_before_the_breaker_tripped_are_not_finished_never_without_snapshot(
    make_simwayback: Make, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The breaker trips on the third lookup: the two URLs whose captures were found had their
    snapshot chosen by no step of the run, so "without snapshot" would be a false finding."""
    urls = [f"http://site{i}.test/a" for i in range(5)]
    wayback = make_simwayback(
        {
            urls[0]: [Capture("20200101000000")],
            urls[1]: [Capture("20200101000000", status=404)],  # found, nothing usable
            **{u: [Capture("20200101000000")] for u in urls[2:]},
        },
        limits={"cdx": (2, 60.0)},  # two lookups answered, then 429s until the breaker trips
    )
    seed(store, [cite(u) for u in urls])
    result = archive(store, wayback_settings(wayback, save=False, retries=5))

    assert result.archive == "rate_limited"
    items = by_url(result)
    assert [items[u]["lookup"] for u in urls] == ["found", "found"] + ["not_done"] * 3
    # the stored captures still give the snapshot a finished run would have chosen
    assert best_ts(items[urls[0]]) == "20200101000000" and items[urls[1]]["best_snapshot"] is None
    summary = result.summary
    assert summary["without_snapshot"] == 0
    assert summary["not_finished"] == 2 and summary["not_looked_up"] == 3
    assert summary["with_snapshot"] == 1
    assert "2 looked up but not finished" in (result.message or "")
    # the human summary, --json and the run's counts say the same
    from citewatch import cli

    assert cli.archive_json(result)["summary"] == summary
    assert json.loads(store.run(result.run_id)["counts"]) == summary
    cli.print_archive_summary(result)
    cells = [line.split("│")[1:3] for line in capsys.readouterr().out.splitlines()]
    table = {row[0].strip(): row[1].strip() for row in cells if len(row) == 2}
    assert table["without snapshot"] == "0" and table["not finished"] == "2"
    assert table["not looked up"] == "3"

    # A run that gets to choose turns the same answers into findings.
    wayback.limits.clear()
    again = archive(store, wayback_settings(wayback, save=False))
    assert again.archive == "ok" and again.summary["not_finished"] == 0
    assert again.summary["without_snapshot"] == 1  # the URL with only a 404 capture


def test_unreachable_archive_is_not_no_snapshot(store: Store, tmp_path: Path) -> None:
    seed(store, [cite("http://a.test/1"), cite("http://b.test/2")])
    sock, port = closed_port()
    try:
        settings = wayback_settings(_Nowhere(), save=True, retries=1)
        settings.net.connect_to = [ConnectTo.parse(f"web.archive.org:80:127.0.0.1:{port}")]
        result = archive(store, settings)
    finally:
        sock.close()
    assert result.archive == "unreachable"
    assert "unreachable" in (result.message or "")
    assert result.summary["without_snapshot"] == 0 and result.summary["not_looked_up"] == 2
    assert all(i["lookup"] == "not_done" and i["save"] is None for i in result.urls)
    assert store.query("SELECT * FROM archive_lookups") == []  # no false "none" remembered
    assert store.run(result.run_id)["archive"] == "unreachable"


def test_a_private_wayback_address_is_refused_without_connect_to(store: Store) -> None:
    seed(store, [cite("http://a.test/1")])
    sock, port = closed_port()
    try:
        settings = wayback_settings(_Nowhere(), wayback_url=f"http://127.0.0.1:{port}")
        result = archive(store, settings)
    finally:
        sock.close()
    assert result.archive == "unreachable"
    assert "not public" in (result.message or "")


class _Nowhere:
    """Just enough of a SimWayback for :func:`wayback_settings` (nothing listens)."""

    base_url = "http://web.archive.org"
    connect_to: list[str] = []
    ca_path = None


# -- Save Page Now ------------------------------------------------------------------------------
def test_saves_only_live_sources_without_a_recent_capture(
    make_simwayback: Make, store: Store
) -> None:
    base = "http://pages.test/"
    urls = {
        "fresh-none": ("alive", Role.SOURCE, []),
        "old-capture": ("alive", Role.SOURCE, [Capture("20150101000000")]),
        "moved": ("moved", Role.SOURCE, []),
        "recent": ("alive", Role.SOURCE, [Capture(RECENT)]),
        "recent-404": ("alive", Role.SOURCE, [Capture(RECENT, status=404)]),
        "nav": ("alive", Role.NAVIGATION, []),
        "blocked": ("blocked", Role.SOURCE, []),
        "failing": ("failing", Role.SOURCE, []),
        "dead": ("dead", Role.SOURCE, []),
        "unchecked": ("unchecked", Role.SOURCE, []),
    }
    wayback = make_simwayback(
        {base + name: caps for name, (_, _, caps) in urls.items()},
        spn={base + "moved": SpnPlan(pending_polls=3)},
    )
    seed(
        store,
        [cite(base + name, role) for name, (_, role, _) in urls.items()],
        verdicts={base + name: verdict for name, (verdict, _, _) in urls.items()},
    )
    result = archive(store, wayback_settings(wayback))
    posted = {h.form["url"][0] for h in wayback.requests("save")}
    assert posted == {base + n for n in ("fresh-none", "old-capture", "moved", "recent-404")}
    items = by_url(result)
    saved = items[base + "moved"]["save"]
    assert saved["status"] == "success" and saved["timestamp"] and saved["job_id"]
    polls = [h for h in wayback.requests("status") if saved["job_id"] in h.path]
    assert len(polls) == 4  # pending three times, then success
    rows = store.query("SELECT * FROM captures WHERE url = ?", [base + "moved"])
    assert [(r["status"], r["job_id"], r["timestamp"]) for r in rows] == [
        ("success", saved["job_id"], saved["timestamp"])
    ]
    for name in ("recent", "nav", "blocked", "failing", "dead", "unchecked"):
        assert items[base + name]["save"] is None, name
    assert result.summary["saves_requested"] == 4 and result.summary["saves_succeeded"] == 4
    assert not any(h.authorization for h in wayback.hits)  # anonymous: no keys, no header
    # A capture Save Page Now made is a snapshot at once (CDX would list it only later): the
    # reports and fix can suggest it if the page dies, before the next lookup.
    stored = store.query(
        "SELECT s.timestamp, s.status FROM snapshots s JOIN urls u ON u.id = s.url_id"
        " WHERE u.url = ?",
        [base + "moved"],
    )
    assert [(r["timestamp"], r["status"]) for r in stored] == [(saved["timestamp"], 200)]
    from citewatch.report import gather

    record = next(c for c in gather(store).citations if c.url == base + "fresh-none")
    assert record.best_snapshot is not None
    assert record.best_snapshot.timestamp == items[base + "fresh-none"]["save"]["timestamp"]


def test_spn_errors_are_recorded_and_classified(make_simwayback: Make, store: Store) -> None:
    base = "http://spn.test/"
    wayback = make_simwayback(
        {},
        spn={
            base + "daily": SpnPlan(submit_error="error:too-many-daily-captures"),
            base + "missing": SpnPlan(
                pending_polls=1, outcome="error", status_ext="error:not-found"
            ),
            base + "slow": SpnPlan(pending_polls=1000),
        },
    )
    seed(store, [cite(base + n) for n in ("daily", "missing", "slow")])
    settings = wayback_settings(wayback, spn_poll_timeout=0.3)
    result = archive(store, settings)
    items = by_url(result)
    daily, missing, slow = (items[base + n]["save"] for n in ("daily", "missing", "slow"))
    assert (daily["status"], daily["status_ext"], daily["retry"]) == (
        "error",
        "error:too-many-daily-captures",
        True,
    )
    assert daily["job_id"] is None  # refused at submit, with HTTP 200
    assert (missing["status"], missing["status_ext"], missing["retry"]) == (
        "error",
        "error:not-found",
        False,
    )
    assert slow["status"] == "pending" and slow["job_id"]
    assert result.summary["saves_failed"] == 2 and result.summary["saves_pending"] == 1
    rows = {r["url"]: r for r in store.query("SELECT * FROM captures")}
    assert rows[base + "daily"]["status_ext"] == "error:too-many-daily-captures"
    assert "too-many-daily-captures" in rows[base + "daily"]["message"]
    assert rows[base + "missing"]["status_ext"] == "error:not-found"
    assert rows[base + "slow"]["status"] == "pending"

    # Next run: the transient error is retried, the permanent one is not, the pending job is
    # polled rather than submitted again.
    wayback.spn[base + "slow"].pending_polls = 0
    before = len(wayback.requests("save"))
    second = archive(store, settings)
    posted = [h.form["url"][0] for h in wayback.requests("save")[before:]]
    assert posted == [base + "daily"]
    assert by_url(second)[base + "slow"]["save"]["status"] == "success"
    assert by_url(second)[base + "missing"]["save"] is None
    assert store.query("SELECT status FROM captures WHERE url = ?", [base + "slow"]) == [
        {"status": "success"}
    ]


def test_a_service_limit_stops_further_submissions(make_simwayback: Make, store: Store) -> None:
    base = "http://limit.test/"
    wayback = make_simwayback(
        {}, spn={base + "a": SpnPlan(submit_error="error:user-session-limit")}
    )
    seed(store, [cite(base + n) for n in ("a", "b", "c")])
    reporter = NullReporter()
    result = archive(store, wayback_settings(wayback), reporter=reporter)
    assert [h.form["url"][0] for h in wayback.requests("save")] == [base + "a"]
    items = by_url(result)
    assert (
        items[base + "b"]["save"] is None
        and "user-session-limit" in items[base + "b"]["save_skipped"]
    )
    assert result.summary["saves_requested"] == 1 and result.summary["saves_not_submitted"] == 2
    assert any("2 due a capture not submitted" in note for note in reporter.notes)


def test_a_run_stopped_during_save_page_now_counts_the_saves_it_never_submitted(
    make_simwayback: Make, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The breaker trips on the third submission (429s): that URL and the two after it were due a
    capture and never got one asked for. They are counted, said in the stop message, recorded
    nowhere as requested — and the next run submits them."""
    urls = [f"http://due{i}.test/a" for i in range(5)]
    keys = ("DUE-ACCESS-31c0", "DUE-SECRET-77ab")
    # …and the archive echoes the keys in every answer (its 429 pages too)
    wayback = make_simwayback({}, limits={"save": (2, 60.0)}, echo=f"LOW {keys[0]}:{keys[1]}")
    seed(store, [cite(u) for u in urls])
    settings = wayback_settings(wayback, retries=2)
    reporter = NullReporter()
    result = archive(store, settings, keys=keys, reporter=reporter)

    assert result.archive == "rate_limited"
    posted = [h.form["url"][0] for h in wayback.requests("save")]
    assert posted == urls[:2] + [urls[2]] * 3  # the third: three 429s, then the breaker
    summary = result.summary
    assert summary["saves_requested"] == 2 and summary["saves_not_submitted"] == 3
    assert summary["not_looked_up"] == 0 and summary["not_finished"] == 0
    assert "3 due a Save Page Now capture not submitted" in (result.message or "")
    assert result.message in reporter.notes
    shown = json.dumps([result.urls, result.message, reporter.notes])
    assert keys[0] not in shown and keys[1] not in shown
    items = by_url(result)
    for url in urls[2:]:
        assert items[url]["save"] is None, url
        assert "not submitted" in items[url]["save_skipped"] and "429" in items[url]["save_skipped"]
    for url in urls[:2]:
        assert items[url]["save"] is not None and "save_skipped" not in items[url]
    assert {r["url"] for r in store.query("SELECT url FROM captures")} == set(urls[:2])
    # the human summary, --json and the run's counts say the same
    from citewatch import cli

    assert cli.archive_json(result)["summary"] == summary
    assert json.loads(store.run(result.run_id)["counts"]) == summary
    cli.print_archive_summary(result)
    cells = [line.split("│")[1:3] for line in capsys.readouterr().out.splitlines()]
    table = {row[0].strip(): row[1].strip() for row in cells if len(row) == 2}
    assert table["saves not submitted"] == "3" and table["saves requested"] == "2"

    # The next run submits exactly those (the first two were requested: polled or done).
    wayback.limits.clear()
    before = len(wayback.requests("save"))
    again = archive(store, settings, keys=keys)
    assert again.archive == "ok"
    assert sorted(h.form["url"][0] for h in wayback.requests("save")[before:]) == urls[2:]
    assert again.summary["saves_requested"] == 3 and again.summary["saves_not_submitted"] == 0
    assert again.message is None
    assert all(by_url(again)[u]["save"]["status"] == "success" for u in urls[2:])


def test_dry_run_and_no_save_post_nothing(make_simwayback: Make, store: Store) -> None:
    urls = ["http://dry.test/a", "http://dry.test/b"]
    wayback = make_simwayback({urls[1]: [Capture(RECENT)]})
    seed(store, [cite(u) for u in urls])
    result = archive(store, wayback_settings(wayback, dry_run=True), keys=("AKEY", "SKEY"))
    items = by_url(result)
    assert items[urls[0]]["save"] == {
        "status": "dry_run",
        "job_id": None,
        "timestamp": None,
        "status_ext": None,
    }
    assert items[urls[1]]["save"] is None
    assert result.summary["saves_dry_run"] == 1
    assert not wayback.requests("save") and not wayback.requests("status")
    assert store.query("SELECT * FROM captures") == []

    settings = wayback_settings(wayback, save=False, lookup_max_age=0.0)
    result = archive(store, settings, keys=("AKEY", "SKEY"))
    assert all(item["save"] is None for item in result.urls)
    assert not wayback.requests("save")


def test_keys_go_only_to_save_page_now_and_are_never_recorded(
    make_simwayback: Make, store: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    access, secret = "ACCESS-7f3a9c", "SECRET-b81e44d0"
    base = "http://keys.test/"
    wayback = make_simwayback(
        {base + "ok": [Capture("20190101000000")]},
        spn={
            base + "echo": SpnPlan(submit_error="error:unauthorized", echo_auth=True),
            base + "ok": SpnPlan(pending_polls=1),
        },
        tls=True,
    )
    seed(store, [cite(base + "ok"), cite(base + "echo")])
    reporter = NullReporter()
    result = archive(store, wayback_settings(wayback), keys=(access, secret), reporter=reporter)
    auth = {(h.family, h.authorization) for h in wayback.hits}
    assert {family for family, header in auth if header} == {"save", "status"}
    assert {header for _, header in auth if header} == {f"LOW {access}:{secret}"}
    echoed = by_url(result)[base + "echo"]["save"]
    assert echoed["status"] == "error" and "***" in echoed["message"]

    output = json.dumps({"urls": result.urls, "summary": result.summary, "message": result.message})
    print(output)
    captured = capsys.readouterr()
    store.close()
    blobs = [p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("citewatch.db")]
    for text in (captured.out, captured.err, "\n".join(reporter.notes)):
        assert access not in text and secret not in text
    for blob in blobs:
        assert access.encode() not in blob and secret.encode() not in blob


def test_answers_with_non_ascii_header_bytes_are_read_with_keys_set(
    make_simwayback: Make, store: Store, tmp_path: Path
) -> None:
    """Replays pass a site's own headers on (``x-archive-orig-*``, a ``Link`` naming a UTF-8
    URL), so any header may hold non-ASCII bytes. With keys set the key filter reads every
    header — as bytes, so a run goes on, and a key echoed beside those bytes is still hidden."""
    access, secret = "UTF-ACCESS-41be", "UTF-SECRET-09cd"
    base = "http://u.test/"
    wayback = make_simwayback(
        {base + "a": [Capture("20200101000000")], base + "b": [Capture("20190101000000")]},
        echo=f"café — LOW {access}:{secret} — naïve",
    )
    cited = f"https://web.archive.org/web/20190101000000/{base}b"
    seed(store, [cite(base + "a"), cite(cited, archived=("20190101000000", base + "b"))])
    reporter = NullReporter()
    result = archive(store, wayback_settings(wayback), keys=(access, secret), reporter=reporter)

    assert result.archive == "ok" and result.message is None
    summary = result.summary
    assert summary["lookup_errors"] == 0 and summary["with_snapshot"] == 2
    assert summary["cited_verified"] == 1 and summary["saves_succeeded"] == 2
    assert {h.family for h in wayback.hits} >= {"cdx", "replay", "save", "status"}
    shown = json.dumps([result.urls, reporter.notes])
    assert access not in shown and secret not in shown
    store.close()
    for path in tmp_path.iterdir():
        if path.name.startswith("citewatch.db"):
            blob = path.read_bytes()
            assert access.encode() not in blob and secret.encode() not in blob


def test_keys_the_archive_echoes_back_reach_no_database_output_or_report(
    make_simwayback: Make, tmp_path: Path
) -> None:
    """A careless archive repeats the key in every answer: an X-Echo header, its error bodies and
    JSON error messages, SPN's error-as-200 (with the Authorization header, in the message and a
    header) and a job's failure; and the cited capture is a "not found" page quoting the key (its
    title becomes the replay's error, its text the stored sample). ``citewatch archive --json``
    and ``citewatch report`` run as a user runs them; the key is nowhere: not in the SQLite file
    or its WAL, not on stdout or stderr, not in any report."""
    access, secret = "ECHO-ACCESS-5d21aa", "ECHO-SECRET-9e07c3"
    original = "https://echo.test/statement"
    base = "http://echo.test/"
    quoted = f"Authorization: LOW {access}:{secret}"
    wayback = make_simwayback(
        {
            original: [
                Capture(
                    "20171017230858",
                    body=page(f"Page not found | {secret}", f"No such page. Request: {quoted}"),
                )
            ],
        },
        spn={
            base + "refused": SpnPlan(submit_error="error:too-many-daily-captures", echo_auth=True),
            base + "failed": SpnPlan(
                pending_polls=0, outcome="error", status_ext="error:job-failed"
            ),
        },
        echo=quoted,
    )
    db = tmp_path / "echo.db"
    store = Store.open(db)
    cited = f"https://web.archive.org/web/20171017230858/{original}"
    seed(
        store,
        [
            cite(cited, archived=("20171017230858", original)),
            cite(base + "refused"),
            cite(base + "failed"),
        ],
        published="2018-01-01",
    )
    store.close()
    config = tmp_path / "citewatch.toml"
    config.write_text(
        "cdx_per_minute = 600\nspn_per_minute_keys = 600\nspn_per_minute_anon = 600\n"
        'spn_poll_interval = "50ms"\nspn_poll_timeout = "5s"\nbackoff = 0\nretries = 1\n'
    )
    common = ["--db", str(db), "--config", str(config), "--wayback-url", wayback.base_url]
    env = {**os.environ, "IA_ACCESS_KEY": access, "IA_SECRET_KEY": secret, "CITEWATCH_DEBUG": "1"}

    def citewatch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "citewatch", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    connect = [arg for spec in wayback.connect_to for arg in ("--connect-to", spec)]
    done = citewatch("archive", "--json", *common, "--timeout", "3", *connect)
    assert done.returncode == 0, done.stderr
    reports = tmp_path / "reports"
    written = citewatch("report", *common, "--out", str(reports))
    assert written.returncode == 0, written.stderr

    # The archive did echo the keys, and what it said still arrived (with the keys hidden).
    saves = wayback.requests("save")
    assert saves and all(h.authorization == f"LOW {access}:{secret}" for h in saves)
    items = {item["url"]: item for item in json.loads(done.stdout)["urls"]}
    cited_error = items[original]["cited_snapshot"]["error"]
    assert items[original]["cited_snapshot"]["status"] == "soft_404"
    assert "Page not found | ***" in cited_error
    refused = items[base + "refused"]["save"]
    assert refused["status_ext"] == "error:too-many-daily-captures"
    assert "LOW ***:***" in refused["message"]
    failed = items[base + "failed"]["save"]
    assert failed["status"] == "error" and "***" in failed["message"]
    for stream in (done.stdout, done.stderr, written.stdout, written.stderr):
        assert access not in stream and secret not in stream
    # The database as the closed processes left it: the file, and its WAL if one is left.
    files = [p for p in tmp_path.iterdir() if p.name in (db.name, f"{db.name}-wal")]
    assert db in files
    files += [p for p in reports.rglob("*") if p.is_file()]
    assert len(files) > 2
    for path in files:
        blob = path.read_bytes()
        for key in (access, secret):
            assert key.encode() not in blob, path
    con = sqlite3.connect(db)
    try:  # (read after the raw bytes: opening the file may write a WAL of its own)
        (sample,) = con.execute("SELECT text_sample FROM snapshot_checks").fetchone()
        assert "LOW ***:***" in sample
    finally:
        con.close()


def test_anonymous_saves_go_at_the_lower_rate(make_simwayback: Make, store: Store) -> None:
    urls = [f"http://anon.test/{i}" for i in range(3)]
    wayback = make_simwayback({})
    seed(store, [cite(u) for u in urls])
    settings = wayback_settings(wayback, spn_per_minute_keys=6000.0, spn_per_minute_anon=200.0)
    archive(store, settings)
    posts = wayback.requests("save")
    assert len(posts) == 3 and not any(h.authorization for h in posts)
    assert min(b.t - a.t for a, b in zip(posts, posts[1:], strict=False)) >= 0.3 * 0.9


# -- replay: cited archive links and --verify ---------------------------------------------------
def test_cited_archive_links_are_verified(make_simwayback: Make, store: Store) -> None:
    original = "https://www.alsouria.net/content/article"
    other = "https://gone.test/never-archived"
    wayback = make_simwayback(
        {original: [Capture("20171017230858"), Capture("20180301000000")]}, tls=True
    )
    wb = "https://web.archive.org/web/"
    seed(
        store,
        [
            cite(f"{wb}20171017230858/{original}", archived=("20171017230858", original)),
            cite(f"{wb}20171001000000/{original}", archived=("20171001000000", original)),
            cite(f"{wb}20150101000000/{other}", archived=("20150101000000", other)),
        ],
        published="2018-01-01",
    )
    result = archive(store, wayback_settings(wayback, save=False))
    items = by_url(result)
    exact, nearest = items[original]["cited_snapshots"]
    assert (exact["status"], exact["actual_timestamp"]) == ("verified", "20171017230858")
    assert nearest["status"] == "redirected" and nearest["redirected"] is True
    assert nearest["actual_timestamp"] == "20171017230858"
    assert items[other]["cited_snapshot"]["status"] == "not_archived"
    # the original URLs are still looked up
    assert {h.query["url"][0] for h in wayback.requests("cdx")} == {original, other}
    assert best_ts(items[original]) == "20171017230858"
    checks = store.query("SELECT * FROM snapshot_checks ORDER BY id")
    assert [(c["timestamp"], c["memento_datetime"]) for c in checks] == [
        ("20171017230858", "20171017230858"),
        ("20171001000000", "20171017230858"),
        ("20150101000000", None),
    ]
    assert "20171017230858id_" in checks[1]["final_url"]
    assert result.summary["cited_verified"] == 1 and result.summary["cited_redirected"] == 1


def test_a_rate_limited_replay_with_no_retries_left_is_no_evidence_not_a_crash(
    make_simwayback: Make, store: Store
) -> None:
    """With --retries 0, one 429 on a replay used to escape the archive stage (exit 4)."""
    original = "https://www.alsouria.net/content/article"
    wayback = make_simwayback({original: [Capture("20171017230858")]}, script={"replay": [429]})
    cited = f"https://web.archive.org/web/20171017230858/{original}"
    seed(store, [cite(cited, archived=("20171017230858", original))], published="2018-01-01")
    result = archive(store, wayback_settings(wayback, save=False, retries=0))
    snapshot = by_url(result)[original]["cited_snapshot"]
    assert snapshot["status"] == "error" and "429" in (snapshot.get("error") or "")
    assert not store.broken_citations()  # a rate limit is no evidence that the capture is gone


def test_a_replay_left_unanswered_until_the_breaker_trips_is_recorded_not_never_replayed(
    make_simwayback: Make, store: Store
) -> None:
    """Three 429s on a cited link's replay trip the breaker; the attempt is still evidence that
    we tried (the report says "got no answer", not "never replayed"), and never that the capture
    is gone."""
    from citewatch.report import gather

    original = "https://www.alsouria.net/content/article"
    wayback = make_simwayback(
        {original: [Capture("20171017230858")]}, script={"replay": [429, 429, 429]}
    )
    cited = f"https://web.archive.org/web/20171017230858/{original}"
    seed(store, [cite(cited, archived=("20171017230858", original))], published="2018-01-01")
    settings = wayback_settings(wayback, save=False, retries=2)
    result = archive(store, settings)

    assert result.archive == "rate_limited"
    assert [h.status for h in wayback.requests("replay")] == [429, 429, 429]
    item = by_url(result)[original]
    assert item["cited_snapshot"]["status"] == "error"
    assert "429" in (item["cited_snapshot"]["error"] or "")
    assert result.summary["cited_failed"] == 1
    # the lookup answered, the choice was never reached: not finished, not "without snapshot"
    assert result.summary["not_finished"] == 1 and result.summary["without_snapshot"] == 0
    checks = store.query("SELECT * FROM snapshot_checks")
    assert len(checks) == 1
    row = checks[0]
    assert row["timestamp"] == "20171017230858" and row["run_id"] == result.run_id
    assert row["status"] is None and row["memento_datetime"] is None and not row["soft_404"]
    assert "429" in row["error"] and "20171017230858id_" in row["final_url"]
    assert not store.broken_citations()  # never cry wolf
    record = next(c for c in gather(store).citations if c.archived_timestamp)
    assert not record.broken and record.cited_capture is not None
    assert record.cited_capture.state == "not_verified"
    assert record.cited_capture.checked_at == row["checked_at"]
    label = record.cited_capture.label()
    assert "got no answer from the archive" in label and "429" in label
    assert "never been replayed" not in label

    # The unanswered attempt is no cached answer: the next run replays the capture again.
    again = archive(store, settings)
    assert again.archive == "ok"
    assert by_url(again)[original]["cited_snapshot"]["status"] == "verified"
    record = next(c for c in gather(store).citations if c.archived_timestamp)
    assert record.cited_capture is not None and record.cited_capture.state == "verified"


def test_verify_left_unanswered_keeps_the_choice_and_records_the_attempt(
    make_simwayback: Make, store: Store
) -> None:
    url = "http://verify.test/a"
    wayback = make_simwayback(
        {url: [Capture("20190101000000"), Capture("20200101000000")]},
        script={"replay": [429, 429, 429]},
    )
    seed(store, [cite(url)])
    settings = wayback_settings(wayback, save=False, retries=2, verify_snapshots=True)
    result = archive(store, settings)
    assert result.archive == "rate_limited"
    item = by_url(result)[url]
    assert best_ts(item) == "20200101000000"  # an unanswered replay rejects nothing
    assert item["best_snapshot"]["verified"] == "error"
    assert result.summary["snapshots_rejected"] == 0
    assert result.summary["not_finished"] == 1 and result.summary["without_snapshot"] == 0
    rows = store.query("SELECT timestamp, status, error FROM snapshot_checks")
    assert [(r["timestamp"], r["status"]) for r in rows] == [("20200101000000", None)]
    assert "429" in rows[0]["error"]
    from citewatch.archive.runner import rejected_timestamps

    url_id = store.query("SELECT id FROM urls WHERE url = ?", [url])[0]["id"]
    assert rejected_timestamps(store, url_id) == set()


def test_verify_rejects_soft_404_captures_and_falls_back(
    make_simwayback: Make, store: Store
) -> None:
    en, ar = "http://soft.test/en", "http://soft.test/ar"
    not_found = "<html><head><title>Page not found</title></head><body>Sorry.</body></html>"
    arabic = "<html><head><title>الصفحة غير موجودة</title></head><body>عذرا</body></html>"
    wayback = make_simwayback(
        {
            en: [Capture("20190101000000"), Capture("20200501000000", body=not_found)],
            ar: [
                Capture("20190101000000"),
                Capture("20200301000000", body=arabic),
                Capture("20200501000000", body=arabic),
            ],
        }
    )
    seed(store, [cite(en), cite(ar)])
    settings = wayback_settings(wayback, save=False, verify_snapshots=True)
    result = archive(store, settings)
    items = by_url(result)
    assert best_ts(items[en]) == "20190101000000"
    assert items[en]["best_snapshot"]["verified"] == "verified"
    assert best_ts(items[ar]) == "20190101000000"  # both same-digest soft-404s rejected at once
    assert result.summary["snapshots_rejected"] == 2
    soft = store.query("SELECT timestamp FROM snapshot_checks WHERE soft_404 = 1 ORDER BY id")
    assert [r["timestamp"] for r in soft] == ["20200501000000", "20200501000000"]

    replays = len(wayback.requests("replay"))
    again = archive(store, settings)
    assert len(wayback.requests("replay")) == replays  # recent checks are reused
    assert best_ts(by_url(again)[en]) == "20190101000000"


# -- replacements of broken citations: verified by default ------------------------------------
NOT_FOUND = "<html><head><title>Page not found</title></head><body>Sorry.</body></html>"


def _profile_file(tmp_path: Path, urls: list[str]) -> Path:
    path = tmp_path / "profile.txt"
    path.write_text("".join(f"{u}\n" for u in urls))
    return path


def _cite_lines(urls: list[str]) -> list[Citation]:
    return [
        Citation(url=u, raw=u, line=n, column=1, role=Role.SOURCE)
        for n, u in enumerate(urls, start=1)
    ]


def test_the_replacement_of_a_dead_link_is_replayed_and_a_soft_404_passed_over(
    make_simwayback: Make, store: Store, tmp_path: Path
) -> None:
    """The editor's recipe (audit, then fix --write) must never write a captured "Page not found":
    the capture closest to the citation date is one, so the older good capture is the one fix
    and the report suggest — without --verify. A live URL's snapshot is not replayed."""
    from citewatch.fix import plan_fix
    from citewatch.report import gather

    dead, live = "http://gone.test/article", "http://live.test/article"
    captures = [Capture("20190101000000"), Capture("20200501000000", body=NOT_FOUND)]
    wayback = make_simwayback({dead: captures, live: list(captures)})
    path = _profile_file(tmp_path, [dead, live])
    seed(store, _cite_lines([dead, live]), path=str(path), verdicts={dead: "dead"})
    result = archive(store, wayback_settings(wayback, save=False))

    assert result.archive == "ok"
    items = by_url(result)
    assert best_ts(items[dead]) == "20190101000000"
    assert items[dead]["best_snapshot"]["verified"] == "verified"
    assert result.summary["snapshots_rejected"] == 1 and result.summary["not_finished"] == 0
    # the live URL: chosen as before, never replayed
    assert best_ts(items[live]) == "20200501000000"
    assert "verified" not in items[live]["best_snapshot"]
    replayed = [h.path for h in wayback.requests("replay")]
    assert len(replayed) == 2 and not any("live.test" in p for p in replayed)
    checks = store.query("SELECT timestamp, soft_404, status FROM snapshot_checks ORDER BY id")
    assert [(r["timestamp"], r["soft_404"]) for r in checks] == [
        ("20200501000000", 1),
        ("20190101000000", 0),
    ]

    plan = plan_fix(store, path)
    [entry] = plan.replaced
    assert entry["url"] == dead and entry["snapshot"] == "20190101000000"
    assert entry["replacement"].endswith(f"/web/20190101000000/{dead}")
    [record] = [c for c in gather(store).citations if c.url == dead]
    assert record.replacement == entry["replacement"]

    # The stored verdicts are reused: a second run replays nothing.
    again = archive(store, wayback_settings(wayback, save=False))
    assert len(wayback.requests("replay")) == 2
    assert best_ts(by_url(again)[dead]) == "20190101000000"


def test_no_verify_replacements_leaves_the_choice_unreplayed(
    make_simwayback: Make, store: Store, tmp_path: Path
) -> None:
    from citewatch.fix import plan_fix

    dead = "http://gone.test/article"
    wayback = make_simwayback(
        {dead: [Capture("20190101000000"), Capture("20200501000000", body=NOT_FOUND)]}
    )
    path = _profile_file(tmp_path, [dead])
    seed(store, _cite_lines([dead]), path=str(path), verdict="dead")
    result = archive(store, wayback_settings(wayback, save=False, verify_replacements=False))
    assert result.archive == "ok" and not wayback.requests("replay")
    assert best_ts(by_url(result)[dead]) == "20200501000000"  # the old behaviour
    assert "verified" not in by_url(result)[dead]["best_snapshot"]
    assert not store.query("SELECT * FROM snapshot_checks")
    [entry] = plan_fix(store, path).replaced
    assert entry["snapshot"] == "20200501000000"


def test_a_rate_limited_run_stops_verifying_replacements_and_counts_them_unfinished(
    make_simwayback: Make, store: Store, tmp_path: Path
) -> None:
    """The first replacement's replay gets only 429s until the breaker trips: the run stops,
    the attempt is recorded as no evidence, nothing is rejected, both dead URLs (the second never
    replayed) are not finished, and the live URL, which needs no replay, is chosen."""
    dead = ["http://gone.test/a", "http://gone.test/b"]
    live = "http://live.test/a"
    captures = [Capture("20190101000000"), Capture("20200501000000", body=NOT_FOUND)]
    wayback = make_simwayback(
        {dead[0]: captures, dead[1]: list(captures), live: list(captures)},
        script={"replay": [429, 429, 429]},
    )
    urls = [*dead, live]
    seed(store, _cite_lines(urls), verdicts=dict.fromkeys(dead, "dead"))
    broken_before = [r["url"] for r in store.broken_citations()]
    result = archive(store, wayback_settings(wayback, save=False, retries=2))

    assert result.archive == "rate_limited"
    assert [h.status for h in wayback.requests("replay")] == [429, 429, 429]
    summary = result.summary
    assert summary["not_finished"] == 2 and summary["without_snapshot"] == 0
    assert summary["snapshots_rejected"] == 0 and summary["not_looked_up"] == 0
    assert "2 looked up but not finished (snapshot not chosen or verified)" in (
        result.message or ""
    )
    items = by_url(result)
    assert best_ts(items[dead[0]]) == "20200501000000"  # an unanswered replay rejects nothing
    assert items[dead[0]]["best_snapshot"]["verified"] == "error"
    assert best_ts(items[dead[1]]) == "20200501000000"
    assert "verified" not in items[dead[1]]["best_snapshot"]
    rows = store.query("SELECT timestamp, status, soft_404, error FROM snapshot_checks")
    assert [(r["timestamp"], r["status"], r["soft_404"]) for r in rows] == [
        ("20200501000000", None, 0)
    ]
    assert "429" in rows[0]["error"]
    assert [r["url"] for r in store.broken_citations()] == broken_before == dead

    # The next run, no longer limited, finishes the work.
    again = archive(store, wayback_settings(wayback, save=False))
    assert again.archive == "ok" and again.summary["not_finished"] == 0
    assert [best_ts(by_url(again)[u]) for u in dead] == ["20190101000000"] * 2


# -- answers that break the rules ---------------------------------------------------------------
def test_lone_surrogates_in_archive_json_are_stored_replaced_and_the_run_goes_on(
    make_simwayback: Make, store: Store
) -> None:
    """JSON allows ``"\\udcff"``, a lone surrogate escape that decodes to a string SQLite refuses
    to store. A CDX row, an availability answer and a Save Page Now job and status holding one are
    stored with U+FFFD in its place; nothing crashes and every other URL is done as usual."""
    cdx_odd, avail_odd, save_odd, fine = (
        f"http://{name}.test/page" for name in ("cdx-odd", "avail-odd", "save-odd", "fine")
    )
    rows = [list(FIELDS), ["test,cdx-odd)/page", "20200101000000", cdx_odd, "text/html\udcff"]]
    rows[1] += ["200", "DIGEST\udcff", "1234"]
    closest = {
        "status": "200",
        "available": True,
        "url": f"http://web.archive.org/web/20190101000000/{avail_odd}?q=\udcff",
        "timestamp": "20190101000000",
    }
    job = "spn2-\udcff"
    busy = Scripted(500, b"busy", when="avail-odd.test")
    wayback = make_simwayback(
        {url: [Capture("20190101000000")] for url in (avail_odd, save_odd, fine)},
        script={
            "cdx": [Scripted(200, json.dumps(rows), when="cdx-odd.test"), busy, busy, busy],
            "availability": [
                Scripted(200, json.dumps({"archived_snapshots": {"closest": closest}}))
            ],
            "save": [
                Scripted(
                    200, json.dumps({"job_id": job, "message": "queued \udcff"}), when="save-odd"
                )
            ],
            "status": [
                Scripted(
                    200,
                    json.dumps({"status": "success", "job_id": job, "timestamp": RECENT}),
                    when="spn2-\ufffd",
                )
            ],
        },
    )
    seed(store, [cite(url) for url in (cdx_odd, avail_odd, save_odd, fine)])
    result = archive(store, wayback_settings(wayback, retries=2))

    assert result.archive == "ok" and result.message is None
    items = by_url(result)
    assert all(items[url]["lookup"] == "found" for url in (cdx_odd, avail_odd, save_odd, fine))
    assert result.summary["lookup_errors"] == 0 and result.summary["saves_succeeded"] == 4
    listed = store.query(
        "SELECT s.* FROM snapshots s JOIN urls u ON u.id = s.url_id"
        " WHERE u.url = ? AND s.timestamp = '20200101000000'",
        [cdx_odd],
    )
    assert [(r["mimetype"], r["digest"]) for r in listed] == [("text/html\ufffd", "DIGEST\ufffd")]
    assert best_ts(items[cdx_odd]) == "20200101000000"
    assert any(
        r["original"] == f"{avail_odd}?q=\ufffd"
        for r in store.query("SELECT original FROM snapshots WHERE original LIKE '%avail-odd%'")
    )
    capture = store.query(
        "SELECT c.* FROM captures c JOIN urls u ON u.id = c.url_id WHERE u.url = ?", [save_odd]
    )[0]
    assert (capture["job_id"], capture["status"], capture["timestamp"]) == (
        "spn2-\ufffd",
        "success",
        RECENT,
    )
    assert items[save_odd]["save"]["job_id"] == "spn2-\ufffd"
    assert any(h.raw_target == "/save/status/spn2-%EF%BF%BD" for h in wayback.requests("status"))
    assert best_ts(items[fine]) == "20190101000000" and items[fine]["save"]["status"] == "success"
    assert not wayback.errors


def _bad_redirect(url: str) -> Scripted:
    """A replay redirect whose Location holds a control byte: httpx refuses the whole answer."""
    location = f"/web/20200101000000id_/{url}?next=\x01"
    return Scripted(302, b"", [("Location", location)], "text/html", when=url)


def test_a_malformed_redirect_is_an_error_for_that_replay_not_an_unreachable_archive(
    make_simwayback: Make, store: Store
) -> None:
    """A replay answered with a Location header httpx refuses (a control byte) is an answer: an
    error for that replay, recorded and retried like a 5xx — never a connection failure. Two in
    a row used to mark the whole archive unreachable and stop the run."""
    base = "http://cited.test/"
    bad_one, bad_two, good = base + "a-bad", base + "b-bad", base + "c-good"
    wayback = make_simwayback(
        {url: [Capture("20200101000000")] for url in (bad_one, bad_two, good)},
        script={"replay": [_bad_redirect(bad_one)] * 3 + [_bad_redirect(bad_two)] * 3},
    )
    seed(
        store,
        [
            cite(
                f"https://web.archive.org/web/20200101000000/{url}",
                archived=("20200101000000", url),
            )
            for url in (bad_one, bad_two, good)
        ],
    )
    result = archive(store, wayback_settings(wayback, save=False, retries=2))

    assert result.archive == "ok" and result.message is None
    assert result.summary["cited_failed"] == 2 and result.summary["cited_verified"] == 1
    items = by_url(result)
    for url in (bad_one, bad_two):
        cited = items[url]["cited_snapshot"]
        assert cited["status"] == "error"
        assert "malformed answer from the archive" in cited["error"]
        assert "RemoteProtocolError" in cited["error"]
    assert items[good]["cited_snapshot"]["status"] == "verified"
    checks = store.query(
        "SELECT u.url, c.* FROM snapshot_checks c JOIN urls u ON u.id = c.url_id ORDER BY c.id"
    )
    errors = {r["url"]: r for r in checks if r["error"]}
    assert set(errors) == {bad_one, bad_two}
    assert all(r["status"] is None and r["memento_datetime"] is None for r in errors.values())
    assert all(best_ts(items[url]) == "20200101000000" for url in (bad_one, bad_two, good))
    replays = [h.raw_target for h in wayback.requests("replay")]
    assert sum(bad_one in t for t in replays) == 3  # retried like a 5xx: 1 + 2 retries
    assert store.run(result.run_id)["archive"] == "ok"


def test_a_malformed_answer_to_the_first_request_is_not_an_unreachable_archive(
    make_simwayback: Make, store: Store
) -> None:
    """The very first answer of a run breaks HTTP (a header line with a NUL byte, which h11
    refuses), from CDX and then from the availability fallback: that URL's lookup is an error
    saying so, and the run goes on with the others — the archive answered, so it is not
    unreachable."""
    odd, fine = "http://a-odd.test/page", "http://b-fine.test/page"
    broken = Scripted(200, b"[]", [("X-Archive-Note", "bad\x00byte")], when="a-odd.test")
    wayback = make_simwayback(
        {url: [Capture("20190101000000")] for url in (odd, fine)},
        script={"cdx": [broken] * 3, "availability": [broken] * 3},
    )
    seed(store, [cite(odd), cite(fine)])
    result = archive(store, wayback_settings(wayback, save=False, retries=2))

    assert result.archive == "ok" and result.message is None
    items = by_url(result)
    assert items[odd]["lookup"] == "error"
    assert "malformed answer from the archive" in items[odd]["lookup_error"]
    assert items[fine]["lookup"] == "found" and best_ts(items[fine]) == "20190101000000"
    assert result.summary["lookup_errors"] == 1 and result.summary["not_looked_up"] == 0
    lookups = {
        r["url"]: r
        for r in store.query(
            "SELECT u.url, l.* FROM archive_lookups l JOIN urls u ON u.id = l.url_id"
        )
    }
    assert lookups[odd]["result"] == "error"
    assert "malformed answer from the archive" in lookups[odd]["error"]
    assert lookups[fine]["result"] == "found"
    assert store.run(result.run_id)["archive"] == "ok"
