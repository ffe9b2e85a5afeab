"""HTML reader (selectolax/lexbor): ``a[href]``, ``area[href]``, ``img[src]``, ``iframe[src]`` and the
``cite`` of ``blockquote``/``q``/``ins``/``del``, outside ``script``/``style``/``pre``/``code``/``template``.

The DOM decides *what* is a link (the parser knows HTML's error recovery); the source decides
*where* it is: the start tags are scanned in document order and each DOM element is matched to its
tag, so the citation's ``raw`` is the attribute value exactly as written (entities and all) at its
line and column, while the URL is resolved from the decoded value.

Roles: inside ``nav``/``header``/``footer``/``aside`` or an element whose class/id mentions
byline/author/related/recommended/tags (also breadcrumb/menu/share) → navigation; ``img``/``iframe``
→ media; else source. The walk is iterative. lexbor's tree building is quadratic in nesting depth
(about 5 s at 50,000 nested ``div``), so a document nested deeper than :data:`MAX_DOM_DEPTH` is read
from its tags alone (same rules, tracked with counters) with a ``deep_nesting`` finding.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from html.entities import html5

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..models import Finding, Role
from .context import Extracted, Ref, collapse, is_nav_section, sentence_at
from .metadata import parse_date, split_authors

#: Deeper than this (estimated from the tags), the DOM is skipped: see the module docstring.
MAX_DOM_DEPTH = 5_000
#: (element, attribute) pairs that cite a URL, with the role they get by default.
LINK_ATTRS = {
    "a": ("href", Role.SOURCE),
    "area": ("href", Role.SOURCE),
    "img": ("src", Role.MEDIA),
    "iframe": ("src", Role.MEDIA),
    "blockquote": ("cite", Role.SOURCE),
    "q": ("cite", Role.SOURCE),
    "ins": ("cite", Role.SOURCE),
    "del": ("cite", Role.SOURCE),
}
SKIP = frozenset({"script", "style", "pre", "code", "template", "textarea", "noscript"})
NAV_TAGS = frozenset({"nav", "header", "footer", "aside"})
_NAV_CLASS = re.compile(
    r"(?:^|[^a-z])(?:byline|authors?|related|recommended|tags?|breadcrumbs?|menu|share)(?:[^a-z]|$)",
    re.IGNORECASE,
)
_BLOCKS = frozenset(
    {
        "p", "li", "td", "th", "dd", "dt", "blockquote", "figcaption", "caption", "div",
        "section", "article", "main", "body", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "footer", "nav", "aside", "pre", "address", "summary",
    }
)  # fmt: skip
# Elements the parser closes implicitly when a sibling opens: they do not deepen the tree.
_SELF_CLOSING = frozenset(
    {"p", "li", "dt", "dd", "a", "option", "optgroup", "tr", "td", "th", "tbody", "thead",
     "tfoot", "rb", "rt", "rp", "colgroup", "caption", "html", "head", "body"}
)  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }
)
# Source scan: comments, raw-text elements (skipped whole) and start/end tags.
# Every branch can match up to the end of the text (as a browser's tokenizer reads an unclosed tag
# or quote to EOF), so a failed attempt never rescans: the scan is linear on any input.
_SCAN = re.compile(
    r"<!--(?:-?>|.*?(?:--!?>|\Z))"  # <!--> and <!---> are whole (empty) comments; --!> ends one
    r"|<(?P<raw>script|style|textarea|title|xmp)\b(?:[^>\"']|\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z))*"
    r"(?:>.*?(?:</(?P=raw)\s*>|\Z)|\Z)"
    r"|<(?P<name>[A-Za-z][^\s/>]*)(?P<attrs>(?:[^>\"']|\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z))*)(?:>|\Z)"
    r"|</(?P<end>[A-Za-z][^\s/>]*)[^>]*(?:>|\Z)",
    re.DOTALL | re.IGNORECASE,
)
# A start tag alone: <title>/<style>/<script> inside <svg> or <math> hold markup, not raw text.
_START_TAG = re.compile(
    r"<(?P<name>[A-Za-z][^\s/>]*)(?P<attrs>(?:[^>\"']|\"[^\"]*(?:\"|\Z)|'[^']*(?:'|\Z))*)(?:>|\Z)",
    re.DOTALL,
)
_FOREIGN = frozenset({"svg", "math"})
# HTML's attribute syntax: a name runs to whitespace, '/', '>' or '=' (its first character may be
# '='); an unquoted value runs to whitespace or '>' (quotes, '<', '=' and '`' included).
_ATTR = re.compile(r"([^\s/>][^\s/>=]*)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+))?")


@dataclass(slots=True)
class _SourceTag:
    name: str
    offset: int
    """Offset of the tag's '<' in the text."""
    values: dict[str, tuple[int, str]]
    """Attribute name → (offset of the value, value as written)."""
    skipped: bool = False
    """Inside pre/code/template/noscript as far as counting tags can tell."""
    nav: bool = False
    """Inside nav/header/footer/aside as far as counting tags can tell."""
    used: bool = False
    """Already paired with a DOM element."""


@dataclass(slots=True)
class _Frame:
    nav: bool
    block: LexborNode | None


@dataclass(slots=True)
class _Lines:
    starts: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, text: str) -> _Lines:
        return cls([0] + [m.end() for m in re.finditer("\n", text)])

    def at(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a text offset."""
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def read_html(text: str) -> Extracted:
    """Locate every reference in an HTML document (metadata included)."""
    result = Extracted()
    tags, depth = _scan(text)
    lines = _Lines.of(text)
    if depth > MAX_DOM_DEPTH:
        result.findings.append(
            Finding(
                "deep_nesting",
                f"HTML nested about {depth:,} elements deep: read from its tags without a DOM "
                "(roles and sections approximate)",
            )
        )
        _read_tags(tags, lines, result)
        return result
    tree = LexborHTMLParser(text)
    _metadata(tree, result)
    _walk(tree, text, tags, lines, result)
    return result


def _scan(text: str) -> tuple[list[_SourceTag], int]:
    """Start tags with their attribute values as written, and an estimate of the nesting depth."""
    tags: list[_SourceTag] = []
    depth = deepest = skip = nav = foreign = 0
    pos = 0
    while (m := _SCAN.search(text, pos)) is not None:
        if m.group("raw") and foreign:
            m = _START_TAG.match(text, m.start())  # type: ignore[assignment]
            assert m is not None
        pos = max(m.end(), pos + 1)
        name = m.group("name")
        if name is None:
            end = (m.group("end") or "").lower()
            if end in _FOREIGN:
                foreign = max(0, foreign - 1)
            if end:
                if end not in _SELF_CLOSING:
                    depth = max(0, depth - 1)
                if end in SKIP:
                    skip = max(0, skip - 1)
                elif end in NAV_TAGS:
                    nav = max(0, nav - 1)
            continue
        name = name.lower()
        if name == "image":  # the HTML parser turns an <image> start tag into <img>
            name = "img"
        attrs = m.group("attrs")
        values: dict[str, tuple[int, str]] = {}
        if attrs:
            base = m.start("attrs")
            for a in _ATTR.finditer(attrs):
                key = a.group(1).lower()
                if key in values:
                    continue
                value = a.group(2)
                if value is None:
                    values[key] = (base + a.end(1), "")
                elif value[0] in "\"'":
                    values[key] = (base + a.start(2) + 1, value[1:-1])
                else:
                    values[key] = (base + a.start(2), value)
        tags.append(_SourceTag(name, m.start(), values, skipped=skip > 0, nav=nav > 0))
        if name in SKIP:
            skip += 1
        elif name in NAV_TAGS:
            nav += 1
        elif name in _FOREIGN and not attrs.rstrip().endswith("/"):
            foreign += 1
        if name not in _VOID and name not in _SELF_CLOSING and not attrs.rstrip().endswith("/"):
            depth += 1
            deepest = max(deepest, depth)
    return tags, deepest


def tag_links(text: str) -> list[tuple[int, str, Role, str, str]]:
    """Links in raw HTML found from its tags alone (for HTML inside Markdown):
    (offset of the value, element, default role, value as written, decoded value)."""
    found = []
    for tag in _scan(text)[0]:
        if tag.skipped or tag.name not in LINK_ATTRS:
            continue
        attr, role = LINK_ATTRS[tag.name]
        if attr in tag.values:
            offset, raw = tag.values[attr]
            found.append((offset, tag.name, role, raw, _decoded(raw)))
    return found


_CHARREF = re.compile(
    r"&(?:#(?P<dec>[0-9]+);?|#[xX](?P<hex>[0-9a-fA-F]+);?|(?P<name>[A-Za-z][A-Za-z0-9]*)(?P<semi>;?))"
)


def _numeric(digits: str, radix: int) -> str:
    """HTML's numeric character reference rules (html.unescape drops control characters)."""
    number = int(digits, radix) if len(digits) <= 8 else 0x110000
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return "\ufffd"
    if 0x80 <= number <= 0x9F:  # the windows-1252 remapping, where that code page has a character
        try:
            return bytes([number]).decode("cp1252")
        except UnicodeDecodeError:
            pass
    return chr(number)


def _charref(match: re.Match[str]) -> str:
    """One character reference in an attribute value, decoded as the HTML tokenizer does."""
    if match.group("dec") is not None:
        return _numeric(match.group("dec"), 10)
    if match.group("hex") is not None:
        return _numeric(match.group("hex"), 16)
    name = match.group("name")
    semi = match.group("semi")
    if semi and name + ";" in html5:
        return html5[name + ";"]
    for k in range(len(name), 1, -1):  # the longest legacy name (no ';') that starts the text
        if name[:k] in html5:
            after = name[k : k + 1] or semi or match.string[match.end() : match.end() + 1]
            if after == "=" or (after.isascii() and after.isalnum()):
                return match.group()  # in attributes, "&copy=2" and "&ampx" stay as written
            return html5[name[:k]] + name[k:] + semi
    return match.group()


def _decoded(value: str) -> str:
    """An attribute value as the DOM holds it: CR/CRLF as LF and NUL as U+FFFD in the source text,
    then character references decoded by HTML's attribute rules (``&#13;`` is a CR; html.unescape
    alone would decode ``&copy=`` and drop ``&#1;``)."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    return _CHARREF.sub(_charref, value) if "&" in value else value


class _Matcher:
    """Pairs DOM elements with their source tags: per tag name, in document order.

    A DOM element takes the next unused tag of its name whose value decodes (:func:`_decoded`, HTML's
    attribute rules) to the element's value; a value that differs is a different link, never taken
    on order alone. Tags the scan placed inside ``noscript``/``pre``… are a last resort: the parser
    can move an element out (``<noscript><a>`` in ``<head>`` ends up in ``<body>``). An element left
    without a tag keeps its citation, at column 0.
    """

    def __init__(self, tags: list[_SourceTag]) -> None:
        self.by_name: dict[str, list[_SourceTag]] = {}
        self.skipped_by_name: dict[str, list[_SourceTag]] = {}
        for tag in tags:
            table = self.skipped_by_name if tag.skipped else self.by_name
            table.setdefault(tag.name, []).append(tag)
        self.pos: dict[str, int] = {}
        self.skipped_pos: dict[str, int] = {}
        self.matched: set[tuple[str, str]] = set()

    def find(self, name: str, attr: str, value: str) -> _SourceTag | None:
        tag = _next_tag(self.by_name, self.pos, name, attr, value)
        if tag is None:
            tag = _next_tag(self.skipped_by_name, self.skipped_pos, name, attr, value)
        if tag is not None:
            self.matched.add((name, value))
        return tag

    def is_clone(self, name: str, value: str) -> bool:
        """An ``a`` with no tag of its own, copying one already matched: the adoption agency
        algorithm clones misnested formatting elements (``<a href=x><p><a href=x>``)."""
        return name == "a" and (name, value) in self.matched


def _next_tag(
    table: dict[str, list[_SourceTag]],
    positions: dict[str, int],
    name: str,
    attr: str,
    value: str,
) -> _SourceTag | None:
    """The next unused tag with this value; failing that, an unused one a little before (the
    parser's error recovery can put elements in the DOM out of source order)."""
    candidates = table.get(name, [])
    start = positions.get(name, 0)
    ahead = range(start, min(len(candidates), start + 64))
    behind = range(max(0, start - 64), start)
    for k in (*ahead, *behind):
        tag = candidates[k]
        if tag.used or attr not in tag.values:
            continue
        if _decoded(tag.values[attr][1]) == value:
            tag.used = True
            if k >= start:
                positions[name] = k + 1
            return tag
    return None


def _walk(
    tree: LexborHTMLParser, text: str, tags: list[_SourceTag], lines: _Lines, result: Extracted
) -> None:
    root = tree.root
    if root is None:
        return
    matcher = _Matcher(tags)
    block_text: dict[int, tuple[str, list[int]]] = {}
    section = ""
    base_seen = False
    # Explicit stack of (node, frame): no recursion, whatever the depth.
    stack: list[tuple[LexborNode, _Frame]] = [(root, _Frame(False, None))]
    while stack:
        node, frame = stack.pop()
        tag = node.tag or ""
        if not node.is_element_node:
            continue
        attrs = node.attributes
        if tag == "base" and not base_seen and attrs.get("href") is not None:
            base_seen = True
            result.base_href = attrs["href"]
            matcher.find("base", "href", attrs["href"] or "")
        if tag in _HEADINGS:
            section = collapse(node.text(deep=True))
        if tag in LINK_ATTRS:
            attr, role = LINK_ATTRS[tag]
            value = attrs.get(attr)
            if value is not None:
                source = matcher.find(tag, attr, value)
                # A parser-made copy of a link already cited has no source of its own: not cited.
                if source is not None or not matcher.is_clone(tag, value):
                    ref = _ref(
                        node, tag, value, source, text, lines, frame, section, role, block_text
                    )
                    if ref is not None:
                        result.refs.append(ref)
        if tag in SKIP:
            continue
        nav = frame.nav or tag in NAV_TAGS or _nav_attrs(attrs)
        child_frame = _Frame(nav, node if tag in _BLOCKS else frame.block)
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, child_frame) for c in reversed(children))


def _nav_attrs(attrs: dict[str, str | None]) -> bool:
    for key in ("class", "id", "rel", "role"):
        value = attrs.get(key)
        if value and (_NAV_CLASS.search(value) or value.lower() in ("navigation", "banner")):
            return True
    return False


def _ref(
    node: LexborNode,
    tag: str,
    value: str,
    source: _SourceTag | None,
    text: str,
    lines: _Lines,
    frame: _Frame,
    section: str,
    role: Role,
    block_text: dict[int, tuple[str, list[int]]],
) -> Ref | None:
    attr = LINK_ATTRS[tag][0]
    if source is not None:
        offset, raw = source.values[attr]
        line, column = lines.at(offset)
    else:  # not found in the source (should not happen): keep it, without a position
        raw, line, column = value, 1, 0
    if tag == "img":
        anchor = collapse(node.attributes.get("alt") or "")
    elif tag == "iframe":
        anchor = collapse(node.attributes.get("title") or "")
    elif tag in ("a", "area"):
        anchor = collapse(node.text(deep=True) or node.attributes.get("alt") or "")
    else:
        anchor = ""
    context = _context(node, frame, anchor, block_text)
    if role is not Role.MEDIA and (frame.nav or is_nav_section(section)):
        role = Role.NAVIGATION
    return Ref(
        raw=raw,
        line=line,
        column=column,
        text=anchor,
        context=context,
        section=section,
        role=role,
        target=value,
    )


def _context(
    node: LexborNode, frame: _Frame, anchor: str, cache: dict[int, tuple[str, list[int]]]
) -> str:
    """The sentence of the enclosing block that holds the anchor text."""
    if node.tag in ("blockquote", "q", "ins", "del"):
        return sentence_at(collapse(node.text(deep=True)), 0, 0)
    block = frame.block
    if block is None or not anchor:
        return anchor
    key = block.mem_id
    if key not in cache:
        cache[key] = (collapse(block.text(deep=True)), [0])
    body, cursor = cache[key]
    where = body.find(anchor, cursor[0])
    if where < 0:
        where = body.find(anchor)
    if where < 0:
        return anchor
    cursor[0] = where + len(anchor)
    return sentence_at(body, where, where + len(anchor))


def _metadata(tree: LexborHTMLParser, result: Extracted) -> None:
    """citation_* and Open Graph meta tags, ``<title>``, canonical link."""
    metas: dict[str, list[str]] = {}
    for meta in tree.css("meta"):
        key = (meta.attributes.get("name") or meta.attributes.get("property") or "").lower()
        content = meta.attributes.get("content")
        if key and content:
            metas.setdefault(key, []).append(content.strip())
    title = tree.css_first("title")
    result.title = (
        (metas.get("citation_title") or metas.get("dc.title") or [""])[0]
        or (collapse(title.text()) if title else "")
        or (metas.get("og:title") or [""])[0]
    )
    authors: list[str] = []
    for value in metas.get("citation_author", []) or metas.get("author", []):
        authors.extend(split_authors(value) if "," in value and " " in value else [value])
    result.authors = list(dict.fromkeys(a for a in authors if a))
    for key in (
        "citation_publication_date",
        "citation_date",
        "article:published_time",
        "dc.date",
        "date",
    ):
        for value in metas.get(key, []):
            if date := parse_date(value.replace("/", "-")):
                result.published = date
                break
        if result.published:
            break
    for link in tree.css("link[rel][href]"):
        if "canonical" in (link.attributes.get("rel") or "").lower().split():
            result.canonical = (link.attributes.get("href") or "").strip() or None
            break
    if result.canonical is None and metas.get("og:url"):
        result.canonical = metas["og:url"][0]


def _read_tags(tags: list[_SourceTag], lines: _Lines, result: Extracted) -> None:
    """The no-DOM path for absurdly deep documents: the same rules over the scanned tags."""
    for tag in tags:
        if tag.skipped:
            continue
        if tag.name == "base" and result.base_href is None and "href" in tag.values:
            result.base_href = _decoded(tag.values["href"][1])
        if tag.name not in LINK_ATTRS:
            continue
        attr, role = LINK_ATTRS[tag.name]
        if attr not in tag.values:
            continue
        offset, raw = tag.values[attr]
        line, column = lines.at(offset)
        result.refs.append(
            Ref(
                raw=raw,
                line=line,
                column=column,
                role=Role.NAVIGATION if tag.nav and role is Role.SOURCE else role,
                target=_decoded(raw),
            )
        )
