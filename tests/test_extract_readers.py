"""The Markdown, HTML and PDF readers, bad input, discover() and the manifest."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import pytest

import citewatch.extract as extract
from citewatch.extract import discover, read_profile
from citewatch.extract.manifest import Manifest, load_manifest
from citewatch.models import Role

DATA = Path(__file__).parent / "data" / "extract"
NAV, SRC, MEDIA = Role.NAVIGATION, Role.SOURCE, Role.MEDIA


def rows(profile):
    return [(c.line, c.column, c.raw, c.url, c.role, c.section, c.text) for c in profile.citations]


def assert_positions(profile, path: Path) -> None:
    text = path.read_bytes().decode("utf-8-sig")
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    for c in profile.citations:
        assert c.column >= 1
        assert text.startswith(c.raw, starts[c.line - 1] + c.column - 1), c


# -- Markdown ---------------------------------------------------------------------------------
def test_markdown_sample():
    path = DATA / "sample.md"
    profile = read_profile(path, base_url="https://site.example/p/")
    assert profile.format == "markdown"
    assert (profile.title, profile.authors, profile.published) == (
        "A test profile",
        ["Jane Doe", "John Roe"],
        "2023-11-01",
    )
    site = "https://site.example"
    assert rows(profile) == [
        (11, 15, "/experts/jane-doe/", f"{site}/experts/jane-doe/", NAV, "Heading one", "Jane Doe"),
        (15, 13, "/x", f"{site}/x", SRC, "Heading one", "a"),
        (15, 26, "https://a.b/c", "https://a.b/c", SRC, "Heading one", ""),
        (15, 45, "http://x.com/a_b!c?d", "http://x.com/a_b!c?d", SRC, "Heading one", ""),
        (16, 30, "i.png", f"{site}/p/i.png", MEDIA, "Heading one", "alt *x*"),
        (24, 7, "https://d.example/(x)", "https://d.example/(x)", SRC, "Heading one", "c"),
        (24, 32, "http://e.com", "http://e.com/", SRC, "Heading one", ""),
        (26, 8, "http://ref.example/x", "http://ref.example/x", SRC, "Heading one", "t"),
        (26, 8, "http://ref.example/x", "http://ref.example/x", SRC, "Heading one", "ref"),
        (
            30,
            11,
            "/policy-analysis/other",
            f"{site}/policy-analysis/other",
            NAV,
            "Related",
            "Other",
        ),
        (31, 9, "https://x.example/a\\_b&amp;c", "https://x.example/a_b&c", NAV, "Related", "Esc"),
        (32, 4, "mailto:a@b.example", "mailto:a@b.example", NAV, "Related", ""),
        (32, 39, "javascript:alert(1)", "javascript:alert(1)", NAV, "Related", "j"),
    ]
    assert_positions(profile, path)
    # Nothing from code spans or fences; the unparsable target is a finding.
    assert not [c for c in profile.citations if "code.x" in c.raw or "fence" in c.raw]
    assert [(f.kind, f.line) for f in profile.findings] == [("malformed_url", 15)]
    skipped = {c.raw: c.skip_reason for c in profile.citations if c.skip_reason}
    assert set(skipped) == {"mailto:a@b.example", "javascript:alert(1)"}
    by_raw = {c.raw: c for c in profile.citations}
    assert by_raw["http://x.com/a_b!c?d"].context == (
        "quote a and https://a.b/c and http://x.com/a_b!c?d."
    )


def test_markdown_published_line_and_byline(tmp_path):
    path = tmp_path / "p.md"
    path.write_text(
        "# Profile: Kata'ib X\n\nby Hamdi Malik and Michael Knights\n\nPublished: November 1, 2023\n\n"
        "Text citing https://en.wikipedia.org/wiki/Liwa_al-Baqir_(Syria). And `https://code.example/`.\n"
        "\n    https://indented-code.example/\n",
        encoding="utf-8",
    )
    profile = read_profile(path)
    assert profile.title == "Profile: Kata'ib X"
    assert profile.authors == ["Hamdi Malik", "Michael Knights"]
    assert profile.published == "2023-11-01"
    assert [(c.line, c.column, c.url) for c in profile.citations] == [
        (7, 13, "https://en.wikipedia.org/wiki/Liwa_al-Baqir_(Syria)")
    ]


def test_markdown_angle_destinations_with_unbalanced_parentheses(tmp_path):
    """``[t](<…(…>)`` is a CommonMark link even with an unpaired parenthesis inside the angle
    brackets: it is found where it stands, and the context reads as prose."""
    path = tmp_path / "p.md"
    path.write_text(
        "See [t](<https://x.test/b?q=(d>) and [u](<https://x.test/c d>) and "
        "[v](https://x.test/e?q=(f)).\n",
        encoding="utf-8",
    )
    profile = read_profile(path)
    assert [(c.line, c.column, c.raw, c.url, c.text) for c in profile.citations] == [
        (1, 10, "https://x.test/b?q=(d", "https://x.test/b?q=(d", "t"),
        (1, 43, "https://x.test/c d", "https://x.test/c%20d", "u"),
        (1, 72, "https://x.test/e?q=(f)", "https://x.test/e?q=(f)", "v"),
    ]
    assert {c.context for c in profile.citations} == {"See t and u and v."}
    assert profile.findings == []


def test_markdown_link_titles_and_escaped_backslashes(tmp_path):
    """Destinations are read with markdown-it's own helpers: a parenthesis inside a title (any of
    the three title forms) and an escaped backslash before the closing ``)`` lose no link."""
    path = tmp_path / "p.md"
    path.write_text(
        'See [x](https://a.org/p "a) b") ok.\n\n'
        'See [x](https://a.org/p "see (b") ok.\n\n'
        "See [x](https://a.org/p 'it:)') ok.\n\n"
        "See [x](https://o.example/?q=a\\\\) ok.\n\n"
        "See ![i](https://a.org/i.png (t \\(x)) and [y](<https://a.org/q r>\n'z)') ok.\n",
        encoding="utf-8",
    )
    profile = read_profile(path)
    assert [(c.line, c.column, c.raw, c.url, c.text) for c in profile.citations] == [
        (1, 9, "https://a.org/p", "https://a.org/p", "x"),
        (3, 9, "https://a.org/p", "https://a.org/p", "x"),
        (5, 9, "https://a.org/p", "https://a.org/p", "x"),
        (7, 9, "https://o.example/?q=a\\\\", "https://o.example/?q=a\\", "x"),
        (9, 10, "https://a.org/i.png", "https://a.org/i.png", "i"),
        (9, 48, "https://a.org/q r", "https://a.org/q%20r", "y"),
    ]
    assert [c.context for c in profile.citations] == ["See x ok."] * 4 + ["See i and y ok."] * 2
    assert profile.findings == []
    assert_positions(profile, path)


def test_markdown_destination_continued_by_an_escaped_line_break(tmp_path):
    """markdown-it lets ``\\`` + line break continue a destination; in a block quote the raw text
    is the file's own, ``> `` included, so it points at what is written."""
    path = tmp_path / "p.md"
    path.write_text('> See [l](https://x.example/a\\\n> "t") ok.\n', encoding="utf-8")
    profile = read_profile(path)
    assert [(c.line, c.column, c.raw, c.url, c.text) for c in profile.citations] == [
        (1, 11, 'https://x.example/a\\\n> "t"', "https://x.example/a/%22t%22", "l")
    ]
    assert_positions(profile, path)


def test_markdown_reference_definitions_in_containers(tmp_path):
    """A definition inside a block quote or a list item still defines its label document-wide."""
    path = tmp_path / "p.md"
    path.write_text(
        "> [a]: https://q.example/bq\n\n- [b]:\n  https://q.example/li\n\nSee [a] and [B].\n",
        encoding="utf-8",
    )
    profile = read_profile(path)
    assert [(c.line, c.column, c.raw, c.url, c.text) for c in profile.citations] == [
        (1, 8, "https://q.example/bq", "https://q.example/bq", "a"),
        (4, 3, "https://q.example/li", "https://q.example/li", "B"),
    ]
    assert profile.findings == []


def test_markdown_link_never_dropped_when_its_destination_cannot_be_placed(tmp_path):
    """The last resort (here a definition whose label spans two lines, which the definition scan
    does not read): the URL is still cited, at the link's line with column 0 (unknown), and a
    ``link_position`` finding says why."""
    path = tmp_path / "p.md"
    path.write_text("[foo\nbar]: https://ml.example/\n\nSee [foo bar] ok.\n", encoding="utf-8")
    profile = read_profile(path)
    assert [(c.line, c.column, c.raw, c.url, c.text) for c in profile.citations] == [
        (4, 0, "https://ml.example/", "https://ml.example/", "foo bar")
    ]
    assert [(f.kind, f.line, f.raw) for f in profile.findings] == [
        ("link_position", 4, "https://ml.example/")
    ]


def test_markdown_table_cell_link_with_an_escaped_pipe(tmp_path):
    """Inside a GFM table a URL's "|" is written "\\|" (else it would split the cell): the
    citation points at it, with the raw text as the file has it (what `fix` looks for)."""
    path = tmp_path / "t.md"
    path.write_text(
        "| a | b |\n| --- | --- |\n| [x](https://n.example/?ids=1\\|2) | <https://n.example/?k=3\\|4> |\n",
        encoding="utf-8",
    )
    profile = read_profile(path)
    assert [(c.line, c.column, c.raw, c.url) for c in profile.citations] == [
        (3, 7, "https://n.example/?ids=1\\|2", "https://n.example/?ids=1|2"),
        (3, 39, "https://n.example/?k=3\\|4", "https://n.example/?k=3|4"),
    ]
    assert profile.findings == []


def test_markdown_one_url_cited_twice_in_a_table_row_gets_two_places(tmp_path):
    """Each cell is parsed alone; the same URL in two cells of a row must not be placed twice
    at its first occurrence (``fix`` would then edit one spot twice and break the row)."""
    path = tmp_path / "t.md"
    path.write_text(
        "| a | b |\n|---|---|\n| [x](https://e.test/1) | [y](https://e.test/1) |\n"
        "| https://e.test/2 and https://e.test/2 | [z](https://e.test/2) |\n",
        encoding="utf-8",
    )
    places = [(c.line, c.column, c.text) for c in read_profile(path).citations]
    assert places == [(3, 7, "x"), (3, 31, "y"), (4, 3, ""), (4, 24, ""), (4, 47, "z")]


@pytest.mark.parametrize(
    ("row", "places"),
    [
        (  # the second cell's URL also appears inside the first cell's archive link
            "| [x](https://web.archive.org/web/20200101000000/https://o.example/p) "
            "| [y](https://o.example/p) |",
            [(3, 7, "x"), (3, 77, "y")],
        ),
        (  # the URL is also the first cell's link text
            "| [https://o.example/p](https://o.example/p) | [y](https://o.example/p) |",
            [(3, 25, "https://o.example/p"), (3, 52, "y")],
        ),
        (  # a cell holding an escaped pipe: its text reaches the parser unescaped
            "| [t](https://web.archive.org/web/20200101000000/https://x.example/p) a\\|b "
            "| https://x.example/p |",
            [(3, 7, "t"), (3, 78, "")],
        ),
        (
            "| https://x.example/q [t](https://web.archive.org/web/20200101000000/https://x.example/p)"
            " | https://x.example/p a\\|b |",
            [(3, 3, ""), (3, 27, "t"), (3, 93, "")],
        ),
    ],
)
def test_markdown_table_cells_are_placed_cell_by_cell(tmp_path, row, places):
    """A cell's citation is looked for in that cell, not at the first place its text appears
    on the row (where `fix` would then rewrite someone else's link)."""
    path = tmp_path / "t.md"
    path.write_text(f"| a | b |\n|---|---|\n{row}\n", encoding="utf-8")
    assert [(c.line, c.column, c.text) for c in read_profile(path).citations] == places


def test_markdown_relative_links_without_base_are_findings(tmp_path):
    path = tmp_path / "p.md"
    path.write_text("See [a](/only/relative) and [b](../up).\n", encoding="utf-8")
    profile = read_profile(path)
    assert profile.citations == [] and profile.base_url is None
    assert [(f.kind, f.line, f.raw, f.message) for f in profile.findings] == [
        ("malformed_url", 1, "/only/relative", "relative link and no base URL"),
        ("malformed_url", 1, "../up", "relative link and no base URL"),
    ]


# -- HTML -------------------------------------------------------------------------------------
def test_html_sample():
    path = DATA / "sample.html"
    profile = read_profile(path)
    assert profile.format == "html"
    assert (profile.title, profile.authors, profile.published) == (
        "Profile: X",
        ["Jane Doe", "John Roe"],
        "2023-11-01",
    )
    assert profile.base_url == "https://site.example/p/x"  # the canonical link
    assert not profile.base_url_guessed
    site = "https://site.example"
    assert rows(profile) == [
        (10, 18, "/", f"{site}/", NAV, "", "Home"),
        (11, 15, "/topics/a", f"{site}/topics/a", NAV, "", "A"),
        (14, 9, "https://a.example/r?x=1&amp;y=2#frag", "https://a.example/r?x=1&y=2", SRC,
         "Sources", "the report"),
        (15, 14, "/i.png", f"{site}/i.png", MEDIA, "Sources", "logo"),
        (15, 47, "https://video.example/e", "https://video.example/e", MEDIA, "Sources", ""),
        (16, 19, "https://q.example/c", "https://q.example/c", SRC, "Sources", ""),
        (22, 32, "/experts/jane", f"{site}/experts/jane", NAV, "Sources", "Jane"),
        (23, 9, "mailto:x@y.example", "mailto:x@y.example", SRC, "Sources", "mail"),
        (23, 46, "#top", "#top", SRC, "Sources", "top"),
        (23, 69, "javascript:void(0)", "javascript:void(0)", SRC, "Sources", "js"),
        (24, 9, "relative/path", f"{site}/p/relative/path", SRC, "Sources", "rel"),
    ]  # fmt: skip
    assert_positions(profile, path)
    report = profile.citations[2]
    assert report.fragment == "frag"
    assert report.context == "According to the report, things happened."
    assert profile.findings == []


def test_html_base_href_is_resolved_against_the_given_address(tmp_path):
    path = tmp_path / "p.htm"
    path.write_text(
        '<html><head><base href="/docs/"></head><body><a href="a.html">a</a>'
        '<a href="https://other.example/">o</a></body></html>',
        encoding="utf-8",
    )
    profile = read_profile(path, base_url="https://site.example/x/y")
    assert profile.base_url == "https://site.example/docs/"
    assert [c.url for c in profile.citations] == [
        "https://site.example/docs/a.html",
        "https://other.example/",
    ]


def test_html_base_is_guessed_from_the_most_common_https_origin(tmp_path):
    path = tmp_path / "p.html"
    path.write_text(
        '<a href="https://web.archive.org/web/2020/https://x.example/">w</a>'
        '<a href="https://www.site.example/a">1</a><a href="http://old.example/">h</a>'
        '<a href="https://www.site.example/b">2</a><a href="/rel">rel</a>',
        encoding="utf-8",
    )
    profile = read_profile(path)
    assert profile.base_url == "https://www.site.example/" and profile.base_url_guessed
    assert [f.kind for f in profile.findings] == ["guessed_base_url"]
    assert profile.citations[-1].url == "https://www.site.example/rel"
    assert profile.citations[0].archived is not None


def test_html_100k_nested_divs(tmp_path):
    path = tmp_path / "deep.html"
    path.write_text(
        "<html><body>"
        + "<div>" * 100_000
        + '<a href="https://deep.example/">x</a>'
        + "</div>" * 100_000
        + "</body></html>",
        encoding="utf-8",
    )
    started = time.perf_counter()
    profile = read_profile(path)
    assert time.perf_counter() - started < 30  # a guard against runaway parsing, not a benchmark
    assert [c.url for c in profile.citations] == ["https://deep.example/"]
    assert [f.kind for f in profile.findings] == ["deep_nesting"]
    assert_positions(profile, path)


def test_html_sniffed_without_extension(tmp_path):
    path = tmp_path / "page.xyz"
    path.write_text("\n  <!DOCTYPE html><p><a href='https://a.example/'>a</a>", encoding="utf-8")
    profile = read_profile(path)
    assert profile.format == "html"
    assert [(c.line, c.column, c.url) for c in profile.citations] == [(2, 30, "https://a.example/")]


# -- PDF --------------------------------------------------------------------------------------
def make_pdf(pages: list[tuple[bytes, list[str]]], info: dict[str, str] | None = None) -> bytes:
    """A real PDF: per page, a text stream and link annotations."""
    from pypdf import PdfWriter
    from pypdf.annotations import Link
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for number, (text, links) in enumerate(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        stream = DecodedStreamObject()
        stream.set_data(b"BT /F1 12 Tf 72 720 Td (" + text + b") Tj ET")
        page[NameObject("/Contents")] = writer._add_object(stream)
        for k, url in enumerate(links):
            rect = (72, 700 - 20 * k, 300, 716 - 20 * k)
            writer.add_annotation(page_number=number, annotation=Link(rect=rect, url=url))
    if info:
        writer.add_metadata(info)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_pdf_annotations_and_text_urls_per_page(tmp_path):
    path = tmp_path / "doc.pdf"
    path.write_bytes(
        make_pdf(
            [
                (b"See https://text.example/report.pdf. Done.", ["https://annot.example/x"]),
                (b"Also https://annot.example/y here.", ["https://annot.example/y", "/rel"]),
            ],
            {
                "/Title": "A PDF",
                "/Author": "Jane Doe; John Roe",
                "/CreationDate": "D:20231101120000Z",
            },
        )
    )
    profile = read_profile(path, base_url="https://site.example/")
    assert profile.format == "pdf"
    assert (profile.title, profile.authors, profile.published) == (
        "A PDF",
        ["Jane Doe", "John Roe"],
        "2023-11-01",
    )
    assert [(c.line, c.column, c.page, c.url) for c in profile.citations] == [
        (1, 0, 1, "https://annot.example/x"),
        (1, 0, 1, "https://text.example/report.pdf"),
        (2, 0, 2, "https://annot.example/y"),  # annotation and visible text: one citation
        (2, 0, 2, "https://site.example/rel"),
    ]
    assert profile.citations[1].context == "See https://text.example/report.pdf."
    assert profile.findings == []


@pytest.mark.parametrize("data", [b"%PDF-1.7\n%%garbage", b"%PDF-1.4\n" + b"\x00" * 100])
def test_broken_pdf_is_unreadable(tmp_path, data):
    path = tmp_path / "broken.pdf"
    path.write_bytes(data)
    profile = read_profile(path)
    assert profile.format == "pdf" and profile.citations == []
    assert [f.kind for f in profile.findings] == ["unreadable"]
    assert profile.sha256 == hashlib.sha256(data).hexdigest()


def test_pdf_sniffed_by_magic_bytes(tmp_path):
    path = tmp_path / "download"
    path.write_bytes(make_pdf([(b"x", ["https://a.example/"])]))
    assert [c.url for c in read_profile(path).citations] == ["https://a.example/"]


# -- bad input --------------------------------------------------------------------------------
def test_non_utf8_is_decoded_with_a_finding(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"line one\ncaf\xe9 https://a.example/x\n")
    profile = read_profile(path)
    assert [(f.kind, f.line) for f in profile.findings] == [("encoding", 2)]
    assert [(c.line, c.column, c.url) for c in profile.citations] == [(2, 6, "https://a.example/x")]


def test_utf8_bom_is_not_a_problem(tmp_path):
    path = tmp_path / "bom.md"
    path.write_bytes("\ufeffhttps://a.example/".encode())
    profile = read_profile(path)
    assert profile.findings == []
    assert [(c.line, c.column) for c in profile.citations] == [(1, 1)]


def test_utf16_with_bom_is_decoded(tmp_path):
    path = tmp_path / "u16.txt"
    path.write_bytes("see https://a.example/".encode("utf-16"))
    profile = read_profile(path)
    assert [f.kind for f in profile.findings] == ["encoding"]
    assert [c.url for c in profile.citations] == ["https://a.example/"]


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("bin.txt", b"\x00\x01\x02https://a.example/", "binary"),
        ("empty.md", b"", "empty"),
        ("blank.txt", b" \n\t\n", "empty"),
        ("notes.docx", b"PK\x03\x04 https://a.example/", "unknown_format"),
        ("data.csv", b"a,b\nhttps://a.example/,1\n", "unknown_format"),
    ],
)
def test_bad_files_become_one_finding(tmp_path, name, data, kind):
    path = tmp_path / name
    path.write_bytes(data)
    profile = read_profile(path)
    assert [f.kind for f in profile.findings] == [kind]
    assert profile.citations == []
    assert profile.sha256 == hashlib.sha256(data).hexdigest()


def test_extensionless_text_falls_back_to_the_text_reader(tmp_path):
    path = tmp_path / "NOTES"
    path.write_text("see https://a.example/\n", encoding="utf-8")
    profile = read_profile(path)
    assert profile.format == "text" and len(profile.citations) == 1


def test_too_large_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(extract, "MAX_BYTES", 10)
    path = tmp_path / "big.txt"
    path.write_bytes(b"https://a.example/ is longer than ten bytes")
    profile = read_profile(path)
    assert [f.kind for f in profile.findings] == ["too_large"]
    assert profile.citations == []
    assert profile.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unreadable_paths(tmp_path):
    missing = read_profile(tmp_path / "missing.txt")
    assert [f.kind for f in missing.findings] == ["unreadable"]
    assert missing.path == (tmp_path / "missing.txt").as_posix()
    folder = read_profile(tmp_path)
    assert [f.kind for f in folder.findings] == ["unreadable"]


def test_five_megabyte_single_line(tmp_path):
    path = tmp_path / "one-line.md"
    path.write_text(("word " * 100 + "https://a.example/x ") * 9_700, encoding="utf-8")
    assert path.stat().st_size > 5_000_000
    started = time.perf_counter()
    profile = read_profile(path)
    assert time.perf_counter() - started < 90  # a guard against quadratic blow-ups, not a benchmark
    assert len(profile.citations) == 9_700
    assert {c.line for c in profile.citations} == {1}


# -- discover ---------------------------------------------------------------------------------
def test_discover_is_sorted_recursive_and_skips_noise(tmp_path):
    root = tmp_path / "corpus"
    for name in [
        "b.txt", "a.md", "sub/z.html", "sub/deeper/y.pdf", "sub/unknown.xyz", ".hidden.txt",
        ".git/config", "sub/.cache/x.txt", "corpus.toml", "README.md", "readme.txt",
        "a.md.bak", "a.md.bak.2", "a.md.orig", "b.txt.bak.10", "citewatch.toml", "sub/NOTES",
    ]:  # fmt: skip
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    extra = tmp_path / ".direct.txt"
    extra.write_text("x", encoding="utf-8")
    named = root / "sub" / "unknown.xyz"
    skipped: list[Path] = []
    found = list(discover([root, extra, root / "a.md"], skipped=skipped))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "corpus/a.md",
        "corpus/b.txt",
        "corpus/sub/NOTES",  # no extension: read, the content decides
        "corpus/sub/deeper/y.pdf",
        "corpus/sub/z.html",
        ".direct.txt",  # given directly: yielded even though hidden; a.md only once
    ]
    assert skipped == [named]  # another type: not read in a folder walk, but told
    assert list(discover([named])) == [named]  # named directly: read (a finding says why)


# -- manifest ---------------------------------------------------------------------------------
def test_manifest_lookup_and_overrides(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "p.txt").write_text("[a](/a)\n", encoding="utf-8")
    (tmp_path / "corpus.toml").write_text(
        '[[profile]]\npath = "sub/p.txt"\nurl = "https://site.example/x/p"\n'
        'title = "Override"\nauthors = "Solo Author"\npublished = 2020-02-03\n',
        encoding="utf-8",
    )
    manifest = load_manifest(tmp_path)
    assert len(manifest) == 1
    monkeypatch.chdir(tmp_path)
    for spelling in (Path("sub/p.txt"), Path("./sub/../sub/p.txt"), tmp_path / "sub" / "p.txt"):
        profile = read_profile(spelling, manifest=manifest)
        assert profile.base_url == "https://site.example/x/p"
        assert (profile.title, profile.authors, profile.published) == (
            "Override",
            ["Solo Author"],
            "2020-02-03",
        )
        assert [c.url for c in profile.citations] == ["https://site.example/a"]
    assert read_profile(Path("sub/p.txt"), base_url="https://b.example/", manifest=manifest)
    assert load_manifest(tmp_path / "sub").entries == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[[profile]\npath = 'x'", "not valid TOML"),
        ("[[profile]]\nurl = 'https://a.example/'", "'path'"),
        ("[[profile]]\npath = 'x'\nurl = '/relative'", "absolute http\\(s\\) URL"),
        ("[[profile]]\npath = 'x'\nbase = 'https://a.example/'", "unknown key"),
        ("[[profile]]\npath = 'x'\npublished = 'someday'", "not a date"),
        ("[[profile]]\npath = 'x'\n[[profile]]\npath = './x'", "listed twice"),
    ],
)
def test_bad_manifest_is_a_clear_value_error(tmp_path, content, message):
    (tmp_path / "corpus.toml").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_manifest(tmp_path)
    assert "corpus.toml" in str(info.value)


def test_bundled_manifest_names_the_seed():
    root = Path(__file__).resolve().parents[1] / "citations"
    manifest = load_manifest(root)
    entry = manifest.get(root / "profile-liwa-al-baqir.txt")
    assert entry is not None
    assert entry.url == "https://www.washingtoninstitute.org/policy-analysis/profile-liwa-al-baqir"
    assert isinstance(Manifest(), Manifest) and len(Manifest()) == 0


def test_markdown_raw_html_links(tmp_path):
    path = tmp_path / "h.md"
    path.write_text(
        "# T\n\n<div>\n  <a href=\"https://block.example/a?b=1&amp;c\">A</a> <img src='/i.png'>\n"
        '</div>\n\nInline <a href="https://inline.example/">x</a> and `<a href="https://c.example/">`.\n',
        encoding="utf-8",
    )
    profile = read_profile(path, base_url="https://s.example/")
    assert [(c.line, c.column, c.url, c.role) for c in profile.citations] == [
        (4, 12, "https://block.example/a?b=1&c", SRC),
        (4, 63, "https://s.example/i.png", MEDIA),
        (7, 17, "https://inline.example/", SRC),
    ]
    assert_positions(profile, path)
