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


def test_config_ignore_globs_count_in_the_reports_as_in_the_exit_code(tmp_path):
    """`ignore = [...]` in citewatch.toml: the exit code obeyed it, the reports did not."""
    corpus = build_corpus(tmp_path)
    dead = [c for c in gather(corpus.store).citations if c.broken and not c.archived_timestamp]
    assert dead
    pattern = dead[0].url.rsplit("/", 1)[0] + "/*"
    data = gather(corpus.store, ignore_patterns=[pattern])
    matched = [c for c in data.citations if c.url and c.url.startswith(pattern[:-1])]
    assert matched and all(c.ignored and "ignore pattern" in c.ignored for c in matched)
    assert not any(c.broken for c in matched)
    broken_urls = {c.url for c in data.citations if c.broken}
    rows = corpus.store.broken_citations()
    exit_urls = {r["url"] for r in rows if not r["url"].startswith(pattern[:-1])}
    assert broken_urls == exit_urls
    patterns_exit = judged_exit_code(corpus.store, "ok", [pattern])
    assert patterns_exit == (1 if broken_urls else 0)
