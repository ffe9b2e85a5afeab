"""``citewatch fix``: rewrite a profile's broken links to their best archived copy, as a reviewable diff.

Works from the database alone (no network). For each current citation of the profile whose URL is
``dead`` (confirmed or one-shot) the replacement is the best snapshot's replay URL
(``{wayback}/web/<timestamp>/<original>``); with ``include_moved`` each ``moved`` URL gets its new
location. A citation that is itself an archive link is rewritten only when its capture is known not
to replay (the rule of ``Store.broken_citations``, which makes it count for exit code 1): it gets the
best *other* usable capture of its original URL, by the same rule. Archive links that replay (or
were never verified) and citations with no usable 2xx snapshot are never guessed at (the last are
listed in ``unresolved``). A URL under an ignore rule — a ``citewatch ignore`` override or a glob of
the config's ``ignore`` list, :func:`citewatch.config.ignore_reason`, the rule the exit code and the
reports follow — is never rewritten: a citation fix would otherwise have acted on is listed in
``ignored``, with the rule's reason.

Safety rules, each one a reason this module exists rather than a search-and-replace:

- **Only the cited URL changes.** The edit happens at the citation's recorded line and column, and only
  after checking that its ``raw`` text is there and that the URL inside it resolves (against the
  profile's base URL) to the cited URL. Anything else is reported as unresolved, never guessed.
- **Format-aware.** Markdown link targets, autolinks, bare URLs, the seed's text format (``[t \\(u\\)](u)``,
  ``name (/path)``) and HTML attributes are rewritten in place; in HTML profiles a link to an archived
  copy takes the Robust Links "link to the memento" form (robustlinks.org, the one for an original
  that is gone): ``href`` is the archived copy, ``data-originalurl`` the original URL,
  ``data-versiondate`` the capture's day. Read back, it is a cited archive link of the original,
  judged by its replay, as a rewritten Markdown link is. The "link to the original" form an earlier
  citewatch wrote (the dead ``href`` kept, plus ``data-versionurl``) is converted. The new URL is
  written so that the reader of its place (citewatch's own, CommonMark, HTML) reads back exactly
  that URL: inside an HTML attribute value (in HTML, or raw HTML in Markdown, however odd the
  tag's earlier attributes) as a character-reference-escaped value for its quoting (``&`` → ``&amp;``, ``"`` → ``&quot;``…); as a Markdown link destination or
  reference definition with whitespace percent-encoded, unbalanced parentheses backslash-escaped
  and an ``&`` that would start a character reference (``&copy;``) written ``&amp;``; inside
  ``<…>`` with ``<``, ``>`` and whitespace percent-encoded; as a bare URL in Markdown with that
  ``&`` written ``&amp;`` too; on a GFM table row with ``|`` escaped (``\\|``; ``&#124;`` in an
  attribute). In the text dumps, a link destination whose parentheses the dumps' reader would not
  pair goes in ``<…>``, and a bare URL gets an unpaired parenthesis percent-encoded.
- **Idempotent.** The database still describes the file as scanned, so a site already carrying our
  rewrite is recognised (a usable capture of the URL — 2xx, not rejected on replay — or its new
  location, as written for its place) and left alone, reported with the capture it carries;
  planning again after ``--write`` gives an empty diff. One that an earlier citewatch wrote without
  escaping is re-escaped (mode ``escape``); one carrying a capture found since not to replay (or
  not 2xx) is rewritten to the current replacement. A site is found at its recorded column, moved
  by what our rewrites earlier on its line changed since the scan (nothing, when the file is as
  scanned).
- **Edits never overlap.** Two citations whose edits (or the reverts of an earlier rewrite) would
  touch the same text — two citations recorded at one place, a reader's mistake — are never both
  made: the first is, each other one is listed as unresolved (rescan, then fix again). The links
  using one Markdown reference definition (each a citation at the definition, with the same edit)
  share its one rewrite.
- **Refuses stale files.** If the file's sha256 differs from the scanned one, the plan reverts our own
  rewrites in memory; only if that does not reproduce the scanned bytes has the file changed in other
  ways, and :func:`write_fix` raises :class:`FixRefused` (rescan first). Whether a site carried
  Robust Links attributes when scanned cannot always be told from the site: with the backup
  ``--write`` kept (the scanned bytes, by their sha256) each site is matched on its own against its
  region of them; without it the likeliest form by the database comes first (a cited archive link:
  its memento form with the cited day; a plain link: undecorated), then other combinations, as many
  as the file's size allows.

>>> _line_starts("a\\nbc\\n")
[0, 2, 5]
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import html
import itertools
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll

from .config import ignore_reason
from .extract.markdown import closing_group
from .models import BROKEN_VERDICTS
from .report.data import (
    CitedCapture,
    SnapshotInfo,
    cited_capture,
    other_usable_capture,
    rejected_captures,
    replay_evidence,
    snapshot_info,
    suggested_replacement,
    usable_best_snapshot,
    with_fragment,
)
from .report.safe import is_web_url
from .store import Store
from .urls import InvalidURL, resolve, unwrap_wayback

ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # byte-exact round trip even for files that are not valid UTF-8

_ATTR = re.compile(
    r"""\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>`=]+))""", re.IGNORECASE
)
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*)>")
_TOKEN = re.compile(r"[^\s()<>\"'\[\]{}|\\^`]+")
_URLISH = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|/)")
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_DECORATION = re.compile(
    r'\s+data-originalurl="[^"]*"\s+data-versionurl="[^"]*"\s+data-versiondate="[^"]*"',
    re.IGNORECASE,
)
#: The Robust Links "link to the memento" attributes this module writes (after the href).
_MEMENTO_DECORATION = re.compile(
    r'\s+data-originalurl="[^"]*"\s+data-versiondate="[^"]*"', re.IGNORECASE
)
#: One attribute of a start tag (HTML's syntax, as the HTML reader reads it), with its leading space.
_TAG_ATTR = re.compile(r"""\s*([^\s/>][^\s/>=]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
#: What stands just before a URL that is an attribute value of a link (href, src, cite).
_LINK_VALUE_BEFORE = re.compile(r"""\b(?:href|src|cite)\s*=\s*["']?\Z""", re.IGNORECASE)
_REFERENCE = re.compile(r" {0,3}\[(?:\\.|[^\\\[\]])+\]:[ \t]*(?:\n[ \t]*)?")
_MD_DESTINATION_BEFORE = re.compile(r"\]\([ \t]*(<?)\Z")
_REFERENCE_BEFORE = re.compile(r" {0,3}\[(?:\\.|[^\\\[\]])+\]:[ \t]*(<?)")
#: From a start tag's '<' to an attribute's value, past earlier attributes (whose quoted values may
#: hold '<' or '>'): the value's quote ('' when unquoted) is group 1.
_START_TAG_TO_VALUE = re.compile(
    r"""<[A-Za-z][^\s/>]*(?:\s+[^\s"'<>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*"""
    r"""\s+[^\s"'<>/=]+\s*=\s*(["']?)"""
)
_TAG_NAME = re.compile(r"<[A-Za-z][^\s/>]*")
_START_TAG_OPEN = re.compile(r"<[A-Za-z][^\s/>]*(?=\s)")
_ATTR_BEFORE = re.compile(r"""\s[^\s"'<>/=]+\s*=\s*(["']?)\Z""")
_LONE_CR = re.compile(r"\r(?!\n)")
#: Markdown blocks only (for the lines of GFM tables), parsed as citewatch's reader parses them.
_BLOCKS = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_BLOCKS.disable("inline")


class FixRefused(Exception):
    """The profile changed since it was scanned, in ways other than citewatch's own rewrite."""


class ProfileNotScanned(LookupError):
    """The profile is not in the database (run ``citewatch scan`` first)."""


@dataclass
class FixResult:
    """A planned rewrite of one profile."""

    profile: str
    """The profile's path as stored in the database."""
    diff: str
    """Unified diff of the rewrite ('' when there is nothing to change)."""
    replaced: list[dict[str, Any]]
    """One entry per rewritten citation: line, column, url, replacement, kind, mode, snapshot."""
    unresolved: list[dict[str, Any]]
    """Broken (or moved) citations left alone, each with the reason."""
    new_text: str | None
    """The rewritten file, or None when nothing changes."""
    already_fixed: list[dict[str, Any]] = field(default_factory=list)
    """Citations whose site already carries the rewrite (from an earlier ``--write``)."""
    ignored: list[dict[str, Any]] = field(default_factory=list)
    """Citations fix would have acted on, left alone because their URL is under an ignore rule
    (``citewatch ignore`` or the config's ``ignore`` globs): line, column, url, verdict, reason."""
    source_sha256: str = ""
    """sha256 of the bytes the plan was made from (write_fix refuses if the file moved on)."""
    refused: str | None = None
    """Why writing is refused (the file changed beyond our rewrite), or None."""


@dataclass(frozen=True)
class _Candidate:
    row: Mapping[str, Any]
    replacement: str
    kind: str
    """``snapshot`` or ``moved``."""
    fixed_forms: dict[str, SnapshotInfo | None]
    """Every URL an earlier rewrite of this citation may have left that still counts as fixed
    (longest first), with its capture (None: the new location of a moved URL): a usable capture
    (2xx, not rejected on replay)."""
    snapshot: SnapshotInfo | None
    stale_forms: dict[str, SnapshotInfo] = field(default_factory=dict)
    """Known captures an earlier rewrite may have left that no longer count (not 2xx, or rejected
    on replay since): a site carrying one is rewritten to ``replacement``."""


@dataclass
class _Site:
    start: int
    end: int
    edits: list[tuple[int, int, str]]
    """(start, end, text) edits in the current text; empty when already fixed."""
    reverts: list[tuple[int, int, str]]
    """Edits that would turn an already-fixed site back into the scanned text."""
    escaped: str | None = None
    """The URL an earlier rewrite left unescaped here, which ``edits`` only re-escape."""
    found: str | None = None
    """The URL an earlier rewrite left here (a usable form when already fixed; a stale one when
    ``edits`` replace it), or None."""
    carries: str | None = None
    """The URL the site carries once ``edits`` are made, when it is not the candidate's
    replacement (Robust Links of an earlier citewatch naming a capture that still counts)."""
    alternatives: list[list[tuple[int, int, str]]] = field(default_factory=lambda: [[]])
    """Edits that may also be needed, besides ``reverts``, to turn the site back into the scanned
    text, one list per possibility, the most likely first (Robust Links attributes outside the
    recorded raw text: whether they were there when the file was scanned cannot always be told)."""
    problem: str | None = None
    """Why the site is left alone (listed as unresolved), or None."""

    def deltas(self) -> list[int]:
        """How much longer the site is now than when scanned, for each of ``alternatives``."""
        base = sum((end - start) - len(new) for start, end, new in self.reverts)
        return [
            base + sum((end - start) - len(new) for start, end, new in alt)
            for alt in self.alternatives
        ]


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _profile_row(store: Store, path: Path) -> dict[str, Any] | None:
    """The profile as stored: by its name in the database (relative to the database's folder),
    else by the path as given, else by any stored name for the same file."""
    for key in (store.profile_key(path), path.as_posix(), str(path)):
        row = store.profile_row(key)
        if row:
            return row
    target = path.resolve()
    for row in store.query("SELECT * FROM profiles"):
        if store.profile_file(row["path"]).resolve() == target:
            return row
    return None


def _candidates(
    store: Store,
    rows: Sequence[Mapping[str, Any]],
    include_moved: bool,
    wayback_url: str,
    ignore_patterns: Sequence[str] = (),
) -> tuple[list[_Candidate], list[dict[str, Any]], list[dict[str, Any]]]:
    """(citations to rewrite, broken ones left alone with why, ignored ones fix would have acted
    on, with the ignore rule's reason)."""
    rules = store.ignored()
    candidates, unresolved, ignored = [], [], []
    snapshot_cache: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if not row["url"] or row["skip_reason"]:
            continue
        if row["url_id"] not in snapshot_cache:
            snapshot_cache[row["url_id"]] = store.snapshots_for(row["url_id"])
        found = _consider(store, row, snapshot_cache[row["url_id"]], include_moved, wayback_url)
        if found is None:
            continue
        # The one ignore rule (what the exit code, "Needs attention" and the reports follow).
        reason = ignore_reason(row["url"], ignore_patterns, rules)
        if reason is not None:
            ignored.append(_entry(row, reason))
        elif isinstance(found, _Candidate):
            candidates.append(found)
        else:
            unresolved.append(_entry(row, found))
    return candidates, unresolved, ignored


def _is_2xx(snap: Mapping[str, Any]) -> bool:
    try:
        return 200 <= int(snap["status"]) < 300
    except (TypeError, ValueError):
        return False


def _known_forms(
    row: Mapping[str, Any],
    snaps: Sequence[Mapping[str, Any]],
    wayback_url: str,
    rejected: Collection[str] = (),
    but: Collection[str] = (),
) -> tuple[dict[str, SnapshotInfo | None], dict[str, SnapshotInfo]]:
    """What an earlier rewrite may have left at a citation: (the forms that count as fixed — a
    usable capture, 2xx and not ``rejected`` on replay, or the new location of a moved URL —, the
    other known captures, which an earlier fix may have written before they were found not to
    replay); each longest first. The captures ``but`` (a cited archive link's own) are neither."""
    fragment = row["fragment"] or ""
    fixed: dict[str, SnapshotInfo | None] = {}
    stale: dict[str, SnapshotInfo] = {}
    for s in snaps:
        timestamp = str(s["timestamp"])
        if timestamp in but:
            continue
        info = snapshot_info(s, row["url"], row["published"], wayback_url)
        form = with_fragment(info.replay_url, fragment)
        if _is_2xx(s) and timestamp not in rejected:
            fixed.setdefault(form, info)
        else:
            stale.setdefault(form, info)
    if row["moved_to"] and not row["archived_timestamp"]:
        fixed.setdefault(with_fragment(row["moved_to"], fragment), None)
    stale = {f: info for f, info in stale.items() if f not in fixed}

    def longest_first(forms: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted(forms.items(), key=lambda item: len(item[0]), reverse=True))

    return longest_first(fixed), longest_first(stale)


def _consider(
    store: Store,
    row: Mapping[str, Any],
    snaps: Sequence[Mapping[str, Any]],
    include_moved: bool,
    wayback_url: str,
) -> _Candidate | str | None:
    """What fix would do with one citation: rewrite it, list it as unresolved (why), or nothing."""
    url, verdict = row["url"], row["verdict"]
    if row["archived_timestamp"]:
        # An archive link: rewritten only when its capture is known not to replay.
        cited = _failing_capture(store, row)
        return None if cited is None else _other_capture(store, row, cited, snaps, wayback_url)
    if unwrap_wayback(row["cited_url"] or ""):
        return None  # an archive link not recorded as one: never rewritten
    fragment = row["fragment"] or ""
    rejected = rejected_captures(store, row["url_id"]).get(row["url_id"], ())
    best = usable_best_snapshot(snaps, row["published"], rejected)
    snap = snapshot_info(best, url, row["published"], wayback_url) if best else None
    replacement, kind = suggested_replacement(verdict, row["moved_to"], snap, fragment)
    if verdict in BROKEN_VERDICTS and replacement is None:
        return _no_snapshot_reason(store, row["url_id"])
    if kind == "moved" and include_moved and not is_web_url(replacement):
        return "moved, but the new location is not an http(s) URL"
    if replacement and (kind == "snapshot" or include_moved):
        fixed, stale = _known_forms(row, snaps, wayback_url, rejected)
        return _Candidate(row, replacement, kind, fixed, snap, stale)
    return None


def _failing_capture(store: Store, row: Mapping[str, Any]) -> CitedCapture | None:
    """The capture an archive-link citation points at, when its newest replay that got an answer
    about it showed it does not replay (what makes the citation broken); else None."""
    timestamp = str(row["archived_timestamp"])
    evidence = replay_evidence(store, row["url_id"])
    cited = cited_capture(timestamp, *evidence.get((row["url_id"], timestamp), (None, None)))
    return cited if cited.fails else None


def _other_capture(
    store: Store,
    row: Mapping[str, Any],
    cited: CitedCapture,
    snaps: Sequence[Mapping[str, Any]],
    wayback_url: str,
) -> _Candidate | str:
    """The best other usable capture of a non-replaying archive link's original URL (the rule for
    dead URLs, never the capture cited nor the one the archive served instead), or why there is none."""
    url, fragment = row["url"], row["fragment"] or ""
    rejected = rejected_captures(store, row["url_id"]).get(row["url_id"], set())
    best = other_usable_capture(snaps, row["published"], rejected, cited)
    if best is None:
        if not _archive_asked(store, row["url_id"]):
            return (
                f"{cited.reason()}; no other capture of the original URL is known yet: the Wayback "
                "Machine has not been asked about it (run `citewatch archive`, then `fix` again)"
            )
        step = (
            "the original page is still live: cite it, or find another source"
            if row["verdict"] in ("alive", "moved")
            else "find the page's new location or another source"
        )
        return (
            f"{cited.reason()}; no other usable capture exists (no other usable 2xx snapshot of "
            f"the original URL in the Wayback Machine): {step}"
        )
    snap = snapshot_info(best, url, row["published"], wayback_url)
    # What an earlier rewrite may have left here: any known capture but the one cited; only a
    # usable one (never the one the archive served in the cited one's place) counts as fixed.
    unusable = {*rejected, *([cited.served_timestamp] if cited.served_timestamp else [])}
    fixed, stale = _known_forms(row, snaps, wayback_url, unusable, but={cited.timestamp})
    replacement = with_fragment(snap.replay_url, fragment)
    return _Candidate(row, replacement, "snapshot", fixed, snap, stale)


#: Archive lookups that got an answer about the URL (``error`` is no answer).
_ANSWERED_LOOKUPS = ("found", "none", "blocked")


def _archive_asked(store: Store, url_id: int) -> bool:
    """Whether the Wayback Machine answered about the URL (a lookup, or any capture known)."""
    return bool(
        store.query(
            "SELECT 1 FROM archive_lookups WHERE url_id = ? AND result IN (?, ?, ?)"
            " UNION ALL SELECT 1 FROM snapshots WHERE url_id = ? LIMIT 1",
            [url_id, *_ANSWERED_LOOKUPS, url_id],
        )
    )


def _no_snapshot_reason(store: Store, url_id: int) -> str:
    """Why a broken link has no replacement, with an honest next step.

    Save Page Now is never the answer: citewatch does not ask it to capture dead URLs, and a capture
    made now would only archive the error page.
    """
    if not _archive_asked(store, url_id):
        return (
            "no archived copy known yet: the Wayback Machine has not been asked about this URL "
            "(run `citewatch archive`, then `fix` again)"
        )
    return (
        "no archived copy exists (no usable 2xx snapshot in the Wayback Machine): find the page's "
        "new location or another source"
    )


def _entry(row: Mapping[str, Any], reason: str) -> dict[str, Any]:
    return {
        "line": row["line"],
        "column": row["col"],
        "url": row["cited_url"] or row["url"],
        "verdict": row["verdict"],
        "reason": reason,
    }


# -- locating the URL inside a citation's raw text --------------------------------------------------


def _destination_spans(raw: str) -> list[tuple[int, int]]:
    """Every span of ``raw`` that could be the URL as written, most specific first."""
    spans: list[tuple[int, int]] = []
    group = closing_group(raw)
    if group:
        start, end = group
        inner = raw[start:end]
        lead = len(inner) - len(inner.lstrip())
        body = inner.strip()
        if body.startswith("<") and ">" in body:
            spans.append((start + lead + 1, start + lead + body.index(">")))
        elif body:
            spans.append((start + lead, start + lead + len(body.split()[0])))
    for m in _ATTR.finditer(raw):
        index = next(i for i in (1, 2, 3) if m.group(i) is not None)
        spans.append((m.start(index), m.end(index)))
    for m in _AUTOLINK.finditer(raw):
        spans.append((m.start(1), m.end(1)))
    stripped = raw.strip()
    if stripped and not any(ch.isspace() for ch in stripped):
        lead = len(raw) - len(raw.lstrip())
        spans.append((lead, lead + len(stripped)))  # the raw text is the URL itself
    # URL-looking words inside a larger raw text (the seed's "[t \(u\)](u)" echo, a bare URL):
    # only absolute URLs and root-relative paths, never a plain word that happens to resolve.
    spans.extend((m.start(), m.end()) for m in _TOKEN.finditer(raw) if _URLISH.match(m.group()))
    return spans


def _resolves_to(text: str, base: str | None, wanted: set[str]) -> bool:
    for variant in {text, html.unescape(text), _MD_ESCAPE.sub(r"\1", text), unescapeAll(text)}:
        try:
            if resolve(variant, base).url in wanted:
                return True
        except InvalidURL:
            continue
    return False


def url_spans(raw: str, base: str | None, wanted: set[str]) -> list[tuple[int, int]]:
    """Non-overlapping spans of ``raw`` holding the cited URL (the link target and any echo of it)."""
    matching = [s for s in _destination_spans(raw) if _resolves_to(raw[s[0] : s[1]], base, wanted)]
    chosen: list[tuple[int, int]] = []
    for span in sorted(set(matching), key=lambda s: (s[0], -(s[1] - s[0]))):
        if not chosen or span[0] >= chosen[-1][1]:
            chosen.append(span)
    return chosen


def _wanted(row: Mapping[str, Any]) -> set[str]:
    """The normalised URL(s) the raw text must resolve to. For an archive link, only the link itself:
    an echo of its original URL (say, as the anchor text) is not what is replaced."""
    urls = (row["cited_url"],) if row["archived_timestamp"] else (row["cited_url"], row["url"])
    return {u.partition("#")[0] for u in urls if u}


# -- writing a URL where it stands --------------------------------------------------------------------
# Contexts: '"', "'", "=" (HTML attribute value, double-, single- or unquoted), "html" (somewhere in an
# HTML document), "md-dest" (a Markdown link destination or reference definition), "md-angle" (one
# in ``<…>``), "md-text" (Markdown prose: a bare URL, a link text), "autolink" (``<URL>``, where
# backslash escapes and character references are not read), "text-dest" / "text-angle" (a link
# destination of the text dumps, plain or in ``<…>``), "text" (elsewhere in a text dump: a bare URL,
# the seed's ``\(…\)`` echo), None (as it is). A Markdown context on a GFM table row (``table``) also
# escapes ``|``, which would otherwise end the cell.

_UNQUOTED_UNSAFE = re.compile(r"[\s\"'=<>`]")
_MD_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_ANGLE_UNSAFE = re.compile(r"[\x00-\x20\x7f<>]")
#: An ``&`` that CommonMark (and markdown-it, and citewatch's Markdown reader) would read as the
#: start of an entity or numeric character reference (``&copy;``, ``&#169;``, ``&#xA9;``).
_REFERENCE_START = re.compile(r"&(?=[A-Za-z#][A-Za-z0-9]{1,31};)")
#: What the text-dump reader takes for a link destination: parentheses in pairs, one level deep.
_TEXT_PARENTHESES = re.compile(r"[^()]*(?:\([^()]*\)[^()]*)*")
#: Every context a URL may be written into (for finding a site written by an earlier rewrite).
_CONTEXTS = (
    '"',
    "'",
    "=",
    "html",
    "md-dest",
    "md-angle",
    "md-text",
    "autolink",
    "text-dest",
    "text-angle",
    "text",
    None,
)


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def _balanced(url: str) -> bool:
    depth = 0
    for ch in url:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def encode_url(url: str, context: str | None, table: bool = False) -> str:
    """``url`` as written into ``context`` (see above), so that it reads back as ``url``.

    >>> encode_url('https://x.org/?a=1&b="2"', '"')
    'https://x.org/?a=1&amp;b=&quot;2&quot;'
    >>> encode_url("https://x.org/a)b c", "md-dest")
    'https://x.org/a\\\\)b%20c'
    >>> encode_url("https://x.org/?a=1&copy;=2&b=3", "md-text")
    'https://x.org/?a=1&amp;copy;=2&b=3'
    >>> encode_url("https://x.org/?ids=1|2", "md-dest", table=True)
    'https://x.org/?ids=1\\\\|2'
    >>> encode_url("https://x.org/?q=(1", "text-dest")
    '<https://x.org/?q=(1>'
    >>> encode_url("https://x.org/?q=(1", "text")
    'https://x.org/?q=%281'
    """
    if context in ('"', "'", "="):
        if context == "=":
            url = _UNQUOTED_UNSAFE.sub(lambda m: f"&#{ord(m.group())};", url.replace("&", "&amp;"))
        else:
            url = url.replace("&", "&amp;").replace(
                context, "&quot;" if context == '"' else "&#39;"
            )
        return url.replace("|", "&#124;") if table else url
    if context == "html":
        return html.escape(url, quote=True)
    if context in ("md-dest", "md-angle"):
        # Backslash escapes and character references are read in both; "(" and ")" must balance in
        # a plain destination, and may as well in <…> (a reader matching parentheses from the end
        # would miss the link).
        url = (_MD_UNSAFE if context == "md-dest" else _ANGLE_UNSAFE).sub(_percent, url)
        url = _REFERENCE_START.sub("&amp;", url.replace("\\", "\\\\"))
        url = url if _balanced(url) else url.replace("(", "\\(").replace(")", "\\)")
        return url.replace("|", "\\|") if table else url
    if context in ("md-text", "autolink"):
        # A bare URL ends at a backslash, so only a table row's "\|" (which the table, not the
        # inline parser, reads) is written; an autolink reads neither escapes nor references.
        url = _ANGLE_UNSAFE.sub(_percent, url)
        if context == "md-text":
            url = _REFERENCE_START.sub("&amp;", url)
        return url.replace("|", "\\|") if table else url
    if context in ("text-dest", "text-angle"):
        # The text dumps' reader reads backslash escapes in a destination, no character references;
        # a plain destination holds no whitespace and only pairs of parentheses, one level deep (no
        # "\(" escapes): any other parentheses go in a "<…>" destination, which reads them all.
        url = _ANGLE_UNSAFE.sub(_percent, url).replace("\\", "\\\\")
        if context == "text-dest" and not _TEXT_PARENTHESES.fullmatch(url):
            return f"<{url}>"
        return url
    if context == "text":
        # A bare URL stops before an unpaired ")" and keeps an unpaired "(" (and what follows).
        url = _ANGLE_UNSAFE.sub(_percent, url)
        return url if _balanced(url) else url.replace("(", "%28").replace(")", "%29")
    return url


def _raw_context(raw: str, span: tuple[int, int], fmt: str) -> str | None:
    """The context of a URL span that the citation's raw text itself shows, or None."""
    start, end = span
    for m in _ATTR.finditer(raw):
        for index, quote in ((1, '"'), (2, "'"), (3, "=")):
            if (m.start(index), m.end(index)) == span and m.group(index) is not None:
                return quote
    prefix = "text" if fmt == "text" else "md"
    group = closing_group(raw)
    if group and raw[group[0] - 2 : group[0]] == "](":
        inner = raw[group[0] : group[1]]
        lead = len(inner) - len(inner.lstrip())
        if inner.strip().startswith("<") and start == group[0] + lead + 1:
            return f"{prefix}-angle"
        if start == group[0] + lead:
            return f"{prefix}-dest"
    reference = _REFERENCE.match(raw)
    if reference and start == reference.end():
        return "text" if fmt == "text" else "md-dest"  # the text dumps read no definitions
    if any((m.start(1), m.end(1)) == span for m in _AUTOLINK.finditer(raw)):
        return "autolink"
    return None


def _attribute_quote(text: str, pos: int) -> str | None:
    """The quote ('"', "'", or "=" when unquoted) of the HTML attribute value starting at ``pos``,
    or None when ``pos`` is not in a start tag's attribute value."""
    floor = max(0, pos - 4096)
    lt = pos
    for _ in range(32):  # a '<' inside an earlier attribute's value is not the tag's
        lt = text.rfind("<", floor, lt)
        if lt < 0:
            break
        if m := _START_TAG_TO_VALUE.fullmatch(text, lt, pos):
            return m.group(1) or "="
    # A start tag the pattern does not recognise (an earlier value holding '>', say): its
    # "attr=" is still an attribute value, never Markdown or prose.
    opening = max(_START_TAG_OPEN.finditer(text, floor, pos), key=re.Match.start, default=None)
    if opening is None or "</" in text[opening.start() : pos]:
        return None
    m = _ATTR_BEFORE.search(text, opening.end(), pos)
    return (m.group(1) or "=") if m else None


def _text_context(text: str, pos: int, fmt: str) -> str | None:
    """The context of a URL starting at ``pos`` whose raw text does not show it (readers record
    an attribute value or a link destination alone): an attribute value of an HTML start tag (in
    HTML, or raw HTML in Markdown); a Markdown link destination, reference definition, autolink or
    prose (in Markdown); a link destination, autolink or anything else (in the text dumps); else
    HTML text (in HTML); else as it is."""
    if fmt in ("html", "markdown") and (quote := _attribute_quote(text, pos)) is not None:
        return quote
    line_start = text.rfind("\n", 0, pos) + 1
    prefix = text[line_start:pos]
    if fmt == "markdown":
        if m := _MD_DESTINATION_BEFORE.search(prefix) or _REFERENCE_BEFORE.fullmatch(prefix):
            return "md-angle" if m.group(1) else "md-dest"
        if not prefix.strip(" \t") and line_start:  # "[label]:" alone on the line above
            above = text[text.rfind("\n", 0, line_start - 1) + 1 : line_start - 1]
            if m := _REFERENCE_BEFORE.fullmatch(above):
                return "md-angle" if m.group(1) else "md-dest"
        return "autolink" if prefix.endswith("<") else "md-text"
    if fmt == "text":
        if m := _MD_DESTINATION_BEFORE.search(prefix):
            return "text-angle" if m.group(1) else "text-dest"
        if prefix.endswith("\\("):  # the seed's "[t \(URL\)](URL)" echo: link text, no citation
            return None
        return "autolink" if prefix.endswith("<") else "text"
    return "html" if fmt == "html" else None


def _table_rows(text: str) -> set[int]:
    """0-based indices of the lines of GFM tables in a Markdown text, as citewatch's reader sees
    them (lines end at LF only; a front matter block is blank lines)."""
    if "|" not in text:
        return set()
    lines = _LONE_CR.sub(" ", text).split("\n")
    if lines and lines[0].rstrip() == "---":
        end = next(
            (i for i in range(1, min(len(lines), 200)) if lines[i].rstrip() in ("---", "...")), 0
        )
        lines[:end] = [""] * end
    rows: set[int] = set()
    for token in _BLOCKS.parse("\n".join(lines)):
        if token.type == "table_open" and token.map:
            rows.update(range(*token.map))
    return rows


# -- matching a citation's site in the current text --------------------------------------------------


def _written_form(
    text: str, p: int, cand: _Candidate, encode: Callable[[str], str]
) -> tuple[str, str, bool] | None:
    """The URL an earlier rewrite left at ``p``: (the form, as it stands, whether it stands escaped
    for its place), the longest first; or None."""
    written = {f: encode(f) for f in (*cand.fixed_forms, *cand.stale_forms)}
    options = [(w, f, True) for f, w in written.items()]
    options += [(f, f, False) for f, w in written.items() if w != f]
    options.sort(key=lambda option: -len(option[0]))  # stable: escaped first among equals
    return next(((f, w, ok) for w, f, ok in options if text.startswith(w, p)), None)


def _match_replace(
    text: str,
    pos: int,
    raw: str,
    spans: Sequence[tuple[int, int]],
    cand: _Candidate,
    fmt: str,
    table: Callable[[int], bool],
) -> _Site | None:
    """The site of ``raw`` at ``pos``, each URL span either as scanned or already rewritten."""
    p, last = pos, 0
    edits, reverts = [], []
    escaped = found = None
    for start, end in spans:
        piece = raw[last:start]
        if not text.startswith(piece, p):
            return None
        p += len(piece)
        original = raw[start:end]
        context = _raw_context(raw, (start, end), fmt) or _text_context(text, p, fmt)
        in_table = table(p)

        def encode(url: str) -> str:
            return encode_url(url, context, in_table)  # noqa: B023 (called in this iteration)

        earlier = _written_form(text, p, cand, encode)
        if earlier is not None:
            form, written, as_escaped = earlier
            reverts.append((p, p + len(written), original))
            if form in cand.stale_forms:
                # An earlier rewrite to a capture that no longer counts: to the current choice.
                edits.append((p, p + len(written), encode(cand.replacement)))
                found = form
            elif not as_escaped:
                # An earlier citewatch wrote the URL here without escaping it: only that changes.
                edits.append((p, p + len(written), encode(form)))
                escaped = form
            else:
                found = found or form
            p += len(written)
        elif text.startswith(original, p):
            edits.append((p, p + len(original), encode(cand.replacement)))
            p += len(original)
        else:
            return None
        last = end
    tail = raw[last:]
    if not text.startswith(tail, p):
        return None
    return _Site(pos, p + len(tail), edits, reverts, escaped, found)


@dataclass(frozen=True)
class _Attribute:
    start: int
    """Where the attribute starts, its leading whitespace included."""
    end: int
    value_start: int
    value_end: int
    """The value as written, quotes excluded (an empty span when it has none)."""


def _tag_attributes(text: str, tag_start: int, close: int) -> dict[str, _Attribute]:
    """The attributes of the start tag ``text[tag_start:close]`` by lower-cased name (the first of
    each name, as HTML keeps it)."""
    tag = _start_tag(text, tag_start, close + 1)
    found: dict[str, _Attribute] = {}
    for key, attribute in tag[1] if tag else ():
        found.setdefault(key, attribute)
    return found


def _start_tag(text: str, lt: int, limit: int) -> tuple[int, list[tuple[str, _Attribute]]] | None:
    """The start tag whose '<' is at ``lt``, read with HTML's attribute grammar (a quoted value may
    hold '<' and '>'; an unquoted one ends at whitespace or '>'): (index of its closing '>', its
    attributes in order, by lower-cased name); None when ``lt`` opens no start tag closed before
    ``limit``."""
    name = _TAG_NAME.match(text, lt, limit)
    if name is None:
        return None
    attrs: list[tuple[str, _Attribute]] = []
    pos = name.end()
    while pos < limit:
        m = _TAG_ATTR.match(text, pos, limit)  # its leading whitespace included
        if m is None:
            while pos < limit and text[pos] in " \t\n\r\f":
                pos += 1
            if pos < limit and text[pos] == ">":
                return pos, attrs
            if pos < limit and text[pos] == "/":
                pos += 1  # a stray '/' (or "/>")
                continue
            return None
        value = m.group(2)
        if value is None:
            span = (m.end(1), m.end(1))
        elif value[0] in "\"'":
            if len(value) < 2 or value[-1] != value[0]:
                return None  # a quoted value never closed (before ``limit``)
            span = (m.start(2) + 1, m.end(2) - 1)
        else:
            span = (m.start(2), m.end(2))
        attrs.append((m.group(1).lower(), _Attribute(m.start(), m.end(), *span)))
        pos = m.end()
    return None


def _tag_bounds(text: str, inside: int) -> tuple[int, int] | None:
    """(start of '<', index of the closing '>') of the start tag one of whose link attributes
    (href, src, cite) has its value at ``inside``; None when there is no such tag, or when which
    '<' opens it is ambiguous (a '<' inside an earlier attribute's value, which could be read as
    another tag holding that value too)."""
    floor = max(0, inside - 4096)
    limit = min(len(text), inside + 65536)
    found: tuple[int, int] | None = None
    lt = inside
    for _ in range(64):  # a '<' inside an earlier attribute's value is not the tag's
        lt = text.rfind("<", floor, lt)
        if lt < 0:
            break
        tag = _start_tag(text, lt, limit)
        if tag is None:
            continue
        close, attrs = tag
        if found is not None:
            # An earlier tag that holds the one found inside an attribute value: ambiguous.
            if any(a.value_start <= found[0] < a.value_end for _, a in attrs):
                return None
            continue
        if close < inside:
            continue
        hit = next(((key, a) for key, a in attrs if a.value_start <= inside <= a.value_end), None)
        if hit is None:
            continue  # ``inside`` is not in a value of this tag: an earlier '<' may open it
        key, attribute = hit
        lead = text[attribute.value_start : inside]
        if key not in ("href", "src", "cite") or lead.strip(" \t\n\r\f"):
            return None
        found = (lt, close)
    return found


def _value(text: str, attribute: _Attribute | None) -> str | None:
    """An attribute's value as the DOM reads it, or None when absent."""
    if attribute is None:
        return None
    return html.unescape(text[attribute.value_start : attribute.value_end])


def _same_day(written: str, date: str) -> bool:
    return re.sub(r"\D", "", written)[:8] == re.sub(r"\D", "", date)[:8]


def _match_memento(
    text: str,
    pos: int,
    raw: str,
    spans: Sequence[tuple[int, int]],
    cand: _Candidate,
    fmt: str,
    table: Callable[[int], bool],
) -> _Site | None:
    """The site of an HTML link at ``pos``, in (or to be put in) the Robust Links "link to the
    memento" form: its href (src, cite) is the archived copy (replaced as :func:`_match_replace`
    does), with ``data-originalurl`` (the original URL) and ``data-versiondate`` (the capture's
    date). Robust Links of the "link to the original" form (``data-versionurl``, which an earlier
    citewatch wrote) are converted, keeping the capture they name while it still counts."""
    bounds = _tag_bounds(text, pos + spans[0][0])
    if bounds is None:
        return None
    tag_start, close = bounds
    attrs = _tag_attributes(text, tag_start, close)
    original_attr = attrs.get("data-originalurl")
    version_attr = attrs.get("data-versionurl")
    date_attr = attrs.get("data-versiondate")
    chosen = cand
    version = _value(text, version_attr)
    if version is not None and version != cand.replacement and version in cand.fixed_forms:
        chosen = replace(cand, replacement=version, snapshot=cand.fixed_forms[version])

    # The decoration an earlier citewatch wrote after the URL: (start, end, "old" or "memento").
    ours: tuple[int, int, str] | None = None
    if original_attr is not None:
        for kind, pattern in (("old", _DECORATION), ("memento", _MEMENTO_DECORATION)):
            m = pattern.match(text, original_attr.start, close)
            if m and m.start() > pos + spans[0][0]:  # after the URL, where citewatch puts it
                ours = (m.start(), m.end(), kind)
                break

    scanned_had: bool | None = None  # whether the scanned text held ``ours`` (None: unknown)
    site = _match_replace(text, pos, raw, spans, chosen, fmt, table)
    if site is not None and ours and site.end > ours[0]:
        scanned_had = True  # the recorded raw text covers it
    elif site is None and ours and pos < ours[0]:
        # A recorded raw text that covers the tag's end, scanned before the decoration was added.
        start, end, _ = ours
        site = _match_replace(text[:start] + text[end:], pos, raw, spans, chosen, fmt, table)
        if site is None or site.end <= start:
            return None
        if any(e > start for _, e, _ in (*site.edits, *site.reverts)):
            return None
        site.end += end - start
        scanned_had = False
    if site is None:
        return None

    # The URL the href carries once rewritten, and so the capture date.
    if site.escaped is not None:
        final = site.escaped
    elif site.edits:
        final = chosen.replacement
    else:
        final = site.found or chosen.replacement
    snapshot = chosen.fixed_forms.get(final) or (
        chosen.snapshot if final == chosen.replacement else cand.stale_forms.get(final)
    )
    date = _version_date(snapshot)

    row = cand.row
    original = with_fragment(
        row["url"] if row["archived_timestamp"] else (row["cited_url"] or row["url"]),
        row["fragment"] or "",
    )
    decoration: list[tuple[int, int, str]] = []
    insert = ""
    date_problem: str | None = None
    # No capture: the href carries the URL's new location (it moved), no memento to describe.
    if snapshot is not None:
        if version_attr is not None:  # "link to the original": the href is the memento now
            decoration.append((version_attr.start, version_attr.end, ""))
        if original_attr is None:
            insert += f' data-originalurl="{html.escape(original, quote=True)}"'
        written_date = _value(text, date_attr) or ""
        if date_attr is None:
            insert += f' data-versiondate="{date}"'
        elif date_attr.value_start == date_attr.end:  # valueless: given its value
            named = text[date_attr.start : date_attr.end]
            decoration.append((date_attr.start, date_attr.end, f'{named}="{date}"'))
        elif _same_day(written_date, date):
            pass
        elif not written_date.strip() or (ours and ours[0] <= date_attr.start < ours[1]):
            decoration.append((date_attr.value_start, date_attr.value_end, date))
        elif version_attr is None:
            # Someone's own date (the day they linked, say): citewatch would lose it, and with
            # it the means to recognise the file it wrote.
            date_problem = (
                f"the link's data-versiondate ({written_date}) is not the day of the archived "
                f"copy ({chosen.replacement if final == chosen.replacement else final}, "
                f"{date}): point its href at a working copy by hand (Robust Links' link to the "
                "memento: href, data-originalurl, data-versiondate)"
            )
        else:
            decoration.append((date_attr.value_start, date_attr.value_end, date))
    if insert:
        # "/>" closing the tag (not an unquoted value's last character): insert before the '/'.
        self_closing = text[close - 1] == "/" and all(a.end < close for a in attrs.values())
        at = close - 1 if self_closing else close
        decoration.append((at, at, insert))

    # How the scanned text may have looked where our decoration stands now.
    alternatives: list[list[tuple[int, int, str]]] = [[]]
    if ours is not None and scanned_had is not None:
        alternatives = [[]] if scanned_had else [[(ours[0], ours[1], "")]]
    elif ours is not None:
        start, end, kind = ours
        if site.reverts and kind == "memento":  # the href was rewritten since the scan
            written_original = text[original_attr.value_start : original_attr.value_end]
            written_date = text[date_attr.value_start : date_attr.value_end] if date_attr else ""
            earlier = html.escape(site.escaped or site.found or final, quote=True)
            alternatives = [
                [(start, end, "")],  # added by that rewrite
                [  # converted from an earlier citewatch's "link to the original" form
                    (
                        start,
                        end,
                        f' data-originalurl="{written_original}" data-versionurl="{earlier}"'
                        f' data-versiondate="{written_date}"',
                    )
                ],
            ]
            if row["archived_timestamp"]:
                # Scanned as a cited archive link: most likely citewatch's own memento form (or
                # someone's), whose capture stopped replaying — its cited day comes first.
                cited = _iso_date(str(row["archived_timestamp"]))
                alternatives.insert(
                    0,
                    [
                        (
                            start,
                            end,
                            f' data-originalurl="{written_original}" data-versiondate="{cited}"',
                        )
                    ],
                )
        elif not site.reverts and kind == "old":
            alternatives = [[(start, end, "")], []]  # added by an earlier citewatch, or scanned
    if site.reverts and not (ours is not None and scanned_had is not None):
        # The href was rewritten since the scan: an earlier fix may have added only what the
        # link lacked (data-originalurl or data-versiondate, at the tag's end) or given a
        # valueless (or empty) data-versiondate its value.
        partial = [
            alt
            for alt in _partial_decorations(text, close, original_attr, date_attr)
            if alt not in alternatives
        ]
        if ours is None and alternatives == [[]]:
            # citewatch writes both attributes: with neither added whole, one most likely was.
            alternatives = [*partial, []]
        else:
            alternatives += partial

    carries = final if decoration and final != cand.replacement else None
    escaped = None if decoration else site.escaped
    problem = date_problem
    if version is not None and version not in (*cand.fixed_forms, *cand.stale_forms):
        # Someone's own Robust Links, naming a copy citewatch knows nothing about: never dropped.
        problem = (
            f"the link's data-versionurl names an archived copy citewatch does not know "
            f"({version}): point its href at a working copy by hand (Robust Links' link to "
            "the memento: href, data-originalurl, data-versiondate)"
        )
    return _Site(
        site.start,
        site.end,
        [] if problem else site.edits + decoration,
        site.reverts,
        escaped,
        site.found,
        carries,
        alternatives,
        problem,
    )


def _partial_decorations(
    text: str, close: int, original_attr: _Attribute | None, date_attr: _Attribute | None
) -> list[list[tuple[int, int, str]]]:
    """How the scanned tag may have looked if an earlier fix added only one Robust Links
    attribute (the last of the tag, as citewatch writes it) and perhaps gave a valueless (or
    empty) data-versiondate its value."""
    added: list[list[tuple[int, int, str]]] = [[]]
    for attribute, name in ((original_attr, "data-originalurl"), (date_attr, "data-versiondate")):
        if attribute is None or attribute.end not in (close, close - 1):
            continue
        if attribute.end == close - 1 and text[close - 1] != "/":
            continue
        if text.startswith(f' {name}="', attribute.start) and text[attribute.end - 1] == '"':
            added.append([(attribute.start, attribute.end, "")])
    filled: list[list[tuple[int, int, str]]] = [[]]
    if (
        date_attr is not None
        and text[date_attr.value_start - 2 : date_attr.value_start] == '="'
        and re.fullmatch(r"\d{4}-\d\d-\d\d", text[date_attr.value_start : date_attr.value_end])
    ):
        filled.append([(date_attr.value_start - 2, date_attr.end, "")])  # valueless
        filled.append([(date_attr.value_start, date_attr.value_end, "")])  # empty
    alternatives = []
    for add, fill in itertools.product(added, filled):
        if (add or fill) and not (add and fill and add[0][0] == date_attr.start):
            alternatives.append([*fill, *add])
    return alternatives


def _version_date(snapshot: SnapshotInfo | None) -> str:
    return _iso_date(snapshot.timestamp if snapshot else "")


def _iso_date(ts: str) -> str:
    """A Wayback timestamp's day, as Robust Links write it (``data-versiondate``)."""
    return f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}" if len(ts) >= 8 else ts


def _find_site(
    text: str,
    starts: Sequence[int],
    cand: _Candidate,
    spans: Sequence[tuple[int, int]],
    shifts: Sequence[int],
    decorate: bool,
    fmt: str,
    table: Callable[[int], bool],
) -> _Site | None:
    """The citation's site: at its recorded column (moved by each of ``shifts``, how far earlier
    rewrites on the line may have moved it since the scan), else the one and only place on its
    line where its text (as scanned or as rewritten) stands."""
    row = cand.row
    raw = row["raw"]
    line = row["line"]
    if not 1 <= line <= len(starts):
        return None
    line_start = starts[line - 1]
    line_end = starts[line] if line < len(starts) else len(text)

    def at(pos: int) -> _Site | None:
        if decorate:
            return _match_memento(text, pos, raw, spans, cand, fmt, table)
        return _match_replace(text, pos, raw, spans, cand, fmt, table)

    if row["col"]:
        for shift in shifts:
            site = at(line_start + row["col"] - 1 + shift)
            if site:
                return site
    # Column units can differ between readers (tabs, a BOM): accept the site only if it is the one
    # and only place on the recorded line where this citation's text stands.
    first = spans[0]
    needles = {raw[: first[1]]} | {
        raw[: first[0]] + encode_url(f, context, in_table)
        for f in (*cand.fixed_forms, *cand.stale_forms)
        for context in _CONTEXTS
        for in_table in (False, True)
    }
    # An HTML attribute value alone (as the HTML reader records it): only where a link's value
    # starts, never the same URL inside another attribute (data-originalurl) or inside an archive
    # link's own URL.
    value_alone = fmt == "html" and not raw[: first[0]]
    positions = set()
    for needle in needles:
        p = text.find(needle, line_start, line_end)
        while p != -1:
            if not value_alone or _LINK_VALUE_BEFORE.search(text, max(0, p - 64), p):
                positions.add(p)
            p = text.find(needle, p + 1, line_end)
    found = [site for p in sorted(positions) if (site := at(p)) is not None]
    return found[0] if len(found) == 1 else None


# -- planning and writing -----------------------------------------------------------------------------


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two edit spans of the text overlap or coincide. An insertion (an empty span)
    overlaps a span it falls strictly inside, or an insertion at the same place; at either end of
    a span it does not (:func:`_apply` puts it before or after, as its position says).

    >>> _overlap((3, 8), (5, 12)), _overlap((3, 8), (8, 9)), _overlap((4, 4), (4, 4))
    (True, False, True)
    >>> _overlap((5, 5), (3, 8)), _overlap((3, 3), (3, 8))
    (True, False)
    """
    (s1, e1), (s2, e2) = a, b
    if (s1, e1) == (s2, e2):
        return True
    if s1 == e1:
        return s2 < s1 < e2
    if s2 == e2:
        return s1 < s2 < e1
    return s1 < e2 and s2 < e1


class _Claims:
    """The spans of the text the sites kept so far edit (or would revert), each with its
    citation, indexed by line: a site whose spans overlap another's is set aside, never applied
    (two citations recorded at one place would otherwise be rewritten twice, over each other)."""

    def __init__(self, starts: Sequence[int]) -> None:
        self._starts = starts
        self._by_line: dict[int, list[tuple[int, int, Mapping[str, Any]]]] = defaultdict(list)

    def _lines(self, start: int, end: int) -> range:
        first = bisect.bisect_right(self._starts, start) - 1
        return range(first, bisect.bisect_right(self._starts, max(start, end - 1)))

    def holder(self, spans: Iterable[tuple[int, int]]) -> Mapping[str, Any] | None:
        """The citation of a kept site one of ``spans`` overlaps, or None."""
        for start, end in spans:
            for line in self._lines(start, end):
                for s, e, row in self._by_line.get(line, ()):
                    if _overlap((start, end), (s, e)):
                        return row
        return None

    def add(self, spans: Iterable[tuple[int, int]], row: Mapping[str, Any]) -> None:
        for start, end in set(spans):
            for line in self._lines(start, end):
                self._by_line[line].append((start, end, row))


#: The keys of an entry that say where its citation is (the rest says what the site got).
_WHERE = ("line", "column", "url", "verdict", "reason")


def _reference_definition(
    text: str, pos: int, raw: str, spans: Sequence[tuple[int, int]], fmt: str
) -> bool:
    """Whether the URL at ``pos`` (the first of ``spans`` in ``raw``) is the destination of a
    Markdown reference definition (which several links may use: each a citation there)."""
    if fmt != "markdown":
        return False
    reference = _REFERENCE.match(raw)
    if reference and spans[0][0] in (reference.end(), reference.end() + 1):
        return True
    line_start = text.rfind("\n", 0, pos) + 1
    prefix = text[line_start:pos]
    if _REFERENCE_BEFORE.fullmatch(prefix):
        return True
    if not prefix.strip(" \t") and line_start:  # "[label]:" alone on the line above
        above = text[text.rfind("\n", 0, line_start - 1) + 1 : line_start - 1]
        return _REFERENCE_BEFORE.fullmatch(above) is not None
    return False


def _site_spans(site: _Site) -> list[tuple[int, int]]:
    """Every span of the text a site's edits, reverts and alternatives touch."""
    edits = (*site.edits, *site.reverts, *(e for alt in site.alternatives for e in alt))
    return [(start, end) for start, end, _ in edits]


def _apply(text: str, edits: Sequence[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _lines(text: str) -> list[str]:
    """Lines split on ``\n`` only (``str.splitlines`` also splits on form feeds, U+2028…)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def unified_diff(old: str, new: str, path: str) -> str:
    """A ``git apply``-able unified diff (with the "No newline at end of file" marker)."""
    lines = difflib.unified_diff(
        _lines(old),
        _lines(new),
        fromfile=f"a/{path.lstrip('/')}",
        tofile=f"b/{path.lstrip('/')}",
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def plan_fix(
    store: Store,
    profile_path: Path,
    *,
    include_moved: bool = False,
    wayback_url: str = "https://web.archive.org",
    ignore_patterns: Sequence[str] = (),
) -> FixResult:
    """Plan the rewrite of one profile from the database; reads the file, writes nothing.

    ``ignore_patterns`` are the config's ``ignore`` globs: with the ``citewatch ignore`` overrides
    (read from the database) they make the ignore rule of :func:`citewatch.config.ignore_reason`."""
    profile_path = Path(profile_path)
    profile = _profile_row(store, profile_path)
    if profile is None:
        raise ProfileNotScanned(f"{profile_path} has not been scanned (run `citewatch scan` first)")
    data = profile_path.read_bytes()
    text = data.decode(ENCODING, _ERRORS)
    rows = store.current_citations(profile["path"])
    candidates, unresolved, ignored = _candidates(
        store, rows, include_moved, wayback_url, ignore_patterns
    )
    result = FixResult(
        profile["path"], "", [], unresolved, None, source_sha256=_sha256(data), ignored=ignored
    )
    if profile["format"] == "pdf":
        result.unresolved += [_entry(c.row, "PDF profiles are not rewritten") for c in candidates]
        candidates = []
    decorate_html = profile["format"] == "html"

    starts = _line_starts(text)
    tables: set[int] | None = None

    def in_table(pos: int) -> bool:
        """Whether ``pos`` is on a GFM table row (Markdown only; parsed on first use)."""
        nonlocal tables
        if profile["format"] != "markdown":
            return False
        if tables is None:
            tables = _table_rows(text)
        return bisect.bisect_right(starts, pos) - 1 in tables

    # The file as scanned: the recorded columns are exact (no earlier rewrite moved anything).
    as_scanned = result.source_sha256 == profile["sha256"]
    by_line: dict[int, list[_Candidate]] = defaultdict(list)
    for cand in candidates:
        by_line[cand.row["line"]].append(cand)
    edits: list[tuple[int, int, str]] = []
    reverts: list[tuple[int, int, str]] = []
    alternatives: list[list[list[tuple[int, int, str]]]] = []
    by_site: list[tuple[list[tuple[int, int, str]], list[list[tuple[int, int, str]]]]] = []
    claims = _Claims(starts)
    fmt = profile["format"]
    kept: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}  # by id of a kept site's row
    for line in sorted(by_line):
        # How far earlier rewrites on this line may have moved the text since it was scanned.
        shifts = [0]
        shifts_at: dict[int, list[int]] = {}  # by column: the shifts before its first site
        for cand in sorted(by_line[line], key=lambda c: c.row["col"] or 0):
            row = cand.row
            if row["col"]:
                # A citation recorded where an earlier one is (a reference definition used
                # twice) was not moved by that one's rewrite.
                shifts = shifts_at.setdefault(row["col"], shifts)
            spans = url_spans(row["raw"] or "", profile["base_url"], _wanted(row))
            if not spans:
                result.unresolved.append(
                    _entry(row, "the recorded raw text holds no URL resolving to the cited URL")
                )
                continue
            # A link to an archived copy (a dead URL's, or one in place of a cited archive link
            # that does not replay) gets Robust Links' "link to the memento" form; an image (role
            # media) simply gets the archived src, a moved URL its new location.
            decorate = decorate_html and cand.kind == "snapshot" and row["role"] != "media"
            site = _find_site(
                text, starts, cand, spans, shifts, decorate, profile["format"], in_table
            )
            if site is None:
                result.unresolved.append(
                    _entry(row, f"raw text not found at line {row['line']}, column {row['col']}")
                )
                continue
            if not as_scanned:
                if row["col"]:  # where the site was found tells how far the line had moved
                    shifts = [site.start - (starts[line - 1] + row["col"] - 1)]
                shifts = list(dict.fromkeys(s + d for s in shifts for d in site.deltas()))[:8]
            # Safety net: two citations recorded at one place (a reader's mistake) would be
            # rewritten over each other. The first is kept; the other waits for a rescan.
            spans_used = _site_spans(site)
            holder = claims.holder(spans_used)
            held = kept.get(id(holder)) if holder is not None else None
            if (
                held is not None
                and held[0] == (site.edits, site.reverts, site.alternatives, cand.replacement)
                and _reference_definition(text, site.start + spans[0][0], row["raw"], spans, fmt)
            ):
                # One reference definition used by several links: each link is a citation at
                # the definition, rewritten once (made, or found made, for the first).
                info = {**_entry(row, ""), **{k: v for k, v in held[1].items() if k not in _WHERE}}
                info.pop("reason", None)
                (result.replaced if site.edits else result.already_fixed).append(info)
                continue
            if holder is not None:
                result.unresolved.append(
                    _entry(
                        row,
                        f"overlaps another edit at line {holder['line']}, column "
                        f"{holder['col']}: not rewritten (rescan, then fix again)",
                    )
                )
                continue
            claims.add(spans_used, row)
            key = (site.edits, site.reverts, site.alternatives, cand.replacement)
            if site.problem is not None:
                result.unresolved.append(_entry(row, site.problem))
                reverts += site.reverts
                alternatives.append(site.alternatives)
                by_site.append((site.reverts, site.alternatives))
                continue
            info = {
                **_entry(row, ""),
                "replacement": cand.replacement,
                "kind": cand.kind,
                "mode": "robust_links" if decorate else "replace",
                "snapshot": cand.snapshot.timestamp if cand.snapshot else None,
                "days_from_citation": cand.snapshot.days_from_citation if cand.snapshot else None,
            }
            info.pop("reason")
            if site.escaped is not None:
                info.update(_form_info(cand, site.escaped), mode="escape")
            elif site.carries is not None:
                info.update(_form_info(cand, site.carries))
            reverts += site.reverts  # how the scanned text comes back (for the sha256 check)
            by_site.append((site.reverts, site.alternatives))
            if len(site.alternatives) > 1:
                alternatives.append(site.alternatives)
            else:
                reverts += site.alternatives[0]
            kept[id(row)] = (key, info)
            if site.edits:
                edits += site.edits
                result.replaced.append(info)
            else:
                # What the site actually carries (an earlier fix may have chosen another capture).
                if site.found is not None:
                    info.update(_form_info(cand, site.found))
                result.already_fixed.append(info)

    if not as_scanned and not _ours_only(
        profile_path, text, by_site, reverts, alternatives, profile["sha256"]
    ):
        result.refused = (
            f"{profile_path} changed since it was scanned (sha256 differs, and not only by "
            "citewatch's own rewrite): run `citewatch scan` on it, then `fix` again"
        )
    if edits:
        new_text = _apply(text, edits)
        result.new_text = new_text
        result.diff = unified_diff(text, new_text, profile["path"])
    return result


#: How many bytes of reverted text :func:`_reverts_to` may hash before it gives up (at least
#: :data:`_REVERT_TRIES_MIN` tries, at most :data:`_REVERT_TRIES_MAX`).
_REVERT_BYTES = 1 << 28
_REVERT_TRIES_MIN = 256
_REVERT_TRIES_MAX = 4096


def _choices(sizes: Sequence[int], budget: int) -> Iterable[tuple[int, ...]]:
    """Up to ``budget`` picks of one alternative per site (``sizes``: how many each has), fewest
    departures from each site's first (most likely) alternative first; then the same index for
    all. When the combinations fit the budget, every one is given.

    >>> list(_choices([2, 3], 10))
    [(0, 0), (1, 0), (0, 1), (0, 2), (1, 1), (1, 2)]
    >>> list(_choices([2, 2, 2], 2))
    [(0, 0, 0), (1, 0, 0), (1, 1, 1)]
    """
    n, tried = len(sizes), 0
    for k in range(n + 1):
        for sites in itertools.combinations(range(n), k):
            for picks in itertools.product(*(range(1, sizes[i]) for i in sites)):
                choice = [0] * n
                for i, pick in zip(sites, picks, strict=True):
                    choice[i] = pick
                yield tuple(choice)
                tried += 1
                if tried >= budget:
                    if math.prod(sizes) > budget:
                        for j in range(1, max(sizes, default=1)):
                            yield tuple(min(j, size - 1) for size in sizes)
                    return


def _apply_sorted(text: str, edits: Sequence[tuple[int, int, str]]) -> str:
    """:func:`_apply` in one pass (the same result for edits that do not overlap)."""
    order = sorted(range(len(edits)), key=lambda i: (edits[i][0], edits[i][1], -i))
    out, pos = [], 0
    for i in order:
        start, end, new = edits[i]
        if start < pos:
            return _apply(text, edits)
        out += (text[pos:start], new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _reverts_to(
    text: str,
    reverts: Sequence[tuple[int, int, str]],
    alternatives: Sequence[Sequence[Sequence[tuple[int, int, str]]]],
    sha256: str,
) -> bool:
    """Whether undoing our own rewrites gives back the scanned bytes: ``reverts``, plus one of each
    site's ``alternatives``. Each site's first alternative is what the database says is most
    likely (so after one ``--write`` the first try is usually the one); then the combinations
    departing from that at fewest sites, as many as the file's size allows (every one when there
    are few)."""
    budget = _REVERT_BYTES // max(1, len(text))
    budget = max(_REVERT_TRIES_MIN, min(_REVERT_TRIES_MAX, budget))
    for choice in _choices([len(alts) for alts in alternatives], budget):
        picked = (edit for alts, i in zip(alternatives, choice, strict=True) for edit in alts[i])
        undone = _apply_sorted(text, [*reverts, *picked])
        if _sha256(undone.encode(ENCODING, _ERRORS)) == sha256:
            return True
    return False


def _ours_only(
    path: Path,
    text: str,
    by_site: Sequence[tuple[Sequence[tuple[int, int, str]], Sequence[Sequence[Any]]]],
    reverts: Sequence[tuple[int, int, str]],
    alternatives: Sequence[Sequence[Sequence[tuple[int, int, str]]]],
    sha256: str,
) -> bool:
    """Whether the file changed since the scan only by our own rewrites. With the scanned bytes at
    hand (the backup ``--write`` kept, recognised by their sha256), each site is matched on its own
    against its region of them (linear, whatever the number of sites); else by the sha256 of the
    reverted text (:func:`_reverts_to`)."""
    scanned = _scanned_copy(path, sha256)
    if scanned is not None:
        matched = _matches_site_by_site(text, scanned, by_site)
        if matched is not None:
            return matched
    return _reverts_to(text, reverts, alternatives, sha256)


def _scanned_copy(path: Path, sha256: str) -> str | None:
    """The file as scanned, from a backup :func:`write_fix` kept (``.bak``, ``.bak.2``…) whose
    sha256 is the scanned one; None when there is none."""
    for n in range(1, 65):
        backup = path.with_name(f"{path.name}.bak" + (f".{n}" if n > 1 else ""))
        try:
            data = backup.read_bytes()
        except OSError:
            if n > 1:
                return None
            continue
        if _sha256(data) == sha256:
            return data.decode(ENCODING, _ERRORS)
    return None


def _matches_site_by_site(
    text: str,
    scanned: str,
    by_site: Sequence[tuple[Sequence[tuple[int, int, str]], Sequence[Sequence[Any]]]],
) -> bool | None:
    """Whether ``text``, with each site's ``reverts`` and one of its ``alternatives`` undone, is
    ``scanned``: the text between sites must be the same, and each site's region (from its first
    to its last edit) must revert, by one of its alternatives, to the scanned text at that place.
    The sites are taken in order, keeping each way the scanned text may be offset so far (one
    for each alternative's length). None when two sites' regions touch (not told apart)."""
    regions = []
    for site_reverts, site_alternatives in by_site:
        spans = [
            (start, end)
            for start, end, _ in (*site_reverts, *(e for alt in site_alternatives for e in alt))
        ]
        if spans:
            low, high = min(s for s, _ in spans), max(e for _, e in spans)
            regions.append((low, high, site_reverts, site_alternatives))
    regions.sort(key=lambda r: (r[0], r[1]))
    if any(b[0] <= a[1] for a, b in itertools.pairwise(regions)):
        return None
    offsets, pos = {0}, 0  # how much further on the scanned text is than ``text``
    for low, high, site_reverts, site_alternatives in regions:
        region = text[low:high]
        following: set[int] = set()
        for offset in offsets:
            if scanned[pos + offset : low + offset] != text[pos:low]:
                continue
            for alt in site_alternatives:
                edits = [(s - low, e - low, new) for s, e, new in (*site_reverts, *alt)]
                undone = _apply_sorted(region, edits)
                if scanned.startswith(undone, low + offset):
                    following.add(offset + len(undone) - len(region))
        if not following:
            return False
        offsets, pos = following, high
    return any(scanned[pos + offset :] == text[pos:] for offset in offsets)


def _form_info(cand: _Candidate, form: str) -> dict[str, Any]:
    """An entry's replacement, kind and capture for a URL found at a citation's site."""
    snap = cand.fixed_forms.get(form) or cand.stale_forms.get(form)
    moved = snap is None and form in cand.fixed_forms
    return {
        "replacement": form,
        "kind": "moved" if moved else "snapshot",
        "snapshot": snap.timestamp if snap else None,
        "days_from_citation": snap.days_from_citation if snap else None,
    }


def already_fixed_note(count: int) -> str:
    """The stderr line for a plan's ``already_fixed`` citations: a site may carry an archived copy
    or, with ``--include-moved``, a moved URL's new location.

    >>> already_fixed_note(1)
    '1 citation already points at its archived copy or new location'
    """
    if count == 1:
        return "1 citation already points at its archived copy or new location"
    return f"{count} citations already point at their archived copy or new location"


def _backup_path(path: Path, content: bytes) -> Path:
    """``<name>.bak`` next to the profile; an existing different backup is kept (``.bak.2``…)."""
    candidate, n = path.with_name(path.name + ".bak"), 2
    while candidate.exists() and candidate.read_bytes() != content:
        candidate, n = path.with_name(f"{path.name}.bak.{n}"), n + 1
    return candidate


def write_fix(result: FixResult, profile_path: Path) -> Path:
    """Write the planned text over the profile, keeping a backup; returns the backup's path.

    Raises :class:`FixRefused` when the file changed since it was scanned in ways other than our own
    rewrite, or since the plan was made.
    """
    profile_path = Path(profile_path)
    if result.new_text is None:
        raise ValueError("nothing to write: the plan changes nothing")
    if result.refused:
        raise FixRefused(result.refused)
    current = profile_path.read_bytes()
    if _sha256(current) != result.source_sha256:
        raise FixRefused(f"{profile_path} changed while the fix was being planned; run fix again")
    backup = _backup_path(profile_path, current)
    if not backup.exists():
        backup.write_bytes(current)
    fd, tmp = tempfile.mkstemp(
        dir=profile_path.parent, prefix=f".{profile_path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(result.new_text.encode(ENCODING, _ERRORS))
        os.chmod(tmp, profile_path.stat().st_mode & 0o7777)
        os.replace(tmp, profile_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return backup
