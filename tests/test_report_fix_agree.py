"""The reports' suggested replacement is what ``citewatch fix`` writes, read from the same database.

One profile holds a citation of each kind that gets a suggestion: a dead URL (its best snapshot), a
moved URL (its new location) and cited Wayback links whose capture does not replay (the best *other*
usable capture of the original) — with a full timestamp, with a short one whose replay was served a
different capture that is a "page not found" page, and with a full one whose replay was served
another capture that is not a 2xx page. For each, the report's replacement and best snapshot must be
exactly fix's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from citewatch.fix import plan_fix
from citewatch.models import Citation, Profile, Snapshot
from citewatch.report import gather
from citewatch.store import Store
from citewatch.urls import resolve

WB = "https://web.archive.org/web"
DEAD = "https://dead.example.org/report"
MOVED = "https://old.example.org/page"
MOVED_TO = "https://new.example.org/page"
GONE = "https://gone.example.org/a"  # cited with a full timestamp the archive has no capture at
SHORT = "https://short.example.org/b"  # cited as /web/2017/: served a soft-404 capture instead
SERVED = "https://served.example.org/c"  # full timestamp: served another capture, an HTTP 404

CITES = {
    f"{DEAD}#findings": DEAD,
    MOVED: MOVED,
    f"{WB}/20171017230858/{GONE}": GONE,
    f"{WB}/2017/{SHORT}": SHORT,
    f"{WB}/20171017230858/{SERVED}": SERVED,
}


def _url_id(store: Store, url: str) -> int:
    return store.query("SELECT id FROM urls WHERE url = ?", [url])[0]["id"]


def _database(tmp_path: Path) -> tuple[Store, Path]:
    path = tmp_path / "profile.md"
    text = "".join(f"- <{target}>\n" for target in CITES)
    path.write_text(text)
    citations = []
    for line, target in enumerate(CITES, start=1):
        r = resolve(target, None)
        citations.append(
            Citation(
                url=r.url,
                raw=f"<{target}>",
                line=line,
                column=3,
                fragment=r.fragment,
                archived=r.archived,
            )
        )
    store = Store.open(tmp_path / "t.db")
    store.save_profile(
        Profile(
            path=path.as_posix(),
            published="2023-11-01",
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            format="markdown",
            citations=citations,
        ),
        store.begin_run("scan"),
    )
    run = store.begin_run("audit")

    def judged(url: str, verdict: str, captures: list[tuple[str, int]], **kw: object) -> int:
        url_id = _url_id(store, url)
        store.set_verdict(url_id, run, verdict, **kw)
        store.record_snapshots(
            url_id,
            run,
            [Snapshot(url, ts, url, status, "text/html", f"D{ts}", 1) for ts, status in captures],
        )
        return url_id

    judged(DEAD, "dead", [("20190101000000", 200), ("20231015000000", 200)])
    judged(MOVED, "moved", [("20200101000000", 200)], moved_to=MOVED_TO)
    gone = judged(
        GONE, "dead", [("20170901000000", 200), ("20171017230858", 200), ("20240101000000", 200)]
    )
    store.record_snapshot_check(
        run, gone, timestamp="20171017230858", status=404, memento_datetime=None, soft_404=0
    )
    # The archive serves the capture nearest to /web/2017/: a captured "page not found". CDX lists it
    # as 2xx, and it is the latest before the citation date.
    short = judged(SHORT, "dead", [("20160101000000", 200), ("20170305000000", 200)])
    store.record_snapshot_check(
        run, short, timestamp="2017", status=200, memento_datetime="20170305000000", soft_404=1
    )
    # The archive serves a neighbour of the cited capture, and that one is an HTTP 404.
    served = judged(SERVED, "alive", [("20150101000000", 200), ("20171020000000", 200)])
    store.record_snapshot_check(
        run, served, timestamp="20171017230858", status=404, memento_datetime="20171020000000"
    )
    return store, path


def test_the_report_suggests_exactly_what_fix_writes(tmp_path):
    store, path = _database(tmp_path)
    plan = plan_fix(store, path, include_moved=True)
    assert plan.unresolved == [] and plan.ignored == []
    written = {entry["url"]: entry for entry in plan.replaced}
    [group] = gather(store).profiles
    reported = {c.cited_url: c for c in group.citations}
    assert set(written) == set(reported) and len(reported) == len(CITES)
    for url, c in reported.items():
        entry = written[url]
        assert (c.replacement, c.replacement_kind) == (entry["replacement"], entry["kind"]), url
        if entry["kind"] == "snapshot":
            assert c.best_snapshot.timestamp == entry["snapshot"], url
            assert c.best_snapshot.days_from_citation == entry["days_from_citation"], url
    # What each kind gets (the choice both make).
    by_original = {c.url: c.replacement for c in reported.values()}
    assert by_original == {
        DEAD: f"{WB}/20231015000000/{DEAD}#findings",
        MOVED: MOVED_TO,
        GONE: f"{WB}/20170901000000/{GONE}",  # not the capture cited
        SHORT: f"{WB}/20160101000000/{SHORT}",  # not the soft-404 served for /web/2017/
        SERVED: f"{WB}/20150101000000/{SERVED}",  # not the 404 served in place of the cited one
    }
