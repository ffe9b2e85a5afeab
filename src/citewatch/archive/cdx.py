"""CDX queries and answers: building the parameters, parsing the JSON, and its quirks.

What the CDX server does that a naive client gets wrong (each one has a test):

* JSON output starts with a header row (``urlkey timestamp original mimetype statuscode digest
  length``) — but **no results is ``[]`` with no header**, which is "no snapshot", not an error;
* identical rows can repeat: they are kept once;
* revisit records (``mimetype`` ``warc/revisit``, ``statuscode`` ``-``) say "same content as an
  earlier capture": we ask for ``resolveRevisits=true`` and also resolve what is left by digest
  against the other rows, so a revisit takes the status of the capture it repeats; one that cannot
  be resolved keeps ``status`` None and is never chosen;
* ``showResumeKey=true`` appends an empty row and a one-element row holding an opaque resume key;
* a blocked site answers 403 with ``X-Archive-Wayback-Runtime-Error``.

waybackpy supplies the sound parts: :class:`waybackpy.cdx_snapshot.CDXSnapshot` is the row model
(it keeps ``statuscode`` as the string the server sent, so ``-`` survives), and
:mod:`waybackpy.cdx_utils` validates filter/collapse/matchType/sort values and encodes the query
(``full_url`` repeats ``filter``/``collapse`` and percent-encodes resume keys). Its text-format
parser and its transport are not used — see docs/archive.md for why.

>>> match_key("https://www.Example.com/News/%d8%a7/?b=2&a=1") == match_key("http://example.com/news/ا?a=1&b=2")
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from ada_url import URL
from waybackpy.cdx_snapshot import CDXSnapshot
from waybackpy.cdx_utils import check_collapses, check_filters, check_match_type, check_sort
from waybackpy.exceptions import WaybackError

from ..models import Snapshot
from . import decode
from .choose import timestamp_to_datetime

#: The fields we always ask for, in this order (CDXSnapshot needs all seven).
FIELDS: tuple[str, ...] = (
    "urlkey",
    "timestamp",
    "original",
    "mimetype",
    "statuscode",
    "digest",
    "length",
)
REVISIT_MIMETYPE = "warc/revisit"
#: The header that marks a 403 as "this site is excluded from the Wayback Machine".
BLOCKED_HEADER = "X-Archive-Wayback-Runtime-Error"

_FIELD = "(?:urlkey|timestamp|original|mimetype|statuscode|digest|length)"
# waybackpy's checks use re.search, so "junk digest junk" passes them; we also require a full match.
_STRICT_FILTER = re.compile(rf"!?~?{_FIELD}:.+")
_STRICT_COLLAPSE = re.compile(rf"{_FIELD}(?::\d{{1,3}})?")
_TIMESTAMP = re.compile(r"^\d{1,14}$")
_CAPTURE_TIMESTAMP = re.compile(r"[0-9]{14}")


def is_capture_timestamp(value: str) -> bool:
    """True for a capture's timestamp as we store it: 14 ASCII digits that make a real date and
    time. waybackpy's check (``strptime``) also takes ``2020131010101`` (13 digits, read as
    2020-1-31) and other digits than ASCII ones, which break every later reading of it."""
    if not _CAPTURE_TIMESTAMP.fullmatch(value):
        return False
    try:
        moment = timestamp_to_datetime(value)
    except (ValueError, OverflowError):
        return False
    return moment.strftime("%Y%m%d%H%M%S") == value


class CdxQueryError(ValueError):
    """A CDX query we would not send (a bug in the caller, never a network condition)."""


@dataclass(frozen=True, slots=True)
class CdxQuery:
    """One CDX search. ``params()`` gives the validated query string parameters."""

    url: str
    match_type: str | None = None
    """exact (default) | prefix | host | domain"""
    from_: str | None = None
    to: str | None = None
    filters: tuple[str, ...] = ()
    collapses: tuple[str, ...] = ()
    sort: str | None = None
    limit: int | None = 10000
    resume_key: str | None = None
    resolve_revisits: bool = True

    def params(self) -> dict[str, str]:
        """Query parameters, validated by waybackpy's CDX rules and our stricter ones."""
        try:
            check_filters(list(self.filters))
            check_collapses(list(self.collapses))
            check_match_type(self.match_type, self.url)
            check_sort(self.sort)
        except WaybackError as exc:
            raise CdxQueryError(str(exc)) from exc
        for value in self.filters:
            if not _STRICT_FILTER.fullmatch(value):
                raise CdxQueryError(f"not a CDX filter: {value!r}")
        for value in self.collapses:
            if not _STRICT_COLLAPSE.fullmatch(value):
                raise CdxQueryError(f"not a CDX collapse: {value!r}")
        for name, value in (("from", self.from_), ("to", self.to)):
            if value is not None and not _TIMESTAMP.match(value):
                raise CdxQueryError(f"{name} must be a 1-14 digit timestamp, got {value!r}")
        params: dict[str, str] = {"url": self.url, "output": "json", "fl": ",".join(FIELDS)}
        if self.match_type:
            params["matchType"] = self.match_type
        if self.from_:
            params["from"] = self.from_
        if self.to:
            params["to"] = self.to
        for index, value in enumerate(self.filters):
            params[f"filter{index}"] = value  # full_url turns filterN into repeated filter=
        for index, value in enumerate(self.collapses):
            params[f"collapse{index}"] = value
        if self.sort:
            params["sort"] = self.sort
        if self.resolve_revisits:
            params["resolveRevisits"] = "true"
        if self.limit is not None:
            params["limit"] = str(self.limit)
            params["showResumeKey"] = "true"
        if self.resume_key:
            params["resumeKey"] = self.resume_key
        return params

    def next_page(self, resume_key: str) -> CdxQuery:
        return CdxQuery(
            self.url,
            self.match_type,
            self.from_,
            self.to,
            self.filters,
            self.collapses,
            self.sort,
            self.limit,
            resume_key,
            self.resolve_revisits,
        )


@dataclass(frozen=True, slots=True)
class CdxRow:
    """One capture as the CDX server listed it, with the status resolved."""

    urlkey: str
    timestamp: str
    original: str
    mimetype: str
    status: int | None
    """The HTTP status captured; for a revisit, the status of the capture it repeats (None if unknown)."""
    digest: str
    length: int | None
    revisit: bool = False

    def snapshot(self, url: str) -> Snapshot:
        """The row as the store keeps it, filed under the URL we asked about."""
        return Snapshot(
            url=url,
            timestamp=self.timestamp,
            original=self.original,
            status=self.status,
            mimetype=self.mimetype,
            digest=self.digest,
            length=self.length,
        )


@dataclass
class CdxPage:
    """What one CDX response held."""

    rows: list[CdxRow] = field(default_factory=list)
    resume_key: str | None = None
    malformed: int = 0
    """Rows skipped because they could not be read."""


class CdxFormatError(ValueError):
    """The body is not CDX JSON at all (e.g. an HTML error page)."""


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_page(body: str | bytes) -> CdxPage:
    """Parse one JSON CDX response (header row optional, ``[]`` = nothing, resume key at the end)."""
    try:  # lone surrogate escapes come back as U+FFFD, fit to store
        data = decode.loads(body or b"[]")
    except ValueError as exc:  # not JSON, not UTF-8 (UnicodeDecodeError), nested too deeply
        raise CdxFormatError(f"CDX answer is not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise CdxFormatError("CDX answer is not a JSON list")
    page = CdxPage()
    rows: list[Any] = list(data)
    # showResumeKey: ..., [], ["<key>"]
    if len(rows) >= 2 and rows[-2] == [] and isinstance(rows[-1], list) and len(rows[-1]) == 1:
        page.resume_key = str(rows[-1][0])
        rows = rows[:-2]
    columns: Sequence[str] = FIELDS
    if rows and isinstance(rows[0], list) and "timestamp" in rows[0] and "original" in rows[0]:
        columns = [str(name) for name in rows[0]]
        rows = rows[1:]
    seen: set[tuple[str, ...]] = set()
    for raw in rows:
        if not isinstance(raw, list) or not raw:
            continue
        values = tuple("" if v is None else str(v) for v in raw)
        if values in seen:
            continue
        seen.add(values)
        record = dict(zip(columns, values, strict=False))
        if any(name not in record for name in FIELDS):
            page.malformed += 1
            continue
        try:
            snap = CDXSnapshot(record)  # waybackpy's row model (validates the timestamp)
        except (KeyError, ValueError):
            page.malformed += 1
            continue
        if not is_capture_timestamp(snap.timestamp):  # waybackpy's check is lax
            page.malformed += 1
            continue
        revisit = snap.mimetype == REVISIT_MIMETYPE or snap.statuscode == "-"
        page.rows.append(
            CdxRow(
                urlkey=snap.urlkey,
                timestamp=snap.timestamp,
                original=snap.original,
                mimetype=snap.mimetype,
                status=_int(snap.statuscode),
                digest=snap.digest,
                length=_int(snap.length),
                revisit=revisit,
            )
        )
    return page


def resolve_revisits(rows: Iterable[CdxRow]) -> list[CdxRow]:
    """Give each unresolved revisit the status of a non-revisit capture with the same digest.

    The same (urlkey, digest) wins, the nearest earlier capture first; failing that, any capture of
    the URL with that digest. Unresolvable revisits keep ``status`` None. Duplicates go.
    """
    unique = sorted(set(rows), key=lambda r: (r.urlkey, r.timestamp, r.original, r.digest))
    originals: dict[tuple[str, str], list[CdxRow]] = {}
    for row in unique:
        if row.status is not None and row.mimetype != REVISIT_MIMETYPE and row.digest:
            originals.setdefault((row.urlkey, row.digest), []).append(row)
    out: list[CdxRow] = []
    for row in unique:
        if row.status is None and row.digest:
            candidates = originals.get((row.urlkey, row.digest), [])
            earlier = [c for c in candidates if c.timestamp <= row.timestamp]
            source = earlier[-1] if earlier else (candidates[0] if candidates else None)
            if source is not None:
                row = CdxRow(
                    row.urlkey,
                    row.timestamp,
                    row.original,
                    row.mimetype,
                    source.status,
                    row.digest,
                    row.length,
                    True,
                )
        out.append(row)
    return out


def is_blocked(status: int, headers: Any, body: str = "") -> bool:
    """True for the Wayback Machine's "this site is excluded" answer."""
    if status != 403:
        return False
    header = headers.get(BLOCKED_HEADER) if headers is not None else None
    return bool(header) or "AdministrativeAccessControlException" in body


# -- matching rows to cited URLs ------------------------------------------------------------------
_WWW = re.compile(r"^www\d*\.")


def match_host(url: str) -> str:
    """The host as CDX keys it: lower case, no ``www.``, with a non-default port."""
    try:
        parsed = URL(url)
    except ValueError:
        return ""
    host = _WWW.sub("", parsed.hostname.lower().rstrip("."))
    return f"{host}:{parsed.port}" if parsed.port else host


def match_key(url: str) -> str:
    """A scheme-less, case- and escape-insensitive key: two URLs with one key are one CDX page.

    Like the CDX urlkey (SURT) it ignores the scheme, ``www``, the default port, letter case and
    the order of query parameters; it also ignores a trailing slash and percent-escaping, so an
    Arabic path cited raw and captured escaped still match.
    """
    try:
        parsed = URL(url if "://" in url else "http://" + url)
    except ValueError:
        return url.lower()
    path = unquote(parsed.pathname).rstrip("/")
    query = parsed.search[1:] if parsed.search else ""
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    rendered = "&".join(f"{k}={v}" for k, v in pairs)
    return (match_host(parsed.href) + path + ("?" + rendered if rendered else "")).lower()


def common_prefix(urls: Sequence[str]) -> str:
    """The longest shared path (whole segments) of URLs on one host, as ``host/path/``."""
    paths: list[list[str]] = []
    host = ""
    for url in urls:
        try:
            parsed = URL(url)
        except ValueError:
            continue
        host = match_host(url)
        segments = parsed.pathname.split("/")[1:]
        paths.append(segments[:-1])  # the last segment is the page itself
    if not paths:
        return host + "/"
    shared: list[str] = []
    for parts in zip(*paths, strict=False):
        if all(part == parts[0] for part in parts):
            shared.append(parts[0])
        else:
            break
    return host + "/" + "".join(part + "/" for part in shared)
