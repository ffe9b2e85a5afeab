"""Reader for plain-text dumps of web pages, like the seed (``citations/profile-liwa-al-baqir.txt``).

Such dumps come from an HTML-to-text conversion and mix several link notations on one page:

- Markdown-style links whose anchor repeats the target with escaped parentheses:
  ``[Abdullah Hayek \\(/experts/abdullah-hayek/\\)](/experts/abdullah-hayek/)``; images ``![alt](src)``;
- autolinks ``<https://…>``; bare absolute URLs (see :mod:`.bare`);
- site-relative paths in parentheses after a label (``Syria (/policy-analysis/syria)``) or alone on a
  line under the label they belong to. A parenthesised path starts with ``/`` and has no spaces,
  which is what keeps prose such as ``(aka Hamza al-Hassan)`` or ``(SDF)`` out;
- links the conversion broke across lines (``(/sites/defa`` … ``01%20at%:``): reported as one
  ``malformed_url`` finding at the first line, never as a citation.

Lines are split on ``\\n`` only (as ``citewatch fix`` does), columns are 1-based code points.
"""

from __future__ import annotations

import re

from ..models import Finding, Role
from .bare import find_urls
from .context import (
    Extracted,
    Ref,
    collapse,
    is_nav_line,
    is_nav_path,
    is_nav_section,
    is_relative,
    readable,
    sentence_at,
    without_spans,
)
from .metadata import parse_date, split_authors

_TOKEN = re.compile(
    r"(?P<img>!)?\[(?P<text>(?:\\.|[^\[\]\\\n])*)\]"
    r"\((?P<dest><[^<>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)"
    r"|<(?P<auto>(?:https?|ftp|mailto):[^\s<>]*)>"
    r"|\((?P<path>/[^\s()]+)\)",
    re.IGNORECASE,
)
# A link the conversion cut at the end of a line: "(/sites/defa" or "[t](/sites/defa".
_BROKEN = re.compile(r"(?:\]\(|(?<!\])\()(?P<frag>/[^\s()]*|https?://[^\s()]*)$", re.IGNORECASE)
_MAX_CONTINUATION = 20
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_ATX = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_LIST = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_TRAILING_PATH = re.compile(r"\s*\(/[^\s()]*\)\s*$")
_LETTER = re.compile(r"[^\W\d_]")
_CLAUSE = re.compile(r".*(?:[.;!?]\s|,\s|—|–\s)")
_MAX_LABEL = 80
_MAX_CARD_LINES = 15


def unescape(text: str) -> str:
    """Markdown backslash escapes removed: ``\\(`` → ``(``."""
    return _ESCAPE.sub(r"\1", text)


def read_text(text: str) -> Extracted:
    """Locate every reference in a text dump (metadata included)."""
    lines = text.split("\n")
    result = Extracted()
    broken = _broken_blocks(lines, result)
    section = ""
    skip_until = -1
    for index, line in enumerate(lines):
        if index <= skip_until:
            continue
        limit = len(line)
        if index in broken:
            limit, skip_until = broken[index]
        tokens = list(_TOKEN.finditer(line, 0, limit))
        # A line holding a link (even a bare www./mailto: one) is never a heading.
        linked = tokens or next(find_urls(line, 0, limit), None) is not None
        heading = None if linked else _heading(line[:limit])
        if heading is not None:
            section = heading
            continue
        refs = _line_refs(lines, index, line, limit, tokens, section)
        result.refs.extend(refs)
    _metadata(lines, result)
    return result


def _broken_blocks(lines: list[str], result: Extracted) -> dict[int, tuple[int, int]]:
    """Links cut across lines: {first line index: (column where the fragment starts, last index)}."""
    blocks: dict[int, tuple[int, int]] = {}
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        m = _BROKEN.search(line) if "(" in line else None
        if m is None:
            index += 1
            continue
        start = m.start("frag") - (1 if line[m.start()] == "(" else 2)
        pieces = [line[start:]]
        last = index
        while last + 1 < len(lines) and last + 1 - index <= _MAX_CONTINUATION:
            nxt = lines[last + 1].strip()
            if not nxt or len(nxt) > 300 or any(ch.isspace() for ch in nxt):
                break
            last += 1
            pieces.append(nxt)
            if ")" in nxt:
                break
        raw = "\n".join(pieces)
        result.findings.append(
            Finding(
                kind="malformed_url",
                message=f"link broken across {last - index + 1} line(s) by the text conversion: "
                + collapse(raw.replace("\n", " ⏎ "))[:200],
                line=index + 1,
                raw=raw,
            )
        )
        blocks[index] = (start, last)
        index = last + 1
    return blocks


def _heading(line: str) -> str | None:
    """A section label: ``Affiliate relationships:`` alone, an ALL-CAPS line, or ``# Heading``."""
    stripped = line.strip().strip("*_").strip()
    if not stripped or len(stripped) > _MAX_LABEL or "://" in stripped:
        return None
    if m := _ATX.match(stripped):
        return m.group(1).strip("*_ ")
    if _LIST.match(line) or not _LETTER.search(stripped):
        return None
    if stripped.endswith(":") and not stripped.endswith("::"):
        return stripped[:-1].strip("*_ ")
    letters = [ch for ch in stripped if ch.isalpha()]
    if len(letters) >= 3 and all(ch.isupper() for ch in letters):
        return stripped
    return None


def _line_refs(
    lines: list[str], index: int, line: str, limit: int, tokens: list[re.Match[str]], section: str
) -> list[Ref]:
    found: list[tuple[int, int, Ref]] = []  # (token start, token end, ref)
    lead = len(line) - len(line.lstrip())
    for tok in tokens:
        if tok.group("path") is not None:
            raw = tok.group("path")
            col = tok.start("path")
            label = _label_before(lines, index, line, tok.start(), lead)
            ref = Ref(raw=raw, line=index + 1, column=col + 1, text=label)
        elif tok.group("auto") is not None:
            raw = tok.group("auto")
            ref = Ref(raw=raw, line=index + 1, column=tok.start("auto") + 1)
        else:
            dest = tok.group("dest")
            col = tok.start("dest")
            if dest.startswith("<"):
                dest, col = dest[1:-1], col + 1
            ref = Ref(
                raw=dest,
                line=index + 1,
                column=col + 1,
                text=collapse(unescape(tok.group("text"))),
                target=unescape(dest),
                role=Role.MEDIA if tok.group("img") else Role.SOURCE,
            )
        found.append((tok.start(), tok.end(), ref))
    pos = 0
    gaps = [(t.start(), t.end()) for t in tokens] + [(limit, limit)]
    for start, end in gaps:
        for bare in find_urls(line, pos, start):
            ref = Ref(raw=bare.url, line=index + 1, column=bare.start + 1, target=bare.target)
            found.append((bare.start, bare.end, ref))
        pos = end
    if not found:
        return []
    found.sort(key=lambda item: item[0])
    tail = len(line[:limit].rstrip())
    standalone = _is_label(without_spans(line[:limit], [(s, e) for s, e, _ in found]))
    nav_line = is_nav_line(line)
    nav_section = is_nav_section(section)
    refs = []
    for start, end, ref in found:
        ref.section = section
        lone = start <= lead and end >= tail
        if lone and line[start] == "(" and ref.text:  # "(/path)" under its label line
            ref.context = readable(collapse(f"{ref.text} {line[:limit]}"))
        else:
            ref.context = sentence_at(line, start, end)
        if ref.role is not Role.MEDIA and (
            nav_line
            or nav_section
            or (is_relative(ref.raw) and (standalone or is_nav_path(ref.raw)))
        ):
            ref.role = Role.NAVIGATION
        refs.append(ref)
    return refs


def _is_label(rest: str) -> bool:
    """What is left of a line without its links is a short label, not prose."""
    text = _LIST.sub("", rest).replace("**", "").strip(" \t\r*_,;:—–-♦◆")
    return len(text) <= 60 and not text.endswith((".", "!", "?"))


def _label_before(lines: list[str], index: int, line: str, start: int, lead: int) -> str:
    """Anchor text for ``label (/path)``: the label, or the nearest non-empty line above."""
    before = line[max(0, start - 4 * _MAX_LABEL) : start]
    if start <= lead:
        return _card_title(lines, index)
    if before.count("**") % 2:  # inside **bold**: the bold text is the label
        return collapse(before[before.rfind("**") + 2 :])
    label = collapse(_LIST.sub("", before).replace("**", ""))
    if len(label) > _MAX_LABEL and (m := _CLAUSE.match(label)):
        label = label[m.end() :].strip()
    return label[-_MAX_LABEL:].strip()


def _card_title(lines: list[str], index: int) -> str:
    """Anchor text for a ``(/path)`` alone on its line: the title of the block above it.

    Listing pages dump each teaser as ``KIND`` / title / date / ``♦`` / author lines / ``(/path)``;
    the title, not the last author, is what the link stands for. Walks up to the previous heading
    or link, drops everything below a ``♦``-style marker (the byline) and date lines, and takes the
    nearest line left.
    """
    collected: list[str] = []
    for above in range(index - 1, max(-1, index - 1 - _MAX_CARD_LINES), -1):
        candidate = lines[above].strip()
        if not candidate:
            continue
        if _heading(candidate) is not None or _TOKEN.search(candidate):
            break
        collected.append(candidate)
    marker = next((i for i, c in enumerate(collected) if not _LETTER.search(c)), None)
    if marker is not None:
        collected = collected[marker + 1 :]
    titles = [c for c in collected if _LETTER.search(c) and parse_date(c) is None]
    if titles:
        return collapse(titles[0].replace("**", ""))
    for above in range(index - 1, -1, -1):  # nothing like a title: the nearest non-empty line
        candidate = lines[above].strip()
        if candidate:
            return collapse(candidate.replace("**", ""))
    return ""


def _metadata(lines: list[str], result: Extracted) -> None:
    """Title (first line), authors (``by …`` line) and date (first date line) from the page head."""
    head = [(i, line.strip()) for i, line in enumerate(lines[:60]) if line.strip()]
    for _, line in head[:3]:
        title = line.lstrip("#").strip().replace("**", "")
        if title.lower().startswith("title:"):
            title = title[6:].strip()
        if title and not _TOKEN.search(title) and "://" not in title:
            result.title = title
            break
    for _, line in head:
        low = line.lower()
        if low.startswith("by ") or low.startswith(("author:", "authors:")):
            body = line.split(":", 1)[1] if low.startswith("author") else line[3:]
            names = [
                _TRAILING_PATH.sub("", unescape(m.group("text"))).strip()
                for m in _TOKEN.finditer(body)
                if m.group("text") is not None
            ]
            result.authors = [n for n in names if n] or split_authors(body)
            break
    for _, line in head:
        if date := parse_date(line):
            result.published = date
            break
