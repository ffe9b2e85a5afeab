"""``citewatch scan`` end to end: the real CLI on a temporary SQLite file (no network)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citewatch.cli import app

ROOT = Path(__file__).resolve().parents[1]
CITATION_KEYS = {"url", "raw", "line", "column", "text", "context", "section", "role", "archived"}


@pytest.fixture
def run(monkeypatch):
    monkeypatch.chdir(ROOT)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("profiles", "citations", "findings", "urls")
        }


def test_scan_bundled_corpus_json(run, tmp_path):
    db = tmp_path / "cw.db"
    result = run("scan", "citations/", "--json", "--db", str(db))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (profile,) = data["profiles"]
    # named relative to the database's folder; this one lives elsewhere, so the name is absolute
    assert profile["path"] == (ROOT / "citations/profile-liwa-al-baqir.txt").as_posix()
    assert profile["title"] == "Profile: Liwa al-Baqir"
    assert profile["authors"] == ["Abdullah Hayek", "Michael Knights"]
    assert profile["published"] == "2023-11-01"
    assert profile["base_url"] == (
        "https://www.washingtoninstitute.org/policy-analysis/profile-liwa-al-baqir"
    )
    assert len(profile["citations"]) == 21
    for citation in profile["citations"]:
        assert set(citation) >= CITATION_KEYS
        assert citation["role"] in {"source", "navigation", "media"}
    wayback = [c for c in profile["citations"] if c["archived"]]
    assert [(c["line"], c["column"], c["archived"]["timestamp"]) for c in wayback] == [
        (69, 50, "20171017230858")
    ]
    assert wayback[0]["archived"]["original"].startswith("https://www.alsouria.net/content/%D8%A7")
    assert [(f["kind"], f["line"]) for f in profile["findings"]] == [("malformed_url", 56)]
    assert set(profile["findings"][0]) >= {"kind", "line", "raw", "message"}
    assert counts(db)["citations"] == 21


def test_rescan_adds_nothing_and_a_change_supersedes(run, tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    seed = folder / "seed.txt"
    shutil.copy(ROOT / "citations" / "profile-liwa-al-baqir.txt", seed)
    db = tmp_path / "cw.db"
    args = (
        "scan",
        str(folder),
        "--db",
        str(db),
        "--base-url",
        "https://www.washingtoninstitute.org/",
    )
    assert run(*args).exit_code == 0
    first = counts(db)
    assert first["profiles"] == 1 and first["citations"] == 21
    again = run(*args, "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["run"]["unchanged"] == 1
    assert counts(db) == first

    seed.write_text(seed.read_text(encoding="utf-8") + "\nMore: https://new.example/page\n")
    changed = run(*args, "--json")
    assert json.loads(changed.stdout)["run"]["changed"] == 1
    after = counts(db)
    assert after["profiles"] == 1 and after["citations"] == 21 + 22
    with sqlite3.connect(db) as conn:
        current = conn.execute(
            "SELECT count(*) FROM citations WHERE superseded_run IS NULL"
        ).fetchone()[0]
    assert current == 22


def test_bad_inputs_in_a_folder_are_findings(run, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("See https://a.example/x.\n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "latin1.txt").write_bytes(b"caf\xe9 https://b.example/\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nope")
    (folder / "deep.html").write_text("<div>" * 20_000 + "<a href='https://c.example/'>c</a>")
    (folder / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    result = run("scan", str(folder), "--json", "--db", str(tmp_path / "cw.db"))
    assert result.exit_code == 0, result.output
    kinds = {
        Path(p["path"]).name: [f["kind"] for f in p["findings"]]
        for p in json.loads(result.stdout)["profiles"]
    }
    assert kinds == {
        "binary.txt": ["binary"],
        "broken.pdf": ["unreadable"],
        "deep.html": ["deep_nesting"],
        "empty.txt": ["empty"],
        "good.md": [],
        "latin1.txt": ["encoding"],
    }
    # a file of another type in a folder is not a profile: counted and named, not read
    assert json.loads(result.stdout)["run"]["other_files"] == 1
    assert "not read: 1 file(s) in the scanned folders that are no profile format (.xlsx ×1)" in (
        result.stderr
    )
    named = run("scan", str(folder / "sheet.xlsx"), "--json", "--db", str(tmp_path / "cw.db"))
    (sheet,) = json.loads(named.stdout)["profiles"]  # named: read, and a finding says why
    assert [f["kind"] for f in sheet["findings"]] == ["unknown_format"]


def test_no_such_path_is_a_usage_error(run, tmp_path):
    result = run("scan", str(tmp_path / "nope"), "--db", str(tmp_path / "cw.db"))
    assert result.exit_code == 2


def test_bad_manifest_is_a_usage_error(run, tmp_path):
    (tmp_path / "corpus.toml").write_text("[[profile]\n", encoding="utf-8")
    (tmp_path / "a.md").write_text("x\n", encoding="utf-8")
    result = run("scan", str(tmp_path), "--db", str(tmp_path / "cw.db"))
    assert result.exit_code == 2
    assert "corpus.toml" in result.output


def test_human_summary(run, tmp_path):
    result = run("scan", "citations/", "--db", str(tmp_path / "cw.db"), "--quiet")
    assert result.exit_code == 0
    assert "21 citations" in result.stdout
    assert "malformed_url" in result.stdout


def test_a_profile_whose_file_left_the_folder_is_retired_and_can_come_back(tmp_path, monkeypatch):
    """Its citations stop being current (no longer checked, counted or reported), its history
    stays; a profile scanned by file name elsewhere is not touched; the file can come back."""
    monkeypatch.chdir(tmp_path)
    seed = (ROOT / "citations" / "profile-liwa-al-baqir.txt").read_bytes()
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_bytes(seed)
    (tmp_path / "corpus" / "b.txt").write_bytes(seed)
    (tmp_path / "elsewhere.md").write_text("See [a source](https://example.org/source).\n")
    runner = CliRunner()

    def scan(*paths: str) -> dict:
        result = runner.invoke(app, ["scan", *paths, "--json", "--db", "cw.db"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["run"]

    assert scan("corpus", "elsewhere.md")["new"] == 3
    (tmp_path / "corpus" / "b.txt").unlink()
    (tmp_path / "elsewhere.md").unlink()  # gone too, but not under a scanned folder
    assert scan("corpus")["removed"] == 1

    db = sqlite3.connect(tmp_path / "cw.db")
    db.row_factory = sqlite3.Row
    removed = {r["path"]: r["removed_run"] for r in db.execute("SELECT * FROM profiles")}
    assert removed["corpus/b.txt"] is not None
    assert removed["corpus/a.txt"] is None and removed["elsewhere.md"] is None
    current = db.execute(
        "SELECT p.path, count(*) AS n FROM current_citations c JOIN profiles p"
        " ON p.id = c.profile_id GROUP BY p.path"
    ).fetchall()
    assert {r["path"] for r in current} == {"corpus/a.txt", "elsewhere.md"}
    kept = db.execute(
        "SELECT count(*) FROM citations c JOIN profiles p ON p.id = c.profile_id"
        " WHERE p.path = 'corpus/b.txt'"
    ).fetchone()[0]
    assert kept == 21  # retired, not deleted: the evidence trail stays

    report = runner.invoke(app, ["report", "--db", "cw.db", "--out", "rep", "--format", "json"])
    assert report.exit_code == 0, report.output
    paths = {p["path"] for p in json.loads((tmp_path / "rep" / "citations.json").read_text())[
        "profiles"]}  # fmt: skip
    assert paths == {"corpus/a.txt", "elsewhere.md"}

    (tmp_path / "corpus" / "b.txt").write_bytes(seed)  # back, unchanged, but not rescanned yet
    stale = runner.invoke(app, ["fix", "corpus/b.txt", "--db", "cw.db"])
    assert stale.exit_code == 2 and "left the corpus" in stale.stderr
    back = scan("corpus")
    assert (back["new"], back["unchanged"], back["removed"]) == (1, 1, 0)
    assert (
        db.execute(
            "SELECT count(*) FROM current_citations c JOIN profiles p ON p.id = c.profile_id"
            " WHERE p.path = 'corpus/b.txt'"
        ).fetchone()[0]
        == 21
    )
    assert scan("corpus/a.txt")["removed"] == 0  # a file, not a folder: nothing to retire


def test_profiles_are_named_relative_to_the_database_wherever_citewatch_runs(tmp_path, monkeypatch):
    """The same corpus scanned from another folder is the same corpus: no duplicate profiles."""
    project = tmp_path / "project"
    (project / "citations").mkdir(parents=True)
    seed = (ROOT / "citations" / "profile-liwa-al-baqir.txt").read_bytes()
    (project / "citations" / "p.txt").write_bytes(seed)
    runner = CliRunner()

    def scan(cwd: Path, *args: str) -> dict:
        monkeypatch.chdir(cwd)
        result = runner.invoke(app, ["scan", *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = scan(project, "citations", "--db", "citewatch.db")
    assert [p["path"] for p in first["profiles"]] == ["citations/p.txt"]
    elsewhere = scan(tmp_path, "project/citations", "--db", "project/citewatch.db")
    assert (elsewhere["run"]["new"], elsewhere["run"]["unchanged"]) == (0, 1)
    deeper = scan(project / "citations", ".", "--db", "../citewatch.db")
    assert (deeper["run"]["new"], deeper["run"]["unchanged"]) == (0, 1)
    assert counts(project / "citewatch.db")["profiles"] == 1


def test_a_database_from_before_database_relative_names_is_renamed_not_doubled(
    tmp_path, monkeypatch
):
    """citewatch 0.1 named profiles relative to the current folder; with the database elsewhere
    those names differ from today's. A rescan renames the old row instead of adding a twin."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "data").mkdir()
    seed = (ROOT / "citations" / "profile-liwa-al-baqir.txt").read_bytes()
    (tmp_path / "corpus" / "p.txt").write_bytes(seed)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["scan", "corpus", "--json", "--db", "data/cw.db"]
    assert runner.invoke(app, args).exit_code == 0
    with sqlite3.connect(tmp_path / "data" / "cw.db") as db:  # as citewatch 0.1 stored it
        db.execute("UPDATE profiles SET path = 'corpus/p.txt'")
    again = json.loads(runner.invoke(app, args).stdout)["run"]
    assert (again["new"], again["unchanged"], again["removed"]) == (0, 1, 0)
    with sqlite3.connect(tmp_path / "data" / "cw.db") as db:
        paths = [row[0] for row in db.execute("SELECT path FROM profiles")]
    assert paths == [(tmp_path / "corpus" / "p.txt").resolve().as_posix()]


def test_report_refuses_to_write_into_a_folder_of_profiles(tmp_path, monkeypatch):
    (tmp_path / "corpus" / "2024").mkdir(parents=True)
    (tmp_path / "corpus" / "2024" / "p.md").write_text("<https://example.org/a>\n")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["scan", "corpus", "-q"]).exit_code == 0
    refused = runner.invoke(app, ["report", "--out", "corpus/2024"])
    assert refused.exit_code == 2 and "holds profiles" in refused.stderr
    assert not (tmp_path / "corpus" / "2024" / "index.md").exists()
    assert runner.invoke(app, ["report", "--out", "reports"]).exit_code == 0


def test_audit_never_writes_reports_over_profiles(tmp_path, monkeypatch):
    """`audit sub --out .` where . holds a profile scanned earlier whose report name is its own."""
    (tmp_path / "sub").mkdir()
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nSee <https://example.org/a>.\n")
    (tmp_path / "sub" / "p.md").write_text("<https://example.org/b>\n")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["scan", ".", "-q"]).exit_code == 0
    refused = runner.invoke(
        app, ["audit", "sub", "--out", ".", "-q", "--canary", "http://x.invalid/"]
    )
    assert refused.exit_code == 2 and "holds profiles" in refused.stderr
    assert notes.read_text().startswith("# Notes")


def test_the_report_writer_itself_never_replaces_a_profile(tmp_path, monkeypatch):
    from citewatch.report import write_reports
    from citewatch.store import Store

    (tmp_path / "notes.md").write_text("# Notes\n\nSee <https://example.org/a>.\n")
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["scan", ".", "-q"]).exit_code == 0
    store = Store.open(tmp_path / "citewatch.db")
    with pytest.raises(OSError, match="profile of the corpus"):
        write_reports(store, tmp_path, ["md"])
    assert (tmp_path / "notes.md").read_text().startswith("# Notes")


def test_a_folder_walk_reads_profiles_not_the_files_beside_them(run, tmp_path):
    """``citewatch audit .`` in a working folder: the config, a log, a spreadsheet are not
    profiles (the config is citewatch's own: not even counted); a file without an extension is
    read, its content decides."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "citewatch.toml").write_text("retries = 0\n", encoding="utf-8")
    (folder / "audit.log").write_text("https://log.example/ exit 1\n", encoding="utf-8")
    (folder / "profile.md").write_text("See https://a.example/.\n", encoding="utf-8")
    (folder / "NOTES").write_text("Cites https://b.example/ too.\n", encoding="utf-8")
    (folder / "draft.2023").write_text("And https://c.example/.\n", encoding="utf-8")
    result = run("scan", str(folder), "--json", "--db", str(tmp_path / "cw.db"))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert sorted(Path(p["path"]).name for p in document["profiles"]) == [
        "NOTES",
        "draft.2023",
        "profile.md",
    ]
    assert document["run"]["other_files"] == 1  # audit.log
