# ruff: noqa: F811 - the make_simwayback fixture is imported, and a test parameter names it
"""The CLI where a new user trips: a mistyped --db, a scan of the folder citewatch writes into,
a refused ``fix --write``, ignore rules (patterns, listing, lifting), ``history``'s verdict label
and ``archive --dry-run``. The real Typer app, in-process, against real SQLite files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.checking import seed
from support.simwayback import Capture, make_simwayback  # noqa: F401 - make_simwayback is a fixture
from test_fix import judge
from test_fix import scan as scan_profile
from test_report_corpus import DEAD, DEAD_NO_SNAPSHOT, IGNORED, build_corpus
from typer.testing import CliRunner

from citewatch.cli import app
from citewatch.extract import discover
from citewatch.store import Store


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run citewatch in ``tmp_path`` (its default citewatch.db and reports/ live there)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, list(args), catch_exceptions=False, env=env)

    return invoke


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# -- 1. a database that does not exist ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["check", "--json"],
        ["archive"],
        ["report"],
        ["fix", "profile.md"],
        ["fix", "profile.md", "--write"],
        ["history", "https://example.org/"],
        ["ignore", "https://example.org/", "--reason", "typo"],
        ["ignore", "--list"],
        ["ignore", "https://example.org/", "--remove"],
    ],
)
def test_every_command_but_scan_and_audit_refuses_a_missing_database(cli, tmp_path, args):
    (tmp_path / "profile.md").write_text("<https://example.org/>\n")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "index.md").write_text("last run's report\n")
    done = cli(*args, "--db", "typo.db")
    assert done.exit_code == 2, done.output
    message = one_line(done.stderr)
    assert "no database at typo.db" in message
    assert "citewatch scan" in message and "citewatch audit" in message
    assert done.stdout == ""
    assert not (tmp_path / "typo.db").exists()  # nothing created...
    assert (reports / "index.md").read_text() == "last run's report\n"  # ...nor removed
    assert sorted(p.name for p in reports.iterdir()) == ["index.md"]


@pytest.mark.parametrize("args", [["check"], ["report"], ["history", "https://example.org/"]])
def test_an_empty_file_is_not_a_database_either(cli, tmp_path, args):
    """`: > e.db; citewatch check --db e.db` must not read as an empty, all-fine corpus."""
    (tmp_path / "e.db").write_bytes(b"")
    done = cli(*args, "--db", "e.db")
    assert done.exit_code == 2 and "an empty file, not a database" in one_line(done.stderr)
    assert (tmp_path / "e.db").stat().st_size == 0  # nothing written into it


def test_the_default_database_is_refused_too_and_scan_creates_it(cli, tmp_path):
    (tmp_path / "profile.md").write_text("<https://example.org/>\n")
    done = cli("report")
    assert done.exit_code == 2 and "no database at citewatch.db" in done.stderr
    assert not (tmp_path / "citewatch.db").exists() and not (tmp_path / "reports").exists()
    assert cli("scan", "profile.md", "-q").exit_code == 0
    assert (tmp_path / "citewatch.db").is_file()
    assert cli("report", "--format", "csv").exit_code == 0


# -- 2. citewatch's own files are not profiles ----------------------------------------------------


def test_discover_never_walks_into_excluded_files_and_folders(tmp_path, monkeypatch):
    root = tmp_path / "corpus"
    (root / "out").mkdir(parents=True)
    (root / "deep").mkdir()
    for name in ("a.md", "citewatch.db", "citewatch.db-wal", "out/index.html", "deep/b.md"):
        (root / name).write_text("x\n")
    (root / "link.db").symlink_to(root / "citewatch.db")
    excluded = [root / "citewatch.db", root / "citewatch.db-wal", root / "out"]
    found = [p.relative_to(root).as_posix() for p in discover([root], excluded)]
    assert found == ["a.md", "deep/b.md"]
    # Exclusions apply to folder walks only: what the user names is read.
    named = list(discover([root / "citewatch.db", root / "out"], excluded))
    assert [p.relative_to(root).as_posix() for p in named] == ["citewatch.db", "out/index.html"]
    # Relative and absolute spellings of the same path are the same exclusion (and databases
    # are no profile format: a folder walk leaves them, excluded or not).
    monkeypatch.chdir(tmp_path)
    skipped: list[Path] = []
    found = discover([Path("corpus")], [Path("corpus/out").resolve()], skipped)
    assert [p.name for p in found] == ["a.md", "b.md"]
    assert sorted(p.name for p in skipped) == [
        "citewatch.db",
        "citewatch.db-wal",
    ]  # link.db: same file


def test_discover_skips_a_folder_holding_a_report_manifest(tmp_path):
    (tmp_path / "old-reports").mkdir()
    (tmp_path / "old-reports" / ".citewatch-reports.json").write_text("{}\n")
    (tmp_path / "old-reports" / "index.md").write_text("# report\n")
    (tmp_path / "p.md").write_text("x\n")
    assert [p.name for p in discover([tmp_path])] == ["p.md"]
    assert [p.name for p in discover([tmp_path / "old-reports"])] == ["index.md"]  # named: read


def test_scan_of_the_current_folder_skips_the_database_and_its_siblings(cli, tmp_path):
    (tmp_path / "p.md").write_text("<https://example.org/a>\n")
    first = cli("scan", ".", "--json", "-q")
    assert first.exit_code == 0, first.output
    assert [p["path"] for p in json.loads(first.stdout)["profiles"]] == ["p.md"]
    for suffix in ("-wal", "-shm", "-journal"):  # whichever exist (open connection, WAL mode)
        (tmp_path / f"citewatch.db{suffix}").touch(exist_ok=True)
    again = cli("scan", ".", "--json", "-q")
    assert again.exit_code == 0, again.output
    assert [p["path"] for p in json.loads(again.stdout)["profiles"]] == ["p.md"]
    # Another database in the folder is no profile either (not a profile format), and the
    # database in use is never read even in its own folder.
    other = cli("scan", ".", "--json", "-q", "--db", "data/other.sqlite")
    # (named relative to that database's folder, data/: these files are outside it)
    document = json.loads(other.stdout)
    paths = [p["path"] for p in document["profiles"]]
    assert [Path(path).name for path in paths] == ["p.md"]
    assert document["run"]["other_files"] >= 2  # citewatch.db and its siblings, told not read
    assert not any("/data/" in path or path.startswith("data/") for path in paths)


def test_profiles_stored_from_citewatchs_own_files_are_retired(cli, tmp_path):
    (tmp_path / "p.md").write_text("<https://example.org/a>\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / ".citewatch-reports.json").write_text("{}\n")
    (tmp_path / "reports" / "index.html").write_text('<a href="https://example.org/r">r</a>\n')
    # What an older citewatch did with `scan .`: its database and reports became profiles.
    assert cli("scan", "p.md", "-q").exit_code == 0
    assert cli("scan", "citewatch.db", "reports/index.html", "-q").exit_code == 0
    assert len(Store.open(tmp_path / "citewatch.db").active_profile_paths()) == 3
    done = cli("scan", ".", "--json", "-q")
    run = json.loads(done.stdout)["run"]
    assert run["removed"] == 2 and run["profiles"] == 1
    store = Store.open(tmp_path / "citewatch.db")
    assert store.active_profile_paths() == ["p.md"]


def test_audit_skips_its_reports_folder_and_refuses_to_write_reports_into_a_scanned_folder(
    cli, tmp_path
):
    (tmp_path / "p.md").write_text("<https://example.org/a>\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.md").write_text("<https://example.org/report-link>\n")
    (tmp_path / "out" / "p.md").write_text("<https://example.org/report-link>\n")
    from citewatch.cli import do_scan, own_files
    from citewatch.progress import NullReporter

    store = Store.open(tmp_path / "citewatch.db")
    run_id = store.begin_run("audit")
    profiles, counts = do_scan(
        store, run_id, [Path(".")], None, NullReporter(), True, own_files("citewatch.db", "out")
    )
    assert [p.path for p in profiles] == ["p.md"] and counts["profiles"] == 1
    # Reports straight into the scanned folder would be profiles next time: a usage error.
    for out in (".", str(tmp_path)):
        done = cli("audit", ".", "--out", out, "--db", "audit.db", "-q")
        assert done.exit_code == 2, done.output
        assert "--out" in one_line(done.stderr) and "scanned" in done.stderr
    assert not (tmp_path / "audit.db").exists()


# -- 3 and 4. fix --write refusals, and no Save Page Now hint for dead links -------------------------


def _fixable(tmp_path: Path) -> Path:
    store = Store.open(tmp_path / "citewatch.db")
    path = tmp_path / "p.md"
    text = "One <https://r.example/1>.\nTwo <https://r.example/2>.\n"
    scan_profile(
        store,
        Path("p.md"),
        text,
        "markdown",
        [
            ("<https://r.example/1>", "https://r.example/1"),
            ("<https://r.example/2>", "https://r.example/2"),
        ],
    )
    judge(store, "https://r.example/1", "dead", [("20200101000000", 200)])
    judge(store, "https://r.example/2", "dead", [("20200101000000", 200)])
    store.close()
    return path


def test_fix_write_on_a_file_changed_since_the_scan_exits_2(cli, tmp_path):
    path = _fixable(tmp_path)
    path.write_text(path.read_text().replace("Two", "Deux"))  # edited since it was scanned
    before = path.read_text()
    preview = cli("fix", "p.md")
    assert preview.exit_code == 0, preview.output  # a preview refuses nothing
    assert "r.example/1" in preview.stdout and "--write would be refused" in preview.stderr
    done = cli("fix", "p.md", "--write")
    assert done.exit_code == 2, done.output
    assert "changed since it was scanned" in done.stderr and "citewatch scan" in done.stderr
    assert "nothing to change" not in done.stderr and "rewrote" not in done.stderr
    assert path.read_text() == before and not (tmp_path / "p.md.bak").exists()
    as_json = cli("fix", "p.md", "--write", "--json")
    assert as_json.exit_code == 2
    doc = json.loads(as_json.stdout)
    assert "changed since it was scanned" in doc["refused"]
    assert doc["written"] is False and doc["backup"] is None
    assert "changed since it was scanned" in as_json.stderr


def test_fix_write_refused_with_nothing_to_change_still_exits_2(cli, tmp_path):
    # The edit took both cited links away: the plan is empty, but the database no longer describes
    # the file, so "nothing to change" would be a lie: rescan first.
    path = _fixable(tmp_path)
    path.write_text("One.\nTwo.\n")
    done = cli("fix", "p.md", "--write")
    assert done.exit_code == 2, done.output
    assert "nothing to change" not in done.stderr
    assert "changed since it was scanned" in done.stderr
    assert path.read_text() == "One.\nTwo.\n"


def test_fix_write_refused_when_the_file_changes_while_planning(cli, tmp_path, monkeypatch):
    import citewatch.fix

    path = _fixable(tmp_path)
    real = citewatch.fix.write_fix

    def edit_then_write(result, profile_path):
        Path(profile_path).write_text("someone else's edit\n")
        return real(result, profile_path)

    monkeypatch.setattr(citewatch.fix, "write_fix", edit_then_write)
    done = cli("fix", "p.md", "--write", "--json")
    assert done.exit_code == 2
    doc = json.loads(done.stdout)
    assert "changed while the fix was being planned" in doc["refused"]
    assert doc["written"] is False
    assert path.read_text() == "someone else's edit\n"


def test_fix_write_succeeds_and_a_second_write_has_nothing_to_change(cli, tmp_path):
    path = _fixable(tmp_path)
    done = cli("fix", "p.md", "--write", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["written"] is True and doc["refused"] is None and doc["backup"]
    assert "web.archive.org/web/20200101000000/https://r.example/1" in path.read_text()
    again = cli("fix", "p.md", "--write")
    assert again.exit_code == 0 and "nothing to change" in again.stderr


def test_fix_says_link_or_links_as_counted(cli, tmp_path):
    _fixable(tmp_path)
    done = cli("fix", "p.md", "--write")
    assert done.exit_code == 0, done.output
    assert "rewrote p.md (2 links; backup p.md.bak)" in done.stderr
    assert (
        "2 citations already point at their archived copy or new location"
        in cli("fix", "p.md").stderr
    )
    store = Store.open(tmp_path / "citewatch.db")
    scan_profile(
        store,
        Path("one.md"),
        "<https://r.example/1>\n",
        "markdown",
        [("<https://r.example/1>", "https://r.example/1")],
    )
    store.close()
    one = cli("fix", "one.md", "--write")
    assert one.exit_code == 0 and "rewrote one.md (1 link; backup" in one.stderr
    assert (
        "1 citation already points at its archived copy or new location"
        in cli("fix", "one.md").stderr
    )


@pytest.mark.parametrize("write", [[], ["--write"]])
def test_fix_json_of_a_profile_that_left_the_corpus_is_a_refusal_document(cli, tmp_path, write):
    path = _fixable(tmp_path)
    store = Store.open(tmp_path / "citewatch.db")
    store.db.execute("UPDATE profiles SET removed_run = ?", [store.begin_run("scan")])
    store.close()
    before = path.read_text()
    done = cli("fix", "p.md", "--json", *write)
    assert done.exit_code == 2
    doc = json.loads(done.stdout)
    assert "left the corpus" in doc["refused"] and "citewatch scan" in doc["refused"]
    assert doc["profile"] == "p.md" and doc["written"] is False and doc["backup"] is None
    assert doc["diff"] == "" and doc["replaced"] == doc["unresolved"] == []
    assert doc["already_fixed"] == doc["ignored"] == []
    assert "left the corpus" in done.stderr
    assert path.read_text() == before
    not_scanned = tmp_path / "other.md"
    not_scanned.write_text("<https://r.example/3>\n")
    never = cli("fix", "other.md", "--json", *write)
    assert never.exit_code == 2 and "has not been scanned" in json.loads(never.stdout)["refused"]


def test_fix_lists_dead_links_without_a_snapshot_with_an_honest_hint(cli, tmp_path):
    store = Store.open(tmp_path / "citewatch.db")
    scan_profile(
        store,
        Path("p.md"),
        "<https://r.example/x>\n",
        "markdown",
        [("<https://r.example/x>", "https://r.example/x")],
    )
    judge(store, "https://r.example/x", "dead", [("20200101000000", 404)])
    store.close()
    done = cli("fix", "p.md")
    assert done.exit_code == 0 and done.stdout == ""
    assert "not fixed: line 1: https://r.example/x: no archived copy exists" in done.stderr
    assert "another source" in done.stderr
    assert "--save" not in done.stderr


# -- 5. ignore: exact URLs only, a warning for uncited ones, --list and --remove ---------------------


@pytest.fixture
def cited_db(tmp_path) -> Path:
    db = tmp_path / "citewatch.db"
    store = Store.open(db)
    seed(store, ["https://news.test/dead/paywalled", "https://news.test/odd*name"])
    store.close()
    return db


def test_ignore_refuses_a_glob_and_points_at_the_config(cli, cited_db):
    done = cli("ignore", "https://example.org/*", "--reason", "all of it")
    assert done.exit_code == 2
    message = one_line(done.stderr)
    assert "not a pattern" in message and "citewatch.toml" in message and "ignore" in message
    assert Store.open(cited_db).ignored() == {}
    # A cited URL that happens to hold a '*' is exact, not a pattern.
    done = cli("ignore", "https://news.test/odd*name", "--reason", "literal star")
    assert done.exit_code == 0, done.output
    assert Store.open(cited_db).ignored() == {"https://news.test/odd*name": "literal star"}


def test_ignore_warns_about_a_url_that_is_not_cited(cli, cited_db):
    done = cli("ignore", "https://news.test/dead/paywaled", "--reason", "typo")
    assert done.exit_code == 0, done.output
    assert "warning" in done.stderr and "not cited" in done.stderr
    assert "ignoring https://news.test/dead/paywaled" in done.stdout
    quiet = cli("ignore", "HTTPS://NEWS.test/dead/paywalled", "--reason", "paywall")
    assert quiet.exit_code == 0 and quiet.stderr == ""  # cited, once normalised
    assert Store.open(cited_db).ignored() == {
        "https://news.test/dead/paywaled": "typo",
        "https://news.test/dead/paywalled": "paywall",
    }


def test_ignore_needs_a_reason_and_a_url(cli, cited_db):
    assert cli("ignore", "https://news.test/dead/paywalled").exit_code == 2
    assert cli("ignore", "https://news.test/dead/paywalled", "--reason", " ").exit_code == 2
    assert cli("ignore").exit_code == 2
    assert cli("ignore", "https://news.test/x", "--list").exit_code == 2
    assert cli("ignore", "https://news.test/x", "--remove", "--reason", "r").exit_code == 2
    assert Store.open(cited_db).ignored() == {}


def test_ignore_list_and_remove(cli, cited_db, tmp_path):
    (tmp_path / "citewatch.toml").write_text('ignore = ["https://twitter.com/*"]\n')
    empty = cli("ignore", "--list", "--json")
    assert json.loads(empty.stdout) == {"ignores": [], "patterns": ["https://twitter.com/*"]}
    cli("ignore", "https://news.test/dead/paywalled", "--reason", "paywall")
    cli("ignore", "https://news.test/dead/paywalled", "--reason", "paywall; checked by hand")
    cli("ignore", "https://gone.test/", "--reason", "not cited")
    listed = cli("ignore", "--list", "--json")
    assert listed.exit_code == 0, listed.output
    rules = json.loads(listed.stdout)["ignores"]
    assert [(r["url"], r["reason"], r["cited"]) for r in rules] == [
        ("https://gone.test/", "not cited", False),
        ("https://news.test/dead/paywalled", "paywall; checked by hand", True),
    ]
    assert all(r["created_at"] for r in rules)
    table = cli("ignore", "--list")
    assert table.exit_code == 0
    assert "not cited" in table.stdout and "gone.test" in table.stdout
    assert "https://twitter.com/*" in table.stdout

    lifted = cli("ignore", "https://news.test/dead/paywalled", "--remove")
    assert lifted.exit_code == 0, lifted.output
    store = Store.open(cited_db)
    assert store.ignored() == {"https://gone.test/": "not cited"}
    history = store.query("SELECT url, removed_at FROM ignores ORDER BY id")
    assert len(history) == 3  # lifted, not deleted: the ignore history stays
    assert [r["removed_at"] is not None for r in history] == [True, True, False]
    after = json.loads(cli("ignore", "--list", "--json").stdout)["ignores"]
    assert [r["url"] for r in after] == ["https://gone.test/"]
    again = cli("ignore", "https://news.test/dead/paywalled", "--remove")
    assert again.exit_code == 2 and "not ignored" in again.stderr


def test_a_lifted_ignore_counts_again_for_the_exit_code(cli, cited_db):
    store = Store.open(cited_db)
    url_id = store.query("SELECT id FROM urls WHERE url = ?", ["https://news.test/dead/paywalled"])
    store.set_verdict(url_id[0]["id"], store.begin_run("check"), "dead")
    cli("ignore", "https://news.test/dead/paywalled", "--reason", "paywall")
    assert store.broken_citations() == []
    cli("ignore", "https://news.test/dead/paywalled", "--remove")
    assert [r["url"] for r in store.broken_citations()] == ["https://news.test/dead/paywalled"]


# -- 6. history -----------------------------------------------------------------------------------


def test_history_says_unconfirmed_and_shows_confirmed_only_for_dead(cli, tmp_path):
    corpus = build_corpus(tmp_path)
    corpus.store.close()
    db = str(corpus.path)
    one_shot = cli("history", DEAD_NO_SNAPSHOT, "--db", db)
    assert one_shot.exit_code == 0, one_shot.output
    header = one_shot.stdout.splitlines()[0]
    assert header.endswith("verdict: dead (unconfirmed)")
    assert "│ dead (unconfirmed)" in one_shot.stdout  # the verdict change itself
    assert "True" not in one_shot.stdout and "False" not in one_shot.stdout
    confirmed = cli("history", DEAD, "--db", db)
    assert confirmed.stdout.splitlines()[0].endswith("verdict: dead")
    failing = cli("history", IGNORED, "--db", db)
    assert "verdict: failing" in failing.stdout.splitlines()[0]
    assert "True" not in failing.stdout  # confirmed says nothing about a failing verdict
    doc = json.loads(cli("history", IGNORED, "--json", "--db", db).stdout)
    assert doc["confirmed"] is None and doc["verdicts"][0]["confirmed"] is None


# -- 7. archive --dry-run lists what it would save -------------------------------------------------


def test_archive_dry_run_lists_the_urls_it_would_save(cli, tmp_path, make_simwayback):
    urls = ["http://dry.test/a", "http://dry.test/b", "http://dry.test/c"]
    recent = "20990101000000"  # a capture newer than any --save-if-older: nothing to save
    wayback = make_simwayback({urls[1]: [Capture(recent)]})
    db = tmp_path / "citewatch.db"
    store = Store.open(db)
    seed(store, urls)
    for row in store.query("SELECT id FROM urls"):
        store.set_verdict(row["id"], store.begin_run("check"), "alive")
    store.close()
    (tmp_path / "citewatch.toml").write_text("cdx_per_minute = 600\nretries = 0\nbackoff = 0\n")
    args = ["archive", "--dry-run", "--wayback-url", wayback.base_url, "-q"]
    for spec in wayback.connect_to:
        args += ["--connect-to", spec]
    done = cli(*args, env={"IA_ACCESS_KEY": "AKEY", "IA_SECRET_KEY": "SKEY"})
    assert done.exit_code == 0, done.output
    assert "would request 2 Save Page Now capture(s)" in done.stdout
    listed = [line.strip() for line in done.stdout.splitlines() if line.startswith("  http")]
    assert listed == ["http://dry.test/a", "http://dry.test/c"]
    assert not wayback.requests("save")
