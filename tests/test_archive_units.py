"""The archive layer's rules as pure functions: CDX parsing and queries, URL matching, the
availability answer, SPN error classes, the save rule, the circuit breaker, the rate limiter and
the key filter."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from waybackpy.cdx_utils import check_collapses, check_filters

from citewatch.archive.availability import parse_available
from citewatch.archive.cdx import (
    CdxFormatError,
    CdxQuery,
    CdxQueryError,
    CdxRow,
    common_prefix,
    is_blocked,
    match_host,
    match_key,
    parse_page,
    resolve_revisits,
)
from citewatch.archive.choose import best_snapshot, best_usable_snapshot
from citewatch.archive.gateway import (
    ArchiveRequestError,
    ArchiveState,
    Breaker,
    Endpoints,
    Family,
    Gateway,
    GatewayTuning,
    KeyFilter,
    RateLimiter,
)
from citewatch.archive.policy import Target, collect_targets, is_fresh, save_decision
from citewatch.archive.replay import memento_timestamp
from citewatch.archive.spn import classify_error
from citewatch.config import Settings
from citewatch.models import CaptureRequest

HEADER = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"]


def row(ts: str, status: str = "200", mime: str = "text/html", digest: str = "D1") -> list[str]:
    return ["com,example)/a", ts, "http://example.com/a", mime, status, digest, "1234"]


# -- CDX answers ------------------------------------------------------------------------------
def test_empty_answer_has_no_header_and_means_no_captures() -> None:
    page = parse_page(b"[]")
    assert page.rows == [] and page.resume_key is None and page.malformed == 0
    assert parse_page(b"").rows == []


def test_header_row_duplicates_and_statuses() -> None:
    body = json.dumps([HEADER, row("20200101000000"), row("20200101000000"), row("2021", "404")])
    page = parse_page(body)
    assert [r.timestamp for r in page.rows] == ["20200101000000"]  # duplicate kept once
    assert page.malformed == 1  # "2021" is not a 14-digit timestamp (CDXSnapshot refuses it)
    assert page.rows[0].status == 200 and page.rows[0].length == 1234


def test_column_order_follows_the_header() -> None:
    header = ["timestamp", "original", "statuscode", "urlkey", "mimetype", "digest", "length"]
    body = json.dumps(
        [header, ["20200101000000", "http://x/", "301", "x)/", "text/html", "D", "1"]]
    )
    assert parse_page(body).rows[0].status == 301


def test_resume_key_is_split_off() -> None:
    body = json.dumps([HEADER, row("20200101000000"), [], ["com%2Cexample%29%2Fa+20200101000000"]])
    page = parse_page(body)
    assert page.resume_key == "com%2Cexample%29%2Fa+20200101000000"
    assert len(page.rows) == 1


def test_revisit_rows_keep_an_unknown_status() -> None:
    page = parse_page(json.dumps([HEADER, row("20200101000000", "-", "warc/revisit")]))
    assert page.rows[0].revisit and page.rows[0].status is None
    assert best_snapshot([{"timestamp": "20200101000000", "status": None}], None) is None


@pytest.mark.parametrize("body", [b"<html>429 Too Many Requests</html>", b'{"a": 1}'])
def test_not_cdx_json_is_an_error_not_an_empty_answer(body: bytes) -> None:
    with pytest.raises(CdxFormatError):
        parse_page(body)


def test_revisits_resolve_by_digest_to_the_nearest_earlier_capture() -> None:
    rows = parse_page(
        json.dumps(
            [
                HEADER,
                row("20190101000000", "200", digest="A"),
                row("20190201000000", "404", digest="B"),
                row("20190301000000", "-", "warc/revisit", digest="A"),
                row("20190401000000", "-", "warc/revisit", digest="B"),
                row("20190501000000", "-", "warc/revisit", digest="C"),
            ]
        )
    ).rows
    resolved = {r.timestamp: r.status for r in resolve_revisits(rows)}
    assert resolved == {
        "20190101000000": 200,
        "20190201000000": 404,
        "20190301000000": 200,
        "20190401000000": 404,
        "20190501000000": None,
    }


def test_blocked_site_answer() -> None:
    assert is_blocked(403, {"X-Archive-Wayback-Runtime-Error": "Blocked Site Error"})
    assert is_blocked(403, {}, "AdministrativeAccessControlException: Blocked Site Error")
    assert not is_blocked(403, {}, "Forbidden")
    assert not is_blocked(200, {"X-Archive-Wayback-Runtime-Error": "x"})


# -- CDX queries (waybackpy's validation, and ours on top) ----------------------------------------
def test_query_parameters_are_encoded_the_cdx_way() -> None:
    from waybackpy.cdx_utils import full_url

    query = CdxQuery(
        url="example.com/news/",
        match_type="prefix",
        filters=("statuscode:200", "!mimetype:warc/revisit"),
        limit=500,
        resume_key="com%2Cexample%29%2Fa+20200101000000",
    )
    url = full_url("https://web.archive.org/cdx/search/cdx", query.params())
    sent = parse_qs(urlsplit(url).query)
    assert sent["filter"] == ["statuscode:200", "!mimetype:warc/revisit"]  # repeated, not lost
    assert sent["resumeKey"] == ["com%2Cexample%29%2Fa+20200101000000"]  # '+' and '%' survive
    assert sent["matchType"] == ["prefix"] and sent["showResumeKey"] == ["true"]
    assert sent["fl"] == [",".join(HEADER)] and sent["output"] == ["json"]
    assert sent["resolveRevisits"] == ["true"]


def test_waybackpy_checks_are_lax_so_ours_are_strict() -> None:
    # waybackpy searches rather than matches: garbage around a field name passes its checks …
    assert check_collapses(["junk digest junk"]) is True
    check_filters(["junk statuscode:200"])
    # … so CdxQuery adds a full match.
    with pytest.raises(CdxQueryError):
        CdxQuery(url="x", collapses=("junk digest junk",)).params()
    with pytest.raises(CdxQueryError):
        CdxQuery(url="x", filters=("junk statuscode:200",)).params()
    with pytest.raises(CdxQueryError):  # waybackpy's own rule
        CdxQuery(url="x", filters=("status:200",)).params()
    with pytest.raises(CdxQueryError):
        CdxQuery(url="x*", match_type="prefix").params()
    with pytest.raises(CdxQueryError):
        CdxQuery(url="x", from_="2020-01").params()
    assert CdxQuery(url="x", collapses=("timestamp:8",)).params()["collapse0"] == "timestamp:8"


def test_endpoints_derive_from_the_configured_bases() -> None:
    settings = Settings(wayback_url="https://mirror.test/wb/", availability_url="https://av.test")
    ends = Endpoints.from_settings(settings)
    assert ends.cdx == "https://mirror.test/wb/cdx/search/cdx"
    assert ends.save == "https://mirror.test/wb/save"
    assert ends.save_status("spn2-a/b") == "https://mirror.test/wb/save/status/spn2-a%2Fb"
    assert ends.available == "https://av.test/wayback/available"
    assert (
        ends.replay("2017", "https://x.test/a")
        == "https://mirror.test/wb/web/2017id_/https://x.test/a"
    )


# -- matching rows to cited URLs --------------------------------------------------------------
@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("https://www.example.com/a/", "http://example.com/a", True),
        ("https://example.com/A?b=2&a=1", "https://example.com/a?a=1&b=2", True),
        ("https://x.test/%D8%A7", "https://x.test/ا", True),
        ("https://x.test/%d8%a7", "https://x.test/%D8%A7", True),
        ("https://x.test:8080/a", "https://x.test/a", False),
        ("https://x.test/a", "https://x.test/b", False),
        ("https://x.test/a?p=1", "https://x.test/a?p=2", False),
        ("https://sub.x.test/a", "https://x.test/a", False),
    ],
)
def test_match_key(one: str, other: str, same: bool) -> None:
    assert (match_key(one) == match_key(other)) is same


def test_common_prefix_and_host() -> None:
    urls = [
        "https://www.x.test/news/2020/a",
        "https://x.test/news/2020/b",
        "http://x.test/news/2021/c",
    ]
    assert common_prefix(urls) == "x.test/news/"
    assert common_prefix(["https://x.test/a", "https://x.test/b/c"]) == "x.test/"
    assert match_host("https://WWW2.X.test:8443/a") == "x.test:8443"


# -- availability -------------------------------------------------------------------------------
def test_availability_answers() -> None:
    closest = {
        "status": "200",
        "available": True,
        "url": "http://web.archive.org/web/20200101000000/https://x.test/a",
        "timestamp": "20200101000000",
    }
    found = parse_available({"archived_snapshots": {"closest": closest}})
    assert isinstance(found, CdxRow)
    assert (found.timestamp, found.status, found.original) == (
        "20200101000000",
        200,
        "https://x.test/a",
    )
    assert parse_available({"archived_snapshots": {}}) is None
    assert (
        parse_available({"archived_snapshots": {"closest": {**closest, "available": False}}})
        is None
    )
    assert parse_available("nonsense") is None


# -- Save Page Now ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("error:not-found", "permanent"),
        ("error:blocked-url", "permanent"),
        ("error:invalid-url", "permanent"),
        ("error:too-many-daily-captures", "transient"),
        ("error:gateway-timeout", "transient"),
        ("error:something-new", "transient"),
        (None, "transient"),
        ("error:user-session-limit", "service"),
        ("error:too-many-requests", "service"),
        ("error:unauthorized", "service"),
    ],
)
def test_spn_error_classes(code: str | None, kind: str) -> None:
    assert classify_error(code) == kind


NOW = datetime(2025, 6, 1, tzinfo=UTC)
YEAR = 365 * 86400.0


def target(
    verdict: str = "alive", role: str = "source", cited: str | None = "2024-01-01"
) -> Target:
    return Target(1, "https://x.test/a", verdict, {role}, cited)


def snap(ts: str, status: int | None = 200) -> dict[str, object]:
    return {"timestamp": ts, "status": status}


@pytest.mark.parametrize(
    ("tgt", "snapshots", "captures", "action"),
    [
        (target(), [], [], "submit"),
        (target("moved"), [], [], "submit"),
        (target(), [snap("20240601000000")], [], "skip"),  # after the citation, within a year
        (target(), [snap("20230601000000")], [], "submit"),  # before the citation date
        (target(cited="2020-01-01"), [snap("20240601000000")], [], "skip"),
        (target(cited="2020-01-01"), [snap("20240501000000")], [], "submit"),  # over a year old
        (target(), [snap("20250101000000", 404)], [], "submit"),  # not a 2xx capture
        (target(), [snap("20250101000000", None)], [], "submit"),  # an unresolved revisit
        (target(), [], [{"status": "success", "timestamp": "20250501000000"}], "skip"),
        (target("blocked"), [], [], "skip"),
        (target("failing"), [], [], "skip"),
        (target("dead"), [], [], "skip"),
        (target("unchecked"), [], [], "skip"),
        (target("skipped"), [], [], "skip"),
        (target(role="navigation"), [], [], "skip"),
        (
            target(),
            [],
            [
                {
                    "status": "error",
                    "status_ext": "error:not-found",
                    "requested_at": "2025-05-30T00:00:00.000000Z",
                }
            ],
            "skip",
        ),
        (
            target(),
            [],
            [
                {
                    "status": "error",
                    "status_ext": "error:read-timeout",
                    "requested_at": "2025-05-30T00:00:00.000000Z",
                }
            ],
            "submit",
        ),
        (
            target(),
            [],
            [
                {
                    "id": 1,
                    "status": "pending",
                    "job_id": "j",
                    "requested_at": "2025-05-31T12:00:00.000000Z",
                }
            ],
            "poll",
        ),
        (
            target(),
            [],
            [
                {
                    "id": 1,
                    "status": "pending",
                    "job_id": "j",
                    "requested_at": "2025-05-01T12:00:00.000000Z",
                }
            ],
            "submit",
        ),
        (  # the page died after the job was submitted: still polled, its copy matters most now
            target(verdict="dead"),
            [],
            [
                {
                    "id": 1,
                    "status": "pending",
                    "job_id": "j",
                    "requested_at": "2025-05-31T12:00:00.000000Z",
                }
            ],
            "poll",
        ),
    ],
)
def test_save_rule(tgt: Target, snapshots: list, captures: list, action: str) -> None:
    assert save_decision(tgt, snapshots, captures, NOW, YEAR).action == action


def test_targets_group_citations_by_url() -> None:
    rows = [
        {
            "url_id": 1,
            "url": "u",
            "verdict": "alive",
            "role": "navigation",
            "published": "2021-05-01",
        },
        {"url_id": 1, "url": "u", "verdict": "alive", "role": "source", "published": "2020-02-03"},
        {
            "url_id": 1,
            "url": "u",
            "verdict": "alive",
            "role": "source",
            "published": "not a date",
            "archived_timestamp": "2017",
            "archived_original": "u",
        },
        {"url_id": None, "url": None, "verdict": None, "role": "source", "published": None},
    ]
    (only,) = collect_targets(rows)
    assert only.citation_date == "2020-02-03" and only.is_source
    assert only.cited == [("2017", "u")]


def test_lookup_freshness() -> None:
    recent = {"result": "none", "looked_up_at": "2025-05-31T00:00:00.000000Z"}
    assert is_fresh(recent, NOW, 7 * 86400)
    assert not is_fresh(recent, NOW, 3600)
    assert not is_fresh({**recent, "result": "error"}, NOW, 7 * 86400)
    assert not is_fresh(None, NOW, 7 * 86400)


# -- replay, choice -----------------------------------------------------------------------------
def test_memento_datetime() -> None:
    assert memento_timestamp("Tue, 17 Oct 2017 23:08:58 GMT") == "20171017230858"
    assert memento_timestamp("yesterday") is None and memento_timestamp(None) is None


def test_rejected_captures_fall_back_by_the_same_rule() -> None:
    rows = [snap("20190101000000"), snap("20200101000000"), snap("20210101000000")]
    assert (
        best_usable_snapshot(rows, "2020-06-01", {"20200101000000"})["timestamp"]
        == "20190101000000"
    )
    assert (
        best_usable_snapshot(rows, "2019-06-01", {"20190101000000"})["timestamp"]
        == "20200101000000"
    )


# -- circuit breaker and limiter ------------------------------------------------------------------
def test_breaker_trips_on_repeated_429s_per_family() -> None:
    breaker = Breaker(max_consecutive_429=3)
    breaker.answered(Family.CDX, 429)
    breaker.answered(Family.CDX, 429)
    breaker.answered(Family.SPN_STATUS, 200)  # another family's success does not reset CDX
    assert not breaker.open
    breaker.answered(Family.CDX, 429)
    assert breaker.state is ArchiveState.RATE_LIMITED


def test_breaker_a_success_resets_the_count() -> None:
    breaker = Breaker(max_consecutive_429=2)
    for status in (429, 200, 429, 200):
        breaker.answered(Family.CDX, status)
    assert not breaker.open


def test_breaker_connection_failure_after_a_429_is_the_firewall() -> None:
    breaker = Breaker()
    breaker.answered(Family.CDX, 200)
    breaker.answered(Family.CDX, 429)
    breaker.connection_failed(Family.REPLAY, "ConnectError", final=False)
    assert breaker.state is ArchiveState.RATE_LIMITED


def test_breaker_unreachable_from_the_start_or_after_two_failures() -> None:
    first = Breaker()
    first.connection_failed(Family.CDX, "refused", final=False)
    assert not first.open  # retries still to come
    first.connection_failed(Family.CDX, "refused", final=True)
    assert first.state is ArchiveState.UNREACHABLE

    later = Breaker()
    later.answered(Family.CDX, 200)
    later.connection_failed(Family.CDX, "timeout", final=True)
    assert not later.open  # one URL's bad luck
    later.connection_failed(Family.CDX, "timeout", final=True)
    assert later.state is ArchiveState.UNREACHABLE


def test_rate_limiter_spaces_requests_and_pauses_the_family() -> None:
    async def run() -> list[float]:
        limiter = RateLimiter(per_minute=1200)  # 50 ms apart
        starts: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            starts.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(3)))
        limiter.pause(0.2)
        await one()
        return starts

    starts = asyncio.run(run())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.045
    assert gaps[2] >= 0.19


def test_a_refunded_slot_is_free_again_at_once() -> None:
    """A request whose connection failed never reached the archive: its retry need not wait out
    the family's spacing (Save Page Now's is 30 s without keys)."""

    async def run() -> float:
        limiter = RateLimiter(per_minute=2)  # 30 s apart
        await limiter.acquire()
        limiter.refund()
        began = time.monotonic()
        await limiter.acquire()
        return time.monotonic() - began

    assert asyncio.run(run()) < 1.0
    limiter = RateLimiter(per_minute=2)
    limiter.refund()  # never before now
    assert limiter.next_slot <= time.monotonic()


# -- key filter -----------------------------------------------------------------------------------
def test_the_key_filter_hides_keys_in_every_form_an_echo_takes() -> None:
    import httpx

    access, secret = "ACC+ESS/1", 'S3CR"ET'
    hide = KeyFilter((access, secret))
    echoes = [
        f"Authorization: LOW {access}:{secret}",
        f"url=x&auth={quote(access, safe='')}",  # percent-encoded
        f"auth={access.replace('+', '%2B').replace('/', '%2F')}",
        json.dumps({"message": f"bad key {secret}"}),  # JSON-escaped quote
    ]
    for echo in echoes:
        hidden = hide.text(echo) or ""
        assert access not in hidden and secret not in hidden and "***" in hidden, echo
        assert quote(access, safe="") not in hidden and json.dumps(secret)[1:-1] not in hidden
    body = hide.body(f"<p>{secret}</p>{json.dumps(secret)}".encode())
    assert body == b'<p>***</p>"***"'
    headers = hide.headers(httpx.Headers([("X-Echo", f"LOW {access}:{secret}"), ("X-A", "1")]))
    assert headers.multi_items() == [("x-echo", "LOW ***:***"), ("x-a", "1")]

    capture = CaptureRequest("http://a.test/", "now", "error", message=f"echo {secret}")
    nested = {"items": [{"error": f"x {secret}"}, (1, None)], "capture": capture}
    hidden = hide.deep(nested)
    assert hidden["items"][0]["error"] == "x ***" and hidden["items"][1] == (1, None)
    assert hidden["capture"].message == "echo ***" and hidden["capture"].url == "http://a.test/"
    assert capture.message == f"echo {secret}"  # the original is left alone
    untouched = {"a": ["b", 1], "c": capture.url}
    assert hide.deep(untouched) is untouched  # nothing to hide: nothing copied
    assert not KeyFilter(None) and KeyFilter(None).deep(nested) is nested
    assert KeyFilter(None).text("anything") == "anything"


def test_the_key_filter_keeps_header_bytes_exact_whatever_they_are() -> None:
    """Headers are filtered as raw bytes: a replay passes the site's own headers on (a ``Link``
    naming a UTF-8 URL, a Latin-1 ``x-archive-orig-*``), and nothing is decoded or re-encoded —
    names are filtered too."""
    hide = KeyFilter(("AKEY1234", "SKEY5678"))
    raw = [
        (b"Link", '<http://u.test/café>; rel="original"'.encode()),
        (b"X-Archive-Orig-Title", "caf\xe9 LOW AKEY1234:SKEY5678".encode("latin-1")),
        (b"X-Echo-AKEY1234", "naïve SKEY5678 \u2014".encode()),
        (b"X-Odd", b"\xff\xfe\x00\x01"),
    ]
    headers = hide.headers(httpx.Headers(raw))
    assert headers.raw == [
        (b"Link", '<http://u.test/café>; rel="original"'.encode()),
        (b"X-Archive-Orig-Title", "caf\xe9 LOW ***:***".encode("latin-1")),
        (b"X-Echo-***", "naïve *** \u2014".encode()),
        (b"X-Odd", b"\xff\xfe\x00\x01"),
    ]
    readable = hide.headers(httpx.Headers([raw[0], (b"X-Echo", b"AKEY1234")]))
    assert readable["link"] == '<http://u.test/café>; rel="original"'
    untouched = httpx.Headers(raw[:1] + raw[3:])
    assert hide.headers(untouched) is untouched  # nothing to hide: nothing rebuilt


def test_the_key_filter_hides_a_key_cut_short() -> None:
    """A body cut at a cap, a sample cut to size, an excerpt quoted cut short: the start of a key
    form at the cut is hidden too — only where the text was cut."""
    hide = KeyFilter(("AKEY1234", "SKEY5678"))
    assert hide.body(b"...LOW AKEY1234:SKEY5", cut=True) == b"...LOW ***:***"
    assert hide.body(b"...LOW AKEY1234:SKEY5") == b"...LOW ***:SKEY5"  # not cut: left as is
    assert hide.body(b"...LOW A", cut=True) == b"...LOW ***"
    assert hide.body(b"...LOW AKEY1234", cut=True) == b"...LOW ***"
    assert hide.body(b"...LOW B", cut=True) == b"...LOW B"
    assert hide.text("sample ends SKEY56", cut=True) == "sample ends ***"
    assert hide.text("ends with %2", cut=True) == "ends with %2"  # no form starts so
    # percent-encoded form of a key with a reserved character, cut in its escape
    assert KeyFilter(("A/B",)).text("auth=A%2", cut=True) == "auth=***"
    line = "RemoteProtocolError: malformed status line 'HTTP/1.1 LOW AKEY1234:SKEY5'"
    assert (
        hide.excerpts(line) == "RemoteProtocolError: malformed status line 'HTTP/1.1 LOW ***:***'"
    )
    assert hide.excerpts('bad line b"x SKEY567" then AKEY') == 'bad line b"x ***" then ***'
    assert KeyFilter(None).body(b"AKEY", cut=True) == b"AKEY"


def _gateway(handler: Callable[[httpx.Request], httpx.Response], *, fast: bool = False) -> Gateway:
    """A gateway with keys, answered by ``handler`` (no retries, no waiting); ``fast``: no pacing
    either, at an archive origin of its own (limiters are shared per origin)."""
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    if not fast:
        settings = Settings(retries=0, backoff=0)
        return Gateway(settings, keys=("AKEY1234", "SKEY5678"), client=client)
    settings = Settings(retries=0, backoff=0, wayback_url="https://fast.archive.test")
    tuning = GatewayTuning(rates=dict.fromkeys(Family, 60_000.0))
    return Gateway(settings, keys=("AKEY1234", "SKEY5678"), client=client, tuning=tuning)


def test_a_body_cut_at_its_cap_never_shows_part_of_a_key() -> None:
    """The gateway reads a key's length past the cap, filters, then cuts: a key the cap falls in
    is hidden whole, and a body the filter brings under the cap is whole."""

    bodies = {
        "/cut": b"a" * 10 + b"AKEY1234" + b"b" * 10,
        "/fits": b"a" * 10 + b"AKEY1234",  # 18 bytes, 13 once filtered
        "/plain": b"c" * 20,
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bodies[request.url.path])

    async def fetch(path: str) -> tuple[bytes, bool]:
        async with _gateway(handler) as gateway:
            reply = await gateway.get(Family.REPLAY, f"https://web.archive.org{path}", max_body=14)
        return reply.body, reply.complete

    assert asyncio.run(fetch("/cut")) == (b"a" * 10 + b"***b", False)
    assert asyncio.run(fetch("/fits")) == (b"a" * 10 + b"***", True)
    assert asyncio.run(fetch("/plain")) == (b"c" * 14, False)


def test_save_page_now_messages_are_filtered_before_they_are_cut() -> None:
    """A key written with JSON ``\\u`` escapes is not in the raw bytes; the decoded answer is
    filtered before its message is cut to 500 characters."""
    from citewatch.archive.spn import submit

    message = "x" * 495 + "\\u0041KEY1234 and more"

    def handler(request: httpx.Request) -> httpx.Response:
        body = '{"status": "error", "status_ext": "error:\\u0053KEY5678", "message": "%s"}'
        return httpx.Response(200, content=(body % message).encode())

    async def run() -> Any:
        async with _gateway(handler) as gateway:
            return await submit(gateway, "http://u.test/")

    outcome = asyncio.run(run())
    assert outcome.message == "x" * 495 + "*** a"  # not "x…x AKEY1", which no later filter sees
    assert outcome.status_ext == "error:***"


def test_a_replay_sample_cut_to_size_never_ends_in_part_of_a_key() -> None:
    """A key written as HTML entities escapes the byte filter; decoded, it is hidden in the title
    and in the sample — also where the sample's cut falls in it."""
    from citewatch.archive.replay import replay
    from citewatch.check.probe import TEXT_SAMPLE_BYTES

    entity = "&#65;KEY1234"  # AKEY1234
    filler = "y" * (TEXT_SAMPLE_BYTES - 4)
    page = f"<html><title>Not found {entity}</title><body><p>{filler}{entity} tail</p></body>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={
                "Content-Type": "text/html",
                "Memento-Datetime": "Tue, 17 Oct 2017 23:08:58 GMT",
            },
            content=page.encode(),
        )

    async def run() -> Any:
        async with _gateway(handler) as gateway:
            return await replay(gateway, "20171017230858", "http://u.test/")

    result = asyncio.run(run())
    assert result.title == "Not found ***"
    assert result.text_sample.endswith("yyy***")
    assert "AKEY" not in (result.error or "")


def test_odd_bytes_in_an_archive_answer_never_raise() -> None:
    """A body its own Content-Encoding cannot decode, a Memento-Datetime out of range, a CDX
    answer that is not UTF-8: each is an answer that says nothing useful, never an exception
    out of the run."""
    assert memento_timestamp("Tue, 17 Oct 99999999999999999999 23:08:58 GMT") is None
    with pytest.raises(CdxFormatError):
        parse_page(b'[["urlkey"], ["caf\xe9"]]')

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Encoding": "gzip"},
            stream=httpx.ByteStream(b"\x1f\x8bnot gzip at all"),
        )

    async def run() -> str:
        async with _gateway(handler) as gateway:
            with pytest.raises(ArchiveRequestError) as undecodable:
                await gateway.get(Family.CDX, "https://web.archive.org/cdx/search/cdx")
            assert not gateway.breaker.open  # the archive answered: it is not unreachable
        return str(undecodable.value)

    assert "undecodable" in asyncio.run(run())


# -- answers that break the rules ---------------------------------------------------------------
def test_lone_surrogate_escapes_in_json_come_back_as_replacement_characters() -> None:
    """``"\\udcff"`` decodes to a string SQLite refuses to store and ``quote`` refuses to put in
    a URL; every JSON decode of the archive layer replaces it with U+FFFD, keys included."""
    from citewatch.archive.decode import clean_text, loads

    data = loads(b'{"k\\udcff": ["x\\udcff", {"y": "\\ud83d"}], "pair": "\\ud83d\\ude00", "n": 1}')
    assert data == {"k\ufffd": ["x\ufffd", {"y": "\ufffd"}], "pair": "\U0001f600", "n": 1}
    assert loads(b'["\xed\xb3\xbf"]') == ["\ufffd"]  # raw surrogate bytes: json lets them in
    plain = "caf\u00e9"
    assert clean_text(plain) is plain
    for deep in (b"[" * 100_000 + b"]" * 100_000, b"[" * 40 + b"]" * 40):
        with pytest.raises(ValueError):
            loads(deep)

    body = json.dumps([HEADER, row("20200101000000", digest="D\udcff"), [], ["key\udcff+1"]])
    page = parse_page(body)
    assert page.rows[0].digest == "D\ufffd" and page.resume_key == "key\ufffd+1"
    query = CdxQuery(url="example.com/a").next_page(page.resume_key)
    assert "resumeKey" in query.params()  # a key that can go in a URL
    with pytest.raises(CdxFormatError):
        parse_page(b"[" * 100_000)
    answer = {
        "archived_snapshots": {
            "closest": {
                "available": True,
                "status": "200",
                "timestamp": "20200101000000",
                "url": "http://web.archive.org/web/20200101000000/http://a.test/\udcff",
            }
        }
    }
    found = parse_available(loads(json.dumps(answer)))
    assert found is not None and found.original == "http://a.test/\ufffd"
    assert parse_available({"archived_snapshots": ["odd"]}) is None  # not a dict: no capture


def test_capture_timestamps_must_be_fourteen_ascii_digits_of_a_real_moment() -> None:
    """waybackpy's check (``strptime``) takes 13 digits read as 2020-1-31, or other digits than
    ASCII ones: stored, such a timestamp broke the best-snapshot rule later."""
    from citewatch.archive.cdx import is_capture_timestamp

    assert is_capture_timestamp("20200131010101")
    for odd in ("2020131010101", "20201310101010", "20200230000000", "00000101000000"):
        assert not is_capture_timestamp(odd), odd
    assert not is_capture_timestamp("\u0662" * 14) and not is_capture_timestamp("\u00b2" * 14)
    page = parse_page(json.dumps([HEADER, row("2020131010101"), row("20200101000000")]))
    assert [r.timestamp for r in page.rows] == ["20200101000000"] and page.malformed == 1
    closest = {"available": True, "status": "200", "timestamp": "\u00b2" * 14, "url": "x"}
    assert parse_available({"archived_snapshots": {"closest": closest}}) is None


def test_breaker_a_malformed_answer_is_no_connection_failure() -> None:
    breaker = Breaker(max_consecutive_429=2)
    breaker.malformed(Family.CDX)  # the first answer of the run: the archive is there
    breaker.connection_failed(Family.CDX, "timeout", final=True)
    assert not breaker.open
    breaker.answered(Family.CDX, 429)
    breaker.malformed(Family.CDX)  # says nothing about the rate limit: the 429 run goes on
    breaker.answered(Family.CDX, 429)
    assert breaker.state is ArchiveState.RATE_LIMITED


def test_a_malformed_answer_is_an_error_for_the_request_not_an_unreachable_archive() -> None:
    """httpx refuses an answer whose Location is no URL (a control byte) or whose header line
    holds a NUL, with ``RemoteProtocolError``: the archive answered, so that request failed —
    the breaker stays closed even on the run's first request. A connection closed without an
    answer is still a connection failure."""
    from citewatch.archive.gateway import ArchiveStopped, malformed_answer

    bad = "Invalid URL in location header: Invalid non-printable ASCII character in URL, '\\x01'"
    disconnected = "Server disconnected without sending a response."
    assert malformed_answer(httpx.RemoteProtocolError(bad))
    assert malformed_answer(httpx.RemoteProtocolError("illegal header line: b'X: \\x00'"))
    assert not malformed_answer(httpx.RemoteProtocolError(disconnected))
    assert not malformed_answer(httpx.ReadTimeout("timed out"))

    def handler(message: str) -> Callable[[httpx.Request], httpx.Response]:
        def answer(request: httpx.Request) -> httpx.Response:
            raise httpx.RemoteProtocolError(message, request=request)

        return answer

    async def run(message: str) -> tuple[BaseException, Gateway]:
        async with _gateway(handler(message), fast=True) as gateway:
            with pytest.raises((ArchiveRequestError, ArchiveStopped)) as caught:
                await gateway.get(Family.REPLAY, gateway.endpoints.replay("2020", "http://a/"))
        return caught.value, gateway

    error, gateway = asyncio.run(run(bad))
    assert isinstance(error, ArchiveRequestError) and not gateway.breaker.open
    assert str(error).startswith("malformed answer from the archive: RemoteProtocolError: Invalid")
    stopped, gateway = asyncio.run(run(disconnected))
    assert isinstance(stopped, ArchiveStopped) and gateway.breaker.state is ArchiveState.UNREACHABLE


def test_a_url_citewatch_cannot_request_is_an_error_for_that_url_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:  # pragma: no cover - never reached
        raise AssertionError("nothing is sent")

    async def run() -> Gateway:
        async with _gateway(handler, fast=True) as gateway:
            with pytest.raises(ArchiveRequestError, match="not a URL citewatch can request"):
                await gateway.get(
                    Family.REPLAY, "https://web.archive.org/web/2020id_/http://a/\x01"
                )
        return gateway

    assert not asyncio.run(run()).breaker.open


def test_save_page_now_answers_with_surrogates_or_an_invalid_timestamp() -> None:
    """A job id with a lone surrogate escape becomes one that can be stored and polled; a
    "success" whose timestamp is no capture timestamp is stored with none (never a snapshot)."""
    from citewatch.archive.spn import status, submit

    answers = {
        "/save": '{"job_id": "spn2-\\udcff", "message": "queued \\udcff"}',
        "/save/status/spn2-%EF%BF%BD": '{"status": "success", "timestamp": "2020131010101"}',
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answers[request.url.raw_path.decode()].encode())

    async def run() -> tuple[Any, Any]:
        async with _gateway(handler, fast=True) as gateway:
            submitted = await submit(gateway, "http://u.test/")
            return submitted, await status(gateway, str(submitted.job_id))

    submitted, polled = asyncio.run(run())
    assert (submitted.status, submitted.job_id, submitted.message) == (
        "pending",
        "spn2-\ufffd",
        "queued \ufffd",
    )
    assert (polled.status, polled.timestamp) == ("success", None)
    assert "invalid timestamp" in (polled.message or "")


def test_a_replay_with_an_unjoinable_redirect_or_a_surrogate_text_is_an_answer() -> None:
    """A redirect to a URL httpx cannot parse (``http://[::1``, a bad port: printable, yet httpx
    refuses the answer) is an error for that replay, saying why; a capture whose charset (UTF-7)
    spells a lone surrogate is read with U+FFFD in its place (the checker's sample would not
    encode)."""
    from citewatch.archive.replay import replay

    memento = {"Memento-Datetime": "Tue, 17 Oct 2017 23:08:58 GMT"}

    def handler(request: httpx.Request) -> httpx.Response:
        if "redirect.test" in str(request.url):
            return httpx.Response(302, headers={"Location": "http://[::1"})
        headers = {**memento, "Content-Type": "text/plain; charset=utf-7"}
        return httpx.Response(200, headers=headers, content=b"An article +3P8- " + b"words " * 50)

    async def run(original: str) -> Any:
        async with _gateway(handler, fast=True) as gateway:
            return await replay(gateway, "20171017230858", original)

    redirected = asyncio.run(run("http://redirect.test/"))
    assert redirected.outcome == "error" and redirected.memento is None
    assert "Invalid URL in location header: Invalid port" in (redirected.error or "")
    text = asyncio.run(run("http://utf7.test/"))
    assert text.outcome == "verified" and "An article \ufffd words" in (text.text_sample or "")
