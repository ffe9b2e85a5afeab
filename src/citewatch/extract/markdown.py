"""Markdown reader (CommonMark via markdown-it-py): inline and reference links, images, autolinks,
bare URLs in text; nothing inside code spans, fenced or indented code.

markdown-it-py gives block line ranges (``token.map``) but no columns, and it rewrites link targets
(unescaping, percent-encoding). To report the target *as written* at its exact line and column, the
inline rules that consume source (links, images, autolinks, code spans, inline HTML) are wrapped to
record their span in the inline source; spans are mapped back to file lines and columns, and bare
URLs are searched only in the text outside those spans. An inline link's destination is found in
its span with markdown-it's own helpers (``parseLinkLabel``, ``parseLinkDestination``,
``parseLinkTitle``, as its link rule uses them), a reference link's in its definition. Link targets
are taken verbatim (no normalisation, no "unsafe scheme" filter): resolving and classifying them is
:mod:`citewatch.urls`'s job, and ``javascript:`` links must be recorded (as skipped), not silently
dropped. No link markdown-it reads is dropped: one whose destination cannot be placed is recorded
at its line with column 0 (unknown), with a ``link_position`` finding.

Front matter (``---`` … ``---`` with simple ``key: value`` lines: title, author/authors,
date/published) and a ``Published: …`` line give the metadata; else the first heading and a
``by …`` line.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Callable

from markdown_it import MarkdownIt
from markdown_it.common.utils import isStrSpace, unescapeAll
from markdown_it.helpers import parseLinkDestination, parseLinkLabel, parseLinkTitle
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

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
    sentence_at,
    without_spans,
)
from .html import tag_links
from .metadata import has_date_label, parse_date, split_authors

_SPAN_RULES = ("link", "image", "autolink", "backticks", "html_inline")
_FRONT_KEYS = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$")
#: A reference definition, also in block quotes and list items (``> [a]: …``, ``- [a]: …``).
_REF_DEF = re.compile(
    r"^(?:[ \t]*(?:>|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t])))*[ \t]*"
    r"\[((?:\\.|[^\[\]\\\n])+)\]:[ \t]*\n?(?:[ \t]*>)*[ \t]*(<[^<>\n]*>|\S+)",
    re.MULTILINE,
)
_LABEL_TAIL = re.compile(r"\]\s*\[((?:\\.|[^\[\]\\])*)\]$")
_LONE_CR = re.compile(r"\r(?!\n)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def _make() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True
    md.normalizeLink = lambda url: url
    md.normalizeLinkText = lambda url: url
    ruler = md.inline.ruler
    for name in _SPAN_RULES:
        original = ruler.__rules__[ruler.__find__(name)].fn
        ruler.at(name, _wrap(original, name))
    return md


def _wrap(
    inner: Callable[[StateInline, bool], bool], name: str
) -> Callable[[StateInline, bool], bool]:
    def rule(state: StateInline, silent: bool) -> bool:
        if not silent and state.pending:
            state.pushPending()  # else the pending text would be the first token pushed
        before, start, maximum = len(state.tokens), state.pos, state.posMax
        ok = inner(state, silent)
        if ok and not silent and len(state.tokens) > before:
            meta = state.tokens[before].meta
            meta["span"] = (start, state.pos)
            if name in ("link", "image"):
                destination = _inline_destination(state, start, maximum, name == "image")
                if destination is not None:
                    meta["destination"] = destination
        return ok

    return rule


def _skip_spaces(src: str, pos: int, maximum: int) -> int:
    while pos < maximum and (isStrSpace(src[pos]) or src[pos] == "\n"):
        pos += 1
    return pos


def _inline_destination(
    state: StateInline, start: int, maximum: int, image: bool
) -> tuple[int, str] | None:
    """Where the link (or image) at ``start`` in ``state.src`` has its destination, as written:
    (offset, raw); None for a reference link (``[t][label]``, ``[label]``).

    The same steps, with the same helpers, as markdown-it's own ``link`` and ``image`` rules, run
    once they have accepted the link: titles holding parentheses, escaped backslashes before the
    closing ``)`` and ``<…>`` destinations are read exactly as markdown-it reads them.
    """
    src = state.src
    label_end = parseLinkLabel(state, start + 1 if image else start, not image)
    if label_end < 0:
        return None
    pos = label_end + 1
    if pos >= maximum or src[pos] != "(":
        return None
    pos = _skip_spaces(src, pos + 1, maximum)
    found = (pos, "")  # `[t]()`: an empty destination, where it would stand
    parsed = parseLinkDestination(src, pos, maximum)
    if parsed.ok:
        angle = src[pos] == "<"
        found = (pos + 1, src[pos + 1 : parsed.pos - 1]) if angle else (pos, src[pos : parsed.pos])
        pos = parsed.pos
        after = _skip_spaces(src, pos, maximum)
        title = parseLinkTitle(src, after, maximum)
        pos = after
        if after < maximum and after != parsed.pos and title.ok:
            pos = _skip_spaces(src, title.pos, maximum)
    if pos >= maximum or src[pos] != ")":
        return None  # markdown-it fell back on a reference link
    return found


_MD = _make()
#: A paragraph longer than this (characters) is read by the text-dump reader instead: markdown-it-py
#: spends up to ~10 µs per character of bracket or emphasis punctuation (45 s for a 5 MB line of
#: ``[``), and no real profile has a paragraph of a quarter of a megabyte.
MAX_BLOCK = 256 * 1024
_BLANK_LINE = re.compile(r"\n[ \t]*(?=\n)")
_BLOCKS_ONLY = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_BLOCKS_ONLY.disable("inline")


def _longest_inline(body: str) -> int:
    """Length of the longest paragraph/heading/cell text (code blocks do not count: markdown-it
    leaves them alone). A cheap upper bound first; the block structure only when it is exceeded."""
    longest = start = 0
    for match in _BLANK_LINE.finditer(body):
        longest = max(longest, match.start() - start)
        start = match.end()
    if max(longest, len(body) - start) <= MAX_BLOCK:
        return 0
    inline = (len(t.content) for t in _BLOCKS_ONLY.parse(body) if t.type == "inline")
    return max(inline, default=0)


def read_markdown(text: str) -> Extracted:
    """Locate every reference in a Markdown document (metadata included)."""
    # Lines end at LF only (as for every reader and `citewatch fix`); markdown-it would also break
    # lines at a lone CR and shift every line number after it. Same length, so offsets hold.
    text = _LONE_CR.sub(" ", text)
    lines = text.split("\n")
    result = Extracted()
    body, front = _front_matter(lines)
    longest = _longest_inline(body)
    if longest > MAX_BLOCK:
        from .text import read_text

        result = read_text(body)
        _apply_front(front, result)
        result.findings.append(
            Finding(
                "long_paragraph",
                f"a Markdown paragraph of {longest:,} characters: read as a plain-text dump "
                "(links, autolinks and bare URLs; code spans are not told apart)",
            )
        )
        return result
    _apply_front(front, result)
    definitions = _definitions(body)
    tokens = _MD.parse(body)
    taken: set[tuple[int, int]] = set()  # (line, column) already given to a reference
    cells: dict[int, int] = {}  # line → where the next table cell's search starts
    section = ""
    heading_level = 0
    first_heading = ""
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
            continue
        if token.type == "html_block" and token.map is not None:
            result.refs.extend(_html_block_refs(lines, token.map, section))
            continue
        if token.type != "inline" or token.map is None:
            continue
        if heading_level:
            heading = collapse(token.content).strip("*_ ")
            if not first_heading or heading_level == 1 and not result.title:
                first_heading = first_heading or heading
                if heading_level == 1 and not result.title:
                    result.title = heading
            section = heading
        block = _Block(lines, token, taken, cells)
        refs = _inline_refs(block, token.children or [], definitions, section, result.findings)
        if heading_level:
            heading_level = 0
        result.refs.extend(refs)
        if i and tokens[i - 1].type == "paragraph_open":
            _paragraph_metadata(token.content, result)
    if not result.title:
        result.title = first_heading
    return result


class _Block:
    """Maps offsets in an inline token's content back to file (line, column)."""

    def __init__(
        self,
        lines: list[str],
        token: Token,
        taken: set[tuple[int, int]] | None = None,
        cells: dict[int, int] | None = None,
    ) -> None:
        assert token.map is not None
        #: Positions already given out, shared by the blocks of one document: the cells of a
        #: table row are blocks of one line, so one URL cited twice in a row must not be placed
        #: at its first occurrence twice (``fix`` would edit one spot twice).
        self.taken = taken if taken is not None else set()
        self.content = token.content
        self.first = token.map[0]
        self.lines = lines
        self.starts = [0]
        for m in re.finditer("\n", self.content):
            self.starts.append(m.end())
        #: Where a one-line content that does not end its line starts in it (a GFM table cell:
        #: the cells of a row are parsed one by one), found left to right via ``cells``.
        self.origin: int | None = None
        #: The source span of a table cell whose offsets do not map one to one (see _cell_start).
        self.cell: tuple[int, int] | None = None
        if cells is not None and len(self.starts) == 1 and self.first < len(lines):
            source = lines[self.first]
            if self.content and not source[: _rstripped_len(source, 0, len(source))].endswith(
                self.content
            ):
                self.origin = self._cell_start(source, cells)

    def _cell_start(self, source: str, cells: dict[int, int]) -> int | None:
        """Where this content starts on its line, searching from where the previous cell of the
        row ended; the search cursor always moves past this cell. A cell's ``\\|`` reaches
        the inline parser as ``|``: an offset in such a content is not one in the source, so
        the cell is then only used to move the cursor (:meth:`_locate` searches the cell)."""
        cursor = cells.get(self.first, 0)
        start = source.find(self.content, cursor)
        if start >= 0:
            cells[self.first] = start + len(self.content)
            return start
        escaped = self.content.replace("|", "\\|")
        start = source.find(escaped, cursor)
        if start >= 0:
            cells[self.first] = start + len(escaped)
            self.cell = (start, start + len(escaped))
        return None

    def locate(self, offset: int, raw: str, *, claim: bool = True) -> tuple[int, int]:
        """1-based (line, column) of ``raw``, which starts at ``offset`` in the content (only its
        first line is compared: an escaped line break can continue a link destination); never
        a position already given out. ``claim``: give this one out."""
        line, column = self._locate(offset, raw.partition("\n")[0])
        if claim and column:
            self.taken.add((line, column))
        return line, column

    def _free(self, index: int, text: str, start: int = 0) -> int:
        """The first occurrence of ``text`` in line ``index`` at or after ``start`` not given
        out yet (0-based), or -1."""
        found = self.lines[index].find(text, start)
        while found >= 0 and (index + 1, found + 1) in self.taken:
            found = self.lines[index].find(text, found + 1)
        return found

    def _locate(self, offset: int, raw: str) -> tuple[int, int]:
        k = bisect.bisect_right(self.starts, offset) - 1
        index = min(self.first + k, len(self.lines) - 1)
        source = self.lines[index]
        piece_end = self.starts[k + 1] - 1 if k + 1 < len(self.starts) else len(self.content)
        piece_len = _rstripped_len(self.content, self.starts[k], piece_end)
        within = offset - self.starts[k]
        guess = _rstripped_len(source, 0, len(source)) - piece_len + within
        if self.origin is not None:
            guess = self.origin + within
        if (
            guess >= 0
            and source.startswith(raw, guess)
            and (index + 1, guess + 1) not in self.taken
        ):
            return index + 1, guess + 1
        # Tabs, stripped prefixes or table cells shifted things: the first free occurrence
        # (within the cell, for a cell known only by its span).
        if self.cell is not None and k == 0:
            found = self._free(index, raw, self.cell[0])
            if 0 <= found < self.cell[1]:
                return index + 1, found + 1
        found = self._free(index, raw)
        if found >= 0:
            return index + 1, found + 1
        for other in range(self.first, min(self.first + len(self.starts) + 1, len(self.lines))):
            found = self._free(other, raw)
            if found >= 0:
                return other + 1, found + 1
        return index + 1, 0

    def place(self, offset: int, raw: str) -> tuple[int, int, str]:
        """:meth:`locate`, with ``raw`` as the file has it: a GFM table cell's ``\\|`` reaches
        the inline parser as ``|``, so a URL holding one is looked for escaped too."""
        line, column = self.locate(offset, raw)
        if column == 0 and "|" in raw:
            escaped = raw.replace("|", "\\|")
            found_line, found_column = self.locate(offset, escaped)
            if found_column:
                return found_line, found_column, escaped
        return line, column, raw

    def source(self, offset: int, raw: str, line: int, column: int) -> str:
        """The file's text for ``raw`` (at ``offset``, located at ``line``/``column``) running over
        lines: with the container prefixes (``> ``) markdown-it left out of the content."""
        cut = raw.rindex("\n") + 1
        end_line, end_column = self.locate(offset + cut, raw[cut:], claim=False)
        if column < 1 or end_column < 1 or end_line <= line:
            return raw
        text = "\n".join(self.lines[line - 1 : end_line])
        end = len(text) - len(self.lines[end_line - 1]) + end_column - 1 + len(raw) - cut
        return text[column - 1 : end]


def _rstripped_len(text: str, start: int, end: int) -> int:
    """``len(text[start:end].rstrip())`` without copying a 5 MB line once per link."""
    while end > start and text[end - 1].isspace():
        end -= 1
    return end - start


def _inline_refs(
    block: _Block,
    children: list[Token],
    definitions: dict[str, list[tuple[int, int, str]]],
    section: str,
    findings: list[Finding],
) -> list[Ref]:
    content = block.content
    found: list[tuple[int, int, Ref]] = []
    covered: list[tuple[int, int]] = []
    for n, child in enumerate(children):
        span = child.meta.get("span") if child.meta else None
        if span:
            covered.append(span)
        if child.type == "html_inline" and span:
            for offset, _, role, raw, target in tag_links(child.content):
                line, col, raw = block.place(span[0] + offset, raw)
                ref = Ref(raw=raw, line=line, column=col, role=role, target=target)
                found.append((span[0] + offset, span[0] + offset + len(raw), ref))
            continue
        if child.type == "link_open" or child.type == "image":
            attr = "href" if child.type == "link_open" else "src"
            href = str(child.attrs.get(attr, ""))
            role = Role.MEDIA if child.type == "image" else Role.SOURCE
            text = collapse(child.content) if child.type == "image" else _link_text(children, n + 1)
            if child.markup == "autolink":
                start = span[0] + 1 if span else content.find(href)
                raw, target = content[start : start + len(href)], href
                line, col, raw = block.place(start, raw)
                text = ""
            else:
                located = _destination(content, child.meta, href, definitions)
                if located is None:
                    # Never dropped: the URL is still checked, at the link's line (column unknown).
                    line, col, raw = _unlocated(block, span, href, findings)
                else:
                    line, col, raw = located
                    if line == 0:
                        offset = col
                        line, col, raw = block.place(offset, raw)
                        if "\n" in raw:  # an escaped line break, maybe in a block quote
                            raw = block.source(offset, raw, line, col)
                target = href
            ref = Ref(raw=raw, line=line, column=col, text=text, role=role, target=target)
            pos = span[0] if span else 0
            found.append((pos, span[1] if span else pos, ref))
    # Bare URLs: in the content outside links, images, autolinks, code spans and inline HTML.
    covered.sort()
    pos = 0
    for start, end in [*covered, (len(content), len(content))]:
        if start > pos:
            for bare in find_urls(content, pos, start):
                raw = bare.url
                target = bare.target
                if "&" in raw or "\\" in raw:
                    target = unescapeAll(target)
                line, col = block.locate(bare.start, raw)
                found.append(
                    (bare.start, bare.end, Ref(raw=raw, line=line, column=col, target=target))
                )
        pos = max(pos, end)
    found.sort(key=lambda item: item[0])
    rest = without_spans(content, [(s, e) for s, e, _ in found])
    label = _LIST_ITEM.sub("", rest).replace("**", "").strip(" \t*_,;:—–-|")
    standalone = len(label) <= 60 and not label.endswith((".", "!", "?"))
    nav = is_nav_line(content) or is_nav_section(section)
    refs = []
    for start, end, ref in found:
        ref.section = section
        ref.context = sentence_at(content, start, end)
        if ref.role is not Role.MEDIA and (
            nav or (is_relative(ref.raw) and (standalone or is_nav_path(ref.raw)))
        ):
            ref.role = Role.NAVIGATION
        refs.append(ref)
    return refs


def _html_block_refs(lines: list[str], span: list[int], section: str) -> list[Ref]:
    """Links in a raw HTML block (positions straight from the source lines)."""
    first, last = span
    text = "\n".join(lines[first:last])
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    refs = []
    for offset, _, role, raw, target in tag_links(text):
        k = bisect.bisect_right(starts, offset) - 1
        role = Role.NAVIGATION if role is Role.SOURCE and is_nav_section(section) else role
        refs.append(
            Ref(
                raw=raw,
                line=first + k + 1,
                column=offset - starts[k] + 1,
                section=section,
                role=role,
                target=target,
            )
        )
    return refs


def _link_text(children: list[Token], start: int) -> str:
    parts = []
    depth = 1
    for index in range(start, len(children)):  # no children[start:] copy: linear per paragraph
        child = children[index]
        if child.type == "link_open":
            depth += 1
        elif child.type == "link_close":
            depth -= 1
            if depth == 0:
                break
        elif child.type in ("text", "code_inline") or child.type == "image":
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return collapse("".join(parts))


def _destination(
    content: str,
    meta: dict[str, object],
    href: str,
    definitions: dict[str, list[tuple[int, int, str]]],
) -> tuple[int, int, str] | None:
    """(0, offset in content, raw) for inline links; (line, column, raw) from a definition; None
    when the link cannot be placed in the source."""
    span = meta.get("span")
    if not isinstance(span, tuple):
        return None
    destination = meta.get("destination")
    if isinstance(destination, tuple):  # an inline link, located by _inline_destination
        offset, raw = destination
        return (0, offset, raw) if unescapeAll(raw) == href else None
    # A reference link: [text][label], [label][] or [label].
    source = content[span[0] : span[1]]
    m = _LABEL_TAIL.search(source)
    label = m.group(1) if m and m.group(1) else source[1 : source.rfind("]")]
    if source.startswith("!["):
        label = label if m and m.group(1) else source[2 : source.rfind("]")]
    for entry in definitions.get(_norm_label(label), ()):
        if unescapeAll(entry[2]) == href:
            return entry
    # Else any definition with that target (a label the regex normalises differently).
    return next((d for ds in definitions.values() for d in ds if unescapeAll(d[2]) == href), None)


def _unlocated(
    block: _Block, span: object, href: str, findings: list[Finding]
) -> tuple[int, int, str]:
    """The last resort for a link markdown-it reads but the source does not show where: its line,
    column 0 (unknown), and ``href`` as the raw text; a ``link_position`` finding says so."""
    if isinstance(span, tuple):
        source = block.content[span[0] : span[1]].split("\n", 1)[0]
        line, _ = block.locate(span[0], source, claim=False)
    else:
        line = block.first + 1
    findings.append(
        Finding(
            "link_position",
            f"a Markdown link to {href!r}: where its destination is written was not found; "
            "checked at the link's line with column 0 (unknown), so `citewatch fix` leaves it",
            line=line,
            raw=href,
        )
    )
    return line, 0, href


def closing_group(text: str) -> tuple[int, int] | None:
    r"""Span (start, end) of the contents of the balanced ``(...)`` that ends ``text``, skipping
    backslash-escaped parentheses — a Markdown link destination. Shared with ``fix``, which must
    find the same destination it rewrites. A parenthesis after an even run of backslashes (each
    one escaping the next) is not escaped.

    >>> closing_group("[a](https://x.org/A_(b))")
    (4, 23)
    >>> closing_group(r"[a](https://x.org/?q=a\\)"), closing_group(r"[a](https://x.org/?q=a\)")
    ((4, 24), None)
    """
    if not text.endswith(")") or _escaped(text, len(text) - 1):
        return None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        ch = text[i]
        if ch not in "()" or _escaped(text, i):
            continue
        if ch == ")":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return i + 1, len(text) - 1
    return None


def _escaped(text: str, i: int) -> bool:
    """Whether ``text[i]`` follows an odd run of backslashes."""
    run = 0
    while i - run > 0 and text[i - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _norm_label(label: str) -> str:
    return collapse(label).casefold()


def _definitions(text: str) -> dict[str, list[tuple[int, int, str]]]:
    """Reference definitions: normalised label → every (line, column, destination as written), in
    document order (code blocks are not told apart: a use takes the first one whose destination
    reads as its target)."""
    found: dict[str, list[tuple[int, int, str]]] = {}
    if "]:" not in text:
        return found
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    for m in _REF_DEF.finditer(text):
        dest = m.group(2)
        start = m.start(2)
        if dest.startswith("<"):
            dest, start = dest[1:-1], start + 1
        line = bisect.bisect_right(line_starts, start)
        found.setdefault(_norm_label(m.group(1)), []).append(
            (line, start - line_starts[line - 1] + 1, dest)
        )
    return found


def _front_matter(lines: list[str]) -> tuple[str, dict[str, str]]:
    """Split off a ``---`` front matter block (replaced by blank lines to keep line numbers)."""
    if not lines or lines[0].rstrip() != "---":
        return "\n".join(lines), {}
    for end in range(1, min(len(lines), 200)):
        if lines[end].rstrip() in ("---", "..."):
            break
    else:
        return "\n".join(lines), {}
    front: dict[str, str] = {}
    key = ""
    for line in lines[1:end]:
        if m := _FRONT_KEYS.match(line):
            key = m.group(1).lower()
            front[key] = m.group(2).strip()
        elif key and (item := line.strip()).startswith("- "):
            front[key] = (front[key] + ", " if front[key] else "") + _unquote(item[2:])
    body = "\n" * end + "\n".join(lines[end:])
    return body, front


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _apply_front(front: dict[str, str], result: Extracted) -> None:
    if title := _unquote(front.get("title", "")):
        result.title = title
    authors = front.get("authors") or front.get("author") or ""
    if authors:
        items = authors.strip("[]")
        result.authors = [a for a in (_unquote(x) for x in items.split(",")) if a]
        if len(result.authors) == 1:
            result.authors = split_authors(result.authors[0])
    for key in ("published", "date", "publication_date"):
        if front.get(key) and (date := parse_date(_unquote(front[key]))):
            result.published = date
            break
    if url := _unquote(front.get("canonical_url", "") or front.get("url", "")):
        result.canonical = url


def _paragraph_metadata(content: str, result: Extracted) -> None:
    """``Published: Nov 1, 2023`` and ``by A and B`` paragraphs (first ones win)."""
    for line in content.split("\n")[:5]:
        plain = html.unescape(line).replace("**", "").strip()
        if (
            result.published is None
            and (has_date_label(plain) or len(plain) < 40)
            and (date := parse_date(plain))
        ):
            result.published = date
        if not result.authors and plain.lower().startswith("by "):
            body = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", plain[3:])
            result.authors = split_authors(body)
