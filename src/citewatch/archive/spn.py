"""Save Page Now 2: submit a capture, poll its job, and say whether an error is worth retrying.

SPN2 answers errors in two ways: an HTTP error status, or — often — **HTTP 200 with
``{"status": "error", "status_ext": "error:…", "message": …}``**. Both end up as a
:class:`SpnOutcome` with ``status`` ``error`` and the ``status_ext`` code, which
:func:`classify_error` sorts into:

* ``permanent`` — about the URL itself (not found, invalid, blocked by the site or by
  archive.org): recorded, reported, and not resubmitted while the decision stands;
* ``transient`` — about now (timeouts, overload, the URL's daily capture cap): recorded with its
  code and submitted again on a later run;
* ``service`` — a limit on *us* (session/rate/bandwidth limits, our keys refused): transient too,
  and it also stops further submissions in this run.

docs/archive.md lists every code. Unknown codes count as transient: asking again on a later
run is cheap; never asking again would lose a capture.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from .cdx import is_capture_timestamp
from .gateway import ArchiveRequestError, Family, Gateway, Reply

PERMANENT_ERRORS = frozenset(
    {
        "error:not-found",
        "error:blocked-url",
        "error:invalid-url",
        "error:invalid-host-resolution",
        "error:blocked",
        "error:no-access",
        "error:method-not-allowed",
        "error:filesize-limit",
        "error:ftp-access-denied",
        "error:http-version-not-supported",
        "error:network-authentication-required",
        "error:not-implemented",
        "error:too-many-redirects",
        "error:invalid-ssl-cert",
        "error:unsupported-scheme",
    }
)
SERVICE_ERRORS = frozenset(
    {
        "error:user-session-limit",
        "error:too-many-requests",
        "error:bandwidth-limit-exceeded",
        "error:blocked-client-ip",
        "error:unauthorized",
        "error:overloaded",
        "error:no-browsers-available",
        "error:service-unavailable",
    }
)
TRANSIENT_ERRORS = frozenset(
    {
        "error:too-many-daily-captures",
        "error:celery",
        "error:internal-server-error",
        "error:bad-gateway",
        "error:gateway-timeout",
        "error:proxy-error",
        "error:read-timeout",
        "error:browsing-timeout",
        "error:soft-time-limit-exceeded",
        "error:capture-location-error",
        "error:cannot-fetch",
        "error:invalid-server-response",
        "error:job-failed",
        "error:timeout",
        "error:request-failed",
        "error:invalid-response",
    }
)


def classify_error(status_ext: str | None) -> str:
    """permanent | service | transient (the default for codes we do not know)."""
    code = (status_ext or "").strip().lower()
    if code in PERMANENT_ERRORS:
        return "permanent"
    if code in SERVICE_ERRORS:
        return "service"
    return "transient"


@dataclass(frozen=True, slots=True)
class SpnOutcome:
    """What became of one submission (so far)."""

    status: str
    """pending | success | error"""
    job_id: str | None = None
    timestamp: str | None = None
    status_ext: str | None = None
    message: str | None = None

    @property
    def kind(self) -> str | None:
        """For errors: permanent | service | transient."""
        return classify_error(self.status_ext) if self.status == "error" else None


def _error_from(data: Any, fallback_ext: str, fallback_message: str) -> SpnOutcome:
    if isinstance(data, dict):
        return SpnOutcome(
            "error",
            str(data.get("job_id")) if data.get("job_id") else None,
            None,
            str(data.get("status_ext") or fallback_ext),
            str(data.get("message") or fallback_message)[:500],
        )
    return SpnOutcome("error", None, None, fallback_ext, fallback_message)


_HTTP_EXT = {
    401: "error:unauthorized",
    403: "error:unauthorized",
    429: "error:too-many-requests",
    500: "error:internal-server-error",
    502: "error:bad-gateway",
    503: "error:service-unavailable",
    504: "error:gateway-timeout",
}


async def submit(gateway: Gateway, url: str) -> SpnOutcome:
    """POST the URL to SPN2; ``pending`` with a job id, or the error (HTTP or error-as-200)."""
    form = {"url": url, "skip_first_archive": "1"}
    try:
        reply = await gateway.post_form(Family.SPN_SUBMIT, gateway.endpoints.save, form, auth=True)
    except ArchiveRequestError as exc:
        return SpnOutcome("error", status_ext="error:request-failed", message=str(exc))
    data = _json(gateway, reply)
    if reply.status != 200:
        ext = _HTTP_EXT.get(reply.status, f"error:http-{reply.status}")
        return _error_from(data, ext, f"Save Page Now answered HTTP {reply.status}")
    if not isinstance(data, dict):
        return SpnOutcome("error", None, None, "error:invalid-response", "not a JSON answer")
    if data.get("status") == "error" or not data.get("job_id"):
        return _error_from(data, "error:unknown", "Save Page Now refused the request")
    return SpnOutcome("pending", str(data["job_id"]), None, None, _text(data.get("message")))


async def status(gateway: Gateway, job_id: str) -> SpnOutcome:
    """One status poll of a job."""
    try:
        reply = await gateway.get(
            Family.SPN_STATUS, gateway.endpoints.save_status(job_id), auth=True
        )
    except ArchiveRequestError as exc:
        return SpnOutcome("pending", job_id, message=str(exc))
    data = _json(gateway, reply)
    if reply.status != 200 or not isinstance(data, dict):
        return SpnOutcome("pending", job_id, message=f"status check answered HTTP {reply.status}")
    state = str(data.get("status") or "pending")
    if state == "success":
        sent = str(data.get("timestamp") or "")
        if sent and not is_capture_timestamp(sent):  # never stored as a capture: it is no date
            message = f"Save Page Now reported success with an invalid timestamp {sent[:40]!r}"
            return SpnOutcome("success", job_id, None, None, message)
        timestamp = sent or None
        return SpnOutcome("success", job_id, timestamp, None, _text(data.get("message")))
    if state == "error":
        outcome = _error_from(data, "error:unknown", "the capture failed")
        return SpnOutcome("error", job_id, None, outcome.status_ext, outcome.message)
    return SpnOutcome("pending", job_id)


async def wait_for(gateway: Gateway, job_id: str, interval: float, timeout: float) -> SpnOutcome:
    """Poll every ``interval`` seconds until the job is done or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    outcome = SpnOutcome("pending", job_id)
    while time.monotonic() < deadline:
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        outcome = await status(gateway, job_id)
        if outcome.status != "pending":
            return outcome
    return SpnOutcome("pending", job_id, message=f"still pending after {timeout:g}s")


def _json(gateway: Gateway, reply: Reply) -> Any:
    """The answer's JSON with every key form hidden in its strings (names too) — decoded, so a
    key written with ``\\u`` escapes is hidden as well, before any message is cut to length —
    and every lone surrogate escape replaced by U+FFFD (:meth:`Reply.json`), so a job id or a
    message is fit to store and to put in a URL."""
    try:
        data = reply.json()
    except ValueError:  # not JSON, not UTF-8 (UnicodeDecodeError), or nested too deeply
        return None
    return gateway.keys_filter.deep(data)


def _text(value: Any) -> str | None:
    return str(value)[:500] if value else None
