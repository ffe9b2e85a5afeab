"""URL identity: resolution, normalisation, skipped schemes, Wayback unwrapping."""

from __future__ import annotations

import pytest
from ada_url import URL
from hypothesis import given
from hypothesis import strategies as st

from citewatch.urls import InvalidURL, resolve, unwrap_wayback, wayback_replay_url

BASE = "https://www.washingtoninstitute.org/policy-analysis/profile-liwa-al-baqir"


def test_relative_paths_resolve_against_the_base():
    assert (
        resolve("/experts/abdullah-hayek/", BASE).url
        == "https://www.washingtoninstitute.org/experts/abdullah-hayek/"
    )
    assert resolve("syria", BASE).url == "https://www.washingtoninstitute.org/policy-analysis/syria"


def test_relative_link_without_base_is_invalid():
    with pytest.raises(InvalidURL):
        resolve("/node/16716", None)


def test_iri_and_its_percent_encoded_form_are_one_url():
    iri = resolve("https://www.alquds.co.uk/لواء-الباقر/", None).url
    encoded = resolve(
        "https://www.alquds.co.uk/%d9%84%d9%88%d8%a7%d8%a1-%d8%a7%d9%84%d8%a8%d8%a7%d9%82%d8%b1/",
        None,
    ).url
    assert iri == encoded
    assert iri.startswith("https://www.alquds.co.uk/%D9%84")


def test_host_case_default_port_and_dot_segments_are_normalised():
    assert resolve("HTTPS://Example.ORG:443/a/./b/../c", None).url == "https://example.org/a/c"


def test_only_c0_controls_and_space_are_trimmed():
    assert resolve("\t /a\u3000 \n", BASE).url == "https://www.washingtoninstitute.org/a%E3%80%80"


def test_fragment_stays_on_the_citation_not_the_url():
    r = resolve("https://x.org/PolicyNote52-2.pdf#pdfjs.action=download", None)
    assert r.url == "https://x.org/PolicyNote52-2.pdf"
    assert r.fragment == "pdfjs.action=download"


@pytest.mark.parametrize(
    "raw", ["mailto:a@b.org", "tel:+1555", "javascript:alert(1)", "data:text/plain,hi", "#top"]
)
def test_non_web_links_are_recorded_as_skipped(raw):
    assert resolve(raw, BASE).skip_reason


def test_wayback_links_unwrap_to_original_and_timestamp():
    cited = "https://web.archive.org/web/20171017230858/https://www.alsouria.net/content/%D8%A7"
    ref = resolve(cited, None).archived
    assert ref is not None
    assert ref.original == "https://www.alsouria.net/content/%D8%A7"
    assert ref.timestamp == "20171017230858"


@pytest.mark.parametrize(
    ("cited", "original"),
    [
        ("https://web.archive.org/web/2019id_/http://a.org/x?y=1", "http://a.org/x?y=1"),
        ("http://web.archive.org/web/20200101000000*/a.org/x", "http://a.org/x"),
        ("https://web.archive.org/web/20200101000000/https:/a.org/x", "https://a.org/x"),
    ],
)
def test_wayback_variants(cited, original):
    ref = unwrap_wayback(cited)
    assert ref is not None and ref.original == original


def test_non_wayback_urls_are_not_unwrapped():
    assert unwrap_wayback("https://example.org/web/20200101000000/https://a.org/") is None


def test_replay_url():
    assert (
        wayback_replay_url("20200101000000", "https://a.org/x")
        == "https://web.archive.org/web/20200101000000/https://a.org/x"
    )
    assert "20200101000000id_/" in wayback_replay_url("20200101000000", "https://a.org/x", raw=True)


@given(st.text(max_size=200))
def test_resolve_either_raises_invalid_url_or_returns_a_parseable_url(text):
    try:
        result = resolve(text, BASE)
    except InvalidURL:
        return
    if result.skip_reason is None:
        assert URL(result.url).href  # parses again
        assert "#" not in result.url
