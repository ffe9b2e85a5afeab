"""The store, read as a specification: what is kept, what is never lost, what is refused."""

from __future__ import annotations

import sqlite3

import pytest

from citewatch.models import ArchivedRef, Citation, Finding, Outcome, ProbeResult, Profile, Snapshot
from citewatch.store import SCHEMA_VERSION, SchemaTooNew, Store


def make_profile(sha: str, urls: list[str], path: str = "p.txt") -> Profile:
    return Profile(
        path=path,
        title="T",
        authors=["A"],
        published="2023-11-01",
        sha256=sha,
        citations=[Citation(url=u, raw=u, line=i + 1, column=1) for i, u in enumerate(urls)],
        findings=[Finding(kind="malformed_url", message="broken", line=9, raw="(/x")],
    )


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "cw.db")
    yield s
    s.close()


def test_new_database_is_at_current_schema_version(store):
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    for table in ("runs", "profiles", "citations", "urls", "checks", "snapshots", "captures"):
        assert table in store.db.table_names()
    assert {"latest_check", "citation_status", "current_citations"} <= set(store.db.view_names())


def test_database_from_a_newer_citewatch_is_refused(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer"):
        Store.open(path)


def test_a_version_1_database_is_migrated_forward_keeping_its_rows(tmp_path):
    import sqlite_utils

    from citewatch.store import MIGRATIONS

    path = tmp_path / "v1.db"
    db = sqlite_utils.Database(sqlite3.connect(path))
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs (command, started) VALUES ('scan', '2026-01-01T00:00:00Z')")
    db.execute(
        "INSERT INTO profiles (path, sha256, scanned_at, scan_run) VALUES ('p.txt', 'x', 'now', 1)"
    )
    db.conn.commit()
    db.conn.close()
    store = Store.open(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    assert store.active_profile_paths() == ["p.txt"]  # removed_run exists, NULL for old rows
    store.close()


def test_rescanning_an_unchanged_profile_adds_nothing(store):
    run = store.begin_run("scan")
    assert store.save_profile(make_profile("a", ["https://x.org/1"]), run) == "new"
    before = store.db.execute("SELECT count(*) FROM citations").fetchone()[0]
    assert store.save_profile(make_profile("a", ["https://x.org/1"]), run) == "unchanged"
    assert store.db.execute("SELECT count(*) FROM citations").fetchone()[0] == before == 1


def test_a_changed_profile_supersedes_but_keeps_old_citations(store):
    run1 = store.begin_run("scan")
    store.save_profile(make_profile("a", ["https://x.org/1", "https://x.org/2"]), run1)
    run2 = store.begin_run("scan")
    assert store.save_profile(make_profile("b", ["https://x.org/3"]), run2) == "changed"
    current = store.current_citations()
    assert [c["url"] for c in current] == ["https://x.org/3"]
    old = store.query(
        "SELECT cited_url, superseded_run FROM citations WHERE superseded_run IS NOT NULL"
    )
    assert sorted(r["cited_url"] for r in old) == ["https://x.org/1", "https://x.org/2"]
    assert {r["superseded_run"] for r in old} == {run2}
    findings = store.query("SELECT superseded_run FROM findings ORDER BY id")
    assert [f["superseded_run"] for f in findings] == [run2, None]


def test_same_url_cited_twice_is_one_url_row(store):
    run = store.begin_run("scan")
    store.save_profile(make_profile("a", ["https://x.org/1", "https://x.org/1"]), run)
    store.save_profile(make_profile("b", ["https://x.org/1"], path="q.txt"), run)
    assert store.db.execute("SELECT count(*) FROM urls").fetchone()[0] == 1
    assert store.db.execute("SELECT count(*) FROM citations").fetchone()[0] == 3


def test_cited_wayback_link_depends_on_its_original(store):
    run = store.begin_run("scan")
    wayback = "https://web.archive.org/web/2017/https://a.org/x"
    profile = Profile(
        path="w.txt",
        sha256="w",
        citations=[
            Citation(
                url=wayback,
                raw=wayback,
                line=1,
                column=1,
                archived=ArchivedRef("https://a.org/x", "2017"),
            ),
            Citation(
                url="mailto:a@b.org", raw="mailto:a@b.org", line=2, column=1, skip_reason="mailto"
            ),
        ],
    )
    store.save_profile(profile, run)
    rows = store.query("SELECT cited_url, url_id, archived_original FROM citations ORDER BY line")
    assert rows[0]["cited_url"] == wayback
    assert store.db["urls"].get(rows[0]["url_id"])["url"] == "https://a.org/x"
    assert rows[1]["url_id"] is None  # skipped links are recorded, never checked


def test_checks_are_append_only_and_verdict_changes_are_history(store):
    run = store.begin_run("check")
    store.save_profile(make_profile("a", ["https://x.org/1"]), run)
    url_id = store.query("SELECT id FROM urls")[0]["id"]
    for when in ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"):
        store.record_check(
            run,
            url_id,
            ProbeResult(
                url="https://x.org/1", outcome=Outcome.NOT_FOUND, checked_at=when, status=404
            ),
            "ok",
        )
    assert [c["checked_at"] for c in store.checks_for(url_id)] == [
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ]
    assert store.set_verdict(url_id, run, "failing") is True
    assert store.set_verdict(url_id, run, "failing") is False  # unchanged: no new history row
    assert store.set_verdict(url_id, run, "dead", confirmed=True) is True
    assert [v["verdict"] for v in store.query("SELECT verdict FROM verdicts ORDER BY id")] == [
        "failing",
        "dead",
    ]
    assert store.db["urls"].get(url_id)["last_outcome"] == "not_found"


def test_duplicate_cdx_rows_are_stored_once(store):
    run = store.begin_run("archive")
    store.save_profile(make_profile("a", ["https://x.org/1"]), run)
    url_id = store.query("SELECT id FROM urls")[0]["id"]
    snap = Snapshot(
        "https://x.org/1", "20200101000000", "https://x.org/1", 200, "text/html", "ABC", 10
    )
    assert store.record_snapshots(url_id, run, [snap, snap]) == 1
    assert store.record_snapshots(url_id, run, [snap]) == 0
    revisit = Snapshot(
        "https://x.org/1", "20210101000000", "https://x.org/1", None, "warc/revisit", "ABC", 10
    )
    assert store.record_snapshots(url_id, run, [revisit, revisit]) == 1  # NULL status still dedupes


def test_a_failed_write_leaves_nothing_half_done(store):
    run = store.begin_run("scan")
    with pytest.raises(RuntimeError), store.transaction():
        store.db.execute("INSERT INTO urls (url, host) VALUES ('https://half.org/', 'half.org')")
        raise RuntimeError("killed mid-write")
    assert store.query("SELECT * FROM urls WHERE url = 'https://half.org/'") == []
    store.finish_run(run, counts={})
    assert store.run(run)["status"] == "finished"


def test_killed_process_keeps_committed_work(tmp_path):
    """Every write commits before returning: a second connection (a later run) sees it at once."""
    path = tmp_path / "k.db"
    writer = Store.open(path)
    run = writer.begin_run("scan")
    writer.save_profile(make_profile("a", ["https://x.org/1"]), run)
    reader = Store.open(path)  # writer never closed, as if killed
    assert len(reader.current_citations()) == 1
    assert reader.run(run)["finished"] is None


def test_broken_citations_exclude_archive_links_and_ignored_urls(store):
    run = store.begin_run("check")
    wayback = "https://web.archive.org/web/2017/https://a.org/x"
    profile = Profile(
        path="b.txt",
        sha256="b",
        citations=[
            Citation(url="https://a.org/x", raw="https://a.org/x", line=1, column=1),
            Citation(
                url=wayback,
                raw=wayback,
                line=2,
                column=1,
                archived=ArchivedRef("https://a.org/x", "2017"),
            ),
            Citation(url="https://a.org/y", raw="https://a.org/y", line=3, column=1),
        ],
    )
    store.save_profile(profile, run)
    ids = {row["url"]: row["id"] for row in store.query("SELECT id, url FROM urls")}
    store.set_verdict(ids["https://a.org/x"], run, "dead")
    store.set_verdict(ids["https://a.org/y"], run, "dead", confirmed=False)
    assert [(c["line"], c["url"]) for c in store.broken_citations()] == [
        (1, "https://a.org/x"),
        (3, "https://a.org/y"),
    ]
    store.add_ignore("https://a.org/y", "paywalled, checked by hand")
    assert [c["line"] for c in store.broken_citations()] == [1]


def test_same_bytes_with_a_new_base_url_are_extracted_again(store):
    run = store.begin_run("scan")
    profile = make_profile("a", ["https://x.org/1"])
    profile.base_url = "https://old.example/"
    store.save_profile(profile, run)
    profile.base_url = "https://new.example/"
    assert store.save_profile(profile, run) == "changed"


def test_installed_sqlite_utils_plugins_never_touch_our_connection(tmp_path, monkeypatch) -> None:
    """sqlite-utils plugins serve its CLI; a citewatch database is opened without them (and
    without the scan of every installed package's entry points that finding them costs)."""
    import sqlite_utils.plugins

    def plugins_loaded() -> None:
        raise AssertionError("sqlite-utils plugins were loaded for a citewatch database")

    monkeypatch.setattr(sqlite_utils.db, "ensure_plugins_loaded", plugins_loaded)
    monkeypatch.setattr(sqlite_utils.plugins, "ensure_plugins_loaded", plugins_loaded)
    Store.open(tmp_path / "citewatch.db").close()


def test_a_lock_file_that_cannot_be_opened_never_stops_a_run(tmp_path, monkeypatch) -> None:
    """Another user's lock file or a read-only folder: the run goes on unserialised (as before
    locks existed) rather than failing as an internal error."""
    store = Store.open(tmp_path / "citewatch.db")
    real_open = open

    def refusing_open(file, *args, **kwargs):
        if str(file).endswith(".lock"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    store.claim_runs()  # no exception
    store.close()
