"""`history`: the evidence trail of one URL, complete and in order."""

from __future__ import annotations

import json

from test_report_corpus import (
    ARCHIVED_CITED,
    ARCHIVED_ORIGINAL,
    DEAD,
    DEAD_NO_SNAPSHOT,
    IGNORED,
    SAME,
    build_corpus,
    main_profile,
)

from citewatch.history import url_history


def test_every_check_with_its_run_and_network_health(tmp_path):
    corpus = build_corpus(tmp_path)
    h = url_history(corpus.store, DEAD_NO_SNAPSHOT)
    assert h["url"] == DEAD_NO_SNAPSHOT
    assert [(c["run_id"], c["outcome"], c["status"], c["network"]) for c in h["checks"]] == [
        (corpus.run1, "gone", 410, "ok"),
        (corpus.run2, "gone", 410, "ok"),
    ]
    # `confirmed` means something for dead only (False: one-shot); None for the rest.
    assert [(v["run_id"], v["verdict"], v["confirmed"]) for v in h["verdicts"]] == [
        (corpus.run1, "alive", None),
        (corpus.run2, "dead", False),
    ]
    assert h["verdict"] == "dead" and h["confirmed"] is False
    json.dumps(h)  # the CLI prints it with --json


def test_captures_save_requests_and_citations(tmp_path):
    corpus = build_corpus(tmp_path)
    h = url_history(corpus.store, SAME)
    assert [s["timestamp"] for s in h["snapshots"]] == ["20231101000000"]
    assert [(c["status"], c["timestamp"]) for c in h["captures"]] == [("success", "20260110100501")]
    assert sorted((c["path"], c["line"]) for c in h["citations"]) == [
        ("citations/other.md", 3),
        ("citations/profile-test.txt", 14),
    ]
    dead = url_history(corpus.store, DEAD)
    assert [s["status"] for s in dead["snapshots"]] == [200, 200, 404, 200]


def test_a_wayback_link_or_an_unnormalised_form_finds_the_original(tmp_path):
    corpus = build_corpus(tmp_path)
    h = url_history(corpus.store, ARCHIVED_CITED)
    assert h["url"] == ARCHIVED_ORIGINAL
    assert h["citations"][0]["archived_timestamp"] == "20171017230858"
    assert url_history(corpus.store, "HTTPS://www.EXAMPLE.com/about")["url"] == SAME
    assert url_history(corpus.store, "https://never.example/") is None


def test_ignores_and_superseded_citations_are_part_of_the_trail(tmp_path):
    corpus = build_corpus(tmp_path)
    assert url_history(corpus.store, IGNORED)["ignored"] == "known flaky host, checked by hand"
    rescan = corpus.store.begin_run("scan")
    corpus.store.save_profile(main_profile(sha="sha-2"), rescan)
    h = url_history(corpus.store, DEAD)
    assert [c["line"] for c in h["past_citations"]] == [10]
    assert {c["path"] for c in h["citations"]} == {
        "citations/profile-test.txt",
        "citations/other.md",
    }


def test_confirmed_is_only_given_for_dead_verdicts(tmp_path):
    corpus = build_corpus(tmp_path)
    failing = url_history(corpus.store, IGNORED)  # stored with confirmed=1, like every verdict
    assert failing["verdict"] == "failing" and failing["confirmed"] is None
    assert [(v["verdict"], v["confirmed"]) for v in failing["verdicts"]] == [("failing", None)]
    dead = url_history(corpus.store, DEAD)
    assert dead["verdict"] == "dead" and dead["confirmed"] is True
