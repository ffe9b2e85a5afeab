"""docs/reports.md says what the reports really contain: the CSV header, and the Markdown example, which is
rendered here from the bundled seed profile as `citewatch scan` reads it (only the verdicts, dates and
snapshots are set by hand, as the example says)."""

from __future__ import annotations

import re
from pathlib import Path

from citewatch.extract import read_profile
from citewatch.extract.manifest import load_manifest
from citewatch.models import Outcome, ProbeResult, Snapshot
from citewatch.report import write_reports
from citewatch.report.csv_report import COLUMNS
from citewatch.store import Store

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "reports.md").read_text(encoding="utf-8")
PDF = "https://www.washingtoninstitute.org/sites/default/files/pdf/PolicyNote52-2.pdf"
WHEN = "2026-03-04T09:12:00.000000Z"


def test_the_documented_csv_header_is_the_real_one():
    header = DOC.split("The CSV header, in order:")[1].split("```")[1].strip()
    assert header.split(",") == list(COLUMNS)


def test_the_markdown_example_is_what_the_seed_profile_gives(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # profile paths are stored relative to where citewatch runs
    profile = read_profile(
        Path("citations/profile-liwa-al-baqir.txt"), manifest=load_manifest(Path("citations"))
    )
    store = Store.open(tmp_path / "seed.db")
    run = store.begin_run("audit")
    store.save_profile(profile, run)
    urls = {r["url"]: r["id"] for r in store.query("SELECT id, url FROM urls")}
    alsouria = next(u for u in urls if "alsouria" in u)
    for url, url_id in urls.items():
        outcome, status, verdict = {
            PDF: (Outcome.NOT_FOUND, 404, "dead"),
            alsouria: (Outcome.DNS_ERROR, None, "dead"),
        }.get(url, (Outcome.OK, 200, "alive"))
        store.record_check(
            run, url_id, ProbeResult(url=url, outcome=outcome, checked_at=WHEN, status=status), "ok"
        )
        store.set_verdict(url_id, run, verdict)
    store.record_snapshots(
        urls[PDF], run, [Snapshot(PDF, "20230601000000", PDF, 200, "application/pdf", "D", 9)]
    )
    store.record_lookup(urls[PDF], run, "cdx", "found", 1, None)
    store.record_lookup(urls[alsouria], run, "cdx", "none", 0, None)
    store.record_snapshot_check(
        run,
        urls[alsouria],
        timestamp="20171017230858",
        checked_at=WHEN,
        status=404,
        memento_datetime=None,
        soft_404=0,
        error="no capture",
    )
    store.finish_run(run, network="ok")
    write_reports(store, tmp_path / "r", ["md"], run_id=run)
    rendered = (tmp_path / "r" / "profile-liwa-al-baqir.md").read_text(encoding="utf-8")

    example = DOC.split("## A Markdown report, abridged")[1].split("```markdown")[1].split("```")[0]
    lines = [line for line in example.splitlines() if line.strip()]
    assert len(lines) > 30
    since = re.compile(r"since \d{4}-\d\d-\d\d")  # verdicts are dated when the test runs
    rendered_any_day = since.sub("since DAY", rendered)
    for line in lines:
        # "…" abridges: every piece around it must be in the report as it is.
        for piece in since.sub("since DAY", line).split("…"):
            assert piece in rendered_any_day, f"{piece!r} (from the example's line {line!r})"
    # The PDF's citation as scanned: no anchor text, at line 71, column 301.
    assert (
        "### 9. line 71 · Affiliate relationships — `" + PDF + "#pdfjs.action=download`" in rendered
    )
    assert "verbally attacked |" not in rendered and "— verbally attacked" not in rendered
