"""Properties of extraction on arbitrary input (hypothesis): never raise, every URL parses, every
reported (line, column) points at the raw text."""

from __future__ import annotations

from pathlib import Path

import pytest
from ada_url import URL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citewatch.extract import read_profile
from citewatch.extract.bare import find_urls

FRAGMENTS = [
    "[", "]", "(", ")", "\\(", "\\)", "<", ">", "http://", "https://", "HTTPS://", "www.", "/",
    "a.example", "x.co", "(/x", "(/path/y)", "\n", "\n\n", "**", "*", "_", "`", "```\n", "# ",
    "- ", "&amp;", "&#", "<a href=", "<img src='", '"', "'", ".", ",", ";", ":", "!", "?",
    "mailto:", "javascript:", "%", "%zz", "\u00a0", "\r\n", "\t", "é", "ف", "Ω", "<https://",
    "](", "](/a)", "[ref]: ", "<base href=", "<pre>", "</pre>", "<nav>", "</a>", "---\n",
    "web.archive.org/web/2017/", "#frag", "?q=1", "@", "..", "||", "Nov 1, 2023",
]  # fmt: skip
TEXT = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    ),
    max_size=40,
).map("".join)
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _check(profile, text: str, positioned: bool) -> None:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    for c in profile.citations:
        if positioned:
            assert c.column >= 1, c
        if c.column:
            offset = starts[c.line - 1] + c.column - 1
            assert text.startswith(c.raw, offset), (c, text)
        assert c.url is not None
        if c.skip_reason is None:
            URL(c.url)  # parses (raises ValueError otherwise)
            assert c.url.startswith(("http://", "https://"))
            assert "#" not in c.url
    for f in profile.findings:
        assert f.kind and f.message


@pytest.mark.parametrize(
    ("suffix", "positioned"), [(".txt", True), (".md", True), (".html", False)]
)
@SETTINGS
@given(text=TEXT, with_base=st.booleans())
def test_readers_never_raise_and_point_at_raw(
    tmp_path_factory, suffix, positioned, text, with_base
):
    folder = tmp_path_factory.mktemp("prop", numbered=True)
    path = folder / f"doc{suffix}"
    path.write_bytes(text.encode("utf-8"))
    base = "https://site.example/a/b" if with_base else None
    profile = read_profile(path, base_url=base)
    decoded = path.read_bytes().decode("utf-8-sig")
    _check(profile, decoded, positioned)
    if suffix == ".html":
        positioned_html = [c for c in profile.citations if c.column == 0]
        assert positioned_html == []


@SETTINGS
@given(text=TEXT)
def test_bare_urls_are_substrings_without_trailing_punctuation(text):
    previous_end = 0
    for m in find_urls(text):
        assert text[m.start : m.end] == m.url
        assert m.start >= previous_end
        previous_end = m.end
        assert m.url[-1] not in ".,;:!?*~"
        assert m.url.count("(") >= m.url.count(")")


@SETTINGS
@given(
    data=st.binary(max_size=300),
    suffix=st.sampled_from([".txt", ".md", ".html", ".pdf", ".xyz", ""]),
)
def test_arbitrary_bytes_never_raise(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes", numbered=True) / f"doc{suffix}"
    path.write_bytes(data)
    profile = read_profile(path)
    assert profile.sha256
    assert profile.format in {"text", "markdown", "html", "pdf", "unknown"}


def test_one_huge_line_is_linear(tmp_path: Path):
    """A 5 MB single line full of near-links finishes in seconds (no quadratic scanning)."""
    import time

    chunk = "see (/a) [x](http://a.example/ http://-x.example/ <https://b.example/(c http://x.example/_ "
    text = (chunk * (5_000_000 // len(chunk) + 1))[:5_000_000]
    path = tmp_path / "huge.txt"
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    profile = read_profile(path, base_url="https://site.example/")
    assert time.perf_counter() - started < 90  # a guard against quadratic blow-ups, not a benchmark
    assert profile.citations


# Inline links as markdown-it reads them: destinations plain or in <…>, with parentheses (paired
# or escaped), backslashes and entities; titles in "…", '…' or (…) holding parentheses and quotes.
_DEST_CHARS = st.sampled_from(["a", "/", "?", "=", "&amp;", "(", ")", "\\(", "\\)", "\\\\", "\\", "%", "'", '"', "<", ">", " ", "é", "#"])  # fmt: skip
_TITLE_CHARS = st.sampled_from(["t", " ", "(", ")", "\\(", "\\)", "\\", "'", '"', ":", "\\\"", "\n"])  # fmt: skip
_DEST = st.lists(_DEST_CHARS, max_size=8).map(lambda parts: "https://x.example/" + "".join(parts))
_TITLE = st.tuples(st.sampled_from(['""', "''", "()"]), st.lists(_TITLE_CHARS, max_size=6)).map(
    lambda pair: pair[0][0] + "".join(pair[1]) + pair[0][1]
)
_LINK = st.tuples(
    st.booleans(), _DEST, st.none() | _TITLE, st.sampled_from([" ", "  ", "\n", " \n "])
).map(lambda t: ("<" + t[1] + ">" if t[0] else t[1]) + (t[3] + t[2] if t[2] else ""))


def _hrefs(text: str) -> dict[str, str]:
    """Link text → href, for every link markdown-it itself makes of ``text``."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.validateLink = lambda url: True
    md.normalizeLink = lambda url: url
    found = {}
    for block in md.parse(text):
        children = block.children or []
        for n, child in enumerate(children[:-1]):
            if child.type == "link_open" and child.markup != "autolink":
                assert children[n + 1].type == "text"
                found[children[n + 1].content] = str(child.attrs["href"])
    return found


@SETTINGS
@given(
    links=st.lists(_LINK, min_size=1, max_size=4),
    glue=st.sampled_from([" and ", ", ", "\n", "\n> ", "\n\t"]),
    lead=st.sampled_from(["", "> ", "- ", "  ", "1. ", "> - ", "# ", "| a |\n|---|\n| "]),
)
def test_every_inline_link_markdown_it_makes_is_found_where_written(links, glue, lead):
    """Every inline link markdown-it makes (``<a href>``) is found, with the same URL, at the
    line and column where its destination is written."""
    from citewatch.extract.markdown import read_markdown

    text = lead + "See " + glue.join(f"[l{n}]({link})" for n, link in enumerate(links)) + " ok.\n"
    expected = _hrefs(text)
    extracted = read_markdown(text)
    assert not [f for f in extracted.findings if f.kind == "link_position"], (text, extracted)
    found = {ref.text: ref.target for ref in extracted.refs if ref.text}
    assert found == expected, text
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    for ref in extracted.refs:
        if ref.text:
            assert ref.column >= 1, (ref, text)
            assert text.startswith(ref.raw, starts[ref.line - 1] + ref.column - 1), (ref, text)
