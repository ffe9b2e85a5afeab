"""What the reports say, independent of format: per-citation provenance, summary, diff, trend."""

from __future__ import annotations

from test_report_corpus import (
    ARCHIVED_CITED,
    ARCHIVED_ORIGINAL,
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
    main_profile,
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
    corpus.store.finish_run(check, network="ok")  # a run that never finished is not reported on
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
    store.save_profile(main_profile(), scan)
    check = store.begin_run("check")
    url_id = store.query("SELECT id FROM urls WHERE url = ?", [SAME])[0]["id"]
    store.set_verdict(url_id, check, "alive")
    store.finish_run(scan)
    store.finish_run(check, network="ok")  # a run that never finished is never drawn
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


# -- since the previous audit: citations, not URLs (each of these failed before) ------------------------


def _url_id(store, url):
    return store.query("SELECT id FROM urls WHERE url = ?", [url])[0]["id"]


def _by_location(changes):
    return {(c["profile"], c["line"]): c for c in changes}


def test_a_dead_url_newly_cited_is_newly_broken_though_no_verdict_changed(tmp_path):
    from citewatch.models import Citation

    corpus = build_corpus(tmp_path)
    run3 = corpus.store.begin_run("audit")
    profile = main_profile(sha="sha-2")
    profile.citations.append(Citation(url=DEAD, raw=DEAD, line=40, column=1, text="again"))
    corpus.store.save_profile(profile, run3)  # every citation row is replaced: same identities
    corpus.store.finish_run(run3, network="ok")
    s = corpus_summary(corpus.store, run3)
    assert s["changes"] == []  # no URL changed its verdict…
    assert s["newly_broken"] == [DEAD]  # …but one more citation is broken
    (change,) = s["newly_broken_citations"]
    assert (change["profile"], change["line"], change["why"]) == (
        "citations/profile-test.txt",
        40,
        "newly cited",
    )
    assert change["detail"].startswith("not cited at audit run 2; the cited URL is dead")
    assert s["no_longer_broken_citations"] == []  # the other rows of the profile are the same
    assert (s["broken_citations_before"], s["broken_citations"]) == (4, 5)


def test_a_cited_archive_link_that_stops_replaying_is_newly_broken(tmp_path):
    corpus = build_corpus(tmp_path)
    run3 = corpus.store.begin_run("audit")
    corpus.store.record_snapshot_check(
        run3,
        _url_id(corpus.store, ARCHIVED_ORIGINAL),
        timestamp="20171017230858",
        checked_at="2026-01-30T00:00:00Z",
        status=404,
        memento_datetime=None,
        soft_404=0,
    )
    corpus.store.finish_run(run3, network="ok")
    s = corpus_summary(corpus.store, run3)
    assert s["changes"] == []  # the original was dead before and is dead now
    assert s["newly_broken"] == [ARCHIVED_CITED]
    (change,) = s["newly_broken_citations"]
    assert (change["line"], change["why"]) == (28, "does not replay")
    assert "the cited archive link does not replay" in change["detail"]
    # The broken set is the one exit code 1 stands for.
    broken = {(r["path"], r["line"]) for r in corpus.store.broken_citations()}
    assert ("citations/profile-test.txt", 28) in broken and len(broken) == s["broken_citations"]


def test_citations_no_longer_broken_say_whether_they_recovered_or_were_removed(tmp_path):
    corpus = build_corpus(tmp_path)
    store = corpus.store
    run3 = store.begin_run("audit")
    store.retire_profile("citations/other.md", run3)  # it cited DEAD (broken)
    profile = main_profile(sha="sha-3")
    profile.citations = [c for c in profile.citations if c.url != DEAD_NO_SNAPSHOT]
    store.save_profile(profile, run3)  # the unconfirmed dead citation is dropped
    store.record_check(run3, _url_id(store, NEWLY_BROKEN), probe_ok(NEWLY_BROKEN), "ok")
    store.set_verdict(_url_id(store, NEWLY_BROKEN), run3, "alive")
    store.finish_run(run3, network="ok")
    s = corpus_summary(store, run3)
    assert (s["broken_citations_before"], s["broken_citations"]) == (4, 1)
    gone = _by_location(s["no_longer_broken_citations"])
    assert {k: c["why"] for k, c in gone.items()} == {
        ("citations/other.md", 5): "profile removed",
        ("citations/profile-test.txt", 12): "removed",
        ("citations/profile-test.txt", 24): "recovered",
    }
    assert "left the corpus (run 3)" in gone[("citations/other.md", 5)]["detail"]
    assert (
        "no longer cited in citations/profile-test.txt (it was at line 12)"
        in (gone[("citations/profile-test.txt", 12)]["detail"])
    )
    assert s["recovered"] == [NEWLY_BROKEN]
    assert s["removed"] == sorted([DEAD, DEAD_NO_SNAPSHOT])
    assert s["newly_broken_citations"] == []


def test_a_citation_put_under_an_ignore_rule_is_no_longer_broken_as_ignored(tmp_path):
    corpus = build_corpus(tmp_path)
    run3 = corpus.store.begin_run("audit")
    corpus.store.add_ignore(NEWLY_BROKEN, "paywalled: checked by hand")
    corpus.store.finish_run(run3, network="ok")
    s = corpus_summary(corpus.store, run3)
    (change,) = s["no_longer_broken_citations"]
    assert (change["url"], change["why"]) == (NEWLY_BROKEN, "ignored")
    assert s["recovered"] == [] and s["removed"] == []


def probe_ok(url):
    from test_report_corpus import probe

    from citewatch.models import Outcome

    return probe(url, Outcome.OK, 200, "2026-01-30T00:00:00.000000Z")


def test_a_periodic_audit_compares_with_the_previous_periodic_audit_not_an_editors_one_shot(
    tmp_path,
):
    store = Store.open(tmp_path / "t.db")
    profile = main_profile
    # An editor's one-shot check found the about page dead (unconfirmed) before the first audit.
    editor_check = store.begin_run("check", ["check", "--one-shot"])
    store.save_profile(profile(), editor_check)
    ids = {r["url"]: r["id"] for r in store.query("SELECT id, url FROM urls")}
    store.set_verdict(ids[SAME], editor_check, "dead", confirmed=False)
    store.set_verdict(ids[NEWLY_BROKEN], editor_check, "alive")
    store.finish_run(editor_check, network="ok")
    audit1 = store.begin_run("audit", ["audit", "citations/"])
    store.set_verdict(ids[NEWLY_BROKEN], audit1, "failing")
    store.finish_run(audit1, network="ok")
    # The editor's one-shot audit: one 404 is enough for an unconfirmed dead.
    editor = store.begin_run("audit", ["audit", "citations/profile-test.txt", "--one-shot"])
    store.set_verdict(ids[NEWLY_BROKEN], editor, "dead", confirmed=False)
    store.finish_run(editor, network="ok")
    audit2 = store.begin_run("audit", ["audit", "citations/", "--quiet"])
    store.set_verdict(ids[NEWLY_BROKEN], audit2, "dead")  # confirmed now
    store.set_verdict(ids[SAME], audit2, "dead")  # unconfirmed → confirmed
    store.finish_run(audit2, network="ok")

    s = corpus_summary(store, audit2)
    assert (s["policy"], s["previous_run"]) == ("periodic", audit1)
    assert s["audits_not_compared"] == [{"run_id": editor, "policy": "one-shot"}]
    assert s["newly_broken"] == [NEWLY_BROKEN]  # the editor's run does not hide it
    changes = {c["url"]: (c["before"], c["after"]) for c in s["changes"]}
    assert changes == {NEWLY_BROKEN: ("failing", "dead"), SAME: ("dead (unconfirmed)", "dead")}
    # The editor's own audit compares with the previous one-shot audit: there is none.
    e = corpus_summary(store, editor)
    assert (e["policy"], e["previous_run"]) == ("one-shot", None)
    # A policy recorded in runs.counts wins over the command line.
    store.update_run(audit2, counts={"policy": {"one_shot": True}})
    assert corpus_summary(store, audit2)["previous_run"] == editor


def test_the_report_after_a_killed_run_describes_the_last_finished_run(tmp_path):
    corpus = build_corpus(tmp_path)
    killed = corpus.store.begin_run("audit", ["audit", "citations/"])  # kill -9: never finished
    corpus.store.set_verdict(_url_id(corpus.store, SAME), killed, "failing")
    data = gather(corpus.store)
    assert data.run_id == corpus.run2
    assert [p.run_id for p in data.trend] == [corpus.run1, corpus.run2]
    assert [r.run_id for r in data.interrupted] == [killed]
    assert data.summary["interrupted_runs"][0]["command"] == "audit"
    # A later audit compares with run 2, and names the killed run too.
    audit3 = corpus.store.begin_run("audit", ["audit", "citations/"])
    later = gather(corpus.store, audit3)
    assert later.diff.previous_run == corpus.run2
    assert [r.run_id for r in later.interrupted] == [killed]
    assert [p.run_id for p in later.trend] == [corpus.run1, corpus.run2, audit3]


def test_an_offline_probe_is_not_the_last_check_the_reports_describe(tmp_path):
    from test_report_corpus import probe

    from citewatch.models import Outcome

    corpus = build_corpus(tmp_path)
    store = corpus.store
    run3 = store.begin_run("audit", ["audit", "citations/"])
    when = "2026-01-30T10:00:00.000000Z"
    store.record_check(
        run3, _url_id(store, DEAD), probe(DEAD, Outcome.CONNECT_ERROR, None, when), "ok"
    )
    store.finish_run(run3, network="offline")  # the run's final word: offline
    data = gather(store, run3)
    c = records(data)[DEAD]
    assert (c.last_outcome, c.last_status) == ("not_found", 404)
    assert c.broken_reason == "the cited URL is dead (last check: not_found · HTTP 404)"
    assert (c.offline_checked, c.offline_outcome) == (when, "connect_error")
    network = data.summary["network"]
    assert (network["run_id"], network["health"]) == (run3, "offline")
    assert "nothing was judged" in network["explanation"]
    assert "connect_error 1" in network["explanation"]
    # The check's own words, when the caller has them, are used instead.
    said = gather(store, run3, network_note="network unavailable: the canary is unreachable")
    assert said.network.explanation == "network unavailable: the canary is unreachable"
    # A healthy run: no explanation; a later non-offline probe hides the offline one again.
    assert gather(store, corpus.run2).summary["network"]["health"] == "ok"


def test_what_was_broken_as_of_a_run_is_what_the_records_said_then(tmp_path):
    """The history-derived broken set of a run equals the current one when nothing happened since:
    the diff can never invent a change."""
    from citewatch.report.data import _verdict_rows, citations_as_of

    corpus = build_corpus(tmp_path)
    run = corpus.store.query("SELECT * FROM runs WHERE id = ?", [corpus.run2])[0]
    then = citations_as_of(corpus.store, run, _verdict_rows(corpus.store))
    now = {(c.profile, c.line) for c in gather(corpus.store).citations if c.broken}
    assert {(t.profile, t.line) for t in then.values() if t.broken} == now


def test_a_renamed_profile_keeps_its_citations(tmp_path):
    from test_report_corpus import second_profile

    corpus = build_corpus(tmp_path)
    run3 = corpus.store.begin_run("audit")
    corpus.store.retire_profile("citations/other.md", run3)
    renamed = second_profile()
    renamed.path = "citations/other-renamed.md"  # the same bytes under a new name
    corpus.store.save_profile(renamed, run3)
    corpus.store.finish_run(run3, network="ok")
    s = corpus_summary(corpus.store, run3)
    assert s["newly_broken_citations"] == [] and s["no_longer_broken_citations"] == []
    assert (s["broken_citations_before"], s["broken_citations"]) == (4, 4)
