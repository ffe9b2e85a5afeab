"""Fetching a capture back from the Wayback Machine to see what it really is.

Two uses: a citation that *is* a Wayback link (does that capture exist, at that timestamp?), and
``--verify`` (is the chosen snapshot a real page, or a captured "page not found"?). Both fetch the
``id_`` form (the bytes as captured, no toolbar or rewriting) and follow redirects by hand, within
the archive only: a timestamp with no exact capture 302-redirects to the nearest one, which can be
months away, and that is worth saying rather than silently accepting.

The soft-404 rule is the checker's own (:func:`citewatch.check.classify.soft_404_reason`), so a
capture and a live page are judged alike (English and Arabic "not found" titles and short texts).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from ..check.classify import Page, soft_404_reason
from ..check.probe import PageText, read_text, sha1_base32
from .decode import clean_text
from .gateway import ArchiveRequestError, Family, Gateway, KeyFilter

#: Enough of a capture to read its title and a text sample.
REPLAY_MAX_BODY = 1024 * 1024
MAX_HOPS = 5
_REPLAY_PATH = re.compile(r"^/web/\d{1,14}(?:[a-z]{2}_)?/")


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying one capture showed."""

    asked: str
    """The timestamp asked for (as cited or as chosen)."""
    outcome: str
    """verified | redirected | soft_404 | not_archived | error"""
    status: int | None = None
    memento: str | None = None
    """The capture actually served (14 digits, from Memento-Datetime)."""
    final_url: str | None = None
    sha1: str | None = None
    title: str | None = None
    text_sample: str | None = None
    error: str | None = None
    hops: tuple[str, ...] = ()
    """Replay URLs redirected through."""

    @property
    def usable(self) -> bool:
        """True if the capture served is a real 2xx page (exact or nearest)."""
        return self.outcome in ("verified", "redirected")

    @property
    def rejects_capture(self) -> bool:
        """True if the capture itself is bad (not merely the archive failing to answer now)."""
        if self.outcome in ("soft_404", "not_archived"):
            return True
        return self.outcome == "error" and self.memento is not None

    def check_fields(self) -> dict[str, object]:
        """Columns of a ``snapshot_checks`` row."""
        return {
            "timestamp": self.asked,
            "status": self.status,
            "memento_datetime": self.memento,
            "final_url": self.final_url,
            "sha1": self.sha1,
            "text_sample": self.text_sample,
            "soft_404": int(self.outcome == "soft_404"),
            "error": self.error,
        }


def memento_timestamp(header: str | None) -> str | None:
    """``Memento-Datetime: Tue, 17 Oct 2017 23:08:58 GMT`` → ``20171017230858``."""
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).strftime("%Y%m%d%H%M%S")
    except (TypeError, ValueError, IndexError, OverflowError):  # any odd header
        return None


def _same_capture(asked: str, served: str | None) -> bool:
    """A 14-digit timestamp must match exactly; a shorter one (as cited) is a prefix."""
    if served is None:
        return False
    return served == asked if len(asked) >= 14 else served.startswith(asked)


async def replay(gateway: Gateway, timestamp: str, original: str) -> ReplayResult:
    """Fetch ``/web/<timestamp>id_/<original>`` and classify what came back."""
    url = gateway.endpoints.replay(timestamp, original, raw=True)
    hops: list[str] = []
    base = httpx.URL(gateway.endpoints.base)
    for _ in range(MAX_HOPS + 1):
        try:
            reply = await gateway.get(Family.REPLAY, url, max_body=REPLAY_MAX_BODY)
        except ArchiveRequestError as exc:  # a 429 or a connection failure that outlasted retries
            return ReplayResult(
                timestamp, "error", None, None, url, error=str(exc), hops=tuple(hops)
            )
        location = reply.headers.get("location")
        if reply.status in (301, 302, 303, 307, 308) and location:
            unfollowed = None  # why this redirect is not followed
            try:  # httpx itself refuses such an answer today (a malformed answer, above)
                target = httpx.URL(url).join(location)
            except (httpx.InvalidURL, ValueError) as exc:  # e.g. "http://[::1", a bad port
                unfollowed = gateway.scrub(f"the archive redirected to an invalid URL: {exc}")
            else:
                if target.host != base.host or not _REPLAY_PATH.match(target.raw_path.decode()):
                    unfollowed = "the archive redirected outside its replay space"
            if unfollowed is not None:
                return ReplayResult(
                    timestamp,
                    "error",
                    reply.status,
                    memento_timestamp(reply.headers.get("memento-datetime")),
                    url,
                    error=unfollowed,
                    hops=tuple(hops),
                )
            hops.append(url)
            url = str(target)
            continue
        return _classify(
            timestamp,
            original,
            url,
            reply.status,
            reply.headers,
            reply.body,
            hops,
            gateway.keys_filter,
        )
    return ReplayResult(timestamp, "error", None, None, url, error="too many replay redirects")


def _read_text(body: bytes, content_type: str | None) -> PageText:
    """The checker's :func:`read_text`, for a capture whatever charset it claims: one that
    decodes to lone surrogates (UTF-7 can spell them) makes the checker's sample fail to encode,
    so such a page is read again from its text with each surrogate replaced by U+FFFD."""
    try:
        return read_text(body, content_type)
    except UnicodeError:
        kind = (content_type or "").split(";", 1)[0].strip()
        charset = (content_type or "").lower().partition("charset=")[2].split(";")[0].strip(" \"'")
        try:
            text = body.decode(charset or "utf-8", errors="replace")
        except (LookupError, UnicodeError, ValueError):
            text = body.decode("utf-8", errors="replace")
        return read_text(clean_text(text).encode("utf-8"), f"{kind}; charset=utf-8")


def _clean(text: str | None) -> str | None:
    return clean_text(text) if text else text


def _classify(
    asked: str,
    original: str,
    url: str,
    status: int,
    headers: httpx.Headers,
    body: bytes,
    hops: list[str],
    hide: KeyFilter,
) -> ReplayResult:
    memento = memento_timestamp(headers.get("memento-datetime"))
    if status == 404 and memento is None:
        return ReplayResult(
            asked, "not_archived", status, None, url, error="no capture", hops=tuple(hops)
        )
    if memento is None and not 200 <= status < 300:
        return ReplayResult(
            asked,
            "error",
            status,
            None,
            url,
            error=f"the archive answered HTTP {status}",
            hops=tuple(hops),
        )
    text = _read_text(body, headers.get("content-type"))
    # The body was filtered as it arrived; what decoding it reveals (a key written as HTML
    # entities, or in another charset) is hidden here, before the soft-404 rule quotes the title
    # cut short — and the sample, already cut to size, loses the start of a key at its end.
    sample_cut = text.sample is not None and len(text.sample) < (text.length or 0)
    text = dataclasses.replace(
        text,
        title=_clean(hide.text(text.title)),
        sample=_clean(hide.text(text.sample, cut=sample_cut)),
    )
    common = {
        "status": status,
        "memento": memento,
        "final_url": url,
        "sha1": sha1_base32(body) if body else None,
        "title": text.title,
        "text_sample": text.sample,
        "hops": tuple(hops),
    }
    if not 200 <= status < 300:
        return ReplayResult(asked, "error", error=f"the capture has status {status}", **common)
    reason = soft_404_reason(
        Page(
            url=original,
            final_url=original,
            status=status,
            title=text.title,
            text=text.sample,
            text_length=text.length,
        )
    )
    if reason:
        return ReplayResult(asked, "soft_404", error=reason, **common)
    outcome = "verified" if _same_capture(asked, memento) else "redirected"
    return ReplayResult(asked, outcome, **common)
