"""One rule for "broken": Store.broken_citations (exit code 1) and the reports agree, for cited
archive links too, in every replay situation (tests/test_report_archive_links.py builds them)."""

from __future__ import annotations

from typing import Any

import pytest
from test_report_archive_links import CITED_TS, PROFILE, cited, not_archived, replay
from test_report_corpus import ARCHIVED_CITED, ARCHIVED_ORIGINAL, build_corpus

from citewatch.cli import judged_exit_code
from citewatch.report import gather

SITUATIONS: dict[str, list[dict[str, Any]]] = {
    "never replayed": [],
    "not archived": [{"status": 404, "memento_datetime": None, "error": "no capture"}],
    "captured not-found page": [{"status": 200, "memento_datetime": CITED_TS, "soft_404": 1}],
    "capture is not a page": [{"status": 404, "memento_datetime": CITED_TS}],
    "verified": [{"status": 200, "memento_datetime": CITED_TS}],
    "redirected to the nearest": [{"status": 200, "memento_datetime": "20171020000000"}],
    "archive failing (5xx)": [{"status": 503, "memento_datetime": None}],
    "not archived, then 502": [
        {"status": 404, "memento_datetime": None},
        {"status": 502, "memento_datetime": None},
    ],
    "not archived, then verified": [
        {"status": 404, "memento_datetime": None},
        {"status": 200, "memento_datetime": CITED_TS},
    ],
}


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_the_exit_code_and_the_reports_call_the_same_archive_links_broken(tmp_path, situation):
    corpus = build_corpus(tmp_path)
    for day, fields in enumerate(SITUATIONS[situation], start=20):
        replay(corpus.store, corpus.run2, f"2026-01-{day}T10:00:00Z", **fields)
    in_report = cited(corpus.store).broken
    in_store = any(
        row["cited_url"] == ARCHIVED_CITED and row["path"] == PROFILE
        for row in corpus.store.broken_citations()
    )
    assert in_store == in_report
    assert in_report == (
        situation in {"not archived", "captured not-found page", "capture is not a page"}
        or situation == "not archived, then 502"
    )


def test_every_broken_citation_of_the_reports_sets_exit_code_1(tmp_path):
    corpus = build_corpus(tmp_path)
    not_archived(corpus.store, corpus.run2)
    report = {(c.profile, c.line, c.column) for c in gather(corpus.store).citations if c.broken}
    store = {(r["path"], r["line"], r["col"]) for r in corpus.store.broken_citations()}
    assert report == store and report
    assert judged_exit_code(corpus.store, "ok") == 1
    corpus.store.add_ignore(ARCHIVED_ORIGINAL, "checked by hand")
    assert ARCHIVED_CITED not in {r["cited_url"] for r in corpus.store.broken_citations()}
