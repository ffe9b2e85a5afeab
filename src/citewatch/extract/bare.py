"""Bare-URL detection in prose, with the usual trailing-punctuation rules.

Why our own scanner rather than linkify-it-py: we only want links a reader would follow (a scheme
``http(s)://``, ``ftp://``, ``mailto:`` or a ``www.`` host) and the scanner must stay linear on a
5 MB single line. It passes the linkify-it fixtures for every link with a scheme or ``www.``
(see ``tests/test_extract_conformance.py``).

Rules (each one from the linkify-it fixtures or the issue):

- A scheme counts only at a word boundary (``_http://x`` and ``xhttp://x`` are not links).
- The host must be well formed: labels of letters/digits/symbols and ``-``, not starting with ``-``,
  no empty label, an optional ``:port``; ``http://example.com_`` is not a link at all.
- The URL runs to whitespace, ``<``, ``>``, ``\\``, a control character or ``｜``, and stops before
  an *unbalanced* ``)``, ``]`` or ``}``: ``https://en.wikipedia.org/wiki/Liwa_al-Baqir_(Syria)``
  keeps its parentheses, ``(see http://x.example/a)`` does not take the ``)``.
- Trailing ``. , ; : ! ? * ~`` (and their CJK forms, ``…``) are dropped; a trailing quote is dropped
  unless the URL holds an even number of that quote (``/blah_"doublequoted"`` stays whole).

>>> [m.url for m in find_urls('See http://example.com/123; and (https://a.example/x_(y)).')]
['http://example.com/123', 'https://a.example/x_(y)']
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_START = re.compile(
    r"(?<!\w)(?P<scheme>https?://|ftp://|mailto:)|(?<![\w.@/\-])(?P<www>www\.)", re.IGNORECASE
)
# Characters that can never be inside a bare URL.
_RUN = re.compile(r"[^\s<>\\\uff5c\x00-\x1f\x7f-\x9f]*")
# A host character: anything but whitespace, controls, ASCII punctuation other than '-', and the
# common Unicode punctuation blocks. A label cannot start with '-'.
_PUNCT = (
    r"\s\x00-\x2c\x2e\x2f\x3a-\x40\x5b-\x60\x7b-\x9f"
    r"\u2000-\u206f\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
)
_LABEL = rf"[^{_PUNCT}\-][^{_PUNCT}]*"
_HOST = rf"(?:\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)"
_AUTHORITY = re.compile(
    rf"(?:[^\s/?#@<>\\()\[\]{{}}\"']+@)?(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?"
)
_MAILBOX = re.compile(rf"[^\s@<>()\[\]{{}}\",;:\\]+@(?P<host>{_HOST})")
_WWW_HOST = re.compile(rf"(?P<host>{_LABEL}(?:\.{_LABEL})+)(?::(?P<port>\d{{1,5}}))?")
_TLD = re.compile(r"(?:[^\W\d_]{2,}|xn--[\w-]+)", re.IGNORECASE)
_BRACKETS = re.compile(r"[()\[\]{}]")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_TRAILING = frozenset(".,;:!?*~…。，、；：！？")
_QUOTES = frozenset("\"'")
# After the host, the URL may go on with a path/query/fragment, or end; anything else (``_``, a
# letter after a bad port, ``@``) means this was not a URL.
_HOST_END_OK = frozenset(_TRAILING | _QUOTES | set(")]}"))


@dataclass(frozen=True, slots=True)
class BareURL:
    """One bare URL found in text: ``text[start:end] == url``."""

    start: int
    end: int
    url: str
    """The URL as written."""

    @property
    def target(self) -> str:
        """What to resolve: ``www.`` links get ``http://`` as browsers and linkify do."""
        return "http://" + self.url if self.url[:4].lower() == "www." else self.url


def find_urls(text: str, start: int = 0, end: int | None = None) -> Iterator[BareURL]:
    """Yield the bare URLs in ``text[start:end]`` in order (linear time)."""
    stop = len(text) if end is None else end
    pos = start
    run_from, run_to = -1, -1
    while pos < stop:
        m = _START.search(text, pos, stop)
        if m is None:
            return
        s = m.start()
        if not run_from <= s < run_to:  # every point of one run ends at the same place
            run_from, run_to = s, _RUN.match(text, s, stop).end()
        found = _match_at(text, m, run_to)
        if found is None:
            pos = m.end()
            continue
        yield found
        pos = found.end


def _match_at(text: str, m: re.Match[str], run_to: int) -> BareURL | None:
    s = m.start()
    after = m.end()
    if m.group("www"):
        auth = _WWW_HOST.match(text, s, run_to)
        if auth is None or not _TLD.fullmatch(auth.group("host").rsplit(".", 1)[-1]):
            return None
    elif m.group("scheme").lower() == "mailto:":
        auth = _MAILBOX.match(text, after, run_to)
    else:
        auth = _AUTHORITY.match(text, after, run_to)
    if auth is None:
        return None
    host_end = auth.end()
    nxt = text[host_end] if host_end < run_to else ""
    if nxt and nxt not in "/?#":
        if nxt not in _HOST_END_OK:
            return None
        return _trimmed(text, s, host_end)
    return _trimmed(text, s, _balanced_end(text, host_end, run_to))


def _balanced_end(text: str, start: int, stop: int) -> int:
    """Where the URL must stop: before the first closing bracket that was never opened."""
    stack: list[str] = []
    for b in _BRACKETS.finditer(text, start, stop):
        ch = b.group()
        if ch in _OPENERS:
            stack.append(_OPENERS[ch])
        elif stack and stack[-1] == ch:
            stack.pop()
        else:
            return b.start()
    return stop


def _trimmed(text: str, s: int, e: int) -> BareURL | None:
    quotes = {q: text.count(q, s, e) for q in _QUOTES}
    while e > s:
        ch = text[e - 1]
        if ch in _TRAILING:
            e -= 1
        elif ch in _QUOTES and quotes[ch] % 2:
            quotes[ch] -= 1
            e -= 1
        else:
            break
    url = text[s:e]
    if url.endswith(("://", ":")):
        return None
    return BareURL(s, e, url)
