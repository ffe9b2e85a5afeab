"""Classification rules and the prober's handling of answers, with httpx.MockTransport (no sockets)."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import zlib
from collections.abc import Callable

import httpcore
import httpx
import pytest

from citewatch.check.classify import (
    HostPrint,
    Page,
    is_bot_wall,
    is_error_path,
    is_home_path,
    matches_host_print,
    outcome_for_exception,
    outcome_for_status,
    says_not_found,
    soft_404_reason,
    title_says_not_found,
)
from citewatch.check.probe import Prober, read_capped, read_text, sha1_base32
from citewatch.check.scheduler import Scheduler
from citewatch.config import Settings
from citewatch.models import Outcome, ProbeResult
from citewatch.net import NameResolutionError, PrivateAddressError


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.OK),
        (204, Outcome.OK),
        (404, Outcome.NOT_FOUND),
        (410, Outcome.GONE),
        (401, Outcome.BLOCKED),
        (403, Outcome.BLOCKED),
        (407, Outcome.BLOCKED),
        (451, Outcome.BLOCKED),
        (999, Outcome.BLOCKED),
        (429, Outcome.BLOCKED),
        (400, Outcome.CLIENT_ERROR),
        (405, Outcome.CLIENT_ERROR),
        (500, Outcome.SERVER_ERROR),
        (503, Outcome.SERVER_ERROR),
        (300, Outcome.SERVER_ERROR),
    ],
)
def test_status_outcomes(status: int, outcome: Outcome) -> None:
    assert outcome_for_status(status) is outcome


def _wrapped(inner: BaseException, outer: type[Exception] = httpx.ConnectError) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer("wrapped") from exc
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (_wrapped(NameResolutionError("cannot resolve x.invalid")), Outcome.DNS_ERROR),
        (PrivateAddressError("localhost", "127.0.0.1"), Outcome.SKIPPED),
        (_wrapped(ssl.SSLCertVerificationError("certificate has expired")), Outcome.TLS_ERROR),
        (_wrapped(ssl.SSLError("handshake failure")), Outcome.TLS_ERROR),
        (_wrapped(ssl.SSLEOFError("EOF in violation of protocol")), Outcome.CONNECT_ERROR),
        (_wrapped(ConnectionRefusedError(111, "refused")), Outcome.CONNECT_ERROR),
        (_wrapped(ConnectionResetError(104, "reset"), httpx.ReadError), Outcome.CONNECT_ERROR),
        (httpx.ReadTimeout("timed out"), Outcome.TIMEOUT),
        (httpx.ConnectTimeout("timed out"), Outcome.TIMEOUT),
        (TimeoutError(), Outcome.TIMEOUT),
        (_wrapped(httpcore.ConnectTimeout("x")), Outcome.TIMEOUT),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            Outcome.CONNECT_ERROR,
        ),
        (httpx.RemoteProtocolError("illegal header line"), Outcome.SERVER_ERROR),
        (httpx.UnsupportedProtocol("ftp"), Outcome.INVALID_URL),
    ],
)
def test_exception_outcomes(exc: Exception, outcome: Outcome) -> None:
    got, message = outcome_for_exception(exc)
    assert got is outcome and message


@pytest.mark.parametrize(
    "text",
    [
        "Page not found – Example",
        "404",
        "Error 404 | News",
        "Sorry, this page doesn't exist",
        "The page could not be found",
        "This article is no longer available",
        "الصفحة غير موجودة",
        "عذرا، لم نتمكن من العثور على الصفحة",
        "خطأ 404",
        "المحتوى غير موجود",
    ],
)
def test_not_found_texts(text: str) -> None:
    assert says_not_found(text) or title_says_not_found(text)


@pytest.mark.parametrize(
    "title",
    [
        "Page not found – Example News",
        "404",
        "Error 404 | News",
        "404 Not Found",
        "Oops! Page not found",
        "Example News - Page Not Found",
        "الصفحة غير موجودة",
        "خطأ 404 | الموقع",
    ],
)
def test_not_found_titles(title: str) -> None:
    assert title_says_not_found(title)


@pytest.mark.parametrize(
    "title",
    [
        "Flight 404 lands safely",
        "Iran nuclear document not found, says IAEA",
        "المفقود غير موجود في السجلات",
    ],
)
def test_headlines_that_merely_mention_not_found_are_content(title: str) -> None:
    assert not title_says_not_found(title)


@pytest.mark.parametrize(
    "text",
    [
        "The missing journalist was not found by police.",
        "Flight 404 lands safely after a storm.",
        "Investigators said the weapon was not found at the scene.",
    ],
)
def test_short_stories_that_say_not_found_are_content(text: str) -> None:
    assert not says_not_found(text)


@pytest.mark.parametrize(
    "text", ["Iran's nuclear programme", "Found in translation", "تقرير عن الانتخابات", "", None]
)
def test_ordinary_texts(text: str | None) -> None:
    assert not says_not_found(text)


@pytest.mark.parametrize(
    "path", ["/", "", "/index.html", "/en/", "/ar", "/home", "/en-us/index.php"]
)
def test_home_paths(path: str) -> None:
    assert is_home_path(path)


@pytest.mark.parametrize("path", ["/news/2019/a", "/about", "/en/policy/x"])
def test_deep_paths(path: str) -> None:
    assert not is_home_path(path)


def test_error_paths() -> None:
    assert is_error_path("/errors/404.html") and is_error_path("/page-not-found")
    assert not is_error_path("/news/error-correction-policy-2019")


def test_bot_walls() -> None:
    assert is_bot_wall({"cf-mitigated": "challenge"}, None, "")
    assert is_bot_wall({}, "Just a moment...", "")
    assert is_bot_wall({}, None, "<div id='cf-chl-widget'>")
    assert is_bot_wall({}, None, "<SCRIPT SRC='/CDN-CGI/CHALLENGE-PLATFORM/x.js'>")  # any case
    assert not is_bot_wall({}, None, "x" * 20000 + "g-recaptcha")  # only the head is read
    assert not is_bot_wall({"server": "cloudflare"}, "Article", "<p>text</p>")


def page(url: str = "https://n.test/a/b", **kw: object) -> Page:
    base: dict[str, object] = {"url": url, "final_url": url, "status": 200}
    return Page(**{**base, **kw})  # type: ignore[arg-type]


def test_soft_404_reasons() -> None:
    assert "home page" in soft_404_reason(page(final_url="https://www.n.test/", redirected=True))
    assert "error page" in soft_404_reason(
        page(final_url="https://n.test/404.html", redirected=True)
    )
    assert "title" in soft_404_reason(page(title="Page Not Found"))
    assert "text" in soft_404_reason(page(title="News", text="Not found", text_length=9))
    long_text = "not found " + "x" * 5000
    assert soft_404_reason(page(title="News", text=long_text[:2000], text_length=5010)) is None
    # the home page itself redirecting to its https/www twin is fine
    assert (
        soft_404_reason(page("http://n.test/", final_url="https://n.test/", redirected=True))
        is None
    )
    # a redirect to another site's front page is not a soft 404 (moved domain)
    assert soft_404_reason(page(final_url="https://other.test/", redirected=True)) is None


def test_host_print_matching() -> None:
    fingerprint = HostPrint("https://n.test/x", "Welcome", "SHA", 1000, False)
    assert matches_host_print(page(sha1="SHA"), fingerprint)
    assert matches_host_print(page(title="Welcome", length=1100), fingerprint)
    assert not matches_host_print(page(title="Welcome", length=3000), fingerprint)
    assert not matches_host_print(page(title="Article", length=1000, sha1="OTHER"), fingerprint)
    moved = HostPrint("https://n.test/search", None, None, None, True)
    assert matches_host_print(page(final_url="https://n.test/search?q=a", redirected=True), moved)


def test_read_text_title_sample_and_charset() -> None:
    body = "<html><head><title> Café  news </title><script>var x</script></head><body>"
    body += "<p>" + "word " * 1000 + "</p></body></html>"
    text = read_text(body.encode("latin-1"), "text/html; charset=ISO-8859-1")
    assert text.title == "Café news"
    assert text.sample and len(text.sample.encode()) <= 2048 and "var x" not in text.sample
    assert text.length and text.length > 4000
    assert read_text(b"%PDF-1.4 ...", "application/pdf").title is None
    meta = "<meta charset='windows-1256'><title>عربي</title>".encode("cp1256")
    assert read_text(meta, "text/html").title == "عربي"


@pytest.mark.parametrize("charset", ["idna", "no-such-codec"])
def test_odd_charsets_never_crash_a_probe(charset: str) -> None:
    text = read_text(b"<title>Still here</title>", f"text/html; charset={charset}")
    assert text.title == "Still here"  # decoded as UTF-8 instead


def test_punycode_charset_decodes_without_crashing() -> None:
    assert read_text(b"<title>x</title>", "text/html; charset=punycode").length is not None


@pytest.mark.parametrize(
    ("charset", "body"),
    [
        ("utf-7", b"<title>+2AA- half</title><p>+2AA-</p>"),
        ("unicode_escape", b"<title>\\ud800 half</title>"),
        ("raw_unicode_escape", b"<title>\\udfff half</title><p>\\ud800</p>"),
    ],
)
def test_a_codec_that_spells_half_a_surrogate_pair_never_crashes(charset: str, body: bytes) -> None:
    """The page names its own codec; some (utf-7, Python's escape codecs) can spell half of a
    UTF-16 pair, which no database or UTF-8 report takes: it becomes U+FFFD."""
    for content_type in (f"text/html; charset={charset}", f"text/plain; charset={charset}"):
        text = read_text(body, content_type)
        for value in (text.title, text.sample, text.head):
            (value or "").encode("utf-8")  # no UnicodeEncodeError
        assert "\ufffd" in (text.title or text.sample or "")


def test_sha1_is_base32_like_cdx() -> None:
    assert sha1_base32(b"") == "3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ"


async def _capped(body: bytes, encoding: str | None, cap: int) -> tuple[bytes, bool]:
    headers = {"content-encoding": encoding} if encoding else {}
    response = httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))
    return await read_capped(response, cap)


def test_read_capped_counts_decoded_bytes_of_a_gzip_bomb() -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    body, complete = asyncio.run(_capped(bomb, "gzip", 100_000))
    assert (len(body), complete) == (100_000, False)
    small = gzip.compress(b"hello")
    assert asyncio.run(_capped(small, "gzip", 100)) == (b"hello", True)
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    data = raw_deflate.compress(b"deflated") + raw_deflate.flush()
    assert asyncio.run(_capped(data, "deflate", 100)) == (b"deflated", True)
    assert asyncio.run(_capped(b"x" * 50, None, 10)) == (b"x" * 10, False)


# -- the prober against a MockTransport -----------------------------------------------------


def run_probe(
    handler: Callable[[httpx.Request], httpx.Response], url: str, **overrides: object
) -> ProbeResult:
    settings = Settings(retries=2, backoff=0.0, retry_after_cap=0.01)
    for key, value in overrides.items():
        setattr(settings, key, value)

    async def go() -> ProbeResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await Prober(client, Scheduler(4, 2), settings).probe(url)

    return asyncio.run(go())


def html_page(title: str) -> bytes:
    return (
        f"<html><head><title>{title}</title></head><body><p>{title} text</p></body></html>".encode()
    )


def test_soft_404_host_probe_with_mock() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/real"):
            return httpx.Response(200, content=html_page("A real article"))
        return httpx.Response(200, content=html_page("Welcome"))

    assert run_probe(handler, "https://s.test/gone/article").outcome is Outcome.SOFT_404
    assert run_probe(handler, "https://s.test/real/article").outcome is Outcome.OK
    assert run_probe(handler, "https://s.test/").outcome is Outcome.OK  # never for the home page
    off = run_probe(handler, "https://s.test/gone/article", soft404_probe=False)
    assert off.outcome is Outcome.OK


def test_javascript_app_shells_are_cannot_tell_not_soft_404() -> None:
    shell = (
        b"<!doctype html><html><head><title>Example News</title>"
        b"<script type=module src=/assets/app.js></script></head>"
        b'<body><div id="root"></div><noscript>You need to enable JavaScript.</noscript></body></html>'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=shell, headers={"content-type": "text/html"})

    result = run_probe(handler, "https://spa.test/articles/2019/real-story")
    assert result.outcome is Outcome.BLOCKED  # "cannot tell": never evidence of death
    assert "JavaScript app" in (result.error or "")


def test_transient_statuses_are_retried_and_others_not() -> None:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        calls[request.url.path] = calls.get(request.url.path, 0) + 1
        if request.url.path == "/busy" and calls["/busy"] < 3:
            return httpx.Response(502)
        if request.url.path == "/missing":
            return httpx.Response(404)
        return httpx.Response(200, content=html_page("fine"))

    busy = run_probe(handler, "https://r.test/busy", soft404_probe=False)
    assert (busy.outcome, busy.attempts) == (Outcome.OK, 3)
    missing = run_probe(handler, "https://r.test/missing")
    assert (missing.outcome, missing.attempts, calls["/missing"]) == (Outcome.NOT_FOUND, 1, 1)


def test_connect_errors_are_retried_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    result = run_probe(handler, "https://down.test/x")
    assert (result.outcome, result.attempts) == (Outcome.CONNECT_ERROR, 3)
    assert "after 3 attempts" in result.error


def test_unsupported_schemes_are_skipped() -> None:
    result = run_probe(lambda r: httpx.Response(200), "ftp://files.test/x")
    assert result.outcome is Outcome.SKIPPED


def test_redirect_to_a_private_address_is_skipped_on_that_hop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "evil.test":
            return httpx.Response(302, headers={"location": "http://internal.test/admin"})
        raise PrivateAddressError("internal.test", "10.0.0.1")

    result = run_probe(handler, "https://evil.test/x")
    assert result.outcome is Outcome.SKIPPED and "10.0.0.1" in result.error
    assert result.redirects == ((302, "http://internal.test/admin"),)
