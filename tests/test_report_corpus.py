"""The small corpus the report, history and browser tests share, built straight into a real SQLite file.

Two audit runs over one profile (plus a second profile), covering every state a report must show:
dead with a snapshot, dead with none (one-shot, unconfirmed), alive and byte-identical to its snapshot,
alive and changed, moved, blocked, ignored, a cited Wayback link, skipped links, hostile anchor text and
a spreadsheet formula in a section name. Between the runs one link dies and one recovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from citewatch.models import (
    ArchivedRef,
    CaptureRequest,
    Citation,
    Outcome,
    ProbeResult,
    Profile,
    Role,
    Snapshot,
)
from citewatch.store import Store

XSS_ANCHOR = (
    "<script>document.documentElement.setAttribute('data-pwned','script')</script>"
    "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">Militia page"
)
FORMULA_SECTION = '=HYPERLINK("http://evil.example/","click")'

DEAD = "https://news.example.org/2019/article-1"
DEAD_NO_SNAPSHOT = "https://gone.example.net/report.pdf"
SAME = "https://www.example.com/about"
CHANGED = "https://changing.example.org/page"
MOVED = "https://old.example.org/page"
MOVED_TO = "https://new.example.org/page"
BLOCKED = "https://walled.example.com/x"
IGNORED = "https://flaky.example.com/y"
NEWLY_BROKEN = "https://fresh.example.org/story"
RECOVERED = "https://back.example.org/story"
ARCHIVED_ORIGINAL = "https://www.alsouria.net/content/x"
ARCHIVED_CITED = "https://web.archive.org/web/20171017230858/https://www.alsouria.net/content/x"
JS_URL = "javascript:alert(document.domain)"


@dataclass
class Corpus:
    store: Store
    path: Path
    run1: int
    run2: int


def probe(url: str, outcome: Outcome, status: int | None, when: str, **kw: object) -> ProbeResult:
    return ProbeResult(url=url, outcome=outcome, checked_at=when, status=status, **kw)  # type: ignore[arg-type]


def _citation(url: str, line: int, text: str, **kw: object) -> Citation:
    return Citation(url=url, raw=url, line=line, column=1, text=text, **kw)  # type: ignore[arg-type]


def main_profile(sha: str = "sha-1") -> Profile:
    return Profile(
        path="citations/profile-test.txt",
        title="Profile: Test Brigade",
        authors=["Ann Author", "Bo <b>Bold</b>"],
        published="2023-11-01",
        sha256=sha,
        format="text",
        base_url="https://www.washingtoninstitute.org/policy-analysis/x",
        citations=[
            _citation(
                DEAD,
                10,
                XSS_ANCHOR,
                context="According to the militia page, it was founded.",
                section=FORMULA_SECTION,
            ),
            _citation(DEAD_NO_SNAPSHOT, 12, "the report", section="History"),
            _citation(SAME, 14, "about page", section="History"),
            _citation(CHANGED, 16, "changing page", section="History"),
            _citation(MOVED, 18, "Series", role=Role.NAVIGATION, section="Part of a series"),
            _citation(BLOCKED, 20, "walled", section="Objectives"),
            _citation(IGNORED, 22, "flaky", section="Objectives"),
            _citation(NEWLY_BROKEN, 24, "fresh story", section="Affiliates"),
            _citation(RECOVERED, 26, "back story", section="Affiliates"),
            Citation(
                url=ARCHIVED_CITED,
                raw=f"<{ARCHIVED_CITED}>",
                line=28,
                column=5,
                text="",
                section="Affiliates",
                archived=ArchivedRef(ARCHIVED_ORIGINAL, "20171017230858"),
            ),
            Citation(
                url=JS_URL,
                raw=JS_URL,
                line=30,
                column=1,
                text="click me",
                skip_reason="javascript link (not checked)",
            ),
            Citation(
                url="mailto:someone@example.org",
                raw="mailto:someone@example.org",
                line=31,
                column=1,
                text="mail",
                skip_reason="mailto link (not checked)",
                role=Role.NAVIGATION,
            ),
        ],
    )


def second_profile() -> Profile:
    return Profile(
        path="citations/other.md",
        title="Other profile",
        published="2024-02-01",
        sha256="sha-other",
        format="markdown",
        citations=[_citation(SAME, 3, "about again"), _citation(DEAD, 5, "article again")],
    )


HTML = "text/html; charset=utf-8"


def build_corpus(tmp_path: Path) -> Corpus:
    """Two finished audit runs; see the module docstring."""
    store = Store.open(tmp_path / "t.db")
    run1 = store.begin_run("audit")
    store.save_profile(main_profile(), run1)
    store.save_profile(second_profile(), run1)
    ids = {row["url"]: row["id"] for row in store.query("SELECT id, url FROM urls")}
    t1 = "2026-01-10T10:00:00.000000Z"
    first = {
        DEAD: (Outcome.NOT_FOUND, 404, "dead"),
        DEAD_NO_SNAPSHOT: (Outcome.GONE, 410, "alive"),
        SAME: (Outcome.OK, 200, "alive"),
        CHANGED: (Outcome.OK, 200, "alive"),
        MOVED: (Outcome.REDIRECTED, 200, "moved"),
        BLOCKED: (Outcome.BLOCKED, 403, "blocked"),
        IGNORED: (Outcome.TIMEOUT, None, "failing"),
        NEWLY_BROKEN: (Outcome.OK, 200, "alive"),
        RECOVERED: (Outcome.NOT_FOUND, 404, "dead"),
        ARCHIVED_ORIGINAL: (Outcome.NOT_FOUND, 404, "dead"),
    }
    for url, (outcome, status, verdict) in first.items():
        extra: dict[str, object] = {}
        if url == SAME:
            extra = {"sha1": "SAMEDIGEST", "content_type": HTML, "text_sample": "About us"}
        if url == CHANGED:
            extra = {
                "sha1": "NEWDIGEST",
                "content_type": HTML,
                "text_sample": "The brigade was founded in 2012 in Aleppo province by two brothers",
            }
        if url == MOVED:
            extra = {"final_url": MOVED_TO, "permanent_redirect": True}
        store.record_check(run1, ids[url], probe(url, outcome, status, t1, **extra), "ok")
        store.set_verdict(
            ids[url], run1, verdict, moved_to=MOVED_TO if verdict == "moved" else None
        )
    store.record_snapshots(
        ids[DEAD],
        run1,
        [
            Snapshot(DEAD, "20190301120000", DEAD, 200, "text/html", "OLDDIGEST", 1000),
            Snapshot(DEAD, "20231015080000", DEAD, 200, "text/html", "BEFOREDIGEST", 1000),
            Snapshot(DEAD, "20231030000000", DEAD, 404, "text/html", "NOTFOUND", 10),
            Snapshot(DEAD, "20240101000000", DEAD, 200, "text/html", "AFTERDIGEST", 1000),
        ],
    )
    store.record_snapshots(
        ids[SAME], run1, [Snapshot(SAME, "20231101000000", SAME, 200, "text/html", "SAMEDIGEST", 9)]
    )
    store.record_snapshots(
        ids[CHANGED],
        run1,
        [Snapshot(CHANGED, "20230901000000", CHANGED, 200, "text/html", "OLDPAGE", 9)],
    )
    store.record_snapshot_check(
        run1,
        ids[CHANGED],
        timestamp="20230901000000",
        status=200,
        text_sample="The brigade was founded in 2015 in Aleppo province by two brothers",
    )
    store.record_capture(
        run1,
        ids[SAME],
        CaptureRequest(SAME, "2026-01-10T10:05:00Z", "success", "job-1", "20260110100501"),
    )
    store.add_ignore(IGNORED, "known flaky host, checked by hand")
    store.finish_run(run1, network="ok")

    run2 = store.begin_run("audit")
    t2 = "2026-01-20T10:00:00.000000Z"
    store.record_check(
        run2, ids[NEWLY_BROKEN], probe(NEWLY_BROKEN, Outcome.NOT_FOUND, 404, t2), "ok"
    )
    store.set_verdict(ids[NEWLY_BROKEN], run2, "dead")
    store.record_check(run2, ids[RECOVERED], probe(RECOVERED, Outcome.OK, 200, t2), "ok")
    store.set_verdict(ids[RECOVERED], run2, "alive")
    store.record_check(
        run2, ids[DEAD_NO_SNAPSHOT], probe(DEAD_NO_SNAPSHOT, Outcome.GONE, 410, t2), "ok"
    )
    store.set_verdict(ids[DEAD_NO_SNAPSHOT], run2, "dead", confirmed=False)
    store.finish_run(run2, network="ok")
    return Corpus(store, tmp_path / "t.db", run1, run2)


def test_corpus_has_two_finished_audits(tmp_path):
    corpus = build_corpus(tmp_path)
    runs = corpus.store.query("SELECT command, finished FROM runs ORDER BY id")
    assert [r["command"] for r in runs] == ["audit", "audit"]
    assert all(r["finished"] for r in runs)
