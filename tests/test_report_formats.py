"""The report files: what is written, and that hostile profile text stays inert in every format."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re

import pytest
from markdown_it import MarkdownIt
from test_report_corpus import (
    DEAD,
    DEAD_NO_SNAPSHOT,
    FORMULA_SECTION,
    JS_URL,
    NEWLY_BROKEN,
    RECOVERED,
    XSS_ANCHOR,
    build_corpus,
)

from citewatch.report import write_reports
from citewatch.report.csv_report import COLUMNS, neutralise
from citewatch.report.safe import is_web_url, md_code, md_text
from citewatch.store import Store


@pytest.fixture
def reports(tmp_path):
    corpus = build_corpus(tmp_path)
    out = tmp_path / "reports"
    written = write_reports(corpus.store, out, run_id=corpus.run2)
    return out, written


def test_every_format_writes_its_files(reports):
    out, written = reports
    assert sorted(p.name for p in written) == sorted(
        [
            "profile-test.md",
            "other.md",
            "index.md",
            "trend.svg",
            "profile-test.html",
            "other.html",
            "index.html",
            "citations.json",
            "citations.csv",
        ]
    )
    assert all(p.parent == out and p.stat().st_size > 0 for p in written)
    assert not list(out.glob(".*.tmp"))


def test_only_the_chosen_formats_are_written(tmp_path):
    corpus = build_corpus(tmp_path)
    written = write_reports(corpus.store, tmp_path / "r", ["csv"])
    assert [p.name for p in written] == ["citations.csv"]
    with pytest.raises(ValueError, match="unknown report format"):
        write_reports(corpus.store, tmp_path / "r", ["pdf"])


# -- Markdown ------------------------------------------------------------------------------------------


def test_markdown_index_carries_the_run_to_run_diff(reports):
    out, _ = reports
    index = (out / "index.md").read_text()
    assert "2 newly broken" in index and "1 recovered" in index
    newly = index.split("### Newly broken (2)")[1].split("###")[0]
    assert f"[{md_text(NEWLY_BROKEN)}](<{NEWLY_BROKEN}>)" in newly
    assert DEAD_NO_SNAPSHOT in newly and RECOVERED not in newly
    assert RECOVERED in index.split("### Recovered (1)")[1].split("###")[0]
    assert "| link-rot rate | 57.1% (4 dead of 7 judged source URLs) |" in index
    assert "| archive coverage | 30.0% (3 of 10 URLs have a 2xx snapshot) |" in index
    assert "![Verdicts per audit run](trend.svg)" in index
    assert "[profile-test.md](profile-test.md)" in index


def test_markdown_profile_shows_each_citations_provenance(reports):
    out, _ = reports
    md = (out / "profile-test.md").read_text()
    block = md.split("### 1. line 10")[1].split("### 2.")[0]
    assert "- **Where:** `citations/profile-test.txt:10`, column 1" in block
    assert "- **Role:** source" in block
    assert "- **Verdict:** **dead** since" in block
    assert "- **Last check:** not\\_found · HTTP 404 · 2026-01-10" in block
    replay = f"https://web.archive.org/web/20231015080000/{DEAD}"
    assert f"- **Suggested replacement:** [{md_text(replay)}](<{replay}>) (best snapshot)" in block
    assert "17 days before citing" in block
    assert f"- **Evidence:** `citewatch history {DEAD}`" in block
    # Dead with no snapshot, and the archive never asked: no archived copy known *yet*.
    # Save Page Now is never asked for a dead URL (it would only archive the 404), so the report
    # must not send the reader there.
    no_copy = md.split("### 2. line 12")[1].split("### 3.")[0]
    assert (
        "- **Suggested replacement:** **none: no archived copy known yet** — the Wayback Machine "
        "has not been asked about this URL (run citewatch archive); otherwise look for the page's "
        "new location or another source"
    ) in no_copy
    assert "--save" not in md and "--save" not in (out / "index.html").read_text()


def test_a_dead_link_the_archive_has_no_copy_of_sends_the_reader_elsewhere(tmp_path):
    corpus = build_corpus(tmp_path)
    url_id = corpus.store.query("SELECT id FROM urls WHERE url = ?", [DEAD_NO_SNAPSHOT])[0]["id"]
    corpus.store.record_lookup(url_id, corpus.run2, "cdx", "none", 0, None)
    out = tmp_path / "reports"
    write_reports(corpus.store, out, run_id=corpus.run2)
    md = (out / "profile-test.md").read_text()
    no_copy = md.split("### 2. line 12")[1].split("### 3.")[0]
    assert (
        "- **Suggested replacement:** **none: no archived copy is known** — look for the page's "
        "new location or another source"
    ) in no_copy
    assert "| 12 | the report |" in md and "**no archived copy known**" in md
    page = (out / "profile-test.html").read_text()
    assert "<strong>no archived copy is known</strong>" in page
    assert "look for the page&#39;s new location or another source" in page
    rows = list(csv.DictReader(io.StringIO((out / "citations.csv").read_text())))
    row = next(r for r in rows if r["cited_url"] == DEAD_NO_SNAPSHOT)
    assert row["suggested_replacement"] == "" and row["replacement_note"] == (
        "no archived copy is known: look for the page's new location or another source"
    )
    assert "--save" not in md + page


def test_profile_pages_do_not_count_skipped_links_as_sources(reports):
    out, _ = reports
    # profile-test: 12 citations; 10 have role "source", one of them the javascript: link (skipped).
    md = (out / "profile-test.md").read_text()
    assert "**12 citations** (9 sources)" in md
    page = (out / "profile-test.html").read_text()
    assert '<div class="cw-sub">9 sources</div>' in page
    doc = json.loads((out / "citations.json").read_text())
    profile = next(p for p in doc["profiles"] if p["slug"] == "profile-test")
    assert (profile["citations"], profile["sources"]) == (12, 9)


def test_markdown_never_lets_profile_text_become_markup_or_links(reports):
    out, _ = reports
    md = (out / "profile-test.md").read_text()
    # Render it the way a forge would (CommonMark with raw HTML allowed, GFM tables).
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert "<script" not in rendered and "<img" not in rendered and "<b>" not in rendered
    assert "&lt;script&gt;document.documentElement" in rendered
    hrefs = re.findall(r'href="([^"]*)"', rendered)
    assert hrefs and all(h.startswith("https://") or h == "index.md" for h in hrefs)
    assert md_text(XSS_ANCHOR) in md
    assert "](javascript:" not in md and "(<javascript:" not in md
    assert md_code(JS_URL) in md
    assert "Bo \\<b\\>Bold\\</b\\>" in md


# -- HTML ----------------------------------------------------------------------------------------------


def test_html_escapes_profile_text_and_links_only_http_urls(reports):
    out, _ = reports
    page = (out / "profile-test.html").read_text()
    assert "<script>document" not in page and "<img" not in page
    assert "&lt;script&gt;document.documentElement.setAttribute(&#39;data-pwned&#39;" in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith(("http://", "https://")) or h == "index.html" for h in hrefs)
    assert f"<code>{JS_URL}</code>" in page
    assert "Bo &lt;b&gt;Bold&lt;/b&gt;" in page


def test_html_is_self_contained_and_its_csp_allows_exactly_its_own_script_and_style(reports):
    out, _ = reports
    for name in ("index.html", "profile-test.html"):
        page = (out / name).read_text()
        assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", page)
        scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
        styles = re.findall(r"<style>(.*?)</style>", page, re.S)
        assert len(scripts) == 1 and len(styles) == 1
        csp = html.unescape(
            re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
        )

        def digest(text):
            return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

        assert f"script-src 'sha256-{digest(scripts[0])}'" in csp
        assert f"style-src 'sha256-{digest(styles[0])}'" in csp
        assert "default-src 'none'" in csp and "img-src 'none'" in csp


def test_html_table_has_a_row_per_citation_with_filter_attributes(reports):
    out, _ = reports
    page = (out / "profile-test.html").read_text()
    rows = re.findall(r'<tr data-verdict="([a-z]+)" data-role="([a-z]+)"', page)
    assert len(rows) == 12
    assert ("dead", "source") in rows and ("moved", "navigation") in rows
    index = (out / "index.html").read_text()
    assert "<svg" in index and "Verdicts per audit run" in index
    assert len(re.findall(r'<tr data-verdict="dead"', index)) == 4  # the broken citations


# -- CSV and JSON --------------------------------------------------------------------------------------


def test_csv_has_a_row_per_citation_and_neutralises_formulas(reports):
    out, _ = reports
    text = (out / "citations.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 14
    dead = next(r for r in rows if r["cited_url"] == DEAD and r["profile"].endswith(".txt"))
    assert dead["section"] == "'" + FORMULA_SECTION
    assert dead["line"] == "10" and dead["last_status"] == "404"
    assert dead["snapshot_days_from_citation"] == "-17"  # a number, not neutralised
    assert dead["suggested_replacement"].startswith("https://web.archive.org/web/20231015080000/")
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@")), value
            assert not value.startswith("-") or re.fullmatch(r"-\d+", value), value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12", "-12"),
        ("3.5", "3.5"),
        (-17, -17),
        (None, None),
        ("plain", "plain"),
        ("a=b", "a=b"),
    ],
)
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def test_json_has_the_summary_profiles_and_citations(reports):
    out, _ = reports
    doc = json.loads((out / "citations.json").read_text())
    assert doc["format_version"] == 1 and doc["run_id"] is not None
    assert doc["summary"]["newly_broken"] == sorted([NEWLY_BROKEN, DEAD_NO_SNAPSHOT])
    assert {p["slug"] for p in doc["profiles"]} == {"profile-test", "other"}
    assert len(doc["citations"]) == 14
    dead = next(c for c in doc["citations"] if c["cited_url"] == DEAD and c["line"] == 10)
    assert dead["anchor_text"] == XSS_ANCHOR  # data stays data; escaping is the viewer's job
    assert dead["best_snapshot"]["timestamp"] == "20231015080000"
    assert dead["broken"] is True and dead["drift"]["state"] == "unknown"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.org/a?b=c#d", True),
        ("HTTP://EXAMPLE.ORG/", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        (" https://example.org/", False),
        ('https://example.org/"onmouseover=alert(1)', False),
        ("data:text/html,<script>", False),
        ("//example.org/", False),
        ("https:///nohost", False),
        ("", False),
        (None, False),
    ],
)
def test_only_http_urls_are_web_urls(url, ok):
    assert is_web_url(url) is ok


def test_an_empty_database_still_writes_every_report(tmp_path):
    store = Store.open(tmp_path / "t.db")
    written = write_reports(store, tmp_path / "r")
    assert sorted(p.name for p in written) == [
        "citations.csv",
        "citations.json",
        "index.html",
        "index.md",
    ]
    doc = json.loads((tmp_path / "r" / "citations.json").read_text())
    assert doc["citations"] == [] and doc["summary"]["citations"] == 0
    assert "nothing to compare with yet" in (tmp_path / "r" / "index.md").read_text()


def test_reports_of_profiles_that_left_the_corpus_are_removed(tmp_path):
    """Rewriting a format removes what it wrote last time and not now, and nothing else."""
    corpus = build_corpus(tmp_path)
    out = tmp_path / "reports"
    write_reports(corpus.store, out, run_id=corpus.run2)
    assert (out / "other.md").is_file() and (out / "other.html").is_file()
    (out / "notes.md").write_text("the user's own file\n")
    manifest = json.loads((out / ".citewatch-reports.json").read_text())
    assert "other.md" in manifest["md"] and "other.html" in manifest["html"]
    # A hand-edited manifest cannot reach outside the folder, or files of another kind.
    manifest["md"] += ["../outside.md", "citations.csv", ".hidden.md"]
    (out / ".citewatch-reports.json").write_text(json.dumps(manifest))
    (tmp_path / "outside.md").write_text("outside\n")

    gone = corpus.store.query("SELECT path FROM profiles WHERE path LIKE '%other%'")[0]["path"]
    corpus.store.db.execute("DELETE FROM citations WHERE profile_id IN "
                            "(SELECT id FROM profiles WHERE path = ?)", [gone])  # fmt: skip
    corpus.store.db.execute("DELETE FROM profiles WHERE path = ?", [gone])
    write_reports(corpus.store, out, ["md"], run_id=corpus.run2)

    assert not (out / "other.md").exists()  # md was rewritten: its stale file is gone
    assert (out / "other.html").is_file()  # html was not asked for: left as it was
    assert (out / "profile-test.md").is_file() and (out / "index.md").is_file()
    assert (out / "notes.md").read_text() == "the user's own file\n"
    assert (tmp_path / "outside.md").is_file() and (out / "citations.csv").is_file()
    after = json.loads((out / ".citewatch-reports.json").read_text())
    assert "other.md" not in after["md"] and "other.html" in after["html"]


def test_two_databases_reporting_into_one_folder_never_remove_each_others_files(tmp_path):
    first, second = build_corpus(tmp_path / "one"), build_corpus(tmp_path / "two")
    out = tmp_path / "site"
    write_reports(first.store, out, ["md"])
    gone = second.store.query("SELECT id FROM profiles WHERE path LIKE '%other%'")[0]["id"]
    second.store.db.execute("DELETE FROM citations WHERE profile_id = ?", [gone])
    second.store.db.execute("DELETE FROM profiles WHERE id = ?", [gone])
    write_reports(second.store, out, ["md"])
    assert (out / "other.md").is_file()  # the first database's report: not the second's to remove
    write_reports(second.store, out, ["md"])
    assert (out / "other.md").is_file()  # still not: the second database never wrote it


# -- the run the reports describe: network health, interrupted runs, citation-level changes ------------


def _offline_third_audit(tmp_path):
    from test_report_corpus import probe

    from citewatch.models import Outcome

    corpus = build_corpus(tmp_path)
    store = corpus.store
    run3 = store.begin_run("audit", ["audit", "citations/"])
    url_id = store.query("SELECT id FROM urls WHERE url = ?", [DEAD])[0]["id"]
    when = "2026-01-30T10:00:00.000000Z"
    store.record_check(run3, url_id, probe(DEAD, Outcome.CONNECT_ERROR, None, when), "ok")
    store.finish_run(run3, network="offline")
    out = tmp_path / "offline-reports"
    write_reports(store, out, run_id=run3)
    return out, run3


def test_reports_of_an_offline_run_say_so_and_describe_the_last_real_check(tmp_path):
    out, run3 = _offline_third_audit(tmp_path)
    index = (out / "index.md").read_text()
    head = index.split("## Summary")[0]
    assert f"**Network: offline (run {run3})** — our own network was unavailable" in head
    assert "nothing was judged" in head
    assert f"| network | offline (run {run3}) |" in index
    profile = (out / "profile-test.md").read_text()
    assert f"**Network: offline (run {run3})**" in profile.split("## ")[0]
    details = profile.split("### 1. line 10")[1].split("### 2.")[0]
    assert "- **Last check:** not\\_found · HTTP 404 · 2026-01-10" in details
    assert "a later probe (connect\\_error · 2026-01-30) was made while our own network" in details
    assert "(last check: not\\_found · HTTP 404)" in details
    assert "connect\\_error" not in index.split("## Broken citations")[1]
    page = (out / "index.html").read_text()
    assert 'data-cw-network="offline"' in page and "cw-banner-bad" in page
    assert f"Network: offline (run {run3}) — our own network was unavailable" in page
    doc = json.loads((out / "citations.json").read_text())
    assert (doc["network"]["health"], doc["network"]["run_id"]) == ("offline", run3)
    assert doc["summary"]["network"] == doc["network"]
    record = next(c for c in doc["citations"] if c["cited_url"] == DEAD)
    assert (record["last_outcome"], record["offline_outcome"]) == ("not_found", "connect_error")
    with (out / "citations.csv").open(newline="", encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["cited_url"] == DEAD)
    assert (row["last_outcome"], row["offline_outcome"]) == ("not_found", "connect_error")


def test_a_healthy_run_shows_its_network_quietly(reports):
    out, _ = reports
    index = (out / "index.md").read_text()
    assert "Network: ok (run 2)." in index.split("## Summary")[0]
    assert "Network:" not in (out / "profile-test.md").read_text()  # only when it is not ok
    assert json.loads((out / "citations.json").read_text())["network"]["health"] == "ok"


def test_the_report_after_a_killed_run_names_it_and_describes_the_last_finished_run(tmp_path):
    corpus = build_corpus(tmp_path)
    killed = corpus.store.begin_run("audit", ["audit", "citations/"])  # never finished
    out = tmp_path / "r"
    write_reports(corpus.store, out)
    index = (out / "index.md").read_text()
    assert f"from run {corpus.run2}." in index and f"from run {killed}" not in index
    assert f"**Run {killed} (audit, started " in index
    assert (
        f"never finished: it was interrupted (killed) or is still running. This report describes run {corpus.run2}, the last finished one"
        in index
    )
    trend = index.split("## Trend")[1].split("## Profiles")[0]
    assert [line.split(" | ")[0] for line in trend.splitlines() if line.startswith("| ")][2:] == [
        f"| {corpus.run1}",
        f"| {corpus.run2}",
    ]
    page = (out / "index.html").read_text()
    assert f'data-cw-interrupted="{killed}"' in page
    assert (
        json.loads((out / "citations.json").read_text())["interrupted_runs"][0]["run_id"] == killed
    )


def test_the_index_tells_recovered_from_removed_citations(tmp_path):
    corpus = build_corpus(tmp_path)
    run3 = corpus.store.begin_run("audit", ["audit", "citations/"])
    corpus.store.retire_profile("citations/other.md", run3)
    corpus.store.finish_run(run3, network="ok")
    out = tmp_path / "r"
    write_reports(corpus.store, out, run_id=run3)
    index = (out / "index.md").read_text()
    assert "**0 newly broken**, **0 recovered**, **1 removed**" in index
    assert f"Broken citations: 4 at audit run {corpus.run2}, 3 now." in index
    removed = index.split("### Removed (1)")[1].split("###")[0]
    assert "`citations/other.md:5`" in removed and "profile removed" in removed
    assert "citations/other.md left the corpus (run 3)" in removed
    page = (out / "index.html").read_text()
    assert "0 recovered, 1 removed" in page and "profile removed" in page
