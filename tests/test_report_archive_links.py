"""Citations that are themselves Wayback links: what replaying the cited capture showed, in every format.

A cited capture the archive says it does not have (HTTP 404, no Memento-Datetime), that is a captured
"page not found", or that is not a 2xx page, makes the citation broken, with the reason and the best
usable snapshot of the original as the replacement. A capture verified to replay is said to replay;
one never replayed, or whose replays got no answer (rate limit, 5xx), is "not verified" — never broken.

The first tests add ``snapshot_checks`` rows to the shared corpus (tests/test_report_corpus.py); the
last ones run the real archive stage against the simulated Wayback Machine and report from its store.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.simwayback import Capture, make_simwayback, wayback_settings  # noqa: F401
from test_report_corpus import ARCHIVED_CITED, ARCHIVED_ORIGINAL, build_corpus

from citewatch.archive.gateway import GatewayTuning
from citewatch.archive.runner import ArchiveTuning, run_archive
from citewatch.models import ArchivedRef, Citation, Profile, Snapshot
from citewatch.progress import NullReporter
from citewatch.report import gather, write_reports
from citewatch.report.data import CitationRecord
from citewatch.report.safe import md_text
from citewatch.store import Store

CITED_TS = "20171017230858"
EARLIER_TS = "20170901000000"
WB = "https://web.archive.org/web"
PROFILE = "citations/profile-test.txt"


def original_id(store: Store, url: str = ARCHIVED_ORIGINAL) -> int:
    return store.query("SELECT id FROM urls WHERE url = ?", [url])[0]["id"]


def replay(store: Store, run_id: int, when: str, timestamp: str = CITED_TS, **fields: Any) -> None:
    """One stored replay of a capture of the alsouria original, as the archive stage writes it."""
    fields.setdefault("soft_404", 0)
    store.record_snapshot_check(
        run_id, original_id(store), timestamp=timestamp, checked_at=when, **fields
    )


def not_archived(store: Store, run_id: int, when: str = "2026-01-20T10:00:00Z") -> None:
    replay(store, run_id, when, status=404, memento_datetime=None, error="no capture")


def cited(store: Store) -> CitationRecord:
    group = next(g for g in gather(store).profiles if g.path == PROFILE)
    return next(c for c in group.citations if c.cited_url == ARCHIVED_CITED)


def with_captures_of_the_original(store: Store, run_id: int) -> None:
    """CDX lists an earlier 2xx capture and, as 2xx too, the cited one (which does not replay)."""
    store.record_snapshots(
        original_id(store),
        run_id,
        [
            Snapshot(
                ARCHIVED_ORIGINAL, EARLIER_TS, ARCHIVED_ORIGINAL, 200, "text/html", "EARLY", 9
            ),
            Snapshot(ARCHIVED_ORIGINAL, CITED_TS, ARCHIVED_ORIGINAL, 200, "text/html", "CITED", 9),
        ],
    )


# -- records ---------------------------------------------------------------------------------------
def test_a_cited_capture_that_does_not_replay_is_broken_with_the_best_usable_replacement(tmp_path):
    corpus = build_corpus(tmp_path)
    with_captures_of_the_original(corpus.store, corpus.run2)
    not_archived(corpus.store, corpus.run2)
    c = cited(corpus.store)
    assert c.broken and c.cited_capture.state == "not_archived" and c.cited_capture.fails
    assert c.broken_reason == (
        "the cited archive link does not replay: the archive has no capture at "
        f"{CITED_TS} (HTTP 404, checked 2026-01-20)"
    )
    assert c.attention_label == "archive link does not replay"
    # The best-snapshot rule of every report, without the capture shown not to replay
    # (CDX lists it as 2xx, and it is the latest before the citation date).
    assert c.best_snapshot.timestamp == EARLIER_TS
    assert c.replacement == f"{WB}/{EARLIER_TS}/{ARCHIVED_ORIGINAL}"
    assert c.replacement_kind == "snapshot"
    summary = gather(corpus.store).summary
    assert summary["broken_citations"] == 5  # the corpus's 4, and this one
    assert summary["archive_links"] == {"not_archived": 1}
    assert summary["roles"]["source"]["broken_citations"] == 5


def test_with_no_usable_capture_of_the_original_no_replacement_is_invented(tmp_path):
    corpus = build_corpus(tmp_path)
    not_archived(corpus.store, corpus.run2)
    c = cited(corpus.store)
    assert c.broken and c.best_snapshot is None
    assert c.replacement is None and c.replacement_kind is None


@pytest.mark.parametrize(
    ("fields", "state", "reason"),
    [
        (
            {
                "status": 200,
                "memento_datetime": CITED_TS,
                "soft_404": 1,
                "error": "title says not found",
            },
            "soft_404",
            'the capture is a "page not found" page (title says not found), checked 2026-01-20',
        ),
        (
            {"status": 404, "memento_datetime": CITED_TS, "error": "the capture has status 404"},
            "bad_capture",
            f"the capture served ({CITED_TS}) is HTTP 404, not a page, checked 2026-01-20",
        ),
    ],
)
def test_a_captured_not_found_page_is_broken_too(tmp_path, fields, state, reason):
    corpus = build_corpus(tmp_path)
    replay(corpus.store, corpus.run2, "2026-01-20T10:00:00Z", **fields)
    c = cited(corpus.store)
    assert (c.broken, c.cited_capture.state) == (True, state)
    assert c.broken_reason == "the cited archive link does not replay: " + reason


def test_verified_and_redirected_captures_are_said_to_replay(tmp_path):
    corpus = build_corpus(tmp_path)
    replay(corpus.store, corpus.run2, "2026-01-20T10:00:00Z", status=200, memento_datetime=CITED_TS)
    c = cited(corpus.store)
    assert (c.broken, c.cited_capture.state, c.broken_reason) == (False, "verified", None)
    assert c.cited_capture.label() == "replays: the cited capture was verified (checked 2026-01-20)"
    # A later replay that lands on the nearest capture instead.
    replay(
        corpus.store,
        corpus.run2,
        "2026-01-21T10:00:00Z",
        status=200,
        memento_datetime="20171020000000",
    )
    c = cited(corpus.store)
    assert (c.broken, c.cited_capture.state, c.replacement) == (False, "redirected", None)
    assert "the nearest capture, 20171020000000" in c.cited_capture.label()


def test_never_cry_wolf_an_unanswered_replay_is_not_verified_never_broken(tmp_path):
    corpus = build_corpus(tmp_path)
    c = cited(corpus.store)  # never replayed at all
    assert (c.broken, c.cited_capture.state) == (False, "not_verified")
    assert c.cited_capture.label().startswith(
        "not verified: the cited capture has never been replayed"
    )
    # The archive failed to answer (a 5xx that stayed after retries): still no evidence.
    replay(
        corpus.store,
        corpus.run2,
        "2026-01-20T10:00:00Z",
        status=503,
        memento_datetime=None,
        error="the archive answered HTTP 503",
    )
    c = cited(corpus.store)
    assert (c.broken, c.cited_capture.state) == (False, "not_verified")
    assert c.cited_capture.label() == (
        "not verified: the last replay attempt (2026-01-20) got no answer from the archive: "
        "the archive answered HTTP 503"
    )
    assert gather(corpus.store).summary["archive_links"] == {"not_verified": 1}


def test_the_newest_answered_replay_decides(tmp_path):
    corpus = build_corpus(tmp_path)
    not_archived(corpus.store, corpus.run2, "2026-01-20T10:00:00Z")
    # A later attempt the archive did not answer does not undo the evidence…
    replay(corpus.store, corpus.run2, "2026-01-21T10:00:00Z", status=502, memento_datetime=None)
    assert cited(corpus.store).broken
    # …but a later replay that works does.
    replay(corpus.store, corpus.run2, "2026-01-22T10:00:00Z", status=200, memento_datetime=CITED_TS)
    assert not cited(corpus.store).broken


def test_ignoring_the_original_url_silences_it(tmp_path):
    corpus = build_corpus(tmp_path)
    not_archived(corpus.store, corpus.run2)
    corpus.store.add_ignore(ARCHIVED_ORIGINAL, "checked by hand")
    assert not cited(corpus.store).broken


# -- every format ----------------------------------------------------------------------------------
@pytest.fixture
def broken_archive_link(tmp_path: Path) -> Path:
    corpus = build_corpus(tmp_path)
    with_captures_of_the_original(corpus.store, corpus.run2)
    not_archived(corpus.store, corpus.run2)
    out = tmp_path / "reports"
    write_reports(corpus.store, out, run_id=corpus.run2)
    return out


REASON = (
    f"the cited archive link does not replay: the archive has no capture at {CITED_TS} "
    "(HTTP 404, checked 2026-01-20)"
)
REPLACEMENT = f"{WB}/{EARLIER_TS}/{ARCHIVED_ORIGINAL}"


def test_csv_says_broken_why_and_what_instead(broken_archive_link):
    text = (broken_archive_link / "citations.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    row = next(r for r in rows if r["cited_url"] == ARCHIVED_CITED)
    assert (row["broken"], row["broken_reason"]) == ("1", REASON)
    assert (row["suggested_replacement"], row["replacement_kind"]) == (REPLACEMENT, "snapshot")
    assert (row["cited_capture_state"], row["cited_capture_http_status"]) == ("not_archived", "404")
    assert row["cited_capture_checked_at"] == "2026-01-20T10:00:00Z"
    assert row["cited_capture_label"].startswith("does not replay: the archive has no capture")
    dead = next(r for r in rows if r["line"] == "10" and r["profile"] == PROFILE)
    assert dead["broken_reason"] == "the cited URL is dead (last check: not_found · HTTP 404)"
    assert dead["cited_capture_state"] == ""


def test_json_says_broken_why_and_what_instead(broken_archive_link):
    doc = json.loads((broken_archive_link / "citations.json").read_text(encoding="utf-8"))
    record = next(c for c in doc["citations"] if c["cited_url"] == ARCHIVED_CITED)
    assert (record["broken"], record["broken_reason"]) == (True, REASON)
    assert (record["replacement"], record["replacement_kind"]) == (REPLACEMENT, "snapshot")
    assert record["cited_capture"]["state"] == "not_archived"
    assert record["cited_capture"]["label"].startswith("does not replay")
    assert doc["summary"]["broken_citations"] == 5
    assert doc["summary"]["archive_links"] == {"not_archived": 1}
    profile = next(p for p in doc["profiles"] if p["path"] == PROFILE)
    assert profile["broken"] == 4  # 3 dead links and the archive link


def test_markdown_says_broken_why_and_what_instead(broken_archive_link):
    md = (broken_archive_link / "profile-test.md").read_text(encoding="utf-8")
    block = md.split("### 10. line 28")[1].split("### 11.")[0]
    assert re.search(r"- \*\*Verdict:\*\* \*\*dead\*\* since \S+ \(of the original URL\)", block)
    assert (
        f"- **Cited capture:** **does not replay: the archive has no capture at {CITED_TS}" in block
    )
    assert f"- **Broken:** {md_text(REASON)}" in block
    assert (
        f"- **Suggested replacement:** [{md_text(REPLACEMENT)}](<{REPLACEMENT}>)"
        " (best snapshot of the original URL (the cited capture does not replay))"
    ) in block
    assert "none needed" not in block
    attention = md.split("## Needs attention")[1].split("## Citations")[0]
    row = next(line for line in attention.splitlines() if "| 28 |" in line)
    assert "archive link does not replay" in row and f"(<{REPLACEMENT}>)" in row
    assert "**3 broken.**" not in md and "**4 broken.**" in md
    index = (broken_archive_link / "index.md").read_text(encoding="utf-8")
    broken = index.split("## Broken citations")[1]
    row = next(line for line in broken.splitlines() if ARCHIVED_CITED in line)
    assert md_text(REASON) in row and f"(<{REPLACEMENT}>)" in row
    assert "| cited archive links | 1: 1 does not replay |" in index


def test_html_says_broken_why_and_what_instead(broken_archive_link):
    page = (broken_archive_link / "profile-test.html").read_text(encoding="utf-8")
    row = re.search(
        r'<tr [^>]*class="cw-broken"[^>]*>(?:(?!</tr>).)*web/20171017230858(?:(?!</tr>).)*</tr>',
        page,
        re.S,
    )
    assert row, "the archive link's row should be marked broken"
    text = row.group(0)
    assert "archive link does not replay" in text
    assert f"does not replay: the archive has no capture at {CITED_TS}" in text
    assert f'href="{REPLACEMENT}"' in text
    assert "best snapshot of the original URL (the cited capture does not replay)" in text
    assert "already an archive link" not in page
    assert '<div class="cw-num">4</div>' in page.split('cw-label">broken')[1][:80]
    index = (broken_archive_link / "index.html").read_text(encoding="utf-8")
    assert ARCHIVED_CITED in index.split("<h2>Broken citations</h2>")[1]
    assert "1: 1 does not replay" in index


def test_a_not_verified_archive_link_is_never_called_fine(tmp_path):
    corpus = build_corpus(tmp_path)  # the corpus's archive link was never replayed
    out = tmp_path / "reports"
    write_reports(corpus.store, out, run_id=corpus.run2)
    md = (out / "profile-test.md").read_text(encoding="utf-8")
    block = md.split("### 10. line 28")[1].split("### 11.")[0]
    assert "- **Cited capture:** not verified: the cited capture has never been replayed" in block
    assert (
        "- **Suggested replacement:** none suggested: the cited archive link is not verified"
        in block
    )
    assert "none needed" not in block
    page = (out / "profile-test.html").read_text(encoding="utf-8")
    assert "none suggested: the cited archive link is not verified" in page
    assert "already an archive link" not in page
    rows = list(csv.DictReader(io.StringIO((out / "citations.csv").read_text(encoding="utf-8"))))
    row = next(r for r in rows if r["cited_url"] == ARCHIVED_CITED)
    assert (row["broken"], row["broken_reason"], row["cited_capture_state"]) == (
        "0",
        "",
        "not_verified",
    )


# -- the real archive stage, then the reports --------------------------------------------------------
FAST = ArchiveTuning(
    gateway=GatewayTuning(pause_on_429=0.05, rates={"replay": 600.0, "availability": 600.0})
)
GONE = "https://www.alsouria.net/content/gone"
KEPT = "https://kept.test/article"
BAD = "https://bad.test/page"


def seeded_store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "citewatch.db")
    run_id = store.begin_run("scan")
    citations = [
        Citation(
            url=f"{WB}/{ts}/{original}",
            raw=f"{WB}/{ts}/{original}",
            line=line,
            column=1,
            text=f"link {line}",
            archived=ArchivedRef(original, ts),
        )
        for line, (ts, original) in enumerate(
            [(CITED_TS, GONE), ("20190101000000", KEPT), ("20190101000000", BAD)], 1
        )
    ]
    store.save_profile(
        Profile(path="p.md", published="2020-01-01", sha256="x", citations=citations), run_id
    )
    for row in store.query("SELECT id FROM urls"):
        store.set_verdict(row["id"], run_id, "alive")
    store.finish_run(run_id)
    return store


def archive_then_report(store: Store, settings: Any, out: Path) -> dict[str, CitationRecord]:
    run_id = store.begin_run("archive", ["archive"])
    result = asyncio.run(run_archive(store, run_id, settings, NullReporter(), None, tuning=FAST))
    store.finish_run(run_id, counts=result.summary, archive=result.archive)
    write_reports(store, out, run_id=run_id)
    return {c.cited_url.split("/web/")[1].split("/", 1)[1]: c for c in gather(store).citations}


def test_after_a_real_archive_run(make_simwayback, tmp_path):  # noqa: F811
    wayback = make_simwayback(
        {
            # GONE: never archived — the archive answers 404 with no memento.
            KEPT: [Capture("20190101000000")],
            BAD: [Capture("20180101000000"), Capture("20190101000000", status=404)],
        }
    )
    store = seeded_store(tmp_path)
    records = archive_then_report(store, wayback_settings(wayback, save=False), tmp_path / "r")
    gone, kept, bad = records[GONE], records[KEPT], records[BAD]
    assert (gone.broken, gone.cited_capture.state, gone.replacement) == (True, "not_archived", None)
    assert (kept.broken, kept.cited_capture.state) == (False, "verified")
    assert (bad.broken, bad.cited_capture.state) == (True, "bad_capture")
    assert bad.replacement == f"{WB}/20180101000000/{BAD}"
    md = (tmp_path / "r" / "p.md").read_text(encoding="utf-8")
    assert "**2 broken.**" in md and "none needed: the cited archive link replays" in md
    assert "**none: no archived copy is known**" in md


@pytest.mark.parametrize("status", [429, 503])
def test_a_rate_limited_or_failing_archive_is_no_evidence(make_simwayback, tmp_path, status):  # noqa: F811
    wayback = make_simwayback({KEPT: [Capture("20190101000000")]}, script={"replay": [status] * 9})
    store = seeded_store(tmp_path)
    records = archive_then_report(store, wayback_settings(wayback, save=False), tmp_path / "r")
    checks = store.query("SELECT status FROM snapshot_checks")
    if status == 429:  # three 429s in a row: the circuit breaker stops the archive work
        assert store.query("SELECT archive FROM runs WHERE command = 'archive'")[0]["archive"] == (
            "rate_limited"
        )
        assert [c["status"] for c in checks] == [None]  # the attempt is recorded, unanswered
    else:  # the 5xx stayed after the retries: recorded, but it says nothing about the capture
        assert {c["status"] for c in checks} == {503}
    # GONE is never archived, but the archive never got to say so.
    assert all(not c.broken for c in records.values())
    assert records[GONE].cited_capture.state == "not_verified"
    md = (tmp_path / "r" / "p.md").read_text(encoding="utf-8")
    assert "**0 broken.**" in md and "does not replay" not in md
