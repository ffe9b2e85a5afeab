"""The CLI contract (DESIGN §7): commands, JSON shapes, exit codes, overrides — run as a user would,
in a subprocess, against a real SQLite file and the simulated web."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.checking import seed

from citewatch.store import SCHEMA_VERSION, Store


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citewatch", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def web_args(simweb, tmp_path):
    args = ["--cacert", simweb.ca_path, "--timeout", "1", "--canary", "http://canary.test/"]
    for spec in simweb.connect_to:
        args += ["--connect-to", spec]
    (tmp_path / "citewatch.toml").write_text("retries = 0\nbackoff = 0\n")
    return args


def test_check_json_shape_and_exit_codes(tmp_path, web_args):
    db = tmp_path / "c.db"
    store = Store.open(db)
    seed(store, ["http://news.test/ok/a", "https://news.test/dead/b"])
    store.close()
    done = run("check", "--json", "--db", str(db), *web_args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # one 404 is only "failing": nothing broken yet
    doc = json.loads(done.stdout)
    assert set(doc["run"]) >= {"id", "network", "started", "finished"}
    assert doc["run"]["network"] == "ok"
    items = {item["url"]: item for item in doc["urls"]}
    assert items["https://news.test/dead/b"]["outcome"] == "not_found"
    assert items["https://news.test/dead/b"]["status"] == 404
    assert items["https://news.test/dead/b"]["verdict"] == "failing"
    assert set(items["http://news.test/ok/a"]) >= {
        "url",
        "outcome",
        "status",
        "final_url",
        "verdict",
        "checked_at",
        "elapsed_ms",
        "error",
    }
    assert doc["summary"]["alive"] == 1 and doc["summary"]["failing"] == 1
    assert doc["broken"] == []

    one_shot = run(
        "check", "--json", "--one-shot", "--all", "--db", str(db), *web_args, cwd=tmp_path
    )
    assert (
        one_shot.returncode == 1
    )  # the editors' mode: one definitive failure is broken (unconfirmed)
    one_shot_doc = json.loads(one_shot.stdout)
    items = {item["url"]: item for item in one_shot_doc["urls"]}
    assert items["https://news.test/dead/b"]["verdict"] == "dead"
    assert items["https://news.test/dead/b"]["confirmed"] is False
    # exit 1 says what is broken, and why, in the JSON too
    assert one_shot_doc["broken"] == [
        {
            "profile": "profiles/p.md",
            "line": 2,
            "column": 1,
            "cited_url": "https://news.test/dead/b",
            "url": "https://news.test/dead/b",
            "why": "dead (unconfirmed)",
        }
    ]

    human = run("check", "--one-shot", "--db", str(db), *web_args, cwd=tmp_path)
    assert human.returncode == 1
    assert "probed 0 URLs" in human.stdout  # checked moments ago: nothing re-probed
    assert "broken (unconfirmed)" in human.stdout

    # Verdicts are derived from the history under the policy in force: without --one-shot a single
    # 404 is only "failing" again, so the periodic audit does not cry wolf.
    normal = run("check", "--json", "--db", str(db), *web_args, cwd=tmp_path)
    assert normal.returncode == 0
    assert {
        i["url"]: i["verdict"] for i in json.loads(normal.stdout)["urls"]
    } == {}  # nothing probed
    assert (
        "failing"
        in run("history", "https://news.test/dead/b", "--db", str(db), cwd=tmp_path).stdout
    )


def test_ignore_overrides_a_false_positive_across_runs(tmp_path, web_args):
    db = tmp_path / "i.db"
    store = Store.open(db)
    seed(store, ["https://news.test/dead/paywalled"])
    store.close()
    assert run("check", "--one-shot", "--db", str(db), *web_args, cwd=tmp_path).returncode == 1
    done = run(
        "ignore",
        "https://news.test/dead/paywalled",
        "--reason",
        "paywall; checked by hand",
        "--db",
        str(db),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    again = run("check", "--json", "--one-shot", "--all", "--db", str(db), *web_args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    item = json.loads(again.stdout)["urls"][0]
    assert item["outcome"] == "skipped" and "paywall" in item["error"]
    history = json.loads(
        run(
            "history", "https://news.test/dead/paywalled", "--json", "--db", str(db), cwd=tmp_path
        ).stdout
    )
    assert "paywall" in str(history["ignored"])


def test_history_and_report_commands(tmp_path, web_args):
    db = tmp_path / "h.db"
    store = Store.open(db)
    seed(store, ["http://news.test/ok/a"])
    store.close()
    run("check", "--db", str(db), *web_args, cwd=tmp_path)
    shown = run("history", "http://news.test/ok/a", "--db", str(db), cwd=tmp_path)
    assert shown.returncode == 0 and "Checks (1)" in shown.stdout
    assert run("history", "http://unknown.test/", "--db", str(db), cwd=tmp_path).returncode == 2
    made = run(
        "report", "--db", str(db), "--out", str(tmp_path / "r"), "--format", "md,csv", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "r" / "index.md").is_file() and (tmp_path / "r" / "citations.csv").is_file()
    assert not (tmp_path / "r" / "index.html").exists()
    assert run("report", "--db", str(db), "--format", "pdf", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "no/such/folder"],
        ["check", "--concurrency", "0"],
        ["check", "--connect-to", "nonsense"],
        ["check", "--max-age", "whenever"],
        ["check", "--cacert", "missing.pem"],
        ["scan", "--no-such-flag", "x"],
        ["check", "--cacert", "not-a-bundle.pem"],
        ["check", "--user-agent", "two\nlines"],
        ["archive", "--wayback-url", "http://[::1"],
        ["check", "--canary", "ftp://example.org/"],
    ],
)
def test_usage_errors_exit_2(tmp_path, args):
    (tmp_path / "not-a-bundle.pem").write_text("this is not PEM\n")
    done = run(*args, "--db", str(tmp_path / "u.db"), cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)


def test_database_from_a_newer_citewatch_is_refused_with_exit_2(tmp_path):
    db = tmp_path / "future.db"
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    done = run("check", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2
    assert "newer" in done.stderr


def test_bad_config_file_is_a_usage_error(tmp_path):
    (tmp_path / "citewatch.toml").write_text("concurrency = [oops\n")
    done = run("check", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert done.returncode == 2
    assert "citewatch.toml" in done.stderr


def test_config_ignore_patterns_also_clear_the_exit_code(tmp_path, web_args):
    db = tmp_path / "g.db"
    store = Store.open(db)
    seed(store, ["https://news.test/dead/known-false-positive"])
    store.close()
    assert run("check", "--one-shot", "--db", str(db), *web_args, cwd=tmp_path).returncode == 1
    (tmp_path / "citewatch.toml").write_text(
        'retries = 0\nbackoff = 0\nignore = "https://news.test/dead/*"\n'
    )
    again = run("check", "--one-shot", "--db", str(db), *web_args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_second_run_on_a_database_in_use_is_refused(tmp_path, web_args):
    """Two overlapping cron runs would probe every URL twice: the second exits 2 and says who
    holds the database; once the first has finished, runs go ahead (a killed holder's lock goes
    with its process). The lock file is never read as a profile."""
    db = tmp_path / "corpus" / "citewatch.db"
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "p.md").write_text("See https://news.test/ok/one.\n", encoding="utf-8")
    holder = Store.open(db)
    holder.claim_runs()
    for command in (["check", *web_args], ["archive"], ["audit", str(tmp_path / "corpus")]):
        done = run(*command, "--db", str(db), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert f"another citewatch run is using {db}" in done.stderr
        assert f"pid {os.getpid()}" in done.stderr
    holder.close()
    scanned = run("scan", str(tmp_path / "corpus"), "--db", str(db), "--json", cwd=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    assert (tmp_path / "corpus" / "citewatch.db.lock").exists()
    assert [p["path"] for p in json.loads(scanned.stdout)["profiles"]] == ["p.md"]  # no lock file
    assert run("check", "--db", str(db), *web_args, cwd=tmp_path).returncode == 0


def test_half_a_key_pair_is_refused_before_anything_runs(tmp_path):
    db = tmp_path / "k.db"
    Store.open(db).close()
    env = {"IA_ACCESS_KEY": "ACCESS123", "IA_SECRET_KEY": ""}
    for command in (["archive"], ["audit", str(tmp_path / "none")]):
        (tmp_path / "none").mkdir(exist_ok=True)
        done = run(*command, "--db", str(db), cwd=tmp_path, env=env)
        assert done.returncode == 2, done.stderr
        assert "IA_ACCESS_KEY is set but IA_SECRET_KEY is not" in done.stderr
        assert "ACCESS123" not in done.stderr + done.stdout
    runs = Store.open(db).query("SELECT id FROM runs WHERE command IN ('archive', 'audit')")
    assert runs == []  # refused before a run began


def test_a_check_records_its_policy_wherever_it_came_from(tmp_path, web_args):
    """one-shot set by the environment (or the config) is recorded with the run, so reports never
    compare a one-shot run with periodic audits by reading its command line."""
    db = tmp_path / "p.db"
    store = Store.open(db)
    seed(store, ["https://news.test/ok/policy"])
    store.close()
    done = run("check", "--db", str(db), *web_args, cwd=tmp_path, env={"CITEWATCH_ONE_SHOT": "1"})
    assert done.returncode == 0, done.stderr
    (row,) = Store.open(db).query("SELECT counts FROM runs WHERE command = 'check'")
    counts = json.loads(row["counts"])
    assert counts["policy"] == {"one_shot": True} and counts["alive"] == 1
