"""The availability API: a fallback when a CDX lookup fails for one URL.

``GET /wayback/available?url=…&timestamp=…`` names at most one capture, the closest to the
timestamp. archive.org's own docs call it flaky, so citewatch only asks it when CDX gave an error
for that URL (never when CDX said "nothing": ``[]`` is an answer), and stores what it names as a
single snapshot row with an empty digest.
"""

from __future__ import annotations

from typing import Any

from .cdx import CdxRow, is_capture_timestamp, match_key
from .gateway import Family, Gateway


def parse_available(data: Any) -> CdxRow | None:
    """The closest capture named by an availability answer, if it is available and 2xx-ish."""
    if not isinstance(data, dict):
        return None
    snapshots = data.get("archived_snapshots")
    closest = snapshots.get("closest") if isinstance(snapshots, dict) else None
    if not isinstance(closest, dict) or not closest.get("available"):
        return None
    timestamp = str(closest.get("timestamp") or "")
    url = str(closest.get("url") or "")
    if not is_capture_timestamp(timestamp):
        return None
    try:
        status: int | None = int(str(closest.get("status")))
    except ValueError:
        status = None
    original = url.split(f"/{timestamp}/", 1)[1] if f"/{timestamp}/" in url else url
    return CdxRow(
        urlkey=match_key(original),
        timestamp=timestamp,
        original=original,
        mimetype="",
        status=status,
        digest="",
        length=None,
    )


async def closest_capture(gateway: Gateway, url: str, timestamp: str | None) -> CdxRow | None:
    """Ask the availability API for the capture of ``url`` closest to ``timestamp``."""
    params = {"url": url}
    if timestamp:
        params["timestamp"] = timestamp
    reply = await gateway.get(Family.AVAILABILITY, gateway.endpoints.available, params)
    if reply.status != 200:
        return None
    try:  # reply.json(): lone surrogate escapes come back as U+FFFD, fit to store
        return parse_available(reply.json())
    except ValueError:  # not JSON (or nested too deeply)
        return None
