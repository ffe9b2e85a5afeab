"""The command-line interface (Typer). Thin: parse flags, build Settings, call the pipeline, print.

Contract (DESIGN §7, stable — scripts depend on it): results on stdout (``--json`` for machines),
progress on stderr; exit 0 all citations fine, 1 broken citations found, 2 usage or input error,
3 network unavailable (nothing was judged).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import ssl
import sys
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from .config import ConfigError, Settings, apply, archive_keys, ignore_reason, load
from .models import Profile
from .progress import NullReporter, Reporter, RichReporter
from .store import LOCK_SUFFIX, RunInProgress, SchemaTooNew, Store, finding_dict

EXIT_OK, EXIT_BROKEN, EXIT_USAGE, EXIT_OFFLINE = 0, 1, 2, 3
T = TypeVar("T")

app = typer.Typer(
    name="citewatch",
    help="Archival link and citation checker: scan profiles, check links honestly, find and request "
    "Wayback snapshots, report provenance. All state lives in one SQLite file (--db).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per message, for logs


# ---------------------------------------------------------------------------------------------
# Options shared by several commands (same meaning everywhere).
DbOpt = Annotated[
    str | None, typer.Option("--db", help="SQLite database file [default: citewatch.db].")
]
ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config", help="Config file (default: ./citewatch.toml or [tool.citewatch] in pyproject)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
BaseUrlOpt = Annotated[
    str | None, typer.Option("--base-url", help="Base URL for relative links in every profile.")
]
ConnectToOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--connect-to",
        help="HOST1:PORT1:HOST2:PORT2 — connect to HOST2:PORT2 instead (curl semantics; repeatable; "
        "empty HOST1/PORT1 match any). URL, Host header and TLS name are kept.",
    ),
]
CacertOpt = Annotated[str | None, typer.Option("--cacert", help="Extra CA bundle (PEM) to trust.")]
WaybackOpt = Annotated[
    str | None,
    typer.Option(
        "--wayback-url", help="Wayback Machine base URL [default: https://web.archive.org]."
    ),
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Requests in flight overall [64].")
]
PerHostOpt = Annotated[
    int | None, typer.Option("--per-host", min=1, help="Requests in flight per host [2].")
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", min=0.01, help="Connect/read timeout, seconds [15].")
]
UserAgentOpt = Annotated[str | None, typer.Option("--user-agent", help="User-Agent header.")]
AllowPrivateOpt = Annotated[
    bool | None,
    typer.Option(
        "--allow-private/--no-allow-private",
        help="Probe URLs whose host resolves to loopback/private/link-local addresses [no].",
    ),
]
HostIntervalOpt = Annotated[
    str | None,
    typer.Option(
        "--host-interval", help="Minimum time between requests to one host, e.g. 250ms [0]."
    ),
]
CanaryOpt = Annotated[
    str | None,
    typer.Option("--canary", help="URL that proves our own network works [the Wayback endpoint]."),
]
OneShotOpt = Annotated[
    bool | None,
    typer.Option(
        "--one-shot/--no-one-shot",
        help="Editors' mode: one definitive failure makes a link dead (unconfirmed).",
    ),
]
AllOpt = Annotated[
    bool | None, typer.Option("--all/--no-all", help="Re-check every URL, however fresh.")
]
MaxAgeOpt = Annotated[
    str | None,
    typer.Option("--max-age", help="Skip URLs checked more recently than this, e.g. 12h [1d]."),
]
ConfirmFailuresOpt = Annotated[
    int | None,
    typer.Option("--confirm-failures", min=1, help="Definitive failures needed for dead [3]."),
]
ConfirmSpanOpt = Annotated[
    str | None,
    typer.Option("--confirm-span", help="Time those failures must span, e.g. 3d [3d]."),
]
HeadOpt = Annotated[
    bool | None, typer.Option("--head/--no-head", help="Try HEAD first, fall back to GET [no].")
]
SaveOpt = Annotated[
    bool | None,
    typer.Option(
        "--save/--no-save", help="Request Save Page Now captures for live sources [save]."
    ),
]
DryRunOpt = Annotated[
    bool | None,
    typer.Option("--dry-run/--no-dry-run", help="List what would be saved; submit nothing."),
]
SaveIfOlderOpt = Annotated[
    str | None,
    typer.Option("--save-if-older", help="Save when the newest capture is older than this [365d]."),
]
VerifyOpt = Annotated[
    bool | None,
    typer.Option("--verify/--no-verify", help="Fetch chosen snapshots and reject soft-404 ones."),
]
VerifyReplacementsOpt = Annotated[
    bool | None,
    typer.Option(
        "--verify-replacements/--no-verify-replacements",
        help="Replay the snapshot fix would cite for each broken link, skip rejected ones [yes].",
    ),
]
OutOpt = Annotated[str | None, typer.Option("--out", help="Reports folder [reports].")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help="Comma-separated: md,html,json,csv [all].")
]


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"citewatch {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """citewatch — archival link and citation checker."""


# ---------------------------------------------------------------------------------------------
# Plumbing
def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(f"citewatch: {message}", markup=False)
    return typer.Exit(code)


def _settings(config: str | None, **flags: Any) -> Settings:
    """Defaults < config file < environment < flags (None flags are "not given")."""
    try:
        settings, _ = load(config)
        given = {k: v for k, v in flags.items() if v is not None and v != []}
        settings = apply(settings, given, "command line")
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    for name in ("wayback_url", "availability_url", "canary", "base_url"):
        value = getattr(settings, name)
        if value and not _is_web_url(value):
            raise fail(f"{name.replace('_', '-')}: not an http(s) URL: {value}")
    return settings


def _is_web_url(value: str) -> bool:
    from .urls import InvalidURL, parse

    try:
        return parse(value).protocol in ("http:", "https:")
    except InvalidURL:
        return False


def _open_store(path: str, *, create: bool = False) -> Store:
    """Open the database. Only ``scan`` and ``audit`` (which build the corpus) may create it: for
    every other command a missing file is a mistyped ``--db``, and opening it would silently make
    an empty database that reports "every citation is fine"."""
    if not create and path != ":memory:":
        file = Path(path)
        if not file.exists() or (file.is_file() and file.stat().st_size == 0):
            what = "no database" if not file.exists() else "an empty file, not a database,"
            raise fail(
                f"{what} at {path}: run `citewatch scan` or `citewatch audit` first "
                "(or pass the right --db)"
            )
    try:
        return Store.open(path)
    except SchemaTooNew as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # sqlite3.DatabaseError and friends: a clear message, exit 2
        raise fail(f"cannot open database {path}: {exc}") from exc


def _require_valid_keys() -> None:
    """Archive keys set wrongly are a usage error before anything runs (not mid-audit)."""
    try:
        archive_keys()
    except ConfigError as exc:
        raise fail(str(exc)) from exc


def _claim(store: Store) -> None:
    """One probing run per database at a time (see Store.claim_runs); a second one exits 2."""
    try:
        store.claim_runs()
    except RunInProgress as exc:
        raise fail(str(exc)) from exc


def _reporter(quiet: bool, as_json: bool) -> Reporter:
    if quiet:
        return NullReporter()
    return RichReporter()


_USERINFO = re.compile(r"(//)[^/@\s]+@")


def _argv() -> list[str]:
    """The command line as recorded in ``runs`` — any URL userinfo scrubbed."""
    return [_USERINFO.sub(r"\1***@", arg) for arg in sys.argv[1:]]


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _require_paths(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise fail(f"no such file or folder: {', '.join(missing)}")


def _display_path(path: Path) -> Path:
    """A path as shown to the user: relative to the current folder when inside it, else absolute.
    (The database names profiles relative to its own folder: Store.profile_key.)"""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve())
    except ValueError:
        return resolved


# ---------------------------------------------------------------------------------------------
# scan
def do_scan(
    store: Store,
    run_id: int,
    paths: list[Path],
    base_url: str | None,
    reporter: Reporter,
    keep_profiles: bool,
    exclude: list[Path] | None = None,
) -> tuple[list[Profile], dict[str, int]]:
    """Extract and store every profile under ``paths``; never raises for bad input. Folder walks
    skip ``exclude`` (citewatch's own database and reports folder)."""
    from .extract import discover, read_profile
    from .extract.manifest import load_manifest

    manifests = []
    for root in paths:
        folder = root if root.is_dir() else root.parent
        try:
            manifests.append((folder.resolve(), load_manifest(folder)))
        except ValueError as exc:
            raise fail(f"bad manifest in {folder}: {exc}") from exc
    other_types: list[Path] = []
    files = list(discover(paths, exclude or (), other_types))
    reporter.stage("scan", len(files))
    counts = {"profiles": 0, "new": 0, "changed": 0, "unchanged": 0, "removed": 0}
    counts |= {"citations": 0, "findings": 0, "other_files": len(other_types)}
    if other_types:
        kinds = Counter(path.suffix.lower() for path in other_types)
        reporter.note(
            f"not read: {len(other_types)} file(s) in the scanned folders that are no profile "
            "format (" + ", ".join(f"{kind} ×{n}" for kind, n in sorted(kinds.items())) + "); "
            "name a file to have it read anyway"
        )
    kept: list[Profile] = []
    seen: set[str] = set()
    for file in files:
        manifest = next(
            (m for folder, m in manifests if file.resolve().is_relative_to(folder)), None
        )
        profile = read_profile(_display_path(file), base_url=base_url, manifest=manifest)
        profile.path = store.profile_key(file)
        legacy = _display_path(file).as_posix()  # how citewatch before 0.2 named it
        if legacy != profile.path and store.profile_row(profile.path) is None:
            store.rename_profile(legacy, profile.path)
        seen.add(profile.path)
        status = store.save_profile(profile, run_id)
        counts["profiles"] += 1
        counts[status] += 1
        counts["citations"] += len(profile.citations)
        counts["findings"] += len(profile.findings)
        if keep_profiles:
            kept.append(profile)
        reporter.advance()
    for path in removed_profiles(store, paths, seen, exclude):
        store.retire_profile(path, run_id)
        counts["removed"] += 1
    return kept, counts


def own_files(db: str, out_dir: str | None = None) -> list[Path]:
    """What citewatch itself writes, which a folder scan must never read as profiles: the database
    with its SQLite siblings (``-wal``, ``-shm``, ``-journal``) and, for ``audit``, the reports
    folder."""
    if db == ":memory:":
        files = []
    else:
        database = Path(db).resolve()
        files = [database] + [
            database.with_name(database.name + suffix)
            for suffix in ("-wal", "-shm", "-journal", LOCK_SUFFIX)
        ]
    if out_dir is not None:
        files.append(Path(out_dir).resolve())
    return files


def _refuse_reports_in_scanned_folder(paths: list[Path], out_dir: str) -> None:
    """Reports written straight into a scanned folder would be read as profiles by the next audit
    (inside a scanned folder, the reports folder is skipped; it cannot skip the folder itself)."""
    target = Path(out_dir).resolve()
    for path in paths:
        if path.is_dir() and path.resolve() == target:
            raise fail(
                f"--out {out_dir} is a folder being scanned: its reports would be read as profiles "
                "next time; write them elsewhere (e.g. a reports/ folder inside it)"
            )


def _refuse_reports_among_profiles(store: Store, out_dir: str) -> None:
    """Reports written into a folder that holds profiles would make scans skip that folder (it
    becomes citewatch's own, see ``discover``) and retire its profiles."""
    target = Path(out_dir).resolve()
    for path in store.active_profile_paths():
        file = store.profile_file(path)
        if file.exists() and file.resolve().parent.is_relative_to(target):
            raise fail(
                f"--out {out_dir} holds profiles of the corpus ({path}): reports written there "
                "would hide them from the next scan; write them elsewhere (e.g. reports/)"
            )


def removed_profiles(
    store: Store, roots: list[Path], seen: set[str], exclude: list[Path] | None = None
) -> list[str]:
    """Stored profiles that a scanned folder no longer holds: under one of the folders scanned,
    not found by this scan, and gone from disk (a file scanned by name once, that a folder scan
    does not pick up, stays) — or one of citewatch's own files, which a folder scan never reads
    (an older citewatch stored its database and reports as profiles)."""
    folders = [root.resolve() for root in roots if root.is_dir()]
    excluded = {path.resolve() for path in exclude or ()}
    removed = []
    for path in store.active_profile_paths():
        if path in seen:
            continue
        file = store.profile_file(path)
        for root in folders:
            if file.resolve().is_relative_to(root):
                if not file.exists() or _own_file(file, root, excluded):
                    removed.append(path)
                break
    return removed


def _own_file(path: Path, root: Path, excluded: set[Path]) -> bool:
    """Whether a folder walk of ``root`` skips ``path`` as citewatch's own (see ``discover``)."""
    from .extract import REPORTS_MANIFEST

    resolved, top = path.resolve(), root.resolve()
    if resolved in excluded:
        return True
    for parent in resolved.parents:
        if parent == top or not parent.is_relative_to(top):
            break
        if parent in excluded or (parent / REPORTS_MANIFEST).exists():
            return True
    return False


def profile_json(profile: Profile) -> dict[str, Any]:
    return {
        "path": profile.path,
        "format": profile.format,
        "title": profile.title,
        "authors": profile.authors,
        "published": profile.published,
        "base_url": profile.base_url,
        "base_url_guessed": profile.base_url_guessed,
        "sha256": profile.sha256,
        "citations": [
            {
                "url": c.url,
                "raw": c.raw,
                "line": c.line,
                "column": c.column,
                "page": c.page,
                "text": c.text,
                "context": c.context,
                "section": c.section,
                "role": str(c.role),
                "fragment": c.fragment or None,
                "archived": (
                    {"original": c.archived.original, "timestamp": c.archived.timestamp}
                    if c.archived
                    else None
                ),
                "skipped": c.skip_reason,
            }
            for c in profile.citations
        ],
        "findings": [finding_dict(f) for f in profile.findings],
    }


def print_scan_summary(profiles: list[Profile]) -> None:
    table = Table(title="Scanned profiles", title_justify="left")
    for column in (
        "profile",
        "source",
        "navigation",
        "media",
        "skipped",
        "URLs",
        "hosts",
        "findings",
    ):
        if column == "profile":
            table.add_column(column, overflow="fold", min_width=24)
        else:
            table.add_column(column, justify="right")
    for profile in profiles:
        roles = {"source": 0, "navigation": 0, "media": 0}
        skipped = 0
        for citation in profile.citations:
            if citation.skip_reason:
                skipped += 1
            else:
                roles[str(citation.role)] += 1
        urls = {c.url for c in profile.citations if c.url and not c.skip_reason}
        hosts = {u.split("/")[2] for u in urls if "://" in u}
        table.add_row(
            profile.path,
            str(roles["source"]),
            str(roles["navigation"]),
            str(roles["media"]),
            str(skipped),
            str(len(urls)),
            str(len(hosts)),
            str(len(profile.findings)),
        )
    out.print(table)
    for profile in profiles:
        for finding in profile.findings:
            where = f":{finding.line}" if finding.line else ""
            out.print(f"  {profile.path}{where}: {finding.kind}: {finding.message}", markup=False)


@app.command()
def scan(
    paths: Annotated[
        list[Path], typer.Argument(help="Profile files or folders (recursive).", metavar="PATH...")
    ],
    base_url: BaseUrlOpt = None,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Extract every cited URL (with line, anchor text, sentence, section, role) and store it."""
    _require_paths(paths)
    settings = _settings(config, db=db, base_url=base_url)
    store = _open_store(settings.db, create=True)
    reporter = _reporter(quiet, as_json)
    run_id = store.begin_run("scan", _argv(), settings.digest())
    try:
        profiles, counts = do_scan(
            store, run_id, paths, settings.base_url, reporter, True, own_files(settings.db)
        )
    finally:
        reporter.close()
    store.finish_run(run_id, counts=counts)
    if as_json:
        _emit_json(
            {"run": {"id": run_id, **counts}, "profiles": [profile_json(p) for p in profiles]}
        )
    else:
        print_scan_summary(profiles)
        out.print(
            f"{counts['profiles']} profiles ({counts['new']} new, {counts['changed']} changed, "
            f"{counts['unchanged']} unchanged"
            + (f", {counts['removed']} removed" if counts["removed"] else "")
            + f"), {counts['citations']} citations, "
            f"{counts['findings']} findings — stored in {settings.db}"
        )


# ---------------------------------------------------------------------------------------------
# check
def _network_flags(
    connect_to: list[str] | None,
    cacert: str | None,
    timeout: float | None,
    user_agent: str | None,
    concurrency: int | None,
    allow_private: bool | None,
) -> dict[str, Any]:
    if cacert:
        if not Path(cacert).is_file():
            raise fail(f"--cacert: no such file: {cacert}")
        try:
            ssl.create_default_context().load_verify_locations(cafile=cacert)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise fail(f"--cacert: {cacert} is not a usable PEM CA bundle ({exc})") from exc
    if user_agent is not None and (not user_agent.strip() or any(c in user_agent for c in "\r\n")):
        raise fail("--user-agent must be one non-empty line")
    return {
        "connect_to": connect_to or None,
        "cacert": cacert,
        "timeout": timeout,
        "user_agent": user_agent,
        "concurrency": concurrency,
        "allow_private": allow_private,
    }


def _check_flags(
    per_host: int | None,
    host_interval: str | None,
    canary: str | None,
    head: bool | None,
    one_shot: bool | None,
    check_all: bool | None,
    max_age: str | None,
    confirm_failures: int | None,
    confirm_span: str | None,
) -> dict[str, Any]:
    """The check policy flags as settings keys (shared by `check` and `audit`)."""
    return {
        "per_host": per_host,
        "host_interval": host_interval,
        "canary": canary,
        "head_first": head,
        "one_shot": one_shot,
        "check_all": check_all,
        "max_age": max_age,
        "confirm_failures": confirm_failures,
        "confirm_span": confirm_span,
    }


def run_async(job: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(job)``, with the result kept out of the main task: on the way out
    asyncio.run restores the SIGINT handler, and the standard library formats the main task
    (its result included) while doing so — tens of ms for a check of thousands of URLs."""
    results: list[T] = []

    async def main() -> None:
        results.append(await job)

    asyncio.run(main())
    return results[0]


def do_check(store: Store, run_id: int, settings: Settings, reporter: Reporter) -> Any:
    from .check.runner import run_check

    return run_async(run_check(store, run_id, settings, reporter))


def judged_exit_code(store: Store, network: str, ignore: list[str] | None = None) -> int:
    """3 when nothing could be judged (offline), 1 when broken citations exist, else 0.
    URLs under an ignore rule (``citewatch ignore`` or the config's ``ignore`` globs) never count."""
    if network == "offline":
        return EXIT_OFFLINE
    return EXIT_BROKEN if judged_broken(store, ignore) else EXIT_OK


def judged_broken(store: Store, ignore: list[str] | None = None) -> list[dict[str, Any]]:
    """The broken citations exit code 1 stands for, as JSON-ready items (what and why)."""
    patterns = ignore or []
    return [
        {
            "profile": row["path"],
            "line": row["line"],
            "column": row["col"],
            "cited_url": row["cited_url"],
            "url": row["url"],
            "why": (
                "the cited archive link does not replay"
                if row["archived_timestamp"]
                else "dead" + ("" if row["confirmed"] else " (unconfirmed)")
            ),
        }
        for row in store.broken_citations()
        if ignore_reason(row["url"], patterns, {}) is None  # stored rules: the SQL left them out
    ]


def check_json(
    result: Any, run: dict[str, Any], broken: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "run": {
            "id": result.run_id,
            "network": result.network,
            "started": run["started"],
            "finished": run.get("finished") or result.finished,
        },
        "urls": result.urls,
        "summary": result.summary,
        "probed": result.probed,
        "skipped_fresh": result.skipped_fresh,
        "message": result.message,
        "broken": broken or [],
    }


def print_verdict_summary(summary: dict[str, int], title: str = "URLs by verdict") -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("verdict")
    table.add_column("URLs", justify="right")
    for verdict, count in sorted(summary.items(), key=lambda kv: (-kv[1], kv[0])):
        if count:
            table.add_row(verdict, str(count))
    out.print(table)


def print_broken(store: Store, one_shot: bool, ignore: list[str] | None = None) -> None:
    """The URLs that need attention; ignored ones (``citewatch ignore``, config globs) are not."""
    rules = store.ignored()
    patterns = ignore or []

    def ignored(url: str) -> bool:
        return ignore_reason(url, patterns, rules) is not None

    rows = [
        row
        for row in store.query(
            "SELECT DISTINCT u.url, u.verdict, u.confirmed, u.last_outcome, u.moved_to FROM urls u"
            " JOIN citations ci ON ci.url_id = u.id AND ci.superseded_run IS NULL"
            " WHERE u.verdict IN ('dead', 'moved', 'failing', 'blocked') ORDER BY u.verdict, u.url"
        )
        if not ignored(row["url"])
    ]
    archive_links = sorted(
        {
            row["cited_url"]
            for row in store.broken_citations()
            if row["archived_timestamp"] and not ignored(row["url"])
        }
    )
    if not rows and not archive_links:
        return
    table = Table(title="Needs attention", title_justify="left")
    table.add_column("verdict")
    table.add_column("last outcome")
    table.add_column("URL", overflow="fold")
    for row in rows:
        label = row["verdict"]
        if label == "dead" and not row["confirmed"]:
            label = "broken (unconfirmed)"
        target = row["url"] + (f"  → {row['moved_to']}" if row["moved_to"] else "")
        table.add_row(label, row["last_outcome"] or "", target)
    for cited in archive_links:
        table.add_row("broken archive link", "does not replay", cited)
    out.print(table)


@app.command()
def check(
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    connect_to: ConnectToOpt = None,
    cacert: CacertOpt = None,
    wayback_url: WaybackOpt = None,
    concurrency: ConcurrencyOpt = None,
    per_host: PerHostOpt = None,
    host_interval: HostIntervalOpt = None,
    timeout: TimeoutOpt = None,
    user_agent: UserAgentOpt = None,
    allow_private: AllowPrivateOpt = None,
    canary: CanaryOpt = None,
    head: HeadOpt = None,
    one_shot: OneShotOpt = None,
    check_all: AllOpt = None,
    max_age: MaxAgeOpt = None,
    confirm_failures: ConfirmFailuresOpt = None,
    confirm_span: ConfirmSpanOpt = None,
) -> None:
    """Check every cited URL (politely, per host) and update verdicts from the history."""
    settings = _settings(
        config,
        db=db,
        wayback_url=wayback_url,
        **_check_flags(
            per_host,
            host_interval,
            canary,
            head,
            one_shot,
            check_all,
            max_age,
            confirm_failures,
            confirm_span,
        ),
        **_network_flags(connect_to, cacert, timeout, user_agent, concurrency, allow_private),
    )
    store = _open_store(settings.db)
    reporter = _reporter(quiet, as_json)
    _claim(store)
    run_id = store.begin_run("check", _argv(), settings.digest())
    try:
        result = do_check(store, run_id, settings, reporter)
    finally:
        reporter.close()
    store.finish_run(
        run_id,
        counts={**result.summary, "policy": {"one_shot": settings.one_shot}},
        network=result.network,
    )
    if as_json:
        broken = judged_broken(store, settings.ignore) if result.network != "offline" else []
        _emit_json(check_json(result, store.run(run_id), broken))
    else:
        print_verdict_summary(result.summary)
        print_broken(store, settings.one_shot, settings.ignore)
        out.print(
            f"run {run_id}: probed {result.probed} URLs, {result.skipped_fresh} fresh enough to skip; "
            f"network {result.network}"
        )
    if result.message and quiet:  # otherwise the runner has already shown it on stderr
        err.print(result.message, markup=False)
    raise typer.Exit(judged_exit_code(store, result.network, settings.ignore))


# ---------------------------------------------------------------------------------------------
# archive
def do_archive(store: Store, run_id: int, settings: Settings, reporter: Reporter) -> Any:
    from .archive.runner import run_archive

    return run_async(run_archive(store, run_id, settings, reporter, archive_keys()))


def archive_json(result: Any) -> dict[str, Any]:
    return {
        "run": {"id": result.run_id, "archive": result.archive},
        "urls": result.urls,
        "summary": result.summary,
        "message": result.message,
    }


def print_archive_summary(result: Any) -> None:
    table = Table(title=f"Archive ({result.archive})", title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    for key, value in result.summary.items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
    print_dry_run_saves(result)


def print_dry_run_saves(result: Any) -> None:
    """``--dry-run``: the URLs a real run would ask Save Page Now to capture."""
    would_save = [
        item["url"] for item in result.urls if (item.get("save") or {}).get("status") == "dry_run"
    ]
    if would_save:
        out.print(f"dry run: would request {len(would_save)} Save Page Now capture(s):")
        for url in would_save:
            out.print(f"  {url}", markup=False)


@app.command()
def archive(
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    save: SaveOpt = None,
    dry_run: DryRunOpt = None,
    save_if_older: SaveIfOlderOpt = None,
    verify: VerifyOpt = None,
    verify_replacements: VerifyReplacementsOpt = None,
    connect_to: ConnectToOpt = None,
    cacert: CacertOpt = None,
    wayback_url: WaybackOpt = None,
    timeout: TimeoutOpt = None,
    user_agent: UserAgentOpt = None,
    concurrency: ConcurrencyOpt = None,
) -> None:
    """Find Wayback snapshots (the one closest to the citation) and request new captures."""
    settings = _settings(
        config,
        db=db,
        save=save,
        dry_run=dry_run,
        save_if_older=save_if_older,
        verify_snapshots=verify,
        verify_replacements=verify_replacements,
        wayback_url=wayback_url,
        **_network_flags(connect_to, cacert, timeout, user_agent, concurrency, None),
    )
    store = _open_store(settings.db)
    reporter = _reporter(quiet, as_json)
    _require_valid_keys()
    _claim(store)
    run_id = store.begin_run("archive", _argv(), settings.digest())
    try:
        result = do_archive(store, run_id, settings, reporter)
    finally:
        reporter.close()
    store.finish_run(run_id, counts=result.summary, archive=result.archive)
    if as_json:
        _emit_json(archive_json(result))
    else:
        print_archive_summary(result)
    if result.message and quiet:
        err.print(result.message, markup=False)
    raise typer.Exit(EXIT_OFFLINE if result.archive == "unreachable" else EXIT_OK)


# ---------------------------------------------------------------------------------------------
# report
def _formats(value: str | None, settings: Settings) -> list[str]:
    formats = [f.strip() for f in value.split(",")] if value else list(settings.formats)
    unknown = [f for f in formats if f not in {"md", "html", "json", "csv"}]
    if unknown:
        raise fail(f"--format: unknown format(s) {', '.join(unknown)} (use md,html,json,csv)")
    return formats


@app.command()
def report(
    db: DbOpt = None,
    config: ConfigOpt = None,
    out_dir: OutOpt = None,
    formats: FormatOpt = None,
    wayback_url: WaybackOpt = None,
) -> None:
    """Write provenance reports (Markdown, HTML, JSON, CSV) from the database."""
    from .report import write_reports

    settings = _settings(config, db=db, out=out_dir, wayback_url=wayback_url)
    chosen = _formats(formats, settings)
    store = _open_store(settings.db)
    _refuse_reports_among_profiles(store, settings.out)
    try:
        written = write_reports(
            store,
            Path(settings.out),
            chosen,
            wayback_url=settings.wayback_url,
            ignore_patterns=settings.ignore,
        )
    except OSError as exc:
        raise fail(f"cannot write reports to {settings.out}: {exc}") from exc
    out.print(f"wrote {len(written)} files to {settings.out}/")


# ---------------------------------------------------------------------------------------------
# audit
@app.command()
def audit(
    paths: Annotated[
        list[Path], typer.Argument(help="Profile files or folders (recursive).", metavar="PATH...")
    ],
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    quiet: QuietOpt = False,
    base_url: BaseUrlOpt = None,
    out_dir: OutOpt = None,
    formats: FormatOpt = None,
    connect_to: ConnectToOpt = None,
    cacert: CacertOpt = None,
    wayback_url: WaybackOpt = None,
    concurrency: ConcurrencyOpt = None,
    per_host: PerHostOpt = None,
    host_interval: HostIntervalOpt = None,
    timeout: TimeoutOpt = None,
    user_agent: UserAgentOpt = None,
    allow_private: AllowPrivateOpt = None,
    canary: CanaryOpt = None,
    head: HeadOpt = None,
    one_shot: OneShotOpt = None,
    check_all: AllOpt = None,
    max_age: MaxAgeOpt = None,
    confirm_failures: ConfirmFailuresOpt = None,
    confirm_span: ConfirmSpanOpt = None,
    save: SaveOpt = None,
    dry_run: DryRunOpt = None,
    save_if_older: SaveIfOlderOpt = None,
    verify: VerifyOpt = None,
    verify_replacements: VerifyReplacementsOpt = None,
) -> None:
    """scan → check → archive → reports in one go: the periodic link-rot audit."""
    settings = _settings(
        config,
        db=db,
        base_url=base_url,
        out=out_dir,
        wayback_url=wayback_url,
        **_check_flags(
            per_host,
            host_interval,
            canary,
            head,
            one_shot,
            check_all,
            max_age,
            confirm_failures,
            confirm_span,
        ),
        save=save,
        dry_run=dry_run,
        save_if_older=save_if_older,
        verify_snapshots=verify,
        verify_replacements=verify_replacements,
        **_network_flags(connect_to, cacert, timeout, user_agent, concurrency, allow_private),
    )
    chosen = _formats(formats, settings)
    _require_paths(paths)
    _refuse_reports_in_scanned_folder(paths, settings.out)
    store = _open_store(settings.db, create=True)
    _refuse_reports_among_profiles(store, settings.out)
    reporter = _reporter(quiet, as_json)
    _require_valid_keys()
    _claim(store)
    run_id = store.begin_run("audit", _argv(), settings.digest())
    from .report import gather, write_reports

    try:
        profiles, scan_counts = do_scan(
            store,
            run_id,
            paths,
            settings.base_url,
            reporter,
            False,
            own_files(settings.db, settings.out),
        )
        checked = do_check(store, run_id, settings, reporter)
        archived = None
        if checked.network != "offline":
            archived = do_archive(store, run_id, settings, reporter)
        else:
            reporter.note("archive step skipped: the network is unavailable")
        reporter.stage("reports", None)
        report_data = gather(
            store,
            run_id,
            settings.wayback_url,
            settings.ignore,
            one_shot=settings.one_shot,
            network_note=checked.message,
        )
        try:
            written = write_reports(store, Path(settings.out), chosen, data=report_data)
        except OSError as exc:  # everything observed is stored; only the reports are missing
            store.finish_run(
                run_id,
                counts={
                    "scan": scan_counts,
                    "verdicts": checked.summary,
                    "policy": {"one_shot": settings.one_shot},
                },
            )
            raise fail(f"cannot write reports to {settings.out}: {exc}") from exc
    finally:
        reporter.close()
    counts = {"scan": scan_counts, "verdicts": checked.summary}
    counts["policy"] = {"one_shot": settings.one_shot}  # which audits a later one compares with
    if checked.message:
        counts["network_note"] = checked.message
    if archived is not None:
        counts["archive"] = archived.summary
    store.finish_run(
        run_id,
        counts=counts,
        network=checked.network,
        archive=archived.archive if archived else "skipped",
    )
    summary = report_data.summary
    exit_code = judged_exit_code(store, checked.network, settings.ignore)
    if as_json:
        _emit_json(
            {
                "run": {**store.run(run_id), "counts": counts},
                "scan": scan_counts,
                "check": check_json(
                    checked,
                    store.run(run_id),
                    judged_broken(store, settings.ignore) if checked.network != "offline" else [],
                ),
                "archive": archive_json(archived) if archived else None,
                "summary": summary,
                "reports": [str(p) for p in written],
                "exit_code": exit_code,
            }
        )
    else:
        print_verdict_summary(checked.summary)
        print_broken(store, settings.one_shot, settings.ignore)
        print_audit_summary(summary, scan_counts, checked, archived, settings.out, len(written))
        if archived is not None:
            print_dry_run_saves(archived)
    if quiet:  # otherwise the stages have already shown their messages on stderr
        for message in (checked.message, archived.message if archived else None):
            if message:
                err.print(message, markup=False)
    raise typer.Exit(exit_code)


def print_audit_summary(
    summary: dict[str, Any],
    scan_counts: dict[str, int],
    checked: Any,
    archived: Any,
    out_dir: str,
    files: int,
) -> None:
    def pct(value: Any) -> str:
        return f"{value * 100:.1f}%" if isinstance(value, int | float) else "n/a"

    lines = [
        f"profiles {scan_counts['profiles']} ({scan_counts['new']} new, {scan_counts['changed']} changed"
        + (f", {scan_counts['removed']} removed" if scan_counts.get("removed") else "")
        + "), "
        f"citations {summary.get('citations', scan_counts['citations'])}, distinct URLs {summary.get('urls', '?')}",
        f"network {checked.network}; archive {archived.archive if archived else 'skipped'}",
        f"link rot {pct(summary.get('link_rot_rate'))}; archive coverage {pct(summary.get('archive_coverage'))}",
    ]
    network = summary.get("network") or {}
    explanation = network.get("explanation") or ""
    if network.get("health") not in (None, "ok") and explanation:
        # the check's own words already start "network unavailable: …" / "network degraded: …"
        lines.append(
            explanation
            if explanation.startswith("network ")
            else f"network {network['health']}: {explanation}"
        )
    newly_broken = summary.get("newly_broken_citations") or []
    no_longer = summary.get("no_longer_broken_citations") or []
    if summary.get("previous_run") is not None:
        lines.append(
            f"since the previous audit (run {summary['previous_run']}), citations: "
            f"{len(newly_broken)} newly broken, {len(no_longer)} no longer broken"
        )
        for label, changes in (("newly broken", newly_broken), ("no longer broken", no_longer)):
            lines += [
                f"  {label}: {c['url'] or c['cited_url']} ({c['profile']}:{c['line']}, {c['why']})"
                for c in changes
            ]
    elif summary.get("audits_not_compared"):
        others = ", ".join(
            f"run {a['run_id']} ({a['policy']})" for a in summary["audits_not_compared"]
        )
        lines.append(
            f"no earlier {summary.get('policy', 'periodic')} audit to compare with "
            f"(not compared: {others})"
        )
    else:
        lines.append("first audit of this database: nothing to compare with yet")
    lines.append(f"reports: {files} files in {out_dir}/ (open {out_dir}/index.html)")
    for line in lines:
        out.print(line, markup=False)


# ---------------------------------------------------------------------------------------------
# fix, history, ignore
@app.command()
def fix(
    profile: Annotated[Path, typer.Argument(help="The profile file to fix.")],
    write: Annotated[
        bool, typer.Option("--write", help="Rewrite the file (a backup is kept).")
    ] = False,
    include_moved: Annotated[
        bool, typer.Option("--include-moved", help="Also point moved links at their new URL.")
    ] = False,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    wayback_url: WaybackOpt = None,
) -> None:
    """Replace broken citations with their best archived copy: a unified diff, or --write."""
    from .fix import FixRefused, ProfileNotScanned, plan_fix, write_fix

    settings = _settings(config, db=db, wayback_url=wayback_url)
    if not profile.is_file():
        raise fail(f"no such profile: {profile}")
    store = _open_store(settings.db)
    path = _display_path(profile)
    from .fix import _profile_row

    def refuse(name: str, reason: str) -> typer.Exit:
        """Nothing planned: --json still gives its document, with the reason in "refused"."""
        if as_json:
            _emit_json(
                {
                    "profile": name,
                    "diff": "",
                    "replaced": [],
                    "unresolved": [],
                    "already_fixed": [],
                    "ignored": [],
                    "refused": reason,
                    "written": False,
                    "backup": None,
                }
            )
        return fail(reason)

    stored = _profile_row(store, profile)
    if stored is None:
        raise refuse(
            str(path), f"{path} has not been scanned into {settings.db}; run `citewatch scan` first"
        )
    if stored.get("removed_run") is not None:
        raise refuse(
            stored["path"],
            f"{path} left the corpus (a scan of its folder did not find it): its citations are no "
            "longer current; run `citewatch scan` on it first",
        )
    try:
        result = plan_fix(
            store,
            path,
            include_moved=include_moved,
            wayback_url=settings.wayback_url,
            ignore_patterns=settings.ignore,
        )
    except ProfileNotScanned as exc:
        raise refuse(str(path), str(exc)) from exc
    backup = None
    refused = result.refused if write else None  # a refusal is about writing: --write only
    if write and result.diff and not refused:
        try:
            backup = write_fix(result, path)
        except FixRefused as exc:  # the file changed while the fix was being planned
            refused = result.refused = str(exc)
    if as_json:
        _emit_json(
            {
                "profile": result.profile,
                "diff": result.diff,
                "replaced": result.replaced,
                "unresolved": result.unresolved,
                "already_fixed": result.already_fixed,
                "ignored": result.ignored,
                "refused": result.refused,
                "written": backup is not None,
                "backup": str(backup) if backup else None,
            }
        )
    else:
        sys.stdout.write(result.diff)
        if result.refused and not write:
            err.print(f"warning: --write would be refused: {result.refused}", markup=False)
        if fixed := len(result.already_fixed):
            from .fix import already_fixed_note

            err.print(already_fixed_note(fixed), markup=False)
        for item in result.unresolved:
            err.print(
                f"not fixed: line {item.get('line')}: {item.get('url')}: {item.get('reason')}",
                markup=False,
            )
        for item in result.ignored:
            err.print(
                f"ignored: line {item.get('line')}: {item.get('url')}: {item.get('reason')}",
                markup=False,
            )
        if write and not refused:
            err.print(
                f"rewrote {path} ({len(result.replaced)} "
                f"link{'s' if len(result.replaced) != 1 else ''}; backup {backup})"
                if backup
                else "nothing to change",
                markup=False,
            )
    if refused:
        raise fail(f"not written: {refused}")


@app.command()
def history(
    url: Annotated[str, typer.Argument(help="The URL (as cited or normalised).")],
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The evidence trail of one URL: checks, captures, save requests, citations."""
    from .history import url_history

    settings = _settings(config, db=db)
    store = _open_store(settings.db)
    data = url_history(store, url)
    if data is None:
        raise fail(f"{url} is not in {settings.db}")
    if as_json:
        _emit_json(data)
        return
    print_history(data)


def _verdict_label(row: dict[str, Any]) -> str:
    """The verdict as the reports name it: a one-shot dead verdict is "dead (unconfirmed)"."""
    verdict = str(row.get("verdict"))
    return (
        f"{verdict} (unconfirmed)"
        if verdict == "dead" and row.get("confirmed") is False
        else verdict
    )


def print_history(data: dict[str, Any]) -> None:
    """Tables of the evidence; every cell is plain text (profile text may look like rich markup)."""
    header = Text(f"{data.get('url')}  verdict: {_verdict_label(data)}", style="bold")
    if data.get("moved_to"):
        header.append(f"  → {data['moved_to']}")
    if data.get("ignored"):
        header.append(f"  (ignored: {data['ignored']})")
    out.print(header)
    sections = [
        (
            "Checks",
            data.get("checks") or [],
            ["checked_at", "run_id", "network", "outcome", "status", "final_url", "error"],
        ),
        (
            "Verdict changes",
            [{**v, "verdict": _verdict_label(v)} for v in data.get("verdicts") or []],
            ["changed_at", "run_id", "verdict", "moved_to"],
        ),
        (
            "Known captures",
            data.get("snapshots") or [],
            ["timestamp", "status", "mimetype", "digest"],
        ),
        (
            "Replay checks",
            data.get("snapshot_checks") or [],
            [
                "checked_at",
                "timestamp",
                "status",
                "memento_datetime",
                "final_url",
                "soft_404",
                "error",
            ],
        ),
        (
            "Save requests",
            data.get("captures") or [],
            ["requested_at", "status", "job_id", "timestamp", "status_ext"],
        ),
        (
            "Cited by",
            data.get("citations") or [],
            ["path", "line", "section", "role", "anchor_text"],
        ),
    ]
    for title, rows, columns in sections:
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*[Text("" if row.get(c) is None else str(row.get(c))) for c in columns])
        out.print(table)


@app.command()
def ignore(
    url: Annotated[
        str | None, typer.Argument(help="URL to treat as a known false positive (one exact URL).")
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (shown in reports); needed to add.")
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Lift the ignore on URL (its history is kept).")
    ] = False,
    list_rules: Annotated[
        bool, typer.Option("--list", help="List the active ignores (and the config's globs).")
    ] = False,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Record a false-positive override (the URL is not checked and reports say why); --list the
    overrides, or --remove one."""
    settings = _settings(config, db=db)
    if list_rules:
        if url is not None or reason is not None or remove:
            raise fail("ignore --list takes no URL, --reason or --remove")
        store = _open_store(settings.db)
        print_ignores(store.ignore_rules(), settings.ignore, as_json)
        return
    if url is None:
        raise fail("ignore: give a URL (or --list to see the ignores)")
    if remove:
        if reason is not None:
            raise fail("ignore --remove takes no --reason")
        store = _open_store(settings.db)
        lifted = sum(store.remove_ignore(form) for form in _ignore_forms(url))
        if not lifted:
            raise fail(f"{url} is not ignored in {settings.db} (see `citewatch ignore --list`)")
        if as_json:
            _emit_json({"url": url, "ignored": False, "removed": lifted})
        else:
            out.print(
                f"no longer ignoring {url}; it is checked again from the next run", markup=False
            )
        return
    if reason is None or not reason.strip():
        raise fail("ignore: --reason is required: say why this URL is a false positive")
    store = _open_store(settings.db)
    # A cited URL may itself hold a '*'; anything else with one is a pattern, which ignore rules
    # never match (they are exact URLs): the config's `ignore` globs are the place for patterns.
    if "*" in url and not any(_is_cited(store, form) for form in _ignore_forms(url)):
        raise fail(
            f"ignore takes one exact URL, not a pattern: {url}; for patterns use the `ignore` "
            f'glob list in citewatch.toml, e.g. ignore = ["{url.strip()}"] (see docs/cli.md)'
        )
    from .urls import InvalidURL, resolve

    try:
        normalised = resolve(url.strip(), None).url
    except InvalidURL as exc:
        raise fail(str(exc)) from exc
    cited = _is_cited(store, normalised)
    if not cited:
        err.print(
            f"warning: {normalised} is not cited by any current profile in {settings.db}; "
            "ignoring it anyway (is it spelt as cited? `citewatch history URL` shows a stored URL)",
            markup=False,
        )
    store.add_ignore(normalised, reason)
    if as_json:
        _emit_json({"url": normalised, "reason": reason, "ignored": True, "cited": cited})
    else:
        out.print(f"ignoring {normalised}: {reason}", markup=False)


def _ignore_forms(url: str) -> list[str]:
    """The URL as given and normalised (last), as ignore rules store it."""
    from .urls import InvalidURL, resolve

    given = url.strip()
    try:
        normalised = resolve(given, None).url
    except InvalidURL:
        return [given]
    return list(dict.fromkeys([given, normalised]))


def _is_cited(store: Store, url: str) -> bool:
    """Whether a current citation cites ``url`` (as stored: normalised)."""
    return bool(
        store.query(
            "SELECT 1 FROM urls u WHERE u.url = ? AND EXISTS (SELECT 1 FROM citations ci"
            " WHERE ci.url_id = u.id AND ci.superseded_run IS NULL)",
            [url],
        )
    )


def print_ignores(rules: list[dict[str, Any]], patterns: list[str], as_json: bool) -> None:
    """The active ignore rules (``citewatch ignore``) and the config's ``ignore`` globs."""
    if as_json:
        _emit_json(
            {
                "ignores": [{**rule, "cited": bool(rule["cited"])} for rule in rules],
                "patterns": list(patterns),
            }
        )
        return
    table = Table(title=f"Ignored URLs ({len(rules)})", title_justify="left")
    for column in ("URL", "reason", "since", "cited"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        table.add_row(
            Text(rule["url"]),
            Text(rule["reason"] or ""),
            Text(rule["created_at"] or ""),
            "yes" if rule["cited"] else "no",
        )
    out.print(table)
    if patterns:
        out.print("ignore globs from the config (`ignore` in citewatch.toml):")
        for pattern in patterns:
            out.print(f"  {pattern}", markup=False)


EXIT_INTERNAL = 4


def main() -> None:
    """Console-script entry point. Usage errors exit 2 (click does that); an unexpected crash
    exits 4, never 1, so cron jobs never mistake a bug for "broken citations found"."""
    try:
        _main()
    finally:
        # The process ends here: whatever is left is freed by the OS. Freezing it spares the
        # interpreter's final full collection (tens of ms after a large check) and changes no
        # output: files and the database are closed by now.
        gc.freeze()


def _main() -> None:
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("citewatch: interrupted; everything observed so far is in the database")
        sys.exit(130)
    except click_exceptions() as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - last line of defence, reported not swallowed
        if os.environ.get("CITEWATCH_DEBUG"):
            raise
        err.print(
            f"citewatch: internal error: {type(exc).__name__}: {exc} "
            "(set CITEWATCH_DEBUG=1 for a traceback; please report it)",
            markup=False,
        )
        sys.exit(EXIT_INTERNAL)


def click_exceptions() -> tuple[type[Exception], ...]:
    """Click's usage-error base class, wherever this typer version keeps click."""
    try:
        from typer._click.exceptions import ClickException  # typer >= 0.2x vendors click
    except ImportError:  # pragma: no cover - older typer with click as a dependency
        from click.exceptions import ClickException
    return (ClickException,)


if __name__ == "__main__":
    main()
