"""What the reports say, independent of format: per-citation provenance, summary, diff, trend."""

from __future__ import annotations

from test_report_corpus import (
    ARCHIVED_CITED,
    BLOCKED,
    CHANGED,
    DEAD,
    DEAD_NO_SNAPSHOT,
    IGNORED,
    JS_URL,
    MOVED,
    MOVED_TO,
    NEWLY_BROKEN,
    RECOVERED,
    SAME,
    build_corpus,
)

from citewatch.models import Profile
from citewatch.report import corpus_summary, gather
from citewatch.report.data import _slugs, trend_series
from citewatch.store import Store


def records(data, profile="citations/profile-test.txt"):
    group = next(g for g in data.profiles if g.path == profile)
    return {c.cited_url: c for c in group.citations}


def test_a_dead_citation_gets_its_best_snapshot_and_replacement(tmp_path):
    corpus = build_corpus(tmp_path)
    c = records(gather(corpus.store))[DEAD]
    assert (c.profile, c.line, c.section, c.role) == (
        "citations/profile-test.txt",
        10,
        '=HYPERLINK("http://evil.example/","click")',
        "source",
    )
    assert c.sentence == "According to the militia page, it was founded."
    assert (c.verdict, c.confirmed, c.broken) == ("dead", True, True)
    assert c.verdict_since
    assert (c.last_outcome, c.last_status) == ("not_found", 404)
    # Latest 2xx at or before the citation date (2023-11-01): not the 404 of 10-30, not 2024's.
    assert c.best_snapshot.timestamp == "20231015080000"
    assert c.best_snapshot.days_from_citation == -17
    assert c.replacement == f"https://web.archive.org/web/20231015080000/{DEAD}"
    assert c.replacement_kind == "snapshot"
    assert c.evidence == f"citewatch history {DEAD}"


def test_the_replacement_follows_the_configured_wayback_endpoint(tmp_path):
    corpus = build_corpus(tmp_path)
    c = records(gather(corpus.store, wayback_url="http://wayback.test:8080/"))[DEAD]
    assert c.replacement == f"http://wayback.test:8080/web/20231015080000/{DEAD}"


def test_other_verdicts_read_as_they_should(tmp_path):
    corpus = build_corpus(tmp_path)
    r = records(gather(corpus.store))
    no_snapshot = r[DEAD_NO_SNAPSHOT]
    assert (
        no_snapshot.broken and no_snapshot.best_snapshot is None and no_snapshot.replacement is None
    )
    assert no_snapshot.verdict_label == "dead (unconfirmed)"
    moved = r[MOVED]
    assert (moved.verdict, moved.replacement, moved.replacement_kind, moved.role) == (
        "moved",
        MOVED_TO,
        "moved",
        "navigation",
    )
    assert moved.last_final_url == MOVED_TO
    assert r[BLOCKED].verdict == "blocked" and not r[BLOCKED].broken
    assert r[IGNORED].ignored == "known flaky host, checked by hand"
    archived = r[ARCHIVED_CITED]
    assert archived.verdict == "dead" and not archived.broken and archived.replacement is None
    assert archived.archived_timestamp == "20171017230858"
    skipped = r[JS_URL]
    assert (skipped.verdict, skipped.url, skipped.evidence) == ("skipped", None, None)
    assert r[SAME].captures[0].status == "success"


def test_content_drift(tmp_path):
    corpus = build_corpus(tmp_path)
    r = records(gather(corpus.store))
    assert r[SAME].drift.state == "identical"
    changed = r[CHANGED].drift
    assert changed.state == "changed" and changed.similarity == 0.917  # one word of 12 differs
    assert (changed.live_sha1, changed.snapshot_digest) == ("NEWDIGEST", "OLDPAGE")
    assert r[DEAD].drift.state == "unknown"  # never seen alive: nothing to compare


def test_corpus_summary(tmp_path):
    corpus = build_corpus(tmp_path)
    s = corpus_summary(corpus.store, corpus.run2)
    assert (s["profiles"], s["citations"], s["skipped_citations"], s["urls"]) == (2, 14, 2, 10)
    assert s["by_verdict"] == {"dead": 4, "failing": 1, "blocked": 1, "moved": 1, "alive": 3}
    # Link rot: dead source URLs / judged source URLs (blocked and ignored are not judged):
    # dead = article-1, report.pdf, fresh story, alsouria original; judged adds about, changing, back.
    assert s["link_rot"] == {"dead_source_urls": 4, "judged_source_urls": 7}
    assert s["link_rot_rate"] == round(4 / 7, 4)
    assert (s["archived_urls"], s["archive_coverage"]) == (3, 0.3)
    # The javascript: (source) and mailto: (navigation) links are skipped: they count under no role.
    assert s["roles"]["source"]["citations"] == 11 and s["roles"]["navigation"]["citations"] == 1
    assert s["roles"]["navigation"]["urls"] == 1  # the mailto link has no URL to check
    assert "media" not in s["roles"]
    assert s["broken_citations"] == 4  # two dead in profile-test, the unconfirmed one, other.md's
    assert s["previous_run"] == corpus.run1
    assert s["newly_broken"] == sorted([NEWLY_BROKEN, DEAD_NO_SNAPSHOT])
    assert s["recovered"] == [RECOVERED]


def test_diff_against_the_previous_audit_only(tmp_path):
    corpus = build_corpus(tmp_path)
    # A later check run (not an audit) compares with the last audit, i.e. run 2.
    check = corpus.store.begin_run("check")
    url_id = corpus.store.query("SELECT id FROM urls WHERE url = ?", [SAME])[0]["id"]
    corpus.store.set_verdict(url_id, check, "dead")
    s = corpus_summary(corpus.store)
    assert (s["run_id"], s["previous_run"], s["newly_broken"], s["recovered"]) == (
        check,
        corpus.run2,
        [SAME],
        [],
    )
    # The first audit has nothing to compare with.
    first = corpus_summary(corpus.store, corpus.run1)
    assert first["previous_run"] is None and first["newly_broken"] == []


def test_trend_counts_verdicts_per_audit_run(tmp_path):
    corpus = build_corpus(tmp_path)
    points, basis = trend_series(corpus.store)
    assert basis == "audit"
    assert [p.run_id for p in points] == [corpus.run1, corpus.run2]
    assert points[0].counts["dead"] == 3 and points[1].counts["dead"] == 4
    assert points[1].counts["alive"] == 3
    assert all(sum(p.counts.values()) == 10 for p in points)


def test_trend_falls_back_to_runs_that_changed_verdicts(tmp_path):
    store = Store.open(tmp_path / "t.db")
    scan = store.begin_run("scan")
    from test_report_corpus import main_profile

    store.save_profile(main_profile(), scan)
    check = store.begin_run("check")
    url_id = store.query("SELECT id FROM urls WHERE url = ?", [SAME])[0]["id"]
    store.set_verdict(url_id, check, "alive")
    points, basis = trend_series(store)
    assert basis == "runs" and [p.run_id for p in points] == [check]
    assert points[0].counts["alive"] == 1 and points[0].counts["unchecked"] == 9


def test_report_file_names_are_unique_and_never_clash_with_the_index():
    slugs = _slugs(["a/index.md", "b/x.txt", "c/x.txt", "Profile One.html"])
    assert slugs["a/index.md"] == "profile-index"
    assert {slugs["b/x.txt"], slugs["c/x.txt"]} == {"b-x-txt", "c-x-txt"}
    assert slugs["Profile One.html"] == "profile-one"


def test_an_empty_database_reports_nothing_without_failing(tmp_path):
    store = Store.open(tmp_path / "t.db")
    s = corpus_summary(store)
    assert s["citations"] == 0 and s["link_rot_rate"] is None and s["archive_coverage"] is None
    assert s["trend"] == [] and s["previous_run"] is None


def test_a_profile_without_citations_or_date_still_has_a_group(tmp_path):
    store = Store.open(tmp_path / "t.db")
    store.save_profile(Profile(path="empty.md", sha256="x"), store.begin_run("scan"))
    data = gather(store)
    assert [g.path for g in data.profiles] == ["empty.md"] and data.profiles[0].citations == ()


def test_a_capture_whose_replay_is_a_soft_404_is_never_suggested(tmp_path):
    corpus = build_corpus(tmp_path)
    url_id = corpus.store.query("SELECT id FROM urls WHERE url = ?", [DEAD])[0]["id"]
    corpus.store.record_snapshot_check(
        corpus.run2,
        url_id,
        timestamp="20231015080000",
        status=200,
        soft_404=1,
        checked_at="2026-01-20T00:00:00Z",
    )
    c = records(gather(corpus.store))[DEAD]
    assert c.best_snapshot.timestamp == "20190301120000"  # the next one by the same rule
    # A later replay that is fine again makes the capture usable again.
    corpus.store.record_snapshot_check(
        corpus.run2,
        url_id,
        timestamp="20231015080000",
        status=200,
        soft_404=0,
        checked_at="2026-01-21T00:00:00Z",
    )
    assert records(gather(corpus.store))[DEAD].best_snapshot.timestamp == "20231015080000"
