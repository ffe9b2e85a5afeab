"""All citewatch state in one SQLite file (sqlite-utils), append-only where it is evidence.

The whole schema is visible in :data:`MIGRATIONS`; docs/schema.md explains every column. A database
written by a newer citewatch (higher ``schema_version``) is refused rather than damaged.

>>> store = Store.open(":memory:")
>>> run_id = store.begin_run("scan")
>>> store.finish_run(run_id, counts={"profiles": 0})
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not serialised
    fcntl = None  # type: ignore[assignment]

from . import __version__
from .models import CaptureRequest, Citation, Finding, ProbeResult, Profile, Snapshot


def utcnow() -> str:
    """Now, as an ISO-8601 UTC timestamp with seconds precision and a 'Z'."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SchemaTooNew(RuntimeError):
    """The database was written by a newer citewatch."""


class RunInProgress(RuntimeError):
    """Another process is running a check, archive or audit on this database."""


#: Beside the database (``citewatch.db.lock``): held by the process running a probing command.
LOCK_SUFFIX = ".lock"


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": int,
            "command": str,
            "argv": str,
            "started": str,
            "finished": str,
            "tool_version": str,
            "config_digest": str,
            "counts": str,
            "network": str,
            "archive": str,
            "status": str,
        },
        pk="id",
    )
    db["profiles"].create(
        {
            "id": int,
            "path": str,
            "title": str,
            "authors": str,
            "published": str,
            "base_url": str,
            "base_url_guessed": int,
            "format": str,
            "sha256": str,
            "scanned_at": str,
            "scan_run": int,
        },
        pk="id",
        foreign_keys=[("scan_run", "runs", "id")],
    )
    db["profiles"].create_index(["path"], unique=True)
    db["urls"].create(
        {
            "id": int,
            "url": str,
            "host": str,
            "first_seen": str,
            "verdict": str,
            "verdict_since": str,
            "confirmed": int,
            "moved_to": str,
            "last_checked": str,
            "last_outcome": str,
        },
        pk="id",
        defaults={"verdict": "unchecked", "confirmed": 0},
    )
    db["urls"].create_index(["url"], unique=True)
    db["urls"].create_index(["host"])
    db["citations"].create(
        {
            "id": int,
            "profile_id": int,
            "profile_sha256": str,
            "url_id": int,
            "cited_url": str,
            "raw": str,
            "line": int,
            "col": int,
            "page": int,
            "anchor_text": str,
            "sentence": str,
            "section": str,
            "role": str,
            "fragment": str,
            "archived_timestamp": str,
            "archived_original": str,
            "skip_reason": str,
            "scan_run": int,
            "superseded_run": int,
        },
        pk="id",
        foreign_keys=[("profile_id", "profiles", "id"), ("url_id", "urls", "id")],
    )
    db["citations"].create_index(["profile_id", "superseded_run"])
    db["citations"].create_index(["url_id"])
    db["findings"].create(
        {
            "id": int,
            "profile_id": int,
            "profile_sha256": str,
            "kind": str,
            "line": int,
            "raw": str,
            "message": str,
            "scan_run": int,
            "superseded_run": int,
        },
        pk="id",
        foreign_keys=[("profile_id", "profiles", "id")],
    )
    db["findings"].create_index(["profile_id", "superseded_run"])
    db["checks"].create(
        {
            "id": int,
            "run_id": int,
            "url_id": int,
            "checked_at": str,
            "method": str,
            "status": int,
            "outcome": str,
            "final_url": str,
            "redirects": str,
            "elapsed_ms": int,
            "content_type": str,
            "content_length": int,
            "sha1": str,
            "title": str,
            "error": str,
            "attempts": int,
            "permanent_redirect": int,
            "network": str,
            "text_sample": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id"), ("url_id", "urls", "id")],
    )
    db["checks"].create_index(["url_id", "checked_at"])
    db["checks"].create_index(["run_id"])
    db["verdicts"].create(
        {
            "id": int,
            "url_id": int,
            "run_id": int,
            "verdict": str,
            "confirmed": int,
            "moved_to": str,
            "changed_at": str,
        },
        pk="id",
        foreign_keys=[("url_id", "urls", "id"), ("run_id", "runs", "id")],
    )
    db["verdicts"].create_index(["url_id", "changed_at"])
    db["snapshots"].create(
        {
            "id": int,
            "url_id": int,
            "timestamp": str,
            "original": str,
            "status": int,
            "mimetype": str,
            "digest": str,
            "length": int,
            "first_seen_run": int,
        },
        pk="id",
        foreign_keys=[("url_id", "urls", "id")],
    )
    # IFNULL: unresolved revisits have a NULL status, and NULLs never collide in a UNIQUE index.
    db.execute(
        "CREATE UNIQUE INDEX idx_snapshots_unique ON snapshots"
        " (url_id, timestamp, original, IFNULL(status, -1), digest)"
    )
    db["archive_lookups"].create(
        {
            "id": int,
            "url_id": int,
            "run_id": int,
            "looked_up_at": str,
            "source": str,
            "result": str,
            "captures": int,
            "error": str,
        },
        pk="id",
        foreign_keys=[("url_id", "urls", "id")],
    )
    db["archive_lookups"].create_index(["url_id", "looked_up_at"])
    db["snapshot_checks"].create(
        {
            "id": int,
            "run_id": int,
            "url_id": int,
            "timestamp": str,
            "checked_at": str,
            "status": int,
            "memento_datetime": str,
            "final_url": str,
            "sha1": str,
            "text_sample": str,
            "soft_404": int,
            "error": str,
        },
        pk="id",
        foreign_keys=[("url_id", "urls", "id")],
    )
    db["snapshot_checks"].create_index(["url_id", "timestamp"])
    db["captures"].create(
        {
            "id": int,
            "run_id": int,
            "url_id": int,
            "url": str,
            "requested_at": str,
            "job_id": str,
            "status": str,
            "status_ext": str,
            "timestamp": str,
            "message": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("url_id", "urls", "id")],
    )
    db["captures"].create_index(["url_id", "requested_at"])
    db["ignores"].create(
        {"id": int, "url": str, "reason": str, "created_at": str, "removed_at": str},
        pk="id",
    )
    db["ignores"].create_index(["url"])
    db.execute(
        """
        CREATE VIEW latest_check AS
        SELECT c.* FROM checks c
        WHERE c.id = (SELECT c2.id FROM checks c2 WHERE c2.url_id = c.url_id
                      ORDER BY c2.checked_at DESC, c2.id DESC LIMIT 1)
        """
    )
    db.execute(
        """
        CREATE VIEW current_citations AS
        SELECT * FROM citations WHERE superseded_run IS NULL
        """
    )
    db.execute(
        """
        CREATE VIEW citation_status AS
        SELECT ci.id AS citation_id, p.path, ci.line, ci.col, ci.section, ci.role, ci.anchor_text,
               ci.cited_url, u.url, u.verdict, u.verdict_since, u.confirmed, u.moved_to,
               lc.outcome AS last_outcome, lc.status AS last_status, lc.checked_at AS last_checked,
               (SELECT s.timestamp FROM snapshots s
                 WHERE s.url_id = u.id AND s.status BETWEEN 200 AND 299
                   AND (p.published IS NULL OR substr(s.timestamp, 1, 8) <= replace(p.published, '-', ''))
                 ORDER BY s.timestamp DESC LIMIT 1) AS snapshot_before_citation,
               (SELECT s.timestamp FROM snapshots s
                 WHERE s.url_id = u.id AND s.status BETWEEN 200 AND 299
                   AND p.published IS NOT NULL AND substr(s.timestamp, 1, 8) > replace(p.published, '-', '')
                 ORDER BY s.timestamp ASC LIMIT 1) AS snapshot_after_citation
        FROM citations ci
        JOIN profiles p ON p.id = ci.profile_id
        LEFT JOIN urls u ON u.id = ci.url_id
        LEFT JOIN latest_check lc ON lc.url_id = u.id
        WHERE ci.superseded_run IS NULL
        """
    )


def _m2_removed_profiles(db: sqlite_utils.Database) -> None:
    """A profile whose file left a scanned folder is retired, not deleted: its history stays."""
    db.execute("ALTER TABLE profiles ADD COLUMN removed_run INTEGER REFERENCES runs(id)")


def _m3_host_prints(db: sqlite_utils.Database) -> None:
    """How each host answered a path that cannot exist (the soft-404 host probe), kept for reuse."""
    db["host_prints"].create(
        {
            "id": int,
            "origin": str,
            "run_id": int,
            "probed_at": str,
            "status": int,
            "final_url": str,
            "title": str,
            "sha1": str,
            "length": int,
            "redirected": int,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"origin", "probed_at", "status"},
    )
    db["host_prints"].create_index(["origin", "probed_at"])


#: Numbered migrations; append only. ``schema_version`` is the number of the last one applied.
def _m4_latest_check_not_offline(db: sqlite_utils.Database) -> None:
    """The latest check of a URL is the newest one made by a run that was not offline: an
    outage's connection errors stay in the history, but never pass for what the page last did."""
    db.execute("DROP VIEW latest_check")
    db.execute(
        """
        CREATE VIEW latest_check AS
        SELECT c.* FROM checks c
        WHERE c.id = (SELECT c2.id FROM checks c2 JOIN runs r2 ON r2.id = c2.run_id
                      WHERE c2.url_id = c.url_id AND COALESCE(r2.network, '') != 'offline'
                      ORDER BY c2.checked_at DESC, c2.id DESC LIMIT 1)
        """
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_initial,
    _m2_removed_profiles,
    _m3_host_prints,
    _m4_latest_check_not_offline,
]
SCHEMA_VERSION = len(MIGRATIONS)


@functools.cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f"[{name}]" for name in columns)
    return f"INSERT INTO [{table}] ({names}) VALUES ({', '.join('?' * len(columns))})"


class Store:
    """The citewatch database. Open with :meth:`open`; every write commits before it returns."""

    def __init__(self, db: sqlite_utils.Database, folder: Path | None = None):
        self.db = db
        self.location: Path | None = None
        """The database file (None in memory)."""
        self._claim: Any = None
        """The open lock file while this process holds the database for a run."""
        self.folder = folder or Path.cwd()
        """The database file's folder: stored profile paths are relative to it (see
        :meth:`profile_key`), so runs started anywhere name the same file alike."""

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating and migrating as needed) the database at ``path``."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        # sqlite-utils plugins are for its own CLI: running every installed one on our
        # connection could change what our queries mean, and finding them scans the metadata
        # of every installed package (~20 ms of each command's start-up).
        db = sqlite_utils.Database(conn, execute_plugins=False)
        if str(path) != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        location = None if str(path) == ":memory:" else Path(path).resolve()
        store = cls(db, location.parent if location else None)
        store.location = location
        store._migrate()
        return store

    def close(self) -> None:
        if self._claim is not None:
            self._claim.close()  # releases the lock
            self._claim = None
        self.db.conn.close()

    def claim_runs(self) -> None:
        """Hold this database for one probing run (check, archive, audit) until :meth:`close`
        or the process ends (even by ``kill -9``: the OS drops the lock). Raises
        :class:`RunInProgress` when another process holds it: two overlapping cron runs would
        probe every URL twice and double the load on every host.

        A lock file beside the database, never the database itself: closing any other
        descriptor of an SQLite file drops the POSIX locks SQLite holds on it.
        """
        if self.location is None or fcntl is None or self._claim is not None:
            return
        path = self.location.with_name(self.location.name + LOCK_SUFFIX)
        try:
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        except OSError:  # a read-only folder, another user's lock file: run unserialised
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise RunInProgress(
                f"another citewatch run is using {self.location}"
                + (f" ({holder})" if holder else "")
                + "; not starting a second one (it would probe every URL twice)"
            ) from None
        except OSError:  # a file system without locks: run unserialised rather than not at all
            handle.close()
            return
        try:  # who holds it, for the message a second run prints; the lock is what counts
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, since {utcnow()}\n")
            handle.flush()
        except OSError:  # a full disk: the lock is held all the same
            pass
        self._claim = handle

    def _version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self._version()
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"this database has schema version {current}, newer than this citewatch "
                f"({__version__}) understands ({SCHEMA_VERSION}); upgrade citewatch"
            )
        for number in range(current, SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[number](self.db)
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    def transaction(self) -> _Transaction:
        """A context manager: everything inside commits together or not at all."""
        return _Transaction(self.db.conn)

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """Insert one row and return its id (sqlite-utils' last_pk is unreliable in our transactions)."""
        cursor = self.db.execute(_insert_sql(table, tuple(row)), list(row.values()))
        return int(cursor.lastrowid)

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read query as dicts."""
        return list(self.db.query(sql, params))

    # -- runs -------------------------------------------------------------------------------
    def begin_run(
        self, command: str, argv: list[str] | None = None, config_digest: str = ""
    ) -> int:
        with self.transaction():
            return self._insert(
                "runs",
                {
                    "command": command,
                    "argv": json.dumps(argv or []),
                    "started": utcnow(),
                    "tool_version": __version__,
                    "config_digest": config_digest,
                    "status": "running",
                },
            )

    def update_run(self, run_id: int, **fields: Any) -> None:
        with self.transaction():
            self.db["runs"].update(run_id, _jsonify(fields))

    def finish_run(self, run_id: int, counts: dict[str, Any] | None = None, **fields: Any) -> None:
        fields.setdefault("status", "finished")
        self.update_run(run_id, finished=utcnow(), counts=counts or {}, **fields)

    def run(self, run_id: int) -> dict[str, Any]:
        return self.db["runs"].get(run_id)

    def previous_run(self, command: str, before_run: int) -> dict[str, Any] | None:
        """The latest finished run of ``command`` before ``before_run``."""
        rows = self.query(
            "SELECT * FROM runs WHERE command = ? AND id < ? AND finished IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            [command, before_run],
        )
        return rows[0] if rows else None

    # -- profiles and citations ----------------------------------------------------------------
    def url_id(self, url: str, host: str, seen_at: str | None = None) -> int:
        """The id of ``url``'s row, inserting it if new (call inside a transaction for speed)."""
        row = self.db.execute("SELECT id FROM urls WHERE url = ?", [url]).fetchone()
        if row:
            return int(row[0])
        cursor = self.db.execute(
            "INSERT INTO urls (url, host, first_seen, verdict, confirmed) VALUES (?, ?, ?, 'unchecked', 0)",
            [url, host, seen_at or utcnow()],
        )
        return int(cursor.lastrowid)

    def profile_key(self, file: Path) -> str:
        """How ``file`` is named in this database: relative to the database's folder when inside
        it, absolute otherwise (POSIX separators)."""
        resolved = Path(file).resolve()
        try:
            return resolved.relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            return resolved.as_posix()

    def profile_file(self, key: str) -> Path:
        """The file a stored profile path names."""
        path = Path(key)
        return path if path.is_absolute() else self.folder / path

    def rename_profile(self, old: str, new: str) -> bool:
        """Give a stored profile a new name (its file is the same); False if there is none."""
        with self.transaction():
            cursor = self.db.execute("UPDATE profiles SET path = ? WHERE path = ?", [new, old])
        return cursor.rowcount > 0

    def profile_row(self, path: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM profiles WHERE path = ?", [path])
        return rows[0] if rows else None

    def save_profile(self, profile: Profile, run_id: int) -> str:
        """Store a scanned profile; returns 'new', 'changed' or 'unchanged'.

        An unchanged profile (same path, same sha256) adds nothing; a retired one that is back
        counts as new. A changed one keeps its old
        citations and findings, marked superseded by this run, and adds the new ones. All of it
        commits atomically, so a killed scan leaves each profile either fully old or fully new.
        """
        from .urls import host_of

        now = utcnow()
        existing = self.profile_row(profile.path)
        returning = bool(existing and existing.get("removed_run") is not None)
        if existing and not returning and _same_extraction(existing, profile):
            return "unchanged"
        with self.transaction():
            fields = {
                "path": profile.path,
                "title": profile.title,
                "authors": json.dumps(profile.authors, ensure_ascii=False),
                "published": profile.published,
                "base_url": profile.base_url,
                "base_url_guessed": int(profile.base_url_guessed),
                "format": profile.format,
                "sha256": profile.sha256,
                "scanned_at": now,
                "scan_run": run_id,
                "removed_run": None,
            }
            if existing:
                profile_id = int(existing["id"])
                self.db["profiles"].update(profile_id, fields)
                for table in ("citations", "findings"):
                    self.db.execute(
                        f"UPDATE {table} SET superseded_run = ? WHERE profile_id = ? AND superseded_run IS NULL",
                        [run_id, profile_id],
                    )
            else:
                profile_id = self._insert("profiles", fields)
            citation_rows = []
            for citation in profile.citations:
                checked = checked_url(citation)
                url_id = self.url_id(checked, host_of(checked), now) if checked else None
                citation_rows.append(
                    (
                        profile_id,
                        profile.sha256,
                        url_id,
                        citation.url,
                        citation.raw,
                        citation.line,
                        citation.column,
                        citation.page,
                        citation.text,
                        citation.context,
                        citation.section,
                        str(citation.role),
                        citation.fragment,
                        citation.archived.timestamp if citation.archived else None,
                        citation.archived.original if citation.archived else None,
                        citation.skip_reason,
                        run_id,
                    )
                )
            self.db.conn.executemany(
                "INSERT INTO citations (profile_id, profile_sha256, url_id, cited_url, raw, line, col, page,"
                " anchor_text, sentence, section, role, fragment, archived_timestamp, archived_original,"
                " skip_reason, scan_run) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                citation_rows,
            )
            self.db.conn.executemany(
                "INSERT INTO findings (profile_id, profile_sha256, kind, line, raw, message, scan_run)"
                " VALUES (?,?,?,?,?,?,?)",
                [
                    (profile_id, profile.sha256, f.kind, f.line, f.raw, f.message, run_id)
                    for f in profile.findings
                ],
            )
        return "changed" if existing and not returning else "new"

    def host_prints(self, since: str) -> dict[str, dict[str, Any]]:
        """origin → the newest host print probed at or after ``since``."""
        rows = self.db.query(
            "SELECT * FROM host_prints WHERE id IN (SELECT MAX(id) FROM host_prints"
            " WHERE probed_at >= ? GROUP BY origin)",
            [since],
        )
        return {row["origin"]: row for row in rows}

    def save_host_prints(self, run_id: int, prints: Iterable[dict[str, Any]]) -> None:
        """Append host prints (dicts with origin, probed_at, status and the page's fingerprint)."""
        rows = [{"run_id": run_id, **row} for row in prints]
        if rows:
            with self.transaction():
                self.db["host_prints"].insert_all(rows)

    def active_profile_paths(self) -> list[str]:
        """Paths of the profiles in the corpus (not retired)."""
        return [
            r["path"] for r in self.query("SELECT path FROM profiles WHERE removed_run IS NULL")
        ]

    def retire_profile(self, path: str, run_id: int) -> None:
        """The profile's file is gone: its citations and findings stop being current (superseded
        by ``run_id``) and the profile is marked removed. Nothing is deleted; a file that comes
        back is stored as new."""
        row = self.profile_row(path)
        if row is None or row.get("removed_run") is not None:
            return
        with self.transaction():
            for table in ("citations", "findings"):
                self.db.execute(
                    f"UPDATE {table} SET superseded_run = ? WHERE profile_id = ? AND superseded_run IS NULL",
                    [run_id, row["id"]],
                )
            self.db.execute("UPDATE profiles SET removed_run = ? WHERE id = ?", [run_id, row["id"]])

    def current_citations(self, profile_path: str | None = None) -> list[dict[str, Any]]:
        """Current (not superseded) citations with their profile and URL rows joined in."""
        sql = (
            "SELECT ci.*, p.path, p.published, p.title AS profile_title, u.url, u.verdict, u.confirmed,"
            " u.moved_to, u.verdict_since FROM citations ci JOIN profiles p ON p.id = ci.profile_id"
            " LEFT JOIN urls u ON u.id = ci.url_id WHERE ci.superseded_run IS NULL"
        )
        params: list[Any] = []
        if profile_path is not None:
            sql += " AND p.path = ?"
            params.append(profile_path)
        return self.query(sql + " ORDER BY p.path, ci.line, ci.col", params)

    def broken_citations(self) -> list[dict[str, Any]]:
        """Current citations that are broken; this is what exit code 1 means. Either the URL is
        ``dead`` (confirmed or one-shot) and the citation is not itself an archive link, or the
        citation is an archive link whose capture is known not to replay: the newest replay of
        it that got an answer about the capture (a 429 or a lasting 5xx is no answer) found no
        capture (404 without Memento-Datetime), a captured "not found" page, or a capture that is
        not a 2xx page — the rule of ``report.data.replay_state``. URLs under an ``ignore``
        override never count."""
        return self.query(
            "SELECT ci.*, p.path, u.url, u.confirmed FROM citations ci"
            " JOIN profiles p ON p.id = ci.profile_id JOIN urls u ON u.id = ci.url_id"
            " WHERE ci.superseded_run IS NULL"
            " AND u.url NOT IN (SELECT url FROM ignores WHERE removed_at IS NULL)"
            " AND ((ci.archived_timestamp IS NULL AND u.verdict = 'dead')"
            " OR (ci.archived_timestamp IS NOT NULL AND ("
            "   SELECT sc.soft_404 = 1 OR (sc.status = 404 AND sc.memento_datetime IS NULL)"
            "          OR (sc.memento_datetime IS NOT NULL"
            "              AND COALESCE(sc.status, 0) NOT BETWEEN 200 AND 299)"
            "   FROM snapshot_checks sc"
            "   WHERE sc.url_id = ci.url_id AND sc.timestamp = ci.archived_timestamp"
            "     AND (sc.soft_404 = 1 OR (sc.status = 404 AND sc.memento_datetime IS NULL)"
            "          OR sc.memento_datetime IS NOT NULL OR sc.status BETWEEN 200 AND 299)"
            "   ORDER BY sc.checked_at DESC, sc.id DESC LIMIT 1) = 1))"
            " ORDER BY p.path, ci.line, ci.col"
        )

    # -- checks and verdicts -------------------------------------------------------------------
    def cited_urls(self) -> Iterator[dict[str, Any]]:
        """URL rows cited by at least one current citation (skipped citations have no url_id)."""
        yield from self.db.query(
            "SELECT u.* FROM urls u WHERE EXISTS (SELECT 1 FROM citations ci"
            " WHERE ci.url_id = u.id AND ci.superseded_run IS NULL) ORDER BY u.id"
        )

    def record_check(self, run_id: int, url_id: int, result: ProbeResult, network: str) -> int:
        """Append one probe's evidence; never updates an existing check."""
        with self.transaction():
            check_id = self._insert(
                "checks",
                {
                    "run_id": run_id,
                    "url_id": url_id,
                    "checked_at": result.checked_at,
                    "method": result.method,
                    "status": result.status,
                    "outcome": str(result.outcome),
                    "final_url": result.final_url,
                    "redirects": json.dumps(list(result.redirects)),
                    "elapsed_ms": result.elapsed_ms,
                    "content_type": result.content_type,
                    "content_length": result.content_length,
                    "sha1": result.sha1,
                    "title": result.title,
                    "error": result.error,
                    "attempts": result.attempts,
                    "permanent_redirect": int(result.permanent_redirect),
                    "network": network,
                    "text_sample": result.text_sample,
                },
            )
            self.db.execute(
                "UPDATE urls SET last_checked = ?, last_outcome = ? WHERE id = ?",
                [result.checked_at, str(result.outcome), url_id],
            )
            return check_id

    def restore_last_checks(self, run_id: int) -> None:
        """After an offline run: each URL it probed gets back the last check of a run that was
        not offline as its ``last_checked``/``last_outcome`` (the outage's own checks stay in
        the history, evidence of nothing)."""
        with self.transaction():
            self.db.execute(
                "UPDATE urls SET (last_checked, last_outcome) = (SELECT lc.checked_at, lc.outcome"
                " FROM latest_check lc WHERE lc.url_id = urls.id)"
                " WHERE id IN (SELECT url_id FROM checks WHERE run_id = ?)",
                [run_id],
            )

    def checks_for(self, url_id: int) -> list[dict[str, Any]]:
        """Every check of a URL, oldest first, with the health of the run that made it."""
        return self.query(
            "SELECT c.*, r.network AS run_network FROM checks c JOIN runs r ON r.id = c.run_id"
            " WHERE c.url_id = ? ORDER BY c.checked_at, c.id",
            [url_id],
        )

    def set_verdict(
        self,
        url_id: int,
        run_id: int,
        verdict: str,
        confirmed: bool = True,
        moved_to: str | None = None,
    ) -> bool:
        """Set a URL's current verdict; appends to ``verdicts`` only when it changes. Returns changed."""
        row = self.db.execute(
            "SELECT verdict, confirmed, moved_to, verdict_since FROM urls WHERE id = ?", [url_id]
        ).fetchone()
        if row is None:
            raise KeyError(f"no url with id {url_id}")
        old_verdict, old_confirmed, old_moved_to, old_since = row
        if (
            old_verdict == verdict
            and bool(old_confirmed) == confirmed
            and old_moved_to == moved_to
            and old_since
        ):
            return False
        now = utcnow()
        since = old_since if old_verdict == verdict and old_since else now
        with self.transaction():
            self.db.execute(
                "UPDATE urls SET verdict = ?, confirmed = ?, moved_to = ?, verdict_since = ? WHERE id = ?",
                [verdict, int(confirmed), moved_to, since, url_id],
            )
            self.db.execute(
                "INSERT INTO verdicts (url_id, run_id, verdict, confirmed, moved_to, changed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [url_id, run_id, verdict, int(confirmed), moved_to, now],
            )
        return True

    # -- archive --------------------------------------------------------------------------------
    def record_snapshots(self, url_id: int, run_id: int, snapshots: Iterable[Snapshot]) -> int:
        """Store CDX rows (duplicates ignored); returns how many were new."""
        rows = [
            {
                "url_id": url_id,
                "timestamp": s.timestamp,
                "original": s.original,
                "status": s.status,
                "mimetype": s.mimetype,
                "digest": s.digest,
                "length": s.length,
                "first_seen_run": run_id,
            }
            for s in snapshots
        ]
        with self.transaction():
            before = self.db.execute(
                "SELECT count(*) FROM snapshots WHERE url_id = ?", [url_id]
            ).fetchone()[0]
            if rows:
                self.db["snapshots"].insert_all(rows, ignore=True)
            after = self.db.execute(
                "SELECT count(*) FROM snapshots WHERE url_id = ?", [url_id]
            ).fetchone()[0]
        return int(after - before)

    def record_lookup(
        self,
        url_id: int,
        run_id: int,
        source: str,
        result: str,
        captures: int = 0,
        error: str | None = None,
    ) -> None:
        """Remember that we asked the archive about a URL (result: found, none, blocked, error)."""
        with self.transaction():
            self.db["archive_lookups"].insert(
                {
                    "url_id": url_id,
                    "run_id": run_id,
                    "looked_up_at": utcnow(),
                    "source": source,
                    "result": result,
                    "captures": captures,
                    "error": error,
                }
            )

    def record_snapshot_check(self, run_id: int, url_id: int, **fields: Any) -> int:
        """Append the result of fetching a capture from the Wayback Machine (replay verification).

        Fields: timestamp (asked for), checked_at, status, memento_datetime, final_url, sha1,
        text_sample, soft_404 (0/1), error.
        """
        fields.setdefault("checked_at", utcnow())
        with self.transaction():
            return self._insert("snapshot_checks", {"run_id": run_id, "url_id": url_id, **fields})

    def snapshots_for(self, url_id: int) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM snapshots WHERE url_id = ? ORDER BY timestamp", [url_id])

    def record_capture(self, run_id: int, url_id: int, capture: CaptureRequest) -> int:
        with self.transaction():
            row = asdict(capture)
            row.update({"run_id": run_id, "url_id": url_id, "updated_at": utcnow()})
            return self._insert("captures", row)

    def update_capture(self, capture_id: int, **fields: Any) -> None:
        with self.transaction():
            self.db["captures"].update(capture_id, {**fields, "updated_at": utcnow()})

    def captures_for(self, url_id: int) -> list[dict[str, Any]]:
        return self.query(
            "SELECT * FROM captures WHERE url_id = ? ORDER BY requested_at, id", [url_id]
        )

    # -- ignores --------------------------------------------------------------------------------
    def add_ignore(self, url: str, reason: str) -> None:
        with self.transaction():
            self.db["ignores"].insert({"url": url, "reason": reason, "created_at": utcnow()})

    def ignored(self) -> dict[str, str]:
        """URL → reason for every active ignore rule."""
        return {
            row["url"]: row["reason"]
            for row in self.db.query(
                "SELECT url, reason FROM ignores WHERE removed_at IS NULL ORDER BY id"
            )
        }

    def ignore_rules(self) -> list[dict[str, Any]]:
        """Every active ignore rule, one per URL (the latest reason wins, as in :meth:`ignored`):
        url, reason, created_at (of that latest rule), and whether a current citation cites it."""
        return self.query(
            "SELECT i.url, i.reason, i.created_at, EXISTS (SELECT 1 FROM urls u JOIN citations ci"
            " ON ci.url_id = u.id AND ci.superseded_run IS NULL WHERE u.url = i.url) AS cited"
            " FROM ignores i WHERE i.removed_at IS NULL AND i.id = (SELECT max(i2.id) FROM ignores"
            " i2 WHERE i2.url = i.url AND i2.removed_at IS NULL) ORDER BY i.url"
        )

    def remove_ignore(self, url: str) -> int:
        """Lift the ignore rule(s) on ``url``: ``removed_at`` is set, the rows stay as history.
        Returns how many active rules were lifted (0: the URL was not ignored)."""
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE ignores SET removed_at = ? WHERE url = ? AND removed_at IS NULL",
                [utcnow(), url],
            )
        return int(cursor.rowcount)


def _same_extraction(row: dict[str, Any], profile: Profile) -> bool:
    """Same bytes read the same way: a new --base-url or manifest entry re-extracts the profile."""
    return (
        row["sha256"] == profile.sha256
        and row["base_url"] == profile.base_url
        and row["title"] == profile.title
        and row["published"] == profile.published
        and row["authors"] == json.dumps(profile.authors, ensure_ascii=False)
    )


def checked_url(citation: Citation) -> str | None:
    """The URL whose liveness a citation depends on: the original for cited Wayback links."""
    if citation.skip_reason or not citation.url:
        return None
    if citation.archived:
        return citation.archived.original
    return citation.url


class _Transaction:
    """BEGIN/COMMIT on an autocommit connection; nests by doing nothing inside an outer one."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.outer = not self.conn.in_transaction
        if self.outer:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _jsonify(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}


def finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "line": finding.line,
        "raw": finding.raw,
        "message": finding.message,
    }
