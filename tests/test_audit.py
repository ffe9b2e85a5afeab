"""`citewatch audit` end to end, as a user runs it: the real CLI in a subprocess, over real sockets,
against the simulated web (HTTP and HTTPS, test CA) and the simulated Wayback Machine (HTTPS),
with a real SQLite file — twice, with a link dying and another recovering in between.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.simwayback import Capture, SimWayback
from support.simweb import Host, Reply, Request, SimWeb, page

ACCESS, SECRET = "AUDIT-ACCESS-KEY-0001", "AUDIT-SECRET-KEY-0002"

PROFILE = """\
---
title: Profile: Test Brigade
authors: A. Writer, B. Author
date: 2023-11-01
---

# Profile: Test Brigade

## History

The brigade was founded in 2012, according to [the founding report](https://news.test/ok/founding).
Its leader later spoke [at a rally](https://news.test/dies) that was widely covered.
A [regional outlet](http://news.test/recovers) described the group's checkpoints.

## Affiliate relationships

- [=HYPERLINK("http://evil.example/","click")](https://news.test/ok/formula) lists its funders.
- [<script>document.title='PWNED'</script>](https://news.test/ok/xss) reported the split.
- An archived statement: <https://web.archive.org/web/20171017230858/https://old.test/ok/statement>.
"""


@pytest.fixture
def world(tmp_path: Path, make_simweb, make_simwayback):
    """The simulated web and archive, a corpus folder, a config file and a CA bundle."""
    state = {"dies": 200, "recovers": 404}

    def switchable(name: str):
        def reply(request: Request) -> Reply:
            status = state[name]
            body = page("A page", "Real content about the brigade.") if status == 200 else b"gone"
            return Reply(status=status, body=body, headers=[("Content-Type", "text/html")])

        return reply

    web: SimWeb = make_simweb(
        {
            "news.test": Host(
                routes={"/dies": switchable("dies"), "/recovers": switchable("recovers")}
            )
        }
    )
    wayback: SimWayback = make_simwayback(
        {
            "https://news.test/dies": [
                Capture("20230105120000"),
                Capture(
                    "20230901080000"
                ),  # the latest good capture before 2023-11-01: the one to use
                Capture("20231015000000", status=404),
                Capture("20240301000000"),
            ],
            "http://news.test/recovers": [Capture("20231201000000")],
            "https://news.test/ok/founding": [Capture("20231020000000")],
            "https://old.test/ok/statement": [Capture("20171017230858")],
        },
        tls=True,
    )
    corpus = tmp_path / "citations"
    corpus.mkdir()
    (corpus / "test-brigade.md").write_text(PROFILE, encoding="utf-8")
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(Path(web.ca_path).read_text() + Path(wayback.ca_path).read_text())
    config = tmp_path / "citewatch.toml"
    config.write_text(
        "cdx_per_minute = 600\nspn_per_minute_keys = 600\nspn_per_minute_anon = 600\n"
        'spn_poll_interval = "50ms"\nspn_poll_timeout = "5s"\nbackoff = 0\nretries = 1\n'
    )
    connect_to = [
        *wayback.connect_to,
        *web.connect_to,
    ]  # the archive's rule first: first match wins
    return {
        "tmp": tmp_path,
        "state": state,
        "web": web,
        "wayback": wayback,
        "corpus": corpus,
        "args": [
            "--db",
            str(tmp_path / "audit.db"),
            "--config",
            str(config),
            "--out",
            str(tmp_path / "reports"),
            "--cacert",
            str(bundle),
            "--wayback-url",
            wayback.base_url,
            "--timeout",
            "3",
            *[arg for spec in connect_to for arg in ("--connect-to", spec)],
        ],
    }


def citewatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IA_ACCESS_KEY": ACCESS, "IA_SECRET_KEY": SECRET, "CITEWATCH_DEBUG": "1"}
    return subprocess.run(
        [sys.executable, "-m", "citewatch", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def audit_json(world, *flags: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """``citewatch audit CORPUS --json FLAGS…`` in the test world; the run and its document."""
    done = citewatch(
        "audit", str(world["corpus"]), "--json", *flags, *world["args"], cwd=world["tmp"]
    )
    assert done.stdout, done.stderr
    return done, json.loads(done.stdout)


def audit(world, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """The editor's audit: one definitive failure is broken (unconfirmed)."""
    return audit_json(world, "--one-shot", *extra)


def network_down_args(world) -> list[str]:
    """The audit's arguments with our network "down": every connection (the archive's too)
    goes to a closed port."""
    args = list(world["args"])
    kept = [
        a
        for i, a in enumerate(args)
        if a != "--connect-to" and (i == 0 or args[i - 1] != "--connect-to")
    ]
    return [*kept, "--connect-to", f"::127.0.0.1:{world['web'].closed_port}"]


def verdicts(document: dict) -> dict[str, str]:
    return {item["url"]: item["verdict"] for item in document["check"]["urls"]}


def test_two_audits_report_what_broke_and_what_recovered(world):
    first, doc1 = audit(world)
    assert first.returncode == 1, first.stderr  # the 404 is broken (one-shot: unconfirmed)
    assert doc1["check"]["run"]["network"] == "ok"
    v1 = verdicts(doc1)
    assert v1["https://news.test/dies"] == "alive"
    assert v1["http://news.test/recovers"] == "dead"
    assert v1["https://news.test/ok/founding"] == "alive"
    assert (
        v1["https://old.test/ok/statement"] == "alive"
    )  # a cited archive link's original is checked too
    assert doc1["summary"]["previous_run"] is None

    world["state"].update(dies=404, recovers=200)
    second, doc2 = audit(world, "--all")
    assert second.returncode == 1, second.stderr
    v2 = verdicts(doc2)
    assert v2["https://news.test/dies"] == "dead"
    assert v2["http://news.test/recovers"] == "alive"
    assert doc2["summary"]["previous_run"] == doc1["run"]["id"]
    assert "https://news.test/dies" in doc2["summary"]["newly_broken"]
    assert "http://news.test/recovers" in doc2["summary"]["recovered"]
    # exit 1 says what is broken in the audit's JSON too, as check --json does
    assert "https://news.test/dies" in {item["url"] for item in doc2["check"]["broken"]}
    assert len(doc2["check"]["broken"]) == doc2["summary"]["broken_citations"]

    # The index carries the run-to-run diff in plain Markdown too.
    index_md = (world["tmp"] / "reports" / "index.md").read_text(encoding="utf-8")
    assert "https://news.test/dies" in index_md

    # The editor's fix: the dead link is replaced by the best snapshot (before the citation date).
    profile = world["corpus"] / "test-brigade.md"
    fixed = citewatch("fix", str(profile), *world["args"][:2], cwd=world["tmp"])
    assert fixed.returncode == 0, fixed.stderr
    assert "-Its leader later spoke [at a rally](https://news.test/dies)" in fixed.stdout
    assert (
        "+Its leader later spoke [at a rally](https://web.archive.org/web/20230901080000/https://news.test/dies)"
        in fixed.stdout
    )
    changed = [line for line in fixed.stdout.splitlines() if line.startswith(("-", "+"))]
    assert not any("recovers" in line for line in changed)  # alive again: untouched


def test_reports_neutralise_csv_formulas_and_escape_html(world):
    audit(world)
    reports = world["tmp"] / "reports"
    with (reports / "citations.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    anchor_cells = [
        value for row in rows for value in row.values() if value and "HYPERLINK" in value
    ]
    assert anchor_cells, "the formula-like anchor text should be in the CSV"
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in anchor_cells)
    for html_file in reports.glob("*.html"):
        text = html_file.read_text(encoding="utf-8")
        assert "<script>document.title='PWNED'</script>" not in text
    profile_html = next(p for p in reports.glob("*.html") if p.name != "index.html")
    assert "&lt;script&gt;document.title" in profile_html.read_text(encoding="utf-8")


def test_archive_step_chooses_snapshots_and_saves_live_sources_without_leaking_keys(world):
    done, doc = audit(world)
    by_url = {item["url"]: item for item in doc["archive"]["urls"]}
    best = by_url["https://news.test/dies"]["best_snapshot"]
    assert best["timestamp"] == "20230901080000"
    assert best["days_from_citation"] == -61
    # A live source with no capture at all gets a Save Page Now request, with the keys sent only there.
    assert by_url["https://news.test/ok/formula"]["save"]["status"] == "success"
    saves = world["wayback"].requests("save")
    assert saves and all(hit.authorization == f"LOW {ACCESS}:{SECRET}" for hit in saves)
    # …and the keys appear nowhere else: not in the database, the reports, or the output.
    for path in [world["tmp"] / "audit.db", *(world["tmp"] / "reports").iterdir()]:
        data = path.read_bytes()
        assert ACCESS.encode() not in data and SECRET.encode() not in data, path
    assert SECRET not in done.stdout + done.stderr


def test_offline_audit_exits_3_and_judges_nothing(world, tmp_path):
    audit(world)  # a healthy first audit
    stripped = network_down_args(world)
    done = citewatch(
        "audit", str(world["corpus"]), "--json", "--one-shot", "--all", *stripped, cwd=world["tmp"]
    )
    assert done.returncode == 3, done.stderr
    doc = json.loads(done.stdout)
    assert doc["check"]["run"]["network"] == "offline"
    assert doc["archive"] is None
    history = citewatch(
        "history", "https://news.test/ok/founding", "--json", *world["args"][:2], cwd=world["tmp"]
    )
    assert json.loads(history.stdout)["verdict"] == "alive"  # unchanged by the outage
    human = citewatch(
        "audit", str(world["corpus"]), "--one-shot", "--all", *stripped, cwd=world["tmp"]
    )
    assert human.returncode == 3
    said = [line for line in human.stdout.splitlines() if "network unavailable" in line]
    assert said and said[0].startswith("network unavailable: the canary")  # said once, plainly


def test_a_killed_check_resumes_without_losing_or_duplicating_observations(tmp_path, make_simweb):
    """SIGKILL in the middle of a check; the next run probes only what was not yet recorded."""
    import signal
    import time

    from support.checking import seed

    from citewatch.store import Store

    web = make_simweb()
    urls = [f"http://host{i % 4}.test/slow/250/{i}" for i in range(40)]
    db = tmp_path / "kill.db"
    store = Store.open(db)
    seed(store, urls)
    store.close()
    args = ["check", "--db", str(db), "--per-host", "1", "--timeout", "5", "--quiet"]
    args += ["--cacert", web.ca_path, "--canary", "http://canary.test/"]
    for spec in web.connect_to:
        args += ["--connect-to", spec]
    process = subprocess.Popen([sys.executable, "-m", "citewatch", *args], cwd=tmp_path)
    deadline = time.monotonic() + 30
    recorded = 0
    while time.monotonic() < deadline and recorded < 8:
        time.sleep(0.1)
        with sqlite3.connect(db) as conn:
            recorded = conn.execute("SELECT count(*) FROM checks").fetchone()[0]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert 8 <= recorded < len(urls), "the kill should land mid-run"

    with sqlite3.connect(db) as conn:
        before = dict(
            conn.execute("SELECT url_id, count(*) FROM checks GROUP BY url_id").fetchall()
        )
    finished = subprocess.run([sys.executable, "-m", "citewatch", *args], cwd=tmp_path, timeout=120)
    assert finished.returncode == 0
    with sqlite3.connect(db) as conn:
        after = dict(conn.execute("SELECT url_id, count(*) FROM checks GROUP BY url_id").fetchall())
        verdicts = {v for (v,) in conn.execute("SELECT verdict FROM urls")}
    assert len(after) == len(urls)  # nothing lost: every URL observed
    assert all(after[url_id] == count for url_id, count in before.items())  # nothing re-probed
    assert all(count == 1 for count in after.values())  # nothing duplicated
    assert verdicts == {"alive"}


def periodic(world, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    """The cron job: no --one-shot (one 404 confirms, so the test needs no three days)."""
    return audit_json(world, "--all", "--confirm-failures", "1", "--confirm-span", "0", *extra)


SECOND = """\
---
title: Second profile
date: 2024-01-01
---

# Second profile

It [cites the regional outlet too](http://news.test/recovers).
"""


def test_the_periodic_audit_reports_broken_citations_that_come_and_go(world):
    """Citation-level "since the previous audit": a dead URL newly cited, an editor's one-shot audit
    in between (not the previous audit), a profile leaving the corpus (removed, not recovered)."""
    first, doc1 = periodic(world)
    assert first.returncode == 1, first.stderr
    assert doc1["summary"]["policy"] == "periodic"
    assert doc1["summary"]["broken_citations"] == 1  # http://news.test/recovers: 404

    # A new profile cites the URL that is already dead: no verdict changes, one more broken citation.
    second_profile = world["corpus"] / "second.md"
    second_profile.write_text(SECOND, encoding="utf-8")
    second, doc2 = periodic(world)
    assert second.returncode == 1, second.stderr
    s2 = doc2["summary"]
    assert s2["previous_run"] == doc1["run"]["id"] and s2["changes"] == []
    assert s2["newly_broken"] == ["http://news.test/recovers"]
    (new,) = s2["newly_broken_citations"]
    assert (new["why"], new["line"]) == ("newly cited", 8)
    assert new["profile"].endswith("second.md")
    index = (world["tmp"] / "reports" / "index.md").read_text(encoding="utf-8")
    assert "**1 newly broken**" in index and "newly cited" in index

    # An editor's one-shot audit of one profile, where another link has just died.
    world["state"]["dies"] = 404
    editor, _ = audit(world)  # --one-shot
    assert editor.returncode == 1, editor.stderr
    editor_run = json.loads(editor.stdout)["run"]["id"]

    # The next cron run compares with the previous periodic audit, not the editor's run; the
    # second profile has left the corpus: its broken citation is removed, not recovered.
    second_profile.unlink()
    third, doc3 = periodic(world)
    assert third.returncode == 1, third.stderr
    s3 = doc3["summary"]
    assert s3["previous_run"] == doc2["run"]["id"]
    assert s3["audits_not_compared"] == [{"run_id": editor_run, "policy": "one-shot"}]
    assert s3["newly_broken"] == ["https://news.test/dies"]
    assert ("alive", "dead") in {(c["before"], c["after"]) for c in s3["changes"]}
    (gone,) = s3["no_longer_broken_citations"]
    assert gone["why"] == "profile removed" and gone["profile"].endswith("second.md")
    assert (s3["recovered"], s3["removed"]) == ([], ["http://news.test/recovers"])
    assert (s3["broken_citations_before"], s3["broken_citations"]) == (2, 2)
    index = (world["tmp"] / "reports" / "index.md").read_text(encoding="utf-8")
    assert "**1 newly broken**, **0 recovered**, **1 removed**" in index
    assert f"Not compared: audit run {editor_run} (one-shot)" in index

    # The cron mail (human output) names each citation that changed, and why.
    second_profile.write_text(SECOND, encoding="utf-8")
    human = citewatch(
        "audit", str(world["corpus"]), "--all", "--confirm-failures", "1", "--confirm-span", "0",
        *world["args"], cwd=world["tmp"],
    )  # fmt: skip
    assert human.returncode == 1, human.stderr
    assert (
        f"since the previous audit (run {doc3['run']['id']}), citations: 1 newly broken, "
        "0 no longer broken" in human.stdout
    )
    assert "  newly broken: http://news.test/recovers (" in human.stdout
    assert "second.md:8, newly cited)" in human.stdout


def test_reports_of_an_offline_audit_say_it_was_offline(world):
    world["state"]["recovers"] = 404
    periodic(world)
    stripped = network_down_args(world)
    done = citewatch("audit", str(world["corpus"]), "--json", "--all", *stripped, cwd=world["tmp"])
    assert done.returncode == 3, done.stderr
    run_id = json.loads(done.stdout)["run"]["id"]
    reports = world["tmp"] / "reports"
    index = (reports / "index.md").read_text(encoding="utf-8")
    assert f"**Network: offline (run {run_id})**" in index.split("## Summary")[0]
    doc = json.loads((reports / "citations.json").read_text(encoding="utf-8"))
    assert doc["network"]["health"] == "offline" and doc["network"]["explanation"]
    dead = next(c for c in doc["citations"] if c["url"] == "http://news.test/recovers")
    # The last check is the 404 of the healthy run, never the offline run's failed connection…
    assert (dead["last_outcome"], dead["last_status"]) == ("not_found", 404)
    assert dead["broken_reason"] == "the cited URL is dead (last check: not_found · HTTP 404)"
    # …which is shown apart, for the URLs the offline run did probe before it stopped.
    with sqlite3.connect(world["tmp"] / "audit.db") as conn:
        probed = dict(
            conn.execute(
                "SELECT u.url, c.outcome FROM checks c JOIN urls u ON u.id = c.url_id"
                " WHERE c.run_id = ?",
                [run_id],
            ).fetchall()
        )
    assert probed
    for record in doc["citations"]:
        if record["url"] in probed:
            assert record["offline_outcome"] == probed[record["url"]]
            assert record["last_outcome"] in {"ok", "not_found", "redirected"}


def test_an_audit_with_no_earlier_one_of_its_policy_says_so(world):
    """An editor's first --one-shot audit after periodic ones: not "the first audit of this
    database" — the periodic ones exist, they are just not compared."""
    _, doc1 = periodic(world)
    editor = citewatch(
        "audit", str(world["corpus"]), "--one-shot", *world["args"], cwd=world["tmp"]
    )
    assert (
        f"no earlier one-shot audit to compare with (not compared: run {doc1['run']['id']} "
        "(periodic))" in editor.stdout
    ), editor.stdout
    assert "first audit of this database" not in editor.stdout
