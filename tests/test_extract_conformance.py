"""Conformance: WHATWG URL parsing through the HTML reader, and bare-URL detection (linkify-it).

Data: ``tests/data/conformance/`` (see its SOURCES.md for provenance and licences). Every exclusion
is an explicit rule whose count is asserted, so a change in the data or in a rule shows up.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path

import pytest
from ada_url import URL

from citewatch.extract import read_profile
from citewatch.extract.bare import find_urls
from citewatch.urls import normalise

DATA = Path(__file__).parent / "data" / "conformance"
WEB = ("http:", "https:")
_C0_SPACE = "".join(chr(i) for i in range(0x21))


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _parses(text: str) -> bool:
    try:
        URL(text)
    except ValueError:
        return False
    return True


def classify(case: dict) -> str:
    """Which rule a WHATWG case falls under: 'href', 'failure' or an 'excluded: …' reason."""
    text, base = case["input"], case["base"]
    if "\x00" in text or "\x00" in (base or ""):
        return "excluded: NUL (HTML turns it into U+FFFD)"
    if _has_surrogate(text) or _has_surrogate(base or ""):
        return "excluded: lone surrogate (not encodable in an HTML file)"
    if base is not None and not _parses(base):
        return "excluded: the base itself fails to parse"
    if text.strip(_C0_SPACE).startswith("#"):
        return "excluded: fragment-only (recorded as skipped by design, never resolved)"
    if case.get("failure"):
        return "failure"
    if base is not None and not base.lower().startswith(WEB):
        return "excluded: non-http(s) base"
    if not case["href"].startswith(WEB):
        return "excluded: expected URL is not http(s)"
    return "href"


CASES = [
    c for c in json.loads((DATA / "urltestdata.json").read_text("utf-8")) if isinstance(c, dict)
]
RULES = Counter(classify(c) for c in CASES)


def _document(case: dict) -> str:
    base = case["base"]
    head = f'<base href="{html.escape(base, quote=True)}">' if base is not None else ""
    link = f'<a href="{html.escape(case["input"], quote=True)}">link</a>'
    return f"<!doctype html>\n<html><head>{head}</head>\n<body><p>{link}</p></body></html>\n"


def _read(tmp_path: Path, case: dict):
    path = tmp_path / "case.html"
    path.write_text(_document(case), encoding="utf-8")
    return read_profile(path)


def test_rule_counts():
    """891 cases: the counts per rule are part of the specification of this test."""
    assert len(CASES) == 891
    assert dict(RULES) == {
        "href": 236,
        "failure": 263,
        "excluded: expected URL is not http(s)": 244,
        "excluded: non-http(s) base": 111,
        "excluded: fragment-only (recorded as skipped by design, never resolved)": 20,
        "excluded: NUL (HTML turns it into U+FFFD)": 17,
    }
    assert sum(RULES.values()) == len(CASES)


@pytest.mark.parametrize(
    "case", [c for c in CASES if classify(c) == "href"], ids=lambda c: repr(c["input"])[:60]
)
def test_http_cases_resolve_to_the_expected_href(tmp_path, case):
    profile = _read(tmp_path, case)
    expected_url, expected_fragment = normalise(case["href"])
    assert [c.url for c in profile.citations] == [expected_url], profile.findings
    citation = profile.citations[0]
    assert citation.fragment == expected_fragment
    assert citation.skip_reason is None
    assert citation.line == 3 and citation.column > 0
    assert not [f for f in profile.findings if f.kind == "malformed_url"]


@pytest.mark.parametrize(
    "case", [c for c in CASES if classify(c) == "failure"], ids=lambda c: repr(c["input"])[:60]
)
def test_failure_cases_are_findings_not_citations(tmp_path, case):
    profile = _read(tmp_path, case)
    assert profile.citations == []
    assert [f.kind for f in profile.findings if f.line == 3] == ["malformed_url"]


# -- linkify-it fixtures ----------------------------------------------------------------------
def _linkify_cases() -> list[tuple[str, str]]:
    lines = (DATA / "linkify-links.txt").read_text("utf-8").split("\n")
    cases = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("%"):
            i += 1
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if following.strip() and not following.startswith("%"):
            cases.append((line, following))
            i += 2
        else:
            cases.append((line, line))
            i += 1
    return cases


LINKS = _linkify_cases()


def has_scheme_or_www(expected: str) -> bool:
    """The rule: only links a citation can be (a scheme, or a www. host) are in scope; the
    scheme-less fuzzy links (google.com), bare e-mails and protocol-relative //host are not."""
    low = expected.lower()
    return low.startswith(("http://", "https://", "ftp://", "mailto:", "www."))


def test_linkify_rule_counts():
    counts = Counter(has_scheme_or_www(expected) for _, expected in LINKS)
    assert counts == {True: 85, False: 32}


@pytest.mark.parametrize(
    ("text", "expected"), [c for c in LINKS if has_scheme_or_www(c[1])], ids=lambda v: v[:50]
)
def test_linkify_links_are_found(text, expected):
    found = list(find_urls(text))
    assert found, text
    assert found[0].url == expected
    assert text[found[0].start : found[0].end] == expected


NOT_LINKS = [
    line
    for line in (DATA / "linkify-not-links.txt").read_text("utf-8").split("\n")
    if line.strip() and not line.startswith("%")
]


def test_not_links_count():
    assert len(NOT_LINKS) == 38


@pytest.mark.parametrize("text", NOT_LINKS)
def test_linkify_not_links_are_not_found(text):
    assert list(find_urls(text)) == []
