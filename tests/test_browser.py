"""The HTML report in a real browser: headless Chromium renders it, runs its script, and we read the DOM.

What this proves that string checks cannot: the page's own script really runs under its
Content-Security-Policy (the filter and sort work, so the CSP hash is right), and hostile profile text
(``<script>``, ``<img onerror>``) does not run — neither with the CSP, nor with the CSP removed (so the
escaping alone holds).

Skipped only when no Chromium binary exists (``apt-get install chromium``; CI installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report_corpus import build_corpus

from citewatch.report import write_reports

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium binary on PATH (apt-get install chromium): HTML report not browser-tested",
    ),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    corpus = build_corpus(tmp)
    write_reports(corpus.store, tmp / "reports", ["html"], run_id=corpus.run2)
    return tmp / "reports"


def chromium(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(tmp_path: Path, page: Path, query: str = "") -> str:
    return chromium(tmp_path, "--dump-dom", page.as_uri() + query)


def visible_rows(dom: str) -> list[str]:
    """The citation rows (their first cell: the line) that are not hidden."""
    rows = re.findall(r"<tr data-verdict=[^>]*>.*?</tr>", dom, re.S)
    return [
        re.search(r'<td data-v="(\d+)"', r).group(1)
        for r in rows
        if " hidden" not in r.split(">")[0]
    ]


def html_tag(dom: str) -> str:
    return re.search(r"<html[^>]*>", dom).group(0)


def test_table_renders_and_hostile_text_does_not_run(report_dir, tmp_path):
    dom = dump_dom(tmp_path, report_dir / "profile-test.html")
    assert "data-pwned" not in html_tag(dom), "a script from profile text ran"
    assert "<img" not in dom
    assert len(re.findall(r"<script\b", dom)) == 1
    assert "&lt;script&gt;document.documentElement.setAttribute" in dom  # shown as text
    assert len(visible_rows(dom)) == 12
    assert "12 of 12 shown" in dom, "the report's own script did not run (CSP hash?)"
    assert 'class="cw-ready"' in dom


def test_escaping_alone_holds_without_the_csp(report_dir, tmp_path):
    page = (report_dir / "profile-test.html").read_text()
    stripped = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    assert stripped != page
    copy = tmp_path / "no-csp.html"
    copy.write_text(stripped)
    dom = dump_dom(tmp_path, copy)
    assert "data-pwned" not in html_tag(dom)
    assert "<img" not in dom and "12 of 12 shown" in dom


def test_filter_from_the_address(report_dir, tmp_path):
    page = report_dir / "profile-test.html"
    dom = dump_dom(tmp_path, page, "?q=fresh")
    assert visible_rows(dom) == ["24"] and "1 of 12 shown" in dom
    dom = dump_dom(tmp_path, page, "#verdict=dead")
    assert visible_rows(dom) == ["10", "12", "24", "28"] and "4 of 12 shown" in dom
    dom = dump_dom(tmp_path, page, "?q=OLD.example&role=navigation")  # case-insensitive, and-ed
    assert visible_rows(dom) == ["18"]
    dom = dump_dom(tmp_path, page, "?q=old.example&role=source")
    assert (
        visible_rows(dom) == []
        and "0 of 12 shown" in dom
        and re.search(r"class=\"[^\"]*cw-empty", dom)
    )


def test_sort_from_the_address(report_dir, tmp_path):
    dom = dump_dom(tmp_path, report_dir / "profile-test.html", "?sort=-line")
    lines = visible_rows(dom)
    assert lines == sorted(lines, key=int, reverse=True) and lines[0] == "31"
    dom = dump_dom(tmp_path, report_dir / "profile-test.html", "?sort=verdict")
    verdicts = re.findall(r'<tr data-verdict="([a-z]+)"', dom)
    assert verdicts[:4] == ["dead"] * 4 and verdicts[-2:] == ["skipped", "skipped"]


def test_index_page_renders_with_chart_and_a_screenshot(report_dir, tmp_path):
    dom = dump_dom(tmp_path, report_dir / "index.html")
    assert "<svg" in dom and "Newly broken" in dom
    assert len(visible_rows(dom)) == 4  # the corpus's broken citations
    shot = tmp_path / "index.png"
    chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1400,1000",
        (report_dir / "index.html").as_uri(),
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
