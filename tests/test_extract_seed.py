"""The seed profile, citation by citation: the specification of the text-dump reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from citewatch.extract import read_profile
from citewatch.extract.manifest import load_manifest
from citewatch.models import Citation, Role

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "citations"
SEED = CORPUS / "profile-liwa-al-baqir.txt"
SITE = "https://www.washingtoninstitute.org"
PAGE = f"{SITE}/policy-analysis/profile-liwa-al-baqir"
NAV, SRC = Role.NAVIGATION, Role.SOURCE
ALSOURIA = (
    "https://www.alsouria.net/content/%D8%A7%D9%84%D8%AA%D9%87%D9%85%D9%8A%D8%B4-%D9%8A%D8%AF%D9%81"
    "%D8%B9-%D9%85%D9%82%D8%A7%D8%AA%D9%84%D9%8A%D9%86-%D9%81%D9%8A-%D9%86%D8%B8%D8%A7%D9%85-%D8%A7"
    "%D9%84%D8%A3%D8%B3%D8%AF-%D9%84%D9%84%D8%A7%D8%B3%D8%AA%D9%82%D9%84%D8%A7%D9%84-%D8%B9%D9%86-%D8"
    "%A7%D9%84%D9%85%D9%8A%D9%84%D9%8A%D8%B4%D9%8A%D8%A7%D8%AA-%D8%A7%D9%84%D8%A3%D8%AC%D9%86%D8%A8"
    "%D9%8A%D8%A9-%D8%A8%D8%AD%D9%84%D8%A8"
)
WAYBACK = f"https://web.archive.org/web/20171017230858/{ALSOURIA}"
ALQUDS = (
    "https://www.alquds.co.uk/%D9%84%D9%88%D8%A7%D8%A1-%D8%A7%D9%84%D8%A8%D8%A7%D9%82%D8%B1-%D8%A7"
    "%D9%84%D9%85%D9%88%D8%A7%D9%84%D9%8A-%D9%84%D8%A5%D9%8A%D8%B1%D8%A7%D9%86-%D9%8A%D9%86%D8%B4"
    "%D8%B1-%D8%A7%D9%84%D8%AA/"
)
PDF = f"{SITE}/sites/default/files/pdf/PolicyNote52-2.pdf"
SERIES = "/policy-analysis/series/militia-spotlight-profiles"

# (line, column, raw, url, role, section, anchor text)
EXPECTED = [
    (
        5,
        50,
        "/experts/abdullah-hayek/",
        f"{SITE}/experts/abdullah-hayek/",
        NAV,
        "",
        "Abdullah Hayek (/experts/abdullah-hayek/)",
    ),
    (
        5,
        125,
        "/experts/michael-knights/",
        f"{SITE}/experts/michael-knights/",
        NAV,
        "",
        "Michael Knights (/experts/michael-knights/)",
    ),
    (
        11,
        47,
        "/experts/abdullah-hayek/",
        f"{SITE}/experts/abdullah-hayek/",
        NAV,
        "ABOUT THE AUTHORS",
        "Abdullah Hayek (/experts/abdullah-hayek/)",
    ),
    (
        17,
        49,
        "/experts/michael-knights/",
        f"{SITE}/experts/michael-knights/",
        NAV,
        "ABOUT THE AUTHORS",
        "Michael Knights (/experts/michael-knights/)",
    ),
    (
        25,
        139,
        f"{SITE}{SERIES}",
        f"{SITE}{SERIES}",
        NAV,
        "ABOUT THE AUTHORS",
        f"Militia Spotlight: Profiles ({SITE}{SERIES})",
    ),
    (
        27,
        114,
        "/policy-analysis/how-use-militia-spotlight-profiles/",
        f"{SITE}/policy-analysis/how-use-militia-spotlight-profiles/",
        NAV,
        "ABOUT THE AUTHORS",
        "How to Use Militia Spotlight: Profiles (/policy-analysis/how-use-militia-spotlight-profiles/)",
    ),
    (69, 50, WAYBACK, WAYBACK, SRC, "Affiliate relationships", ""),
    (
        69,
        658,
        "/node/16716",
        f"{SITE}/node/16716",
        SRC,
        "Affiliate relationships",
        "U.S.-designated Foreign Terrorist Organization",
    ),
    (71, 301, f"{PDF}#pdfjs.action=download", PDF, SRC, "Affiliate relationships", ""),
    (77, 489, ALQUDS, ALQUDS, SRC, "Subordinate relationships", ""),
    (
        81,
        30,
        SERIES,
        f"{SITE}{SERIES}",
        NAV,
        "Subordinate relationships",
        "Militia Spotlight: Profiles",
    ),
    (
        87,
        2,
        "/policy-analysis/how-use-militia-spotlight-profiles",
        f"{SITE}/policy-analysis/how-use-militia-spotlight-profiles",
        NAV,
        "Subordinate relationships",
        "How to Use Militia Spotlight: Profiles",
    ),
    (
        93,
        2,
        "/policy-analysis/profile-liwa-al-baqir",
        PAGE,
        NAV,
        "Subordinate relationships",
        "Profile: Liwa al-Baqir",
    ),
    (
        99,
        2,
        "/policy-analysis/profile-sons-jazira-and-euphrates-movement",
        f"{SITE}/policy-analysis/profile-sons-jazira-and-euphrates-movement",
        NAV,
        "Subordinate relationships",
        "Profile: The Sons of Jazira and Euphrates Movement",
    ),
    (
        117,
        2,
        "/policy-analysis/potential-escalation-iraq-part-2-asaib-and-nujaba",
        f"{SITE}/policy-analysis/potential-escalation-iraq-part-2-asaib-and-nujaba",
        NAV,
        "BRIEF ANALYSIS",
        "Potential Escalation in Iraq (Part 2): Asaib and Nujaba",  # the teaser's title, not its byline
    ),
    (
        131,
        2,
        "/policy-analysis/egyptians-quietly-lambast-sisis-accomplishments-ahead-elections",
        f"{SITE}/policy-analysis/egyptians-quietly-lambast-sisis-accomplishments-ahead-elections",
        NAV,
        "BRIEF ANALYSIS",
        'Egyptians Quietly Lambast Sisi\'s "Accomplishments" Ahead of Elections',
    ),
    (
        145,
        2,
        "/policy-analysis/mapping-clashes-along-israel-lebanon-border",
        f"{SITE}/policy-analysis/mapping-clashes-along-israel-lebanon-border",
        NAV,
        "ARTICLES & TESTIMONY",
        "Mapping Clashes Along the Israel-Lebanon Border",
    ),
    (
        149,
        22,
        "/policy-analysis/military-security",
        f"{SITE}/policy-analysis/military-security",
        NAV,
        "TOPICS",
        "Military & Security",
    ),
    (
        151,
        12,
        "/policy-analysis/terrorism",
        f"{SITE}/policy-analysis/terrorism",
        NAV,
        "TOPICS",
        "Terrorism",
    ),
    (
        155,
        7,
        "/policy-analysis/iran",
        f"{SITE}/policy-analysis/iran",
        NAV,
        "REGIONS & COUNTRIES",
        "Iran",
    ),
    (
        157,
        8,
        "/policy-analysis/syria",
        f"{SITE}/policy-analysis/syria",
        NAV,
        "REGIONS & COUNTRIES",
        "Syria",
    ),
]


@pytest.fixture(scope="module")
def seed():
    return read_profile(SEED, manifest=load_manifest(CORPUS))


@pytest.fixture(scope="module")
def lines():
    return SEED.read_text(encoding="utf-8").split("\n")


def test_metadata(seed):
    assert seed.format == "text"
    assert seed.title == "Profile: Liwa al-Baqir"
    assert seed.authors == ["Abdullah Hayek", "Michael Knights"]
    assert seed.published == "2023-11-01"
    assert seed.base_url == PAGE and not seed.base_url_guessed
    assert len(seed.sha256) == 64


def test_exact_citation_list(seed):
    got = [(c.line, c.column, c.raw, c.url, c.role, c.section, c.text) for c in seed.citations]
    assert got == EXPECTED


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_each_citation_points_at_its_raw_text(seed, lines, index):
    c: Citation = seed.citations[index]
    line = lines[c.line - 1]
    assert line[c.column - 1 : c.column - 1 + len(c.raw)] == c.raw
    assert c.page is None and c.skip_reason is None
    assert c.context and len(c.context) <= 402 and "\n" not in c.context


def test_wayback_autolink_is_unwrapped(seed):
    (c,) = [c for c in seed.citations if c.raw == WAYBACK]
    assert c.archived is not None
    assert c.archived.original == ALSOURIA
    assert c.archived.timestamp == "20171017230858"
    assert "According to" in c.context
    assert all(x.archived is None for x in seed.citations if x is not c)


def test_pdf_fragment_stays_on_the_citation(seed):
    (c,) = [c for c in seed.citations if c.line == 71]
    assert c.url == PDF and c.fragment == "pdfjs.action=download"
    assert "verbally attacked" in c.context


def test_contexts_are_the_sentence(seed):
    by_line = {c.line: c for c in seed.citations}
    assert by_line[77].context.startswith("In 2020, al-Quds al-Arabi listed")  # markup removed
    assert by_line[5].context == (
        "by Abdullah Hayek (/experts/abdullah-hayek/), Michael Knights (/experts/michael-knights/)"
    )
    assert "<https://" not in by_line[71].context and "**" not in by_line[71].context
    assert by_line[149].context == "Military & Security (/policy-analysis/military-security)"
    assert by_line[87].context == (
        "How to Use Militia Spotlight: Profiles (/policy-analysis/how-use-militia-spotlight-profiles)"
    )


def test_broken_link_block_is_one_finding_not_a_citation(seed):
    assert [(f.kind, f.line) for f in seed.findings] == [("malformed_url", 56)]
    finding = seed.findings[0]
    assert finding.raw == "(/sites/defa\n11/Screens\n11-\n01%20at%:"
    assert not [c for c in seed.citations if 56 <= c.line <= 59]
    assert not [c for c in seed.citations if c.raw.endswith("/sites/defa") or "Screens" in c.raw]


def test_prose_parentheticals_are_not_links(seed):
    raws = {c.raw for c in seed.citations}
    for prose in ("aka Hamza al-Hassan", "SDF", "LDF", "IRGC", "Quwat al-Difa al-Mahalli, or LDF"):
        assert prose not in raws and f"({prose})" not in raws
    assert all(c.url and c.url.startswith("https://") for c in seed.citations)
    lines_with_citations = {c.line for c in seed.citations}
    assert lines_with_citations.isdisjoint({31, 48, 61, 62, 63})


def test_echoed_urls_in_anchor_text_are_not_extra_citations(seed):
    assert [c.line for c in seed.citations].count(25) == 1
    assert [c.line for c in seed.citations].count(5) == 2


def test_without_manifest_the_base_is_guessed_from_the_documents_links():
    profile = read_profile(SEED)
    assert profile.base_url == f"{SITE}/" and profile.base_url_guessed
    assert [f.kind for f in profile.findings] == ["malformed_url", "guessed_base_url"]
    assert len(profile.citations) == len(EXPECTED)
    assert profile.citations[0].url == f"{SITE}/experts/abdullah-hayek/"


def test_base_url_argument_wins_over_the_manifest():
    profile = read_profile(
        SEED, base_url="https://mirror.example/a/b", manifest=load_manifest(CORPUS)
    )
    assert profile.base_url == "https://mirror.example/a/b"
    assert profile.citations[0].url == "https://mirror.example/experts/abdullah-hayek/"
    assert profile.title == "Profile: Liwa al-Baqir"


def test_sha256_is_of_the_raw_bytes(seed):
    import hashlib

    assert seed.sha256 == hashlib.sha256(SEED.read_bytes()).hexdigest()
    assert seed.path == SEED.as_posix()
