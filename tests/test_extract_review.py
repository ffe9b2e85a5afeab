"""Regression tests from a second reader's review of extraction (edge cases the other suites missed),
plus a stricter property: no reader ever fails (a crash would otherwise hide as an ``unreadable``
finding, since ``read_profile`` turns reader exceptions into findings).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ada_url import URL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citewatch.extract import read_profile

BASE = "https://site.example/a/b"


def _read(tmp_path: Path, name: str, text: str, base: str | None = BASE):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return read_profile(path, base_url=base)


def _points_at_raw(profile, text: str) -> None:
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    for c in profile.citations:
        assert c.column >= 1, c
        assert text.startswith(c.raw, starts[c.line - 1] + c.column - 1), c
        if c.skip_reason is None:
            URL(c.url)


@pytest.mark.parametrize(
    ("line", "url"),
    [
        ("MAILTO:NAME@EXAMPLE.COM", "MAILTO:NAME@EXAMPLE.COM"),
        ("SEE WWW.EXAMPLE.COM/REPORT", "http://www.example.com/REPORT"),
        ("SOURCE: WWW.EXAMPLE.ORG:", "http://www.example.org/"),
    ],
)
def test_an_all_caps_line_holding_a_bare_url_is_a_citation_not_a_heading(tmp_path, line, url):
    profile = _read(tmp_path, "caps.txt", f"Title\n\n{line}\n\nBody text.\n")
    assert [(c.url, c.line) for c in profile.citations] == [(url, 3)]
    _points_at_raw(profile, f"Title\n\n{line}\n\nBody text.\n")


def test_html_image_start_tags_are_img_elements_with_their_position(tmp_path):
    text = '<p>Logo:\n <image src="/logo.png" alt="logo"></p>\n'
    profile = _read(tmp_path, "image.html", text)
    assert [(c.url, c.line, c.column, c.role.value) for c in profile.citations] == [
        ("https://site.example/logo.png", 2, 14, "media")
    ]


def test_markdown_lone_carriage_returns_do_not_shift_lines(tmp_path):
    """Lines end at LF only (as in ``citewatch fix``); a lone CR is not a line break."""
    text = "Intro\r\rSee http://x.example/p here\nNext <http://y.example/q>\n"
    profile = _read(tmp_path, "cr.md", text)
    assert [(c.url, c.line) for c in profile.citations] == [
        ("http://x.example/p", 1),
        ("http://y.example/q", 2),
    ]
    _points_at_raw(profile, text)


# -- no reader fails on arbitrary input ----------------------------------------------------------

HTML = [
    "<a href=x>", "<a href='/y?a=1&amp;b=2'>", '<a href="&#x68;ttp://e.example/">', "</a>", "<p>",
    "</p>", "<div>", "</div>", "<b>", "</b>", "<table>", "<tr>", "<td>", "</table>", "<nav>",
    "</nav>", "<pre>", "</pre>", "<code>", "<script>", "</script>", "<!--", "-->", "<!-->",
    "<img src=/i.png>", "<iframe src=//v.example/e>", "<blockquote cite=/q>",
    "<q cite='http://q.example'>", "<base href=/sub/>", "<svg>", "</svg>", "<template>",
    "</template>", "<textarea>", "</textarea>", "<title>", "</title>", "<image src=/im>",
    "<noscript>", "<a href>", '<a href="x" href="y">', "<A HREF=Z>", "&", "&copy=", "\n", "\r\n",
    "\t", "<select>", "<option>", "<xmp>", "<a\nhref=n>", '<a href="multi\nline">', "<?x>", "</ x>",
    "<h2>", "</h2>", "text ", "<header>", "<area href=/ar>", "é", "ف",
]  # fmt: skip
MARKDOWN = [
    "[", "]", "(", ")", "![", "](", "](/a)", "](http://x.example/p)", "[r]", "[r]: /def\n",
    "[r]: <http://d.example>\n", "<http://a.example>", "`", "```\n", "~~~\n", "    ", "\t", "> ",
    "- ", "1. ", "# ", "===\n", "---\n", "| a | b |\n", "|---|---|\n", "http://b.example/x ",
    "www.c.example ", "\n", "\n\n", "**", "_", "\\", "&amp;", "<a href='/h'>", "</a>", "<div>\n",
    "</div>\n", "<!-- ", " -->", "text ", "é", "ف", ' "t"', "\r\n", "\r", "<", ">",
    "![i](/img.png)", "(/p)", "(/x", "RECOMMENDED\n", "Label:\n", "by ",
]  # fmt: skip


def _texts(fragments: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(fragments), st.text(max_size=5)), max_size=40).map(
        "".join
    )


@pytest.mark.parametrize(
    ("suffix", "fragments"), [(".html", HTML), (".md", MARKDOWN), (".txt", MARKDOWN)]
)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), with_base=st.booleans())
def test_no_reader_ever_fails(tmp_path_factory, suffix, fragments, data, with_base):
    text = data.draw(_texts(fragments))
    path = tmp_path_factory.mktemp("review", numbered=True) / f"doc{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    profile = read_profile(path, base_url=BASE if with_base else None)
    assert [f for f in profile.findings if "reader failed" in f.message] == []
    _points_at_raw(profile, path.read_bytes().decode("utf-8-sig", "replace"))


@pytest.mark.parametrize("comment", ["<!-->", "<!--->", "<!-- x --!>"])
def test_html_comments_end_where_the_html_parser_ends_them(tmp_path, comment):
    text = f'<p>{comment}<a href="/after">after</a></p>\n'
    profile = _read(tmp_path, "comment.html", text)
    assert [(c.url, c.column) for c in profile.citations] == [
        ("https://site.example/after", text.index("/after") + 1)
    ]


def test_html_parser_clones_of_a_link_are_not_extra_citations(tmp_path):
    """``<a href=x><p><a href=x>``: the adoption agency algorithm copies the first ``a`` into the
    ``p``; the source has two links, so there are two citations, each at its own tag."""
    text = "<a href=/x>one<p>two<a href=/x>three</a></p>\n"
    profile = _read(tmp_path, "clone.html", text)
    assert [(c.url, c.column) for c in profile.citations] == [
        ("https://site.example/x", 9),
        ("https://site.example/x", 29),
    ]


def test_html_a_clone_never_takes_the_position_of_a_different_link(tmp_path):
    text = "<a href=/x>one<p>two<a href=/y>three</a></p>\n"
    profile = _read(tmp_path, "steal.html", text)
    cited = [(c.url.rsplit("/", 1)[1], c.raw, c.column) for c in profile.citations]
    assert ("y", "/y", 29) in cited
    assert all(raw == "/" + url for url, raw, _ in cited)  # raw is always the cited link's own text
    _points_at_raw(profile, text)


def test_html_a_link_the_parser_moves_out_of_a_head_noscript_keeps_its_position(tmp_path):
    text = '<html><head><noscript><a href="/moved">m</a></noscript></head><body></body></html>\n'
    profile = _read(tmp_path, "noscript.html", text)
    assert [(c.url, c.column) for c in profile.citations] == [
        ("https://site.example/moved", text.index("/moved") + 1)
    ]


_ATTR_PIECES = [
    "&amp;", "&amp", "&AMP;", "&copy", "&copy;", "&copy=", "&notit;", "&not", "&ampx", "&Aacute",
    "&Aacutex", "&#x68;", "&#104", "&#0;", "&#x80;", "&#xD800;", "&#1114112;", "&zzz;", "&", "=",
    ";", "a", "1", "/", "?", "\r\n", "\r", "é", "&lt", "&lt;", "&#", "&#x", "&#xZ", "&semi;",
    "&#1", "&#x1f;", "&#127", "&#x81;", "&#x9f;", "&#xFFFE;", "&#13;", "&#99999999999;", "7", "f",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_ATTR_PIECES), max_size=12).map("".join))
def test_attribute_values_decode_as_lexbor_decodes_them(value):
    """The source scan must decode an attribute value exactly as the DOM has it, or the element
    and its tag are not paired."""
    from selectolax.lexbor import LexborHTMLParser

    from citewatch.extract.html import _decoded

    node = LexborHTMLParser(f'<a href="{value}">x</a>').css_first("a")
    assert _decoded(value) == node.attributes["href"]


def test_manifests_in_sub_folders_are_read_and_the_nearest_wins(tmp_path):
    from citewatch.extract.manifest import load_manifest

    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    (tmp_path / "corpus.toml").write_text(
        '[[profile]]\npath = "sub/a.txt"\nurl = "https://outer.example/a"\n'
        '[[profile]]\npath = "b.txt"\nurl = "https://outer.example/b"\n'
    )
    (tmp_path / "sub" / "corpus.toml").write_text(
        '[[profile]]\npath = "a.txt"\nurl = "https://inner.example/a"\n'
    )
    (tmp_path / "sub" / ".hidden" / "corpus.toml").write_text("not toml [")
    for name in ("sub/a.txt", "b.txt"):
        (tmp_path / name).write_text("See (/x).\n")
    manifest = load_manifest(tmp_path)
    assert manifest.get(tmp_path / "sub" / "a.txt").url == "https://inner.example/a"
    assert manifest.get(tmp_path / "b.txt").url == "https://outer.example/b"
    assert load_manifest(tmp_path / "b.txt").get(tmp_path / "b.txt").url == (
        "https://outer.example/b"
    )
    profile = read_profile(tmp_path / "sub" / "a.txt", manifest=manifest)
    assert [c.url for c in profile.citations] == ["https://inner.example/x"]


def test_a_broken_manifest_in_a_sub_folder_is_an_error_naming_it(tmp_path):
    from citewatch.extract.manifest import load_manifest

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "corpus.toml").write_text("[[profile]\n")
    with pytest.raises(ValueError, match=r"sub/corpus\.toml: not valid TOML"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("unit", ["[", "[a](", "*a", "<http:"])
def test_a_pathological_five_megabyte_markdown_line_takes_seconds(tmp_path, unit):
    """markdown-it-py alone takes 20-45 s on these; over MAX_BLOCK the text-dump reader takes over."""
    import time

    text = unit * (5_000_000 // len(unit)) + " https://end.example/x\n"
    started = time.perf_counter()
    profile = _read(tmp_path, "huge.md", text)
    assert time.perf_counter() - started < 10
    assert [f.kind for f in profile.findings] == ["long_paragraph"]
    assert [c.url for c in profile.citations][-1:] == ["https://end.example/x"]


def test_a_huge_code_block_is_still_code(tmp_path):
    text = "Intro <https://a.example/>\n\n```\n" + "http://code.example/x " * 20_000 + "\n```\n"
    profile = _read(tmp_path, "code.md", text)
    assert [c.url for c in profile.citations] == ["https://a.example/"]
    assert profile.findings == []


def test_title_and_style_inside_svg_hold_markup_not_raw_text(tmp_path):
    text = "<p><svg><title><a href=/in-svg>t</a></title></svg><title>x</title><a href=/z>z</a>\n"
    profile = _read(tmp_path, "svg.html", text)
    assert [(c.url, c.column) for c in profile.citations] == [
        ("https://site.example/in-svg", text.index("/in-svg") + 1),
        ("https://site.example/z", text.index("/z") + 1),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("<a href=<pre>x</a>\n", "<pre"),  # an unquoted value runs to whitespace or '>'
        ("<a href=a\"b'c=d>x</a>\n", "a\"b'c=d"),
        ('<a class=x href="/q"title=t>x</a>\n', "/q"),
    ],
)
def test_html_attribute_syntax_follows_the_html_tokenizer(tmp_path, text, value):
    profile = _read(tmp_path, "attrs.html", text)
    assert [(c.raw, c.column) for c in profile.citations] == [(value, text.index(value) + 1)]


def test_html_links_the_parser_reorders_keep_their_own_positions(tmp_path):
    """``<a href=x><header><a href=y><a href=x>``: error recovery builds the DOM out of source order."""
    text = "<a href=/x><header><a href='/y?a=1&amp;b=2'><a href=/x>\n"
    profile = _read(tmp_path, "reorder.html", text)
    positions = {(c.raw, c.column) for c in profile.citations}
    assert positions == {("/x", 9), ("/y?a=1&amp;b=2", 29), ("/x", 53)}
    _points_at_raw(profile, text)
