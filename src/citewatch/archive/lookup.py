"""What the archive holds for a URL: ``lookup(url)``, and ``lookup_many(urls)`` that batches by host.

Shaped like pip-audit's services: one query per URL by default, and a batched form that a
service overrides when it can do better. CDX can: where one host has many cited URLs, a single
``matchType=prefix`` query over their common path (paginated with resume keys) replaces one query
per URL, and its rows are distributed to the URLs whose :func:`~citewatch.archive.cdx.match_key`
they share. A batch that errors or runs past its page budget (never more pages than URLs, so it
cannot cost more than what it replaces) falls back to per-URL queries, so a huge host never yields
a silently partial answer.

Results: ``found`` (rows), ``none`` (``[]``: not archived), ``blocked`` (site excluded), ``error``
(this URL only; the availability API was tried as a fallback). :class:`ArchiveStopped` from the
gateway propagates: the run stops its archive work and says why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from .availability import closest_capture
from .cdx import (
    CdxFormatError,
    CdxQuery,
    CdxRow,
    common_prefix,
    is_blocked,
    match_host,
    match_key,
    parse_page,
    resolve_revisits,
)
from .gateway import ArchiveRequestError, Family, Gateway


@dataclass
class LookupResult:
    """What the archive said about one URL."""

    url: str
    result: str
    """found | none | blocked | error"""
    source: str
    """cdx | cdx-prefix | availability"""
    rows: list[CdxRow] = field(default_factory=list)
    error: str | None = None


class _Blocked(Exception):
    pass


class _Failed(Exception):
    pass


@dataclass
class CdxService:
    """CDX lookups through a :class:`Gateway`."""

    gateway: Gateway
    page_limit: int = 10000
    """Rows per CDX page (the ``limit`` parameter)."""
    max_pages: int = 20
    """Pages one query may take before it is abandoned (batch) or cut (single URL)."""
    batch_threshold: int = 5
    """A host with at least this many URLs to look up gets one prefix query."""
    availability_fallback: bool = True
    citation_timestamps: dict[str, str] = field(default_factory=dict)
    """url → 14-digit citation timestamp, for the availability fallback."""

    async def _fetch(
        self, query: CdxQuery, max_pages: int | None = None
    ) -> tuple[list[CdxRow], bool]:
        """Every row of a query, following resume keys; (rows, cut short by the page budget)."""
        rows: list[CdxRow] = []
        current = query
        for _ in range(max_pages or self.max_pages):
            reply = await self.gateway.get(Family.CDX, self.gateway.endpoints.cdx, current.params())
            if is_blocked(reply.status, reply.headers, reply.text[:4096]):
                raise _Blocked()
            if reply.status != 200:
                raise _Failed(f"CDX answered HTTP {reply.status}")
            if not reply.complete:
                raise _Failed("CDX answer too large")
            try:
                page = parse_page(reply.body)
            except CdxFormatError as exc:
                raise _Failed(str(exc)) from None
            rows.extend(page.rows)
            if not page.resume_key:
                return resolve_revisits(rows), False
            current = current.next_page(page.resume_key)
        return resolve_revisits(rows), True

    async def lookup(self, url: str) -> LookupResult:
        """All captures of one URL (exact match)."""
        try:
            rows, _cut = await self._fetch(CdxQuery(url=url, limit=self.page_limit))
        except _Blocked:
            return LookupResult(url, "blocked", "cdx")
        except (_Failed, ArchiveRequestError) as exc:
            return await self._fallback(url, str(exc))
        return LookupResult(url, "found" if rows else "none", "cdx", rows)

    async def _fallback(self, url: str, error: str) -> LookupResult:
        if self.availability_fallback:
            try:
                row = await closest_capture(self.gateway, url, self.citation_timestamps.get(url))
            except ArchiveRequestError:
                row = None
            if row is not None:
                return LookupResult(url, "found", "availability", [row], error)
        return LookupResult(url, "error", "cdx", [], error)

    async def lookup_many(self, urls: Sequence[str]) -> AsyncIterator[LookupResult]:
        """Results for every URL, host-batched where worth it; yielded as they are known."""
        groups: dict[str, list[str]] = defaultdict(list)
        for url in urls:
            groups[match_host(url)].append(url)
        for host, members in groups.items():
            if host and len(members) >= self.batch_threshold:
                batched = await self._batch(members)
                if batched is not None:
                    for result in batched:
                        yield result
                    continue
            for url in members:
                yield await self.lookup(url)

    async def _batch(self, urls: Sequence[str]) -> list[LookupResult] | None:
        """One prefix query for URLs on one host; None when it must fall back to single queries."""
        query = CdxQuery(url=common_prefix(urls), match_type="prefix", limit=self.page_limit)
        # A batch may never cost more requests than the per-URL queries it replaces.
        budget = min(self.max_pages, len(urls))
        try:
            rows, cut = await self._fetch(query, budget)
        except _Blocked:
            return [LookupResult(url, "blocked", "cdx-prefix") for url in urls]
        except (_Failed, ArchiveRequestError):
            return None
        if cut:
            return None
        by_key: dict[str, list[CdxRow]] = defaultdict(list)
        for row in rows:
            by_key[match_key(row.original)].append(row)
        results = []
        for url in urls:
            mine = by_key.get(match_key(url), [])
            results.append(LookupResult(url, "found" if mine else "none", "cdx-prefix", mine))
        return results
