"""Text from archive.org made fit to store: the one JSON decoder of the archive layer.

JSON allows ``"\\udcff"``: a lone UTF-16 surrogate escape, which :func:`json.loads` turns into a
Python string no UTF-8 encoder accepts — SQLite refuses to store it (``surrogates not allowed``),
``quote`` refuses to put it in a URL. ``json.loads`` on bytes also lets raw UTF-8-encoded
surrogates through (it decodes with ``surrogatepass``). So every JSON answer — CDX, availability,
Save Page Now submissions and job statuses — is decoded by :func:`loads`, which replaces each lone
surrogate with U+FFFD (the replacement character) wherever a string is, keys included, and turns
an answer nested too deeply to be one of ours into a :class:`ValueError` (``json.loads`` itself
raises ``RecursionError`` for ``[[[[…``), like any other answer that is not the JSON we asked for.

Text decoded by other means (a replay's title and sample, in whatever charset the page claims:
UTF-7 can spell a lone surrogate too) goes through :func:`clean_text`.
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
#: Deeper than any answer archive.org sends (CDX rows are two levels, SPN's answers three).
MAX_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (the same object when it has none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text


def clean(value: Any, depth: int = 0) -> Any:
    """``value`` (decoded JSON) with :func:`clean_text` applied to every string in it, keys too;
    :class:`ValueError` if it nests deeper than :data:`MAX_DEPTH`."""
    if isinstance(value, str):
        return clean_text(value)
    if depth >= MAX_DEPTH and isinstance(value, list | dict):
        raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, list):
        return [clean(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {clean_text(str(k)): clean(v, depth + 1) for k, v in value.items()}
    return value


def loads(data: str | bytes | bytearray) -> Any:
    """:func:`json.loads`, with every string fit to store (see the module docstring).

    Raises :class:`ValueError` for anything that is not such JSON: not JSON, not UTF-8
    (``UnicodeDecodeError``), or nested too deeply."""
    try:
        decoded = json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    return clean(decoded)
