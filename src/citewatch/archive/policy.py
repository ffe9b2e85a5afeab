"""Who gets archive work: the URLs of current citations, their citation dates, and the save rule.

Pure functions over store rows, so the rules read (and are tested) as a specification:

* a URL's **citation date** is the earliest publication date among the profiles citing it;
* a URL was **looked up recently** when its newest ``archive_lookups`` row with a real answer
  (found, none, blocked) is younger than ``lookup_max_age``;
* **Save Page Now** is asked only for URLs known to be live (verdict ``alive`` or ``moved``) that some
  current citation uses as a ``source``, whose newest 2xx capture (CDX rows and our own successful
  SPN captures, which CDX may not list yet) is older than the later of the citation date and
  now − ``save_if_older`` — or that have none. Not while a permanent SPN error for the URL is
  younger than ``save_if_older``; a job still pending from a recent run is polled, not resubmitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from .spn import classify_error

LIVE_VERDICTS = frozenset({"alive", "moved"})
#: Answers worth caching; an ``error`` lookup is retried next run.
CACHEABLE_RESULTS = frozenset({"found", "none", "blocked"})
#: A pending SPN job younger than this is polled again rather than resubmitted.
PENDING_JOB_TTL = timedelta(hours=24)


@dataclass
class Target:
    """One cited URL and what archive work needs to know about it."""

    url_id: int
    url: str
    verdict: str
    roles: set[str] = field(default_factory=set)
    citation_date: str | None = None
    cited: list[tuple[str, str]] = field(default_factory=list)
    """(timestamp, original) of each distinct Wayback link citing this URL."""

    @property
    def is_source(self) -> bool:
        return "source" in self.roles


def _valid_date(value: Any) -> str | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        return None


def collect_targets(citations: Iterable[Mapping[str, Any]]) -> list[Target]:
    """Group current citation rows by URL (in order of first citation)."""
    targets: dict[int, Target] = {}
    for row in citations:
        url_id = row.get("url_id")
        if url_id is None or not row.get("url"):
            continue
        target = targets.get(url_id)
        if target is None:
            target = targets[url_id] = Target(url_id, row["url"], row.get("verdict") or "unchecked")
        target.roles.add(str(row.get("role") or "source"))
        published = _valid_date(row.get("published"))
        if published and (target.citation_date is None or published < target.citation_date):
            target.citation_date = published
        timestamp = row.get("archived_timestamp")
        if timestamp:
            ref = (str(timestamp), str(row.get("archived_original") or row["url"]))
            if ref not in target.cited:
                target.cited.append(ref)
    return list(targets.values())


def wayback_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def iso_z(moment: datetime) -> str:
    """The store's timestamp format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_fresh(lookup: Mapping[str, Any] | None, now: datetime, max_age: float) -> bool:
    """True if this lookup row answers for now (a real answer, younger than ``max_age``)."""
    if not lookup or lookup.get("result") not in CACHEABLE_RESULTS:
        return False
    return str(lookup.get("looked_up_at") or "") >= iso_z(now - timedelta(seconds=max_age))


@dataclass(frozen=True, slots=True)
class SaveDecision:
    action: str
    """submit | poll | skip"""
    reason: str
    capture: Mapping[str, Any] | None = None
    """For ``poll``: the pending capture row."""


def newest_ok_capture(
    snapshots: Iterable[Mapping[str, Any]], captures: Iterable[Mapping[str, Any]]
) -> str | None:
    """The newest 2xx capture timestamp, counting our successful SPN captures."""
    stamps = [
        str(s["timestamp"])
        for s in snapshots
        if s.get("status") is not None and 200 <= int(s["status"]) < 300
    ]
    stamps += [
        str(c["timestamp"]) for c in captures if c.get("status") == "success" and c.get("timestamp")
    ]
    return max((s.ljust(14, "0") for s in stamps), default=None)


def save_decision(
    target: Target,
    snapshots: list[Mapping[str, Any]],
    captures: list[Mapping[str, Any]],
    now: datetime,
    save_if_older: float,
) -> SaveDecision:
    """Whether (and how) to ask Save Page Now for this URL. ``now`` is aware UTC."""
    requests = [c for c in captures if c.get("status") != "dry_run"]
    last = requests[-1] if requests else None
    if (
        last is not None
        and last.get("status") == "pending"
        and last.get("job_id")
        and str(last.get("requested_at") or "") >= iso_z(now - PENDING_JOB_TTL)
    ):
        # Whatever the page has become since: the job captured it while it was live, and that
        # copy matters most if the page has died.
        return SaveDecision("poll", "a recent job is still pending", last)
    if target.verdict not in LIVE_VERDICTS:
        return SaveDecision("skip", f"verdict is {target.verdict}")
    if not target.is_source:
        return SaveDecision("skip", "not cited as a source")
    threshold = wayback_timestamp(now - timedelta(seconds=save_if_older))
    if target.citation_date:
        threshold = max(threshold, target.citation_date.replace("-", "") + "000000")
    newest = newest_ok_capture(snapshots, captures)
    if newest is not None and newest >= threshold:
        return SaveDecision("skip", f"captured recently ({newest})")
    if last is not None:
        requested = str(last.get("requested_at") or "")
        if (
            last.get("status") == "error"
            and classify_error(last.get("status_ext")) == "permanent"
            and requested >= iso_z(now - timedelta(seconds=save_if_older))
        ):
            return SaveDecision("skip", f"permanent error earlier: {last.get('status_ext')}")
    if newest is None:
        return SaveDecision("submit", "no 2xx capture")
    return SaveDecision("submit", f"newest 2xx capture {newest} is older than {threshold}")
