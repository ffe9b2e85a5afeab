"""`fix`, read as a specification: which URLs change, how each format is rewritten, what is refused.

Each test writes a real profile file, records its citations (with the line, column and raw text a
reader would have produced) and verdicts in a real SQLite file, then plans and writes the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citewatch.cli import app, judged_broken
from citewatch.extract import read_profile
from citewatch.fix import FixRefused, ProfileNotScanned, already_fixed_note, plan_fix, write_fix
from citewatch.models import Citation, Profile, Snapshot
from citewatch.store import Store
from citewatch.urls import resolve

BASE = "https://www.washingtoninstitute.org/policy-analysis/profile-x"
WB = "https://web.archive.org/web"


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "t.db")
    yield s
    s.close()


def locate(text: str, raw: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the n-th occurrence of ``raw`` in ``text``."""
    pos = -1
    for _ in range(occurrence + 1):
        pos = text.index(raw, pos + 1)
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def scan(
    store: Store,
    path: Path,
    text: str,
    fmt: str,
    cites: list[tuple[str, str] | tuple[str, str, int]],
    published: str | None = "2023-11-01",
    base: str | None = BASE,
) -> None:
    """Write ``text`` to ``path`` and store it as scanned, with citations (raw, target[, occurrence])."""
    path.write_bytes(text.encode())
    citations = []
    for spec in cites:
        raw, target = spec[0], spec[1]
        occurrence = spec[2] if len(spec) > 2 else 0
        line, col = locate(text, raw, occurrence)
        r = resolve(target, base)
        citations.append(
            Citation(
                url=r.url,
                raw=raw,
                line=line,
                column=col,
                fragment=r.fragment,
                archived=r.archived,
                skip_reason=r.skip_reason,
            )
        )
    run = store.begin_run("scan")
    store.save_profile(
        Profile(
            path=path.as_posix(),
            published=published,
            base_url=base,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            format=fmt,
            citations=citations,
        ),
        run,
    )


def judge(
    store: Store,
    url: str,
    verdict: str,
    snapshots: list[tuple[str, int]] = (),
    moved_to: str | None = None,
    confirmed: bool = True,
) -> None:
    run = store.begin_run("check")
    url_id = store.query("SELECT id FROM urls WHERE url = ?", [url])[0]["id"]
    store.set_verdict(url_id, run, verdict, confirmed=confirmed, moved_to=moved_to)
    store.record_snapshots(
        url_id,
        run,
        [Snapshot(url, ts, url, status, "text/html", f"D{ts}", 1) for ts, status in snapshots],
    )


def scan_read(store: Store, path: Path, text: str, base: str | None = None) -> None:
    """Write ``text`` to ``path`` and store it as citewatch's own reader reads it."""
    path.write_text(text)
    store.save_profile(read_profile(path, base_url=base), store.begin_run("scan"))


def cited_urls(path: Path, base: str | None = None) -> list[str]:
    """The URLs (fragment included) citewatch's reader finds in ``path`` now."""
    return [
        c.url + (f"#{c.fragment}" if c.fragment else "")
        for c in read_profile(path, base_url=base).citations
    ]


def changed_lines(diff: str) -> tuple[list[str], list[str]]:
    body = [line for line in diff.splitlines() if not line.startswith(("---", "+++"))]
    return [x[1:] for x in body if x.startswith("-")], [x[1:] for x in body if x.startswith("+")]


# -- the seed's text format --------------------------------------------------------------------------

SEED = """Profile: Liwa al-Baqir

by [Abdullah Hayek \\(/experts/abdullah-hayek/\\)](/experts/abdullah-hayek/), [Michael Knights \\(/experts/michael-knights/\\)](/experts/michael-knights/)

- **Harakat:** According to <https://web.archive.org/web/20171017230858/https://www.alsouria.net/content/x>, a **U.S.-designated Foreign Terrorist Organization (/node/16716)** in Iraq.
- **Baggara.** He **verbally attacked** <https://www.washingtoninstitute.org/sites/default/files/pdf/PolicyNote52-2.pdf#pdfjs.action=download> the United States.

Terrorism (/policy-analysis/terrorism)

(/policy-analysis/potential-escalation-iraq-part-2-asaib-and-nujaba)
"""
HAYEK = "https://www.washingtoninstitute.org/experts/abdullah-hayek/"
KNIGHTS = "https://www.washingtoninstitute.org/experts/michael-knights/"
NODE = "https://www.washingtoninstitute.org/node/16716"
PDF = "https://www.washingtoninstitute.org/sites/default/files/pdf/PolicyNote52-2.pdf"
TERRORISM = "https://www.washingtoninstitute.org/policy-analysis/terrorism"
ESCALATION = "https://www.washingtoninstitute.org/policy-analysis/potential-escalation-iraq-part-2-asaib-and-nujaba"
ALSOURIA = "https://www.alsouria.net/content/x"


def seed_profile(store: Store, tmp_path: Path) -> Path:
    path = tmp_path / "profile-liwa-al-baqir.txt"
    scan(
        store,
        path,
        SEED,
        "text",
        [
            (
                "[Abdullah Hayek \\(/experts/abdullah-hayek/\\)](/experts/abdullah-hayek/)",
                "/experts/abdullah-hayek/",
            ),
            (
                "[Michael Knights \\(/experts/michael-knights/\\)](/experts/michael-knights/)",
                "/experts/michael-knights/",
            ),
            (
                "<https://web.archive.org/web/20171017230858/https://www.alsouria.net/content/x>",
                "https://web.archive.org/web/20171017230858/https://www.alsouria.net/content/x",
            ),
            ("(/node/16716)", "/node/16716"),
            (
                "https://www.washingtoninstitute.org/sites/default/files/pdf/PolicyNote52-2.pdf#pdfjs.action=download",
                "https://www.washingtoninstitute.org/sites/default/files/pdf/PolicyNote52-2.pdf#pdfjs.action=download",
            ),
            ("(/policy-analysis/terrorism)", "/policy-analysis/terrorism"),
            (
                "(/policy-analysis/potential-escalation-iraq-part-2-asaib-and-nujaba)",
                "/policy-analysis/potential-escalation-iraq-part-2-asaib-and-nujaba",
            ),
        ],
    )
    return path


def test_seed_format_replaces_each_dead_target_in_place_with_its_best_snapshot(store, tmp_path):
    path = seed_profile(store, tmp_path)
    # Best snapshot: the latest 2xx at or before 2023-11-01, not the 404 nor the later capture.
    judge(
        store,
        HAYEK,
        "dead",
        [
            ("20220101000000", 200),
            ("20231020000000", 200),
            ("20231030000000", 404),
            ("20240101000000", 200),
        ],
    )
    judge(store, KNIGHTS, "alive", [("20230101000000", 200)])
    judge(store, NODE, "dead", [("20200505000000", 200)], confirmed=False)  # one-shot: still fixed
    judge(store, PDF, "dead", [("20190101000000", 200)])
    judge(store, TERRORISM, "dead", [("20210101000000", 200)])
    judge(store, ESCALATION, "dead", [])  # no snapshot at all
    judge(store, ALSOURIA, "dead", [("20171017230858", 200)])  # cited as an archive link

    result = plan_fix(store, path)
    new = result.new_text
    hayek_wb = f"{WB}/20231020000000/{HAYEK}"
    assert (
        f"by [Abdullah Hayek \\({hayek_wb}\\)]({hayek_wb}), "
        "[Michael Knights \\(/experts/michael-knights/\\)](/experts/michael-knights/)\n"
    ) in new
    assert f"Organization ({WB}/20200505000000/{NODE})** in Iraq" in new
    assert f"attacked** <{WB}/20190101000000/{PDF}#pdfjs.action=download> the" in new
    assert f"Terrorism ({WB}/20210101000000/{TERRORISM})\n" in new
    # Never rewritten: archive links; never guessed: no snapshot.
    assert "<https://web.archive.org/web/20171017230858/https://www.alsouria.net/content/x>" in new
    assert "\n(/policy-analysis/potential-escalation-iraq-part-2-asaib-and-nujaba)\n" in new
    assert [u["url"] for u in result.unresolved] == [ESCALATION]
    assert "has not been asked" in result.unresolved[0]["reason"]  # no lookup, no capture known
    assert sorted(r["url"] for r in result.replaced) == sorted([HAYEK, NODE, PDF, TERRORISM])
    assert {r["snapshot"] for r in result.replaced if r["url"] == HAYEK} == {"20231020000000"}
    # Touches nothing but those URLs: undo the replacements and the file is byte-identical.
    undone = new
    for r in result.replaced:
        original = {
            HAYEK: "/experts/abdullah-hayek/",
            NODE: "/node/16716",
            TERRORISM: "/policy-analysis/terrorism",
        }
        undone = undone.replace(r["replacement"].split("#")[0], original.get(r["url"], r["url"]))
    assert undone == SEED
    removed, added = changed_lines(result.diff)
    assert len(removed) == len(added) == 4
    assert result.diff.startswith("--- a/") and "+++ b/" in result.diff


def test_write_keeps_a_backup_and_a_second_plan_is_empty(store, tmp_path):
    path = seed_profile(store, tmp_path)
    for url in (HAYEK, KNIGHTS, NODE, PDF, TERRORISM):
        judge(store, url, "dead", [("20230101000000", 200)])
    first = plan_fix(store, path)
    assert first.refused is None and len(first.replaced) == 5
    backup = write_fix(first, path)
    assert backup == tmp_path / "profile-liwa-al-baqir.txt.bak"
    assert backup.read_text() == SEED
    assert path.read_text() == first.new_text

    again = plan_fix(store, path)  # the database still describes the scanned (old) file
    assert again.diff == "" and again.new_text is None
    assert again.refused is None, "our own rewrite must not count as an outside change"
    assert len(again.already_fixed) == 5 and not again.replaced
    assert [u["url"] for u in again.unresolved] == []


def test_two_fixes_on_one_line_are_found_again_after_the_first_moved_the_second(store, tmp_path):
    path = tmp_path / "p.md"
    text = "See <https://a.example/1> and <https://a.example/2> and https://a.example/3.\n"
    scan(
        store,
        path,
        text,
        "markdown",
        [
            ("<https://a.example/1>", "https://a.example/1"),
            ("<https://a.example/2>", "https://a.example/2"),
            ("https://a.example/3", "https://a.example/3"),
        ],
    )
    for n in (1, 2, 3):
        judge(store, f"https://a.example/{n}", "dead", [(f"2020010{n}000000", 200)])
    result = plan_fix(store, path)
    assert result.new_text == (
        f"See <{WB}/20200101000000/https://a.example/1> and <{WB}/20200102000000/https://a.example/2>"
        f" and {WB}/20200103000000/https://a.example/3.\n"
    )
    write_fix(result, path)
    again = plan_fix(store, path)
    assert again.diff == "" and len(again.already_fixed) == 3 and again.refused is None


# -- Markdown ------------------------------------------------------------------------------------------

MARKDOWN = """# A profile

A [plain link](https://m.example/a "its title") and [about](about) and
[angle](<https://m.example/b(c)>), an autolink <https://m.example/d>, a bare
https://m.example/e, and a reference [ref][1].

[1]: https://m.example/f
"""


def test_markdown_link_targets_autolinks_bare_urls_and_references(store, tmp_path):
    path = tmp_path / "p.md"
    scan(
        store,
        path,
        MARKDOWN,
        "markdown",
        [
            ('[plain link](https://m.example/a "its title")', "https://m.example/a"),
            ("[about](about)", "about"),
            ("[angle](<https://m.example/b(c)>)", "https://m.example/b(c)"),
            ("<https://m.example/d>", "https://m.example/d"),
            ("https://m.example/e", "https://m.example/e"),
            ("[1]: https://m.example/f", "https://m.example/f"),
        ],
        base="https://m.example/x/",
    )
    for url in ("a", "x/about", "b(c)", "d", "e", "f"):
        judge(store, f"https://m.example/{url}", "dead", [("20220202000000", 200)])
    new = plan_fix(store, path).new_text
    wb = f"{WB}/20220202000000/https://m.example"
    assert f'[plain link]({wb}/a "its title")' in new
    assert f"[about]({wb}/x/about)" in new, "the link text 'about' is a word, not the URL"
    assert f"[angle](<{wb}/b(c)>)" in new
    assert f"autolink <{wb}/d>, a bare\n{wb}/e, and" in new
    assert f"[1]: {wb}/f\n" in new
    assert new.count("web.archive.org") == 6


def test_a_replacement_never_breaks_a_markdown_link_destination(store, tmp_path):
    # "(" alone is a valid path or query character: written bare into a link destination it would
    # leave the link's parentheses unbalanced (the link ends elsewhere, or is no link). An
    # autolink reads no backslash escapes, and needs none.
    path = tmp_path / "p.md"
    text = (
        "See [the list](https://p.example/a?q=\\(c) and [more](<https://p.example/b>)\n"
        "or <https://p.example/d?q=(d>.\n\n[1]: https://p.example/c\n\nAlso [ref][1].\n"
    )
    scan_read(store, path, text)
    assert cited_urls(path) == [
        "https://p.example/a?q=(c",
        "https://p.example/b",
        "https://p.example/d?q=(d",
        "https://p.example/c",
    ]
    judge(store, "https://p.example/a?q=(c", "dead", [("20200101000000", 200)])
    judge(store, "https://p.example/d?q=(d", "dead", [("20200101000000", 200)])
    judge(store, "https://p.example/b", "moved", moved_to="https://p.example/new(b")
    judge(store, "https://p.example/c", "moved", moved_to="https://p.example/new(c")
    result = plan_fix(store, path, include_moved=True)
    assert result.new_text == (
        f"See [the list]({WB}/20200101000000/https://p.example/a?q=\\(c) and"
        " [more](<https://p.example/new\\(b>)\n"
        f"or <{WB}/20200101000000/https://p.example/d?q=(d>.\n"
        "\n[1]: https://p.example/new\\(c\n\nAlso [ref][1].\n"
    )
    write_fix(result, path)
    # Read back by citewatch's own reader: each link now points at exactly its replacement.
    assert cited_urls(path) == [
        f"{WB}/20200101000000/https://p.example/a?q=(c",
        "https://p.example/new(b",
        f"{WB}/20200101000000/https://p.example/d?q=(d",
        "https://p.example/new(c",
    ]
    again = plan_fix(store, path, include_moved=True)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 4


def test_moved_links_change_only_with_include_moved(store, tmp_path):
    path = tmp_path / "p.md"
    scan(
        store,
        path,
        "Read [it](https://old.example/p#sec).\n",
        "markdown",
        [("[it](https://old.example/p#sec)", "https://old.example/p#sec")],
    )
    judge(store, "https://old.example/p", "moved", moved_to="https://new.example/p")
    assert plan_fix(store, path).diff == ""
    result = plan_fix(store, path, include_moved=True)
    assert result.new_text == "Read [it](https://new.example/p#sec).\n"
    assert result.replaced[0]["kind"] == "moved"
    write_fix(result, path)
    assert plan_fix(store, path, include_moved=True).diff == ""


# -- HTML: Robust Links ------------------------------------------------------------------------------

HTML = """<html><body>
<p>Founded in 2012 (<a class="src" href="https://h.example/a?x=1&amp;y=2">report</a>), see
<a href='/local/page'>the page</a> and <a href="https://h.example/alive">this</a>.</p>
</body></html>
"""


def test_html_dead_links_become_robust_links_to_the_memento(store, tmp_path):
    # robustlinks.org's "link to the memento" form, the one for an original that is gone: the href
    # is the archived copy (so readers, and citewatch, follow a link that works), the original stays
    # in data-originalurl, the capture's day in data-versiondate.
    path = tmp_path / "p.html"
    scan(
        store,
        path,
        HTML,
        "html",
        [
            (
                '<a class="src" href="https://h.example/a?x=1&amp;y=2">',
                "https://h.example/a?x=1&y=2",
            ),
            ("/local/page", "/local/page"),
            ('<a href="https://h.example/alive">', "https://h.example/alive"),
        ],
        base="https://h.example/",
    )
    judge(store, "https://h.example/a?x=1&y=2", "dead", [("20190101000000", 200)])
    judge(store, "https://h.example/local/page", "dead", [("20180202000000", 200)])
    judge(store, "https://h.example/alive", "alive", [("20180202000000", 200)])
    result = plan_fix(store, path)
    new = result.new_text
    assert (
        f'<a class="src" href="{WB}/20190101000000/https://h.example/a?x=1&amp;y=2"'
        ' data-originalurl="https://h.example/a?x=1&amp;y=2"'
        ' data-versiondate="2019-01-01">report</a>'
    ) in new
    assert (
        f"<a href='{WB}/20180202000000/https://h.example/local/page'"
        ' data-originalurl="https://h.example/local/page"'
        ' data-versiondate="2018-02-02">the page</a>'
    ) in new
    assert '<a href="https://h.example/alive">this</a>' in new
    assert {r["mode"] for r in result.replaced} == {"robust_links"}
    write_fix(result, path)
    assert link_attributes(path) == [
        {
            "class": "src",
            "href": f"{WB}/20190101000000/https://h.example/a?x=1&y=2",
            "data-originalurl": "https://h.example/a?x=1&y=2",
            "data-versiondate": "2019-01-01",
        },
        {
            "href": f"{WB}/20180202000000/https://h.example/local/page",
            "data-originalurl": "https://h.example/local/page",
            "data-versiondate": "2018-02-02",
        },
        {"href": "https://h.example/alive"},
    ]
    again = plan_fix(store, path)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 2


def test_html_images_get_the_archived_src(store, tmp_path):
    path = tmp_path / "p.html"
    text = '<p><img alt="logo" src="https://i.example/logo.png"></p>\n'
    scan(
        store,
        path,
        text,
        "html",
        [('src="https://i.example/logo.png"', "https://i.example/logo.png")],
    )
    store.db.execute("UPDATE citations SET role = 'media'")
    judge(store, "https://i.example/logo.png", "dead", [("20200101000000", 200)])
    assert plan_fix(store, path).new_text == (
        f'<p><img alt="logo" src="{WB}/20200101000000/https://i.example/logo.png"></p>\n'
    )


def test_html_moved_links_get_the_new_href(store, tmp_path):
    path = tmp_path / "p.html"
    text = '<p><a href="https://old.example/p">x</a></p>\n'
    scan(store, path, text, "html", [('<a href="https://old.example/p">', "https://old.example/p")])
    judge(store, "https://old.example/p", "moved", moved_to="https://new.example/p")
    result = plan_fix(store, path, include_moved=True)
    assert result.new_text == '<p><a href="https://new.example/p">x</a></p>\n'


def link_attributes(path: Path) -> list[dict[str, str | None]]:
    """The attributes of every ``a`` of ``path`` as an HTML parser reads them."""
    from html.parser import HTMLParser

    found: list[dict[str, str | None]] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "a":
                found.append(dict(attrs))

    Links().feed(path.read_text())
    return found


def attribute_values(path: Path) -> list[str]:
    """Every href and src of ``path`` as an HTML parser reads them (character references decoded)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(value for name, value in attrs if name in ("href", "src"))

    Links().feed(path.read_text())
    return found


def test_a_replacement_written_into_an_html_attribute_is_escaped_for_its_quoting(store, tmp_path):
    # Moved links, images and non-replaying archive links get a new href/src: written as they are,
    # "&" would start a character reference and a quote would end the attribute.
    path = tmp_path / "p.html"
    original = "https://a.example/report?id=1&part=2"
    text = (
        '<p><a href="https://old.example/p?id=1">moved</a>\n'
        "<img alt='chart' src='https://i.example/it&#39;s.png?w=1&amp;h=2'>\n"
        "<a href=https://old.example/q>unquoted</a>\n"
        f'<a href="{WB}/20171017230858/https://a.example/report?id=1&amp;part=2">archived</a></p>\n'
    )
    scan_read(store, path, text)
    store.db.execute("UPDATE citations SET role = 'media' WHERE raw LIKE 'https://i.example/%'")
    moved_p = "https://new.example/p?id=1&lang=en"
    moved_q = "https://new.example/q?a=1&b=2"
    judge(store, "https://old.example/p?id=1", "moved", moved_to=moved_p)
    judge(store, "https://i.example/it's.png?w=1&h=2", "dead", [("20200101000000", 200)])
    judge(store, "https://old.example/q", "moved", moved_to=moved_q)
    judge(store, original, "dead", [("20170901000000", 200)])
    replayed(store, original, "20171017230858", status=404, memento_datetime="20171017230858")

    result = plan_fix(store, path, include_moved=True)
    image = f"{WB}/20200101000000/https://i.example/it's.png?w=1&h=2"
    archived = f"{WB}/20170901000000/{original}"
    assert result.new_text == (
        '<p><a href="https://new.example/p?id=1&amp;lang=en">moved</a>\n'
        f"<img alt='chart' src='{WB}/20200101000000/https://i.example/it&#39;s.png?w=1&amp;h=2'>\n"
        "<a href=https://new.example/q?a&#61;1&amp;b&#61;2>unquoted</a>\n"
        f'<a href="{WB}/20170901000000/https://a.example/report?id=1&amp;part=2"'
        ' data-originalurl="https://a.example/report?id=1&amp;part=2"'
        ' data-versiondate="2017-09-01">archived</a></p>\n'
    )
    assert {r["replacement"] for r in result.replaced} == {moved_p, image, moved_q, archived}
    write_fix(result, path)
    # An HTML parser reads back exactly the replacement URLs, and so does citewatch's reader.
    assert attribute_values(path) == [moved_p, image, moved_q, archived]
    assert cited_urls(path) == [
        moved_p,
        "https://web.archive.org/web/20200101000000/https://i.example/it's.png?w=1&h=2",
        moved_q,
        archived,
    ]
    again = plan_fix(store, path, include_moved=True)
    assert again.diff == "" and again.refused is None and again.replaced == []
    assert len(again.already_fixed) == 4


def test_an_href_an_earlier_citewatch_wrote_unescaped_is_re_escaped(store, tmp_path):
    path = tmp_path / "p.html"
    scan_read(store, path, '<p><a href="https://old.example/p">x</a></p>\n')
    moved = "https://new.example/p?a=1&copy;=2"  # "&copy;" in an attribute reads as "©"
    judge(store, "https://old.example/p", "moved", moved_to=moved)
    path.write_text(f'<p><a href="{moved}">x</a></p>\n')  # as fix wrote it before it escaped
    assert attribute_values(path) == ["https://new.example/p?a=1©=2"]
    result = plan_fix(store, path, include_moved=True)
    assert result.refused is None, "our own (unescaped) rewrite is not an outside change"
    assert result.new_text == '<p><a href="https://new.example/p?a=1&amp;copy;=2">x</a></p>\n'
    assert [(r["mode"], r["replacement"]) for r in result.replaced] == [("escape", moved)]
    write_fix(result, path)
    assert attribute_values(path) == [moved]
    again = plan_fix(store, path, include_moved=True)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 1


# -- what is refused or left alone --------------------------------------------------------------------


def test_a_file_changed_elsewhere_is_refused_but_our_own_rewrite_is_not(store, tmp_path):
    path = tmp_path / "p.md"
    text = "One <https://r.example/1>.\nTwo <https://r.example/2>.\n"
    scan(
        store,
        path,
        text,
        "markdown",
        [
            ("<https://r.example/1>", "https://r.example/1"),
            ("<https://r.example/2>", "https://r.example/2"),
        ],
    )
    judge(store, "https://r.example/1", "dead", [("20200101000000", 200)])
    write_fix(plan_fix(store, path), path)
    judge(store, "https://r.example/2", "dead", [("20200101000000", 200)])
    # Only our own rewrite since the scan: the new dead link is fixed without complaint.
    second = plan_fix(store, path)
    assert second.refused is None and [r["url"] for r in second.replaced] == ["https://r.example/2"]
    # Someone edits another line: the plan still shows the diff, but writing is refused.
    path.write_text(path.read_text().replace("One", "Uno"))
    third = plan_fix(store, path)
    assert third.refused and "changed since it was scanned" in third.refused
    with pytest.raises(FixRefused):
        write_fix(third, path)
    assert "Uno" in path.read_text() and "r.example/2>" in path.read_text()


def test_a_plan_is_not_written_over_a_file_that_changed_after_planning(store, tmp_path):
    path = tmp_path / "p.md"
    scan(
        store,
        path,
        "<https://r.example/1>\n",
        "markdown",
        [("<https://r.example/1>", "https://r.example/1")],
    )
    judge(store, "https://r.example/1", "dead", [("20200101000000", 200)])
    plan = plan_fix(store, path)
    path.write_text("<https://r.example/1>\nedited\n")
    with pytest.raises(FixRefused):
        write_fix(plan, path)


def test_raw_text_not_where_it_was_recorded_is_unresolved_not_guessed(store, tmp_path):
    path = tmp_path / "p.md"
    text = (
        "First <https://u.example/1>.\nAgain <https://u.example/1> twice <https://u.example/1>.\n"
    )
    scan(store, path, text, "markdown", [("<https://u.example/1>", "https://u.example/1", 1)])
    judge(store, "https://u.example/1", "dead", [("20200101000000", 200)])
    # Someone inserted a character before the link on its line: the recorded column is stale and
    # the same raw text stands twice on that line, so there is no single right answer.
    path.write_text(text.replace("Again", "Again!"))
    result = plan_fix(store, path)
    assert result.diff == "" and result.unresolved[0]["reason"].startswith("raw text not found")


def test_a_shifted_column_is_accepted_when_the_raw_text_is_unique_on_its_line(store, tmp_path):
    path = tmp_path / "p.txt"
    scan(
        store,
        path,
        "\tsee <https://u.example/1>\n",
        "text",
        [("<https://u.example/1>", "https://u.example/1")],
    )
    store.db.execute("UPDATE citations SET col = 12")  # a reader that expanded the tab
    judge(store, "https://u.example/1", "dead", [("20200101000000", 200)])
    assert plan_fix(store, path).new_text == f"\tsee <{WB}/20200101000000/https://u.example/1>\n"


def test_captures_found_to_be_soft_404s_on_replay_are_not_used(store, tmp_path):
    path = tmp_path / "p.md"
    scan(
        store,
        path,
        "<https://s.example/1>\n",
        "markdown",
        [("<https://s.example/1>", "https://s.example/1")],
    )
    judge(store, "https://s.example/1", "dead", [("20200101000000", 200), ("20210101000000", 200)])
    url_id = store.query("SELECT id FROM urls")[0]["id"]
    store.record_snapshot_check(
        store.begin_run("archive"), url_id, timestamp="20210101000000", soft_404=1
    )
    assert plan_fix(store, path).replaced[0]["snapshot"] == "20200101000000"
    store.record_snapshot_check(
        store.begin_run("archive"), url_id, timestamp="20200101000000", soft_404=1
    )
    assert "no usable 2xx snapshot" in plan_fix(store, path).unresolved[0]["reason"]


def test_a_move_to_a_non_web_url_is_listed_not_written(store, tmp_path):
    path = tmp_path / "p.md"
    scan(
        store,
        path,
        "<https://o.example/1>\n",
        "markdown",
        [("<https://o.example/1>", "https://o.example/1")],
    )
    judge(store, "https://o.example/1", "moved", moved_to="ftp://o.example/1")
    result = plan_fix(store, path, include_moved=True)
    assert result.diff == "" and "not an http(s) URL" in result.unresolved[0]["reason"]


def test_ignored_alive_and_skipped_links_are_never_touched(store, tmp_path):
    path = tmp_path / "p.md"
    text = "<https://i.example/1> <https://i.example/2> [x](javascript:alert(1))\n"
    scan(
        store,
        path,
        text,
        "markdown",
        [
            ("<https://i.example/1>", "https://i.example/1"),
            ("<https://i.example/2>", "https://i.example/2"),
            ("[x](javascript:alert(1))", "javascript:alert(1)"),
        ],
    )
    judge(store, "https://i.example/1", "dead", [("20200101000000", 200)])
    judge(store, "https://i.example/2", "alive", [("20200101000000", 200)])
    store.add_ignore("https://i.example/1", "false positive")
    result = plan_fix(store, path)
    assert result.diff == "" and result.unresolved == [] and result.replaced == []
    assert [(i["url"], i["reason"]) for i in result.ignored] == [
        ("https://i.example/1", "false positive")
    ]


GLOB = "https://g.example/*"


def ignorable(store: Store, tmp_path: Path) -> Path:
    """A profile with dead links (one without a snapshot) and a non-replaying archive link under
    ``GLOB``, and one dead link that is not."""
    path = tmp_path / "p.md"
    cited = f"{WB}/20171017230858/https://g.example/report"
    text = f"<https://g.example/1> <https://g.example/2> <https://k.example/3>\n[report]({cited})\n"
    scan(
        store,
        path,
        text,
        "markdown",
        [
            ("<https://g.example/1>", "https://g.example/1"),
            ("<https://g.example/2>", "https://g.example/2"),
            ("<https://k.example/3>", "https://k.example/3"),
            (f"[report]({cited})", cited),
        ],
    )
    judge(store, "https://g.example/1", "dead", [("20200101000000", 200)])
    judge(store, "https://g.example/2", "dead")  # no snapshot: would be listed as unresolved
    judge(store, "https://k.example/3", "dead", [("20200101000000", 200)])
    judge(store, "https://g.example/report", "dead", [("20170901000000", 200)])
    not_archived(store, "https://g.example/report", "20171017230858")
    return path


def test_a_config_ignore_glob_keeps_a_dead_citation_unchanged_and_lists_it(store, tmp_path):
    path = ignorable(store, tmp_path)
    text = path.read_text()
    result = plan_fix(store, path, ignore_patterns=[GLOB])
    assert result.new_text == text.replace(
        "<https://k.example/3>", f"<{WB}/20200101000000/https://k.example/3>"
    )
    assert [r["url"] for r in result.replaced] == ["https://k.example/3"]
    assert result.unresolved == []
    why = f"matches ignore pattern {GLOB!r}"
    assert [(i["line"], i["url"], i["reason"]) for i in result.ignored] == [
        (1, "https://g.example/1", why),
        (1, "https://g.example/2", why),
        (2, f"{WB}/20171017230858/https://g.example/report", why),
    ]
    # The same rule as the exit code: what fix leaves as ignored is what exit code 1 leaves out.
    broken = {b["cited_url"] for b in judged_broken(store)}
    assert broken - {b["cited_url"] for b in judged_broken(store, [GLOB])} == {
        i["url"] for i in result.ignored
    }
    # Without the glob, each of them is fixed or listed as unresolved.
    plain = plan_fix(store, path)
    assert plain.ignored == [] and len(plain.replaced) == 3 and len(plain.unresolved) == 1


def test_the_fix_command_follows_the_config_files_ignore_globs(store, tmp_path, monkeypatch):
    path = ignorable(store, tmp_path)
    before = path.read_text()
    (tmp_path / "citewatch.toml").write_text(f'db = "t.db"\nignore = ["{GLOB}"]\n')
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    shown = runner.invoke(app, ["fix", "p.md"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    removed, added = changed_lines(shown.stdout)
    assert [line.replace(f"{WB}/20200101000000/", "") for line in added] == removed
    assert len(removed) == 1 and removed[0].startswith("<https://g.example/1>")
    why = f"matches ignore pattern {GLOB!r}"
    assert f"ignored: line 1: https://g.example/2: {why}" in shown.stderr
    assert "not fixed" not in shown.stderr
    done = runner.invoke(app, ["fix", "p.md", "--write", "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert [i["url"] for i in doc["ignored"]] == [
        "https://g.example/1",
        "https://g.example/2",
        f"{WB}/20171017230858/https://g.example/report",
    ]
    assert {i["reason"] for i in doc["ignored"]} == {why}
    assert doc["unresolved"] == [] and doc["written"] is True
    assert path.read_text() == before.replace(
        "<https://k.example/3>", f"<{WB}/20200101000000/https://k.example/3>"
    )


def test_line_endings_and_a_missing_final_newline_survive(store, tmp_path):
    path = tmp_path / "p.txt"
    text = "a\r\nsee https://c.example/1\r\nend"
    scan(store, path, text, "text", [("https://c.example/1", "https://c.example/1")])
    judge(store, "https://c.example/1", "dead", [("20200101000000", 200)])
    result = plan_fix(store, path)
    write_fix(result, path)
    assert path.read_bytes() == f"a\r\nsee {WB}/20200101000000/https://c.example/1\r\nend".encode()
    assert result.diff.endswith(" end\n\\ No newline at end of file\n")  # as git prints it
    assert "-see https://c.example/1\r\n" in result.diff


def test_pdf_profiles_are_listed_not_rewritten(store, tmp_path):
    path = tmp_path / "p.pdf"
    scan(
        store,
        path,
        "%PDF https://p.example/1\n",
        "pdf",
        [("https://p.example/1", "https://p.example/1")],
    )
    judge(store, "https://p.example/1", "dead", [("20200101000000", 200)])
    result = plan_fix(store, path)
    assert result.diff == "" and result.unresolved[0]["reason"] == "PDF profiles are not rewritten"


def test_an_unscanned_profile_is_an_error(store, tmp_path):
    path = tmp_path / "never.md"
    path.write_text("x")
    with pytest.raises(ProfileNotScanned):
        plan_fix(store, path)


def test_a_dead_link_without_a_snapshot_gets_an_honest_hint_never_save_page_now(store, tmp_path):
    # Save Page Now is never asked to capture a dead URL (it would only archive the error page), so
    # the hint is to ask the archive first, or — once it has answered — to look for the page elsewhere.
    path = tmp_path / "p.md"
    text = "<https://n.example/never-asked>\n<https://n.example/asked>\n<https://n.example/404s>\n"
    scan(
        store,
        path,
        text,
        "markdown",
        [
            (f"<https://n.example/{name}>", f"https://n.example/{name}")
            for name in ("never-asked", "asked", "404s")
        ],
    )
    judge(store, "https://n.example/never-asked", "dead")
    judge(store, "https://n.example/asked", "dead")
    judge(store, "https://n.example/404s", "dead", [("20200101000000", 404)])
    asked = store.query("SELECT id FROM urls WHERE url = ?", ["https://n.example/asked"])[0]["id"]
    store.record_lookup(asked, store.begin_run("archive"), "cdx", "none")
    reasons = {item["url"]: item["reason"] for item in plan_fix(store, path).unresolved}
    assert "has not been asked" in reasons["https://n.example/never-asked"]
    assert "run `citewatch archive`" in reasons["https://n.example/never-asked"]
    for url in ("https://n.example/asked", "https://n.example/404s"):
        assert reasons[url].startswith("no archived copy exists")
        assert "new location or another source" in reasons[url]
    assert not any("--save" in reason for reason in reasons.values())


# -- cited archive links whose capture does not replay ------------------------------------------------
# Store.broken_citations (exit code 1) calls such a citation broken, so fix must offer the best other
# capture of its original URL, or say why there is none.

ORIGINAL = "https://a.example/report"
CITED = f"{WB}/20171017230858/{ORIGINAL}"


def replayed(store: Store, original: str, timestamp: str, **fields) -> None:
    """One replay of a capture of ``original``, as ``citewatch archive`` stores it."""
    url_id = store.query("SELECT id FROM urls WHERE url = ?", [original])[0]["id"]
    fields.setdefault("soft_404", 0)
    store.record_snapshot_check(store.begin_run("archive"), url_id, timestamp=timestamp, **fields)


def not_archived(store: Store, original: str, timestamp: str) -> None:
    replayed(store, original, timestamp, status=404, memento_datetime=None, error="no capture")


def test_a_cited_archive_link_that_does_not_replay_gets_the_best_other_capture(store, tmp_path):
    path = tmp_path / "p.md"
    # The anchor text echoes the original URL: only the archive link is replaced.
    link = f"[{ORIGINAL}]({CITED}#findings)"
    scan(store, path, f"Per {link}, it was so.\n", "markdown", [(link, f"{CITED}#findings")])
    judge(
        store,
        ORIGINAL,
        "alive",
        [
            ("20170901000000", 200),
            ("20171017230858", 200),  # the capture cited: CDX lists it, but it does not replay
            ("20190101000000", 200),  # found to be a soft-404 on replay
            ("20230101000000", 404),
            ("20240101000000", 200),  # after the citation date
        ],
    )
    not_archived(store, ORIGINAL, "20171017230858")
    replayed(store, ORIGINAL, "20190101000000", status=200, soft_404=1)
    assert [r["cited_url"] for r in store.broken_citations()] == [CITED]

    result = plan_fix(store, path)
    other = f"{WB}/20170901000000/{ORIGINAL}#findings"
    assert result.new_text == f"Per [{ORIGINAL}]({other}), it was so.\n"
    assert result.unresolved == []
    [entry] = result.replaced
    assert (entry["url"], entry["replacement"], entry["snapshot"]) == (
        CITED,
        other,
        "20170901000000",
    )
    assert (entry["kind"], entry["mode"]) == ("snapshot", "replace")
    removed, added = changed_lines(result.diff)
    assert removed == [f"Per {link}, it was so."] and added == [result.new_text.rstrip("\n")]

    write_fix(result, path)  # idempotent: the database still describes the scanned file
    again = plan_fix(store, path)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 1


def test_a_cited_archive_link_in_html_gets_the_other_capture_as_its_href(store, tmp_path):
    path = tmp_path / "p.html"
    tag = f'<a href="{CITED}">'
    scan(store, path, f"<p>{tag}report</a></p>\n", "html", [(tag, CITED)])
    judge(store, ORIGINAL, "dead", [("20170901000000", 200)])
    replayed(store, ORIGINAL, "20171017230858", status=404, memento_datetime="20171017230858")
    result = plan_fix(store, path)
    # The link itself is replaced, in Robust Links' "link to the memento" form.
    assert result.new_text == (
        f'<p><a href="{WB}/20170901000000/{ORIGINAL}" data-originalurl="{ORIGINAL}"'
        ' data-versiondate="2017-09-01">report</a></p>\n'
    )
    assert result.replaced[0]["mode"] == "robust_links"


def test_the_capture_the_archive_served_instead_is_not_proposed_either(store, tmp_path):
    path = tmp_path / "p.md"
    short = f"{WB}/2017/{ORIGINAL}"  # the archive serves the capture nearest to a short timestamp
    scan(store, path, f"<{short}>\n", "markdown", [(f"<{short}>", short)])
    judge(store, ORIGINAL, "dead", [("20170305000000", 200), ("20160101000000", 200)])
    replayed(store, ORIGINAL, "2017", status=200, memento_datetime="20170305000000", soft_404=1)
    assert plan_fix(store, path).new_text == f"<{WB}/20160101000000/{ORIGINAL}>\n"


def test_a_non_replaying_archive_link_without_another_capture_is_listed_with_why(store, tmp_path):
    path = tmp_path / "p.md"
    never = f"{WB}/20171017230858/https://b.example/never-asked"
    only = f"{WB}/20171017230858/https://b.example/only-the-cited"
    scan(
        store,
        path,
        f"<{never}>\n<{only}>\n",
        "markdown",
        [(f"<{never}>", never), (f"<{only}>", only)],
    )
    judge(store, "https://b.example/never-asked", "dead")
    never_id = store.query("SELECT id FROM urls WHERE url = ?", ["https://b.example/never-asked"])
    store.record_lookup(never_id[0]["id"], store.begin_run("archive"), "cdx", "error")
    judge(store, "https://b.example/only-the-cited", "dead", [("20171017230858", 200)])
    for original in ("https://b.example/never-asked", "https://b.example/only-the-cited"):
        not_archived(store, original, "20171017230858")

    result = plan_fix(store, path)
    assert result.diff == "" and result.replaced == []
    reasons = {item["url"]: item["reason"] for item in result.unresolved}
    assert set(reasons) == {never, only}
    for reason in reasons.values():
        assert reason.startswith(
            "the cited archive link does not replay: the archive has no capture at 20171017230858"
        )
    assert "has not been asked" in reasons[never] and "run `citewatch archive`" in reasons[never]
    assert "no other usable capture exists" in reasons[only]
    assert "new location or another source" in reasons[only]  # the original is dead too
    judge(store, "https://b.example/only-the-cited", "alive")
    reasons = {item["url"]: item["reason"] for item in plan_fix(store, path).unresolved}
    assert reasons[only].endswith(
        "the original page is still live: cite it, or find another source"
    )


@pytest.mark.parametrize(
    "replays",
    [
        [],  # never replayed: not verified, not broken
        [{"status": 503, "memento_datetime": None}],  # the archive gave no answer
        [{"status": 200, "memento_datetime": "20171017230858"}],  # verified
        [{"status": 200, "memento_datetime": "20171020000000"}],  # redirected to the nearest
        [{"status": 404, "memento_datetime": None}, {"status": 200, "memento_datetime": None}],
    ],
    ids=["never replayed", "no answer", "verified", "redirected", "replays again"],
)
def test_an_archive_link_that_replays_or_is_not_known_not_to_is_left_alone(
    store, tmp_path, replays
):
    path = tmp_path / "p.md"
    scan(store, path, f"<{CITED}>\n", "markdown", [(f"<{CITED}>", CITED)])
    judge(store, ORIGINAL, "dead", [("20170901000000", 200), ("20171017230858", 200)])
    for fields in replays:
        replayed(store, ORIGINAL, "20171017230858", **fields)
    assert store.broken_citations() == []
    result = plan_fix(store, path)
    assert result.diff == "" and result.replaced == [] and result.unresolved == []


# -- what --write writes reads back as exactly the replacement ---------------------------------------
# Read back twice: by citewatch's own reader (cited_urls) and by markdown-it, a CommonMark parser
# with GFM tables (markdown_urls). A second plan is empty only when the file cites the replacement.


def markdown_urls(path: Path) -> list[str]:
    """Link destinations, autolinks, raw HTML hrefs and bare URLs of ``path`` as CommonMark (with
    GFM tables) reads them: escapes and character references decoded, nothing percent-encoded."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    from citewatch.extract.bare import find_urls

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    md.normalizeLink = lambda url: url
    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(value for name, value in attrs if name in ("href", "src"))

    for token in md.parse(path.read_text()):
        depth = 0  # inside a link: its text is no bare URL
        for child in token.children or []:
            if child.type == "link_open":
                found.append(child.attrs["href"])
                depth += 1
            elif child.type == "link_close":
                depth -= 1
            elif child.type == "html_inline":
                Links().feed(child.content)
            elif child.type == "text" and not depth:
                found.extend(u.url for u in find_urls(child.content))
    return found


def table_cells(path: Path) -> list[int]:
    """The number of cells of each GFM table row of ``path`` (markdown-it)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(path.read_text())
    rows, cells = [], 0
    for token in tokens:
        if token.type in ("th_open", "td_open"):
            cells += 1
        elif token.type == "tr_close":
            rows.append(cells)
            cells = 0
    return rows


def test_a_capture_rejected_after_an_earlier_fix_is_rewritten_not_counted_as_fixed(store, tmp_path):
    path = tmp_path / "p.md"
    scan_read(store, path, "See [x](https://o.example/p).\n")
    judge(store, "https://o.example/p", "dead", [("20180101000000", 200), ("20190101000000", 200)])
    first = plan_fix(store, path)
    write_fix(first, path)
    assert cited_urls(path) == [f"{WB}/20190101000000/https://o.example/p"]
    # Later, `archive --verify` finds the capture written a soft-404: it does not count as fixed.
    replayed(store, "https://o.example/p", "20190101000000", status=200, soft_404=1)
    second = plan_fix(store, path)
    assert second.already_fixed == [] and second.refused is None
    [entry] = second.replaced
    assert (entry["replacement"], entry["snapshot"], entry["mode"]) == (
        f"{WB}/20180101000000/https://o.example/p",
        "20180101000000",
        "replace",
    )
    write_fix(second, path)
    assert path.read_text() == f"See [x]({WB}/20180101000000/https://o.example/p).\n"
    assert cited_urls(path) == markdown_urls(path) == [f"{WB}/20180101000000/https://o.example/p"]
    third = plan_fix(store, path)  # the database still describes the scanned file
    assert third.diff == "" and third.refused is None and third.replaced == []
    [done] = third.already_fixed
    assert (done["replacement"], done["snapshot"]) == (
        f"{WB}/20180101000000/https://o.example/p",
        "20180101000000",
    )


def test_already_fixed_names_the_capture_the_site_carries_not_todays_choice(store, tmp_path):
    path = tmp_path / "p.md"
    scan_read(store, path, "See <https://o.example/p>.\n")
    judge(store, "https://o.example/p", "dead", [("20180101000000", 200)])
    write_fix(plan_fix(store, path), path)
    judge(store, "https://o.example/p", "dead", [("20190101000000", 200)])  # a better one, later
    again = plan_fix(store, path)
    assert again.diff == "" and again.replaced == []
    [done] = again.already_fixed  # a usable capture written earlier still counts as fixed
    assert (done["replacement"], done["snapshot"]) == (
        f"{WB}/20180101000000/https://o.example/p",
        "20180101000000",
    )


def test_robust_links_naming_a_rejected_capture_get_the_current_one(store, tmp_path):
    path = tmp_path / "p.html"
    tag = '<a href="https://o.example/p">'
    scan(store, path, f"<p>{tag}x</a></p>\n", "html", [(tag, "https://o.example/p")])
    judge(store, "https://o.example/p", "dead", [("20180101000000", 200), ("20190101000000", 200)])
    write_fix(plan_fix(store, path), path)
    replayed(store, "https://o.example/p", "20190101000000", status=404, memento_datetime=None)
    second = plan_fix(store, path)
    assert second.refused is None and second.already_fixed == []
    assert second.replaced[0]["snapshot"] == "20180101000000"
    write_fix(second, path)
    assert path.read_text() == (
        f'<p><a href="{WB}/20180101000000/https://o.example/p"'
        ' data-originalurl="https://o.example/p" data-versiondate="2018-01-01">x</a></p>\n'
    )
    third = plan_fix(store, path)
    assert third.diff == "" and third.already_fixed[0]["snapshot"] == "20180101000000"


ENTITY_URL = "https://new.example/p?a=1&copy;=2&#169;=3&#xA9;=4&b=5"


@pytest.mark.parametrize(
    "text",
    [
        "See [x](https://old.example/p).\n",
        "See [x](<https://old.example/p>).\n",
        "See https://old.example/p for more.\n",
        "See [x][1].\n\n[1]: https://old.example/p\n",
        "See <https://old.example/p>.\n",
        'See <a href="https://old.example/p">x</a>.\n',
        'See <a title="a > b" href="https://old.example/p">x</a>.\n',
        "See <a title='a > b' href=https://old.example/p>x</a>.\n",
    ],
    ids=[
        "destination",
        "angle",
        "bare",
        "definition",
        "autolink",
        "raw html",
        "raw html, '>' in an earlier value",
        "raw html, unquoted",
    ],
)
def test_character_references_in_a_replacement_are_written_so_markdown_keeps_them(
    store, tmp_path, text
):
    # CommonMark reads "&copy;" as "©" in destinations, definitions and text (citewatch's reader
    # too): written so, the link would point elsewhere.
    path = tmp_path / "p.md"
    scan_read(store, path, text)
    judge(store, "https://old.example/p", "moved", moved_to=ENTITY_URL)
    result = plan_fix(store, path, include_moved=True)
    assert [r["replacement"] for r in result.replaced] == [ENTITY_URL]
    write_fix(result, path)
    assert cited_urls(path) == [ENTITY_URL]
    assert markdown_urls(path) == [ENTITY_URL]
    again = plan_fix(store, path, include_moved=True)
    assert again.diff == "" and again.refused is None
    assert [d["replacement"] for d in again.already_fixed] == [ENTITY_URL]


PIPE_URL = "https://n.example/?ids=1|2"


@pytest.mark.parametrize(
    "cell",
    [
        "[x](https://o.example/p)",
        "[x](<https://o.example/p>)",
        "<https://o.example/p>",
        "https://o.example/p",
        '<a href="https://o.example/p">x</a>',
    ],
    ids=["destination", "angle", "autolink", "bare", "raw html"],
)
def test_a_pipe_in_a_replacement_never_breaks_a_table_row(store, tmp_path, cell):
    path = tmp_path / "p.md"
    scan_read(
        store, path, f"| a | b |\n|---|---|\n| {cell} | y |\n\nAlso [z](https://o.example/p).\n"
    )
    judge(store, "https://o.example/p", "moved", moved_to=PIPE_URL)
    result = plan_fix(store, path, include_moved=True)
    assert len(result.replaced) == 2
    write_fix(result, path)
    assert table_cells(path) == [2, 2]  # the row keeps its two cells
    assert cited_urls(path) == [PIPE_URL, PIPE_URL]
    assert markdown_urls(path) == [PIPE_URL, PIPE_URL]
    assert path.read_text().endswith(f"Also [z]({PIPE_URL}).\n")  # no table, no escape
    again = plan_fix(store, path, include_moved=True)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 2


def test_the_text_dumps_get_parentheses_their_reader_reads_back(store, tmp_path):
    # The text dumps' reader takes a plain destination with paired parentheses only, and reads no
    # "\(" there: an unpaired one goes in a "<…>" destination (read back exactly); a bare URL, where
    # "<…>" would change the text's look, gets it percent-encoded.
    path = tmp_path / "p.txt"
    base = "https://www.washingtoninstitute.org"
    text = "[A \\(/a\\)](/a)\n[B \\(/b\\)](/b)\n\nSyria (/c)\n"
    scan_read(store, path, text, base)
    assert cited_urls(path, base) == [f"{base}/a", f"{base}/b", f"{base}/c"]
    judge(store, f"{base}/a", "moved", moved_to="https://n.example/x?q=(1")
    judge(store, f"{base}/b", "moved", moved_to="https://n.example/y_(2)")
    judge(store, f"{base}/c", "moved", moved_to="https://n.example/z?q=1)")
    result = plan_fix(store, path, include_moved=True)
    assert result.new_text == (
        "[A \\(/a\\)](<https://n.example/x?q=(1>)\n[B \\(/b\\)](https://n.example/y_(2))\n"
        "\nSyria (https://n.example/z?q=1%29)\n"
    )
    write_fix(result, path)
    assert cited_urls(path, base) == [
        "https://n.example/x?q=(1",
        "https://n.example/y_(2)",
        "https://n.example/z?q=1%29",
    ]
    again = plan_fix(store, path, include_moved=True)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 3


def test_an_other_capture_rejected_after_an_earlier_fix_is_replaced_in_turn(store, tmp_path):
    path = tmp_path / "p.md"
    scan(store, path, f"<{CITED}>\n", "markdown", [(f"<{CITED}>", CITED)])
    judge(store, ORIGINAL, "dead", [("20160101000000", 200), ("20170901000000", 200)])
    not_archived(store, ORIGINAL, "20171017230858")
    write_fix(plan_fix(store, path), path)
    assert path.read_text() == f"<{WB}/20170901000000/{ORIGINAL}>\n"
    replayed(store, ORIGINAL, "20170901000000", status=200, soft_404=1)
    second = plan_fix(store, path)
    assert second.refused is None and second.already_fixed == []
    assert second.new_text == f"<{WB}/20160101000000/{ORIGINAL}>\n"
    write_fix(second, path)
    third = plan_fix(store, path)
    assert third.diff == "" and third.already_fixed[0]["snapshot"] == "20160101000000"


# -- HTML: Robust Links read back, rescanned, converted -----------------------------------------------
# What fix writes in HTML is read back by citewatch's own HTML reader (scan_read / rescan) as a
# cited archive link of the original URL, exactly as a rewritten Markdown link is: judged by its
# replay, so a usable capture is not broken (Store.broken_citations) and fix plans nothing more.


def rescan(store: Store, path: Path) -> None:
    """Store ``path`` as citewatch's reader reads it now (a rescan after ``fix --write``)."""
    store.save_profile(read_profile(path), store.begin_run("scan"))


def old_robust_link(url: str, timestamp: str, text: str) -> str:
    """A dead link as an earlier citewatch decorated it ("link to the original" form)."""
    day = f"{timestamp[:4]}-{timestamp[4:6]}-{timestamp[6:8]}"
    return (
        f'<a href="{url}" data-originalurl="{url}" data-versionurl="{WB}/{timestamp}/{url}"'
        f' data-versiondate="{day}">{text}</a>'
    )


def memento_link(url: str, timestamp: str) -> dict[str, str | None]:
    """The attributes of a link in the "link to the memento" form, as an HTML parser reads them."""
    day = f"{timestamp[:4]}-{timestamp[4:6]}-{timestamp[6:8]}"
    return {"href": f"{WB}/{timestamp}/{url}", "data-originalurl": url, "data-versiondate": day}


def one_line_of_links(urls: list[str], link) -> str:
    return "<p>See " + ", ".join(link(u, n) for n, u in enumerate(urls, 1)) + ".</p>\n"


LINE_URLS = ["https://d.example/1?a=1&b=2", "https://d.example/2", "https://d.example/3"]


@pytest.mark.parametrize("count", [2, 3])
def test_memento_links_on_one_line_are_found_again_and_read_back_as_archive_links(
    store, tmp_path, count
):
    urls = LINE_URLS[:count]
    path = tmp_path / "p.html"
    text = one_line_of_links(urls, lambda u, n: f'<a href="{u.replace("&", "&amp;")}">{n}</a>')
    scan_read(store, path, text)
    for n, url in enumerate(urls, 1):
        judge(store, url, "dead", [(f"2020010{n}000000", 200)])
    assert [b["cited_url"] for b in store.broken_citations()] == urls
    first = plan_fix(store, path)
    assert [r["url"] for r in first.replaced] == urls and first.unresolved == []
    write_fix(first, path)
    expected = [memento_link(u, f"2020010{n}000000") for n, u in enumerate(urls, 1)]
    assert link_attributes(path) == expected
    # The database still describes the undecorated file: every link is found, already fixed.
    again = plan_fix(store, path)
    assert again.diff == "" and again.refused is None and again.unresolved == []
    assert [d["url"] for d in again.already_fixed] == urls
    assert {d["snapshot"] for d in again.already_fixed} == {
        f"2020010{n}000000" for n in range(1, count + 1)
    }
    # Rescanned: each link is a cited archive link of its original URL, judged by its replay.
    rescan(store, path)
    assert cited_urls(path) == [e["href"] for e in expected]
    rows = store.query("SELECT url, archived_timestamp FROM current_citations JOIN urls"
                       " ON urls.id = current_citations.url_id ORDER BY col")  # fmt: skip
    assert [(r["url"], r["archived_timestamp"]) for r in rows] == [
        (u, f"2020010{n}000000") for n, u in enumerate(urls, 1)
    ]
    for n, url in enumerate(urls, 1):
        replayed(store, url, f"2020010{n}000000", status=200, memento_datetime=f"2020010{n}000000")
    assert store.broken_citations() == [], "a fixed link must not stay broken"
    after = plan_fix(store, path)
    assert after.diff == "" and after.refused is None
    assert after.replaced == after.unresolved == after.already_fixed == []


@pytest.mark.parametrize("count", [2, 3])
def test_robust_links_of_an_earlier_citewatch_are_converted_to_the_memento_form(
    store, tmp_path, count
):
    # An earlier citewatch kept the dead href and added data-versionurl: read back, that link still
    # cites the dead URL (broken for ever). Rescanned so, several on one line, each is found at its
    # recorded column (the URL stands three times in each tag: never "raw text not found") and
    # converted, keeping the capture it names while that still counts.
    urls = LINE_URLS[:count]
    path = tmp_path / "p.html"
    old = one_line_of_links(urls, lambda u, n: old_robust_link(u, f"2019010{n}000000", str(n)))
    scan_read(store, path, old.replace("&b=", "&amp;b="))
    for n, url in enumerate(urls, 1):
        judge(store, url, "dead", [(f"2019010{n}000000", 200), (f"2020010{n}000000", 200)])
    assert [b["cited_url"] for b in store.broken_citations()] == urls
    first = plan_fix(store, path)
    assert first.unresolved == [] and first.already_fixed == [] and first.refused is None
    assert [(r["url"], r["snapshot"], r["mode"]) for r in first.replaced] == [
        (u, f"2019010{n}000000", "robust_links") for n, u in enumerate(urls, 1)
    ]
    write_fix(first, path)
    assert link_attributes(path) == [
        memento_link(u, f"2019010{n}000000") for n, u in enumerate(urls, 1)
    ]
    again = plan_fix(store, path)  # not rescanned: our conversion is no outside change
    assert again.diff == "" and again.refused is None and again.unresolved == []
    assert [d["url"] for d in again.already_fixed] == urls
    rescan(store, path)
    assert store.broken_citations() == []
    after = plan_fix(store, path)
    assert after.diff == "" and after.replaced == after.already_fixed == after.unresolved == []


def test_robust_links_an_earlier_citewatch_added_since_the_scan_are_converted_too(store, tmp_path):
    # The database describes the file before an earlier citewatch decorated it (no rescan since).
    path = tmp_path / "p.html"
    scan_read(store, path, one_line_of_links(LINE_URLS[1:], lambda u, n: f'<a href="{u}">{n}</a>'))
    for url in LINE_URLS[1:]:
        judge(store, url, "dead", [("20190101000000", 200)])
    path.write_text(
        one_line_of_links(LINE_URLS[1:], lambda u, n: old_robust_link(u, "20190101000000", str(n)))
    )
    first = plan_fix(store, path)
    assert first.refused is None and first.unresolved == [] and len(first.replaced) == 2
    write_fix(first, path)
    assert link_attributes(path) == [memento_link(u, "20190101000000") for u in LINE_URLS[1:]]
    again = plan_fix(store, path)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 2


def test_a_rejected_capture_on_a_line_of_robust_links_is_refreshed(store, tmp_path):
    urls = LINE_URLS[1:]
    path = tmp_path / "p.html"
    # Earlier citewatch's form, rescanned: the second link's data-versionurl no longer replays.
    scan_read(
        store,
        path,
        one_line_of_links(urls, lambda u, n: old_robust_link(u, "20190101000000", str(n))),
    )
    for url in urls:
        judge(store, url, "dead", [("20180101000000", 200), ("20190101000000", 200)])
    replayed(store, urls[1], "20190101000000", status=200, soft_404=1)
    first = plan_fix(store, path)
    assert first.unresolved == [] and first.refused is None
    assert [(r["url"], r["snapshot"]) for r in first.replaced] == [
        (urls[0], "20190101000000"),  # still usable: kept
        (urls[1], "20180101000000"),  # rejected: the current best instead
    ]
    write_fix(first, path)
    assert link_attributes(path) == [
        memento_link(urls[0], "20190101000000"),
        memento_link(urls[1], "20180101000000"),
    ]
    # Rescanned (memento form), a capture later found not to replay: href and date are refreshed.
    rescan(store, path)
    replayed(store, urls[0], "20190101000000", status=404, memento_datetime=None)
    assert [b["url"] for b in store.broken_citations()] == [urls[0]]
    second = plan_fix(store, path)
    assert second.unresolved == [] and second.refused is None
    [entry] = second.replaced
    assert (entry["url"], entry["snapshot"], entry["mode"]) == (
        f"{WB}/20190101000000/{urls[0]}",
        "20180101000000",
        "robust_links",
    )
    write_fix(second, path)
    assert link_attributes(path) == [
        memento_link(urls[0], "20180101000000"),
        memento_link(urls[1], "20180101000000"),
    ]
    third = plan_fix(store, path)  # not rescanned: found again, and our own rewrite only
    assert third.diff == "" and third.refused is None and len(third.already_fixed) == 1
    rescan(store, path)
    assert store.broken_citations() == []
    assert plan_fix(store, path).diff == ""


def test_an_unquoted_href_ending_in_a_slash_keeps_its_slash(store, tmp_path):
    # "/" just before ">" ends an unquoted value here, it does not close the tag.
    path = tmp_path / "p.html"
    scan_read(
        store, path, "<p><a href=https://s.example/p/>x</a> <a href='https://s.example/q' />y</p>\n"
    )
    judge(store, "https://s.example/p/", "dead", [("20200101000000", 200)])
    judge(store, "https://s.example/q", "dead", [("20200101000000", 200)])
    write_fix(plan_fix(store, path), path)
    assert link_attributes(path) == [
        memento_link("https://s.example/p/", "20200101000000"),
        memento_link("https://s.example/q", "20200101000000"),
    ]
    assert plan_fix(store, path).diff == ""


def test_robust_links_naming_a_copy_citewatch_does_not_know_are_listed_not_dropped(store, tmp_path):
    path = tmp_path / "p.html"
    elsewhere = "https://archive.ph/abcde"
    text = (
        f'<p><a href="https://e.example/p" data-versionurl="{elsewhere}"'
        ' data-versiondate="2019-05-05">x</a></p>\n'
    )
    scan_read(store, path, text)
    judge(store, "https://e.example/p", "dead", [("20190101000000", 200)])
    result = plan_fix(store, path)
    assert result.diff == "" and result.replaced == [] and result.refused is None
    [entry] = result.unresolved
    assert entry["url"] == "https://e.example/p" and elsewhere in entry["reason"]


def test_two_citations_recorded_at_one_place_are_never_rewritten_over_each_other(store, tmp_path):
    # A reader once placed one URL cited twice in a table row at its first occurrence (both at
    # the same line and column): applying both edits there wrote a corrupted row. One edit is
    # made; the other citation waits for a rescan.
    path = tmp_path / "p.md"
    url = "https://o.example/p"
    text = f"| a | b |\n|---|---|\n| [x]({url}) | [y]({url}) |\n"
    scan(store, path, text, "markdown", [(url, url), (url, url)], base=None)
    assert [(r["line"], r["col"]) for r in store.query("SELECT * FROM citations")] == [(3, 7)] * 2
    judge(store, url, "dead", [("20200101000000", 200)])
    archived = f"{WB}/20200101000000/{url}"
    result = plan_fix(store, path)
    [done] = result.replaced
    assert (done["line"], done["column"], done["replacement"]) == (3, 7, archived)
    [left] = result.unresolved
    assert (left["line"], left["column"], left["url"]) == (3, 7, url)
    assert left["reason"] == (
        "overlaps another edit at line 3, column 7: not rewritten (rescan, then fix again)"
    )
    assert changed_lines(result.diff) == (
        [f"| [x]({url}) | [y]({url}) |"],
        [f"| [x]({archived}) | [y]({url}) |"],
    )
    write_fix(result, path)
    assert path.read_text() == f"| a | b |\n|---|---|\n| [x]({archived}) | [y]({url}) |\n"
    assert table_cells(path) == [2, 2]
    assert cited_urls(path) == [archived, url]
    # Planned again without a rescan: the first is recognised, the other still set aside, and our
    # own rewrite is not taken for a change elsewhere (nothing reverted twice).
    again = plan_fix(store, path)
    assert again.diff == "" and again.refused is None and len(again.already_fixed) == 1
    assert [u["reason"] for u in again.unresolved] == [left["reason"]]


def test_the_already_fixed_note_is_true_of_archived_copies_and_new_locations():
    assert already_fixed_note(1) == "1 citation already points at its archived copy or new location"
    assert (
        already_fixed_note(3) == "3 citations already point at their archived copy or new location"
    )


@pytest.mark.parametrize(
    "before",
    [
        'data-content="<b>Note</b>"',  # a Bootstrap popover's HTML
        'title="1<2" alt="p>q"',
        "title=it's",  # an unquoted value holding a quote
        "title='a>b' data-x=\"<i \"",
        'data-a="<a x=\'" data-b="\'>"',  # a value that reads as the start of another tag
    ],
)
def test_earlier_attribute_values_holding_angle_brackets_keep_the_link_whole(
    store, tmp_path, before
):
    # The tag starts at the '<' whose attributes (HTML's grammar) reach the href's value, not at
    # the last '<' before it: the decoration goes after the href, never inside another value.
    path = tmp_path / "p.html"
    url = "https://d.example/x"
    scan_read(store, path, f'<p><a {before} href="{url}">x</a></p>\n')
    judge(store, url, "dead", [("20200102030405", 200)])
    wanted = link_attributes(path)[0] | memento_link(url, "20200102030405")
    result = plan_fix(store, path)
    if result.replaced:
        write_fix(result, path)
        assert link_attributes(path) == [wanted]
        assert cited_urls(path) == [f"{WB}/20200102030405/{url}"]
        assert plan_fix(store, path).diff == ""
    else:  # never corrupted: listed, the file untouched
        assert result.diff == "" and len(result.unresolved) == 1


def test_a_url_in_an_attribute_other_than_a_link_is_never_decorated(store, tmp_path):
    from citewatch.fix import _tag_bounds

    text = '<a title="https://d.example/x" href="https://d.example/y">'
    assert _tag_bounds(text, text.index("https://d.example/x")) is None
    assert _tag_bounds(text, text.index("https://d.example/y")) == (0, len(text) - 1)
    text = '<a data-content="<a href=\'https://d.example/x\'>" href="y">'
    assert _tag_bounds(text, text.index("https://d.example/x")) is None


@pytest.mark.parametrize(
    "extra",
    [
        'data-versiondate="2020-01-02T03:04"',  # the capture's day already
        'data-originalurl="https://d.example/x"',
        "data-versiondate",  # valueless
        'data-versiondate=""',
        'data-originalurl="https://d.example/x" data-versiondate',
    ],
)
def test_a_link_with_some_robust_links_attributes_is_completed_and_recognised_after(
    store, tmp_path, extra
):
    # Only what the link lacks is added (a valueless date gets its value); the next plan, without
    # a rescan, recognises citewatch's own edit: a second `fix --write` is a no-op, exit 0.
    path = tmp_path / "p.html"
    url = "https://d.example/x"
    scan_read(store, path, f'<p><a href="{url}" {extra}>x</a></p>\n')
    judge(store, url, "dead", [("20200102030405", 200)])
    [done] = plan_fix(store, path).replaced
    assert done["mode"] == "robust_links"
    write_fix(plan_fix(store, path), path)
    [attrs] = link_attributes(path)
    assert attrs["href"] == f"{WB}/20200102030405/{url}"
    assert attrs["data-originalurl"] == url
    assert attrs["data-versiondate"].startswith("2020-01-02")
    assert len(attrs) == 3 and cited_urls(path) == [attrs["href"]]
    again = plan_fix(store, path)
    assert again.refused is None and again.diff == "" and len(again.already_fixed) == 1
    db = tmp_path / "t.db"
    run = CliRunner().invoke(app, ["fix", str(path), "--write", "--db", str(db)])
    assert run.exit_code == 0, run.output
    assert link_attributes(path) == [attrs]


def test_a_link_dated_by_its_author_on_another_day_is_listed_not_rewritten(store, tmp_path):
    # Rewriting the date would lose the author's, and with it the means to recognise the file.
    path = tmp_path / "p.html"
    url = "https://d.example/x"
    scan_read(store, path, f'<p><a href="{url}" data-versiondate="2019-05-05">x</a></p>\n')
    judge(store, url, "dead", [("20200102030405", 200)])
    result = plan_fix(store, path)
    assert result.diff == "" and result.replaced == [] and result.refused is None
    [entry] = result.unresolved
    assert "data-versiondate (2019-05-05)" in entry["reason"]


def test_a_reference_definition_used_twice_is_rewritten_once_and_both_citations_counted(
    store, tmp_path
):
    # Each link using the definition is a citation at the definition's place: the same edit,
    # made once, reported for both; planned again, both are already fixed (nothing "overlaps").
    path = tmp_path / "p.md"
    url = "https://x.example/p"
    scan_read(store, path, f"See [a][r] and [b][r].\n\n[r]: {url}\n")
    judge(store, url, "dead", [("20200101000000", 200)])
    archived = f"{WB}/20200101000000/{url}"
    result = plan_fix(store, path)
    assert result.unresolved == [] and result.refused is None
    assert [(r["line"], r["column"], r["replacement"]) for r in result.replaced] == [
        (3, 6, archived)
    ] * 2
    assert changed_lines(result.diff) == ([f"[r]: {url}"], [f"[r]: {archived}"])
    write_fix(result, path)
    assert cited_urls(path) == [archived, archived]
    again = plan_fix(store, path)
    assert again.diff == "" and again.unresolved == [] and again.refused is None
    assert [r["replacement"] for r in again.already_fixed] == [archived] * 2


def mixed_links(store: Store, path: Path, memento: int, plain: int, partial: int) -> list[str]:
    """A page of dead links, each on its own line: ``memento`` cited archive links (Robust Links'
    memento form) whose capture stopped replaying, ``plain`` undecorated links and ``partial``
    links carrying some of the Robust Links attributes; scanned, each with two usable captures."""
    extras = [
        "data-versiondate",
        'data-versiondate=""',
        'data-originalurl="{u}"',
        'data-originalurl="{u}" data-versiondate',
    ]
    urls = [f"https://d.example/{n}" for n in range(memento + plain + partial)]
    lines = []
    for n, url in enumerate(urls):
        if n < memento:
            attrs = {**memento_link(url, "20190101000000")}
            written = " ".join(f'{k}="{v}"' for k, v in attrs.items())
        elif n < memento + plain:
            written = f'href="{url}"'
        else:
            written = f'href="{url}" ' + extras[(n - memento - plain) % 4].format(u=url)
        lines.append(f"<p>Link {n}: <a {written}>source {n}</a></p>\n")
    scan_read(store, path, "".join(lines))
    for url in urls:
        judge(store, url, "dead", [("20190101000000", 200), ("20180101000000", 200)])
    for url in urls[:memento]:
        replayed(store, url, "20190101000000", status=404, memento_datetime=None)
    return urls


@pytest.mark.parametrize(
    ("memento", "plain", "partial", "backup"),
    [(4, 4, 0, True), (4, 4, 4, True), (0, 0, 8, True), (4, 4, 0, False), (6, 6, 0, False)],
)
def test_many_fixed_links_are_recognised_after_write_without_a_rescan(
    store, tmp_path, memento, plain, partial, backup
):
    # After `fix --write` (no rescan) whether each site carried Robust Links attributes when it was
    # scanned is told site by site against the backup `--write` kept (the scanned bytes, by their
    # sha256), however many sites; without the backup, from what the database knows (a cited
    # archive link: its memento form with the cited day; a plain link: undecorated) first.
    path = tmp_path / "p.html"
    urls = mixed_links(store, path, memento, plain, partial)
    first = plan_fix(store, path)
    assert first.refused is None and first.unresolved == []
    assert len(first.replaced) == len(urls)
    write_fix(first, path)
    if not backup:
        path.with_name("p.html.bak").unlink()
    expected = [
        memento_link(u, "20180101000000" if n < memento else "20190101000000")
        for n, u in enumerate(urls)
    ]
    assert link_attributes(path) == expected
    again = plan_fix(store, path)
    assert again.refused is None and again.diff == "" and again.unresolved == []
    assert len(again.already_fixed) == len(urls)
    run = CliRunner().invoke(app, ["fix", str(path), "--write", "--db", str(tmp_path / "t.db")])
    assert run.exit_code == 0, run.output
    assert link_attributes(path) == expected


@pytest.mark.parametrize("backup", [True, False])
@pytest.mark.parametrize("edit", [("Link 5:", "Link five:"), ("source 11<", "source eleven<")])
def test_many_fixed_links_and_an_outside_edit_to_one_line_is_still_refused(
    store, tmp_path, backup, edit
):
    path = tmp_path / "p.html"
    urls = mixed_links(store, path, 4, 4, 4)
    write_fix(plan_fix(store, path), path)
    if not backup:
        path.with_name("p.html.bak").unlink()
    path.write_text(path.read_text().replace(*edit))
    again = plan_fix(store, path)
    assert again.refused and "changed since it was scanned" in again.refused
    assert len(again.already_fixed) == len(urls)
    judge(store, urls[0], "dead", [("20170101000000", 200)])  # something to write
    run = CliRunner().invoke(app, ["fix", str(path), "--write", "--db", str(tmp_path / "t.db")])
    assert run.exit_code == 2, run.output
    assert edit[1] in path.read_text()


def test_a_backup_that_is_not_the_scanned_file_is_not_trusted(store, tmp_path):
    # Only a backup with the scanned sha256 stands for the scanned text.
    path = tmp_path / "p.html"
    mixed_links(store, path, 4, 4, 0)
    write_fix(plan_fix(store, path), path)
    path.with_name("p.html.bak").write_text(path.read_text().replace("Link 5:", "Link five:"))
    assert plan_fix(store, path).refused is None
    path.write_text(path.read_text().replace("Link 5:", "Link five:"))
    assert plan_fix(store, path).refused
