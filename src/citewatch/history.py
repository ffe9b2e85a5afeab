"""``citewatch history URL``: the whole evidence trail of one URL, as plain JSON-ready data.

A reviewer asking "why does citewatch call this dead?" gets every observation behind the verdict:
each check with the health of the network at the time, each verdict change, every capture the
archive knows, each replay verification and archive lookup, every Save Page Now request, and the
citations (current and superseded) that cite the URL.

``confirmed`` (of the current verdict and of each verdict change) is True/False for ``dead`` only —
False is a one-shot "dead (unconfirmed)" — and None for every other verdict, where it means nothing.

The URL may be given as cited: it is looked up as typed, normalised, and — for a Wayback replay
URL — as the original it is a capture of.
"""

from __future__ import annotations

import json
from typing import Any

from .store import Store
from .urls import InvalidURL, resolve, unwrap_wayback

_CHECK_FIELDS = (
    "id",
    "run_id",
    "run_command",
    "checked_at",
    "network",
    "method",
    "outcome",
    "status",
    "final_url",
    "redirects",
    "elapsed_ms",
    "content_type",
    "content_length",
    "sha1",
    "title",
    "error",
    "attempts",
)


def _candidates(url: str) -> list[str]:
    """The forms under which ``url`` may be stored, most literal first."""
    forms = [url.strip()]
    try:
        resolved = resolve(url.strip(), None)
    except InvalidURL:
        return forms
    forms.append(resolved.url)
    if resolved.archived:
        forms.append(resolved.archived.original)
    archived = unwrap_wayback(url.strip())
    if archived:
        forms.append(archived.original)
    return list(dict.fromkeys(forms))


def find_url(store: Store, url: str) -> dict[str, Any] | None:
    """The ``urls`` row for ``url`` as typed, normalised, or unwrapped from a Wayback link."""
    for form in _candidates(url):
        rows = store.query("SELECT * FROM urls WHERE url = ?", [form])
        if rows:
            return rows[0]
    return None


def _check(row: dict[str, Any]) -> dict[str, Any]:
    record = {k: row.get(k) for k in _CHECK_FIELDS}
    record["network"] = row.get("network") or row.get("run_network")
    try:
        record["redirects"] = json.loads(row.get("redirects") or "[]")
    except ValueError:
        record["redirects"] = []
    return record


def confirmed_flag(verdict: str | None, confirmed: Any) -> bool | None:
    """``confirmed`` means something only for ``dead`` (False: a one-shot verdict not yet backed by
    enough failures over enough time); every other verdict is stored with 1, which says nothing."""
    return bool(confirmed) if verdict == "dead" else None


def url_history(store: Store, url: str) -> dict[str, Any] | None:
    """Everything known about ``url``; None when the database has never seen it."""
    row = find_url(store, url)
    if row is None:
        return None
    url_id = row["id"]
    checks = store.query(
        "SELECT c.*, r.network AS run_network, r.command AS run_command FROM checks c"
        " JOIN runs r ON r.id = c.run_id WHERE c.url_id = ? ORDER BY c.checked_at, c.id",
        [url_id],
    )
    verdicts = store.query(
        "SELECT v.run_id, r.command AS run_command, v.changed_at, v.verdict, v.confirmed, v.moved_to"
        " FROM verdicts v LEFT JOIN runs r ON r.id = v.run_id WHERE v.url_id = ?"
        " ORDER BY v.changed_at, v.id",
        [url_id],
    )
    citations = store.query(
        "SELECT p.path, p.published, ci.line, ci.col AS column, ci.section, ci.role, ci.anchor_text,"
        " ci.sentence, ci.cited_url, ci.raw, ci.archived_timestamp, ci.scan_run, ci.superseded_run"
        " FROM citations ci JOIN profiles p ON p.id = ci.profile_id WHERE ci.url_id = ?"
        " ORDER BY ci.superseded_run IS NOT NULL, p.path, ci.line, ci.col",
        [url_id],
    )
    ignored = store.ignored().get(row["url"])
    return {
        "url": row["url"],
        "host": row["host"],
        "first_seen": row["first_seen"],
        "verdict": row["verdict"],
        "confirmed": confirmed_flag(row["verdict"], row["confirmed"]),
        "verdict_since": row["verdict_since"],
        "moved_to": row["moved_to"],
        "last_checked": row["last_checked"],
        "last_outcome": row["last_outcome"],
        "ignored": ignored,
        "checks": [_check(c) for c in checks],
        "verdicts": [
            {**v, "confirmed": confirmed_flag(v["verdict"], v["confirmed"])} for v in verdicts
        ],
        "snapshots": store.query(
            "SELECT timestamp, original, status, mimetype, digest, length, first_seen_run"
            " FROM snapshots WHERE url_id = ? ORDER BY timestamp",
            [url_id],
        ),
        "snapshot_checks": store.query(
            "SELECT run_id, timestamp, checked_at, status, memento_datetime, final_url, sha1,"
            " soft_404, error FROM snapshot_checks WHERE url_id = ? ORDER BY checked_at, id",
            [url_id],
        ),
        "archive_lookups": store.query(
            "SELECT run_id, looked_up_at, source, result, captures, error FROM archive_lookups"
            " WHERE url_id = ? ORDER BY looked_up_at, id",
            [url_id],
        ),
        "captures": store.query(
            "SELECT run_id, requested_at, status, job_id, timestamp, status_ext, message, updated_at"
            " FROM captures WHERE url_id = ? ORDER BY requested_at, id",
            [url_id],
        ),
        "citations": [c for c in citations if c["superseded_run"] is None],
        "past_citations": [c for c in citations if c["superseded_run"] is not None],
    }
