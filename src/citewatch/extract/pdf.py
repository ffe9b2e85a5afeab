"""PDF reader (pypdf): link annotations (``/A << /S /URI /URI (…) >>``) and bare URLs in the text
layer, page by page. A PDF has no stable lines, so a citation's ``line`` is its page number,
``column`` is 0 and ``page`` is set. A URL that is both a link annotation and visible text on the
same page is one citation (the annotation), not two.

Metadata comes from the document information dictionary (``/Title``, ``/Author``, ``/CreationDate``).
A file pypdf cannot open raises :class:`PDFError`, which :func:`citewatch.extract.read_profile`
records as an ``unreadable`` finding.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..models import Finding
from .bare import find_urls
from .context import Extracted, Ref, sentence_at
from .metadata import parse_date, split_authors


class PDFError(ValueError):
    """The bytes are not a PDF pypdf can read."""


@contextmanager
def _quiet() -> Iterator[None]:
    """pypdf logs every repair it makes; a scan's output is not the place for them."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_pdf(data: bytes) -> Extracted:
    """Locate the links of every page of a PDF document (metadata included)."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    result = Extracted()
    with _quiet():
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise PDFError("encrypted PDF (needs a password)")
            pages = list(reader.pages)
        except PDFError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise PDFError(f"cannot parse PDF: {exc}") from exc
        _metadata(reader, result)
        for number, page in enumerate(pages, start=1):
            try:
                _page_refs(page, number, result)
            except Exception as exc:  # one broken page must not lose the others
                result.findings.append(
                    Finding("unreadable", f"page {number} could not be read: {exc}", line=number)
                )
    return result


def _page_refs(page: Any, number: int, result: Extracted) -> None:
    annotated: Counter[str] = Counter()
    for uri in _link_uris(page):
        annotated[uri] += 1
        result.refs.append(Ref(raw=uri, line=number, column=0, page=number))
    text = page.extract_text() or ""
    for bare in find_urls(text):
        if annotated[bare.url] > 0:
            annotated[bare.url] -= 1
            continue
        result.refs.append(
            Ref(
                raw=bare.url,
                line=number,
                column=0,
                page=number,
                target=bare.target,
                context=sentence_at(text, bare.start, bare.end),
            )
        )


def _link_uris(page: Any) -> Iterator[str]:
    annotations = page.get("/Annots")
    if annotations is None:
        return
    for item in annotations.get_object() or []:
        annotation = item.get_object()
        if annotation.get("/Subtype") != "/Link":
            continue
        action = annotation.get("/A")
        action = action.get_object() if action is not None else None
        if not action or action.get("/S") != "/URI" or action.get("/URI") is None:
            continue
        uri = action["/URI"]
        uri = uri.get_object() if hasattr(uri, "get_object") else uri
        if isinstance(uri, bytes):
            uri = uri.decode("latin-1")
        uri = str(uri).strip()
        if uri:
            yield uri


def _metadata(reader: Any, result: Extracted) -> None:
    try:
        info = reader.metadata
    except Exception:  # a broken info dictionary is not worth losing the links for
        return
    if not info:
        return
    result.title = str(info.get("/Title") or "").strip()
    author = str(info.get("/Author") or "").strip()
    result.authors = split_authors(author) if author else []
    for key in ("/CreationDate", "/ModDate"):
        value = info.get(key)
        if value and (date := parse_date(str(value))):
            result.published = date
            break
