"""Extraction: find every cited URL in a profile, with where and how it is cited.

``discover`` lists the profile files; ``read_profile`` reads one and never raises for bad input:
each problem becomes a :class:`~citewatch.models.Finding` on the profile. Readers (one module per
format) only *locate* references; this module then picks one base URL per document and resolves
them all, because the base may depend on the whole document (it can be guessed from its links).

Base-URL precedence: the ``base_url`` argument > the manifest's ``url`` > the document's canonical
address (``<link rel=canonical>``, ``og:url``) > the most common https origin among the document's
own absolute links (a ``guessed_base_url`` finding, ``base_url_guessed=True``). An HTML
``<base href>`` is honoured as browsers do: resolved against that address, it becomes the base.
Without any base, relative links are ``malformed_url`` findings, not citations.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..models import Citation, Finding, Profile
from ..urls import WAYBACK_HOSTS, InvalidURL, is_absolute, parse, resolve
from .context import Extracted, Ref
from .manifest import MANIFEST_NAME, Manifest

__all__ = ["MAX_BYTES", "discover", "read_profile"]

#: Files larger than this are not read (a ``too_large`` finding). Tests monkeypatch it.
MAX_BYTES = 50 * 1024 * 1024
_SNIFF = 8192
_FORMATS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".mkd": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}


# -- discovery ------------------------------------------------------------------------------------
#: The file the report writer keeps in every folder it writes (``citewatch.report.MANIFEST``): a
#: folder holding it is a reports folder, never a corpus folder.
REPORTS_MANIFEST = ".citewatch-reports.json"
#: citewatch's config file (``citewatch.config``): never a profile.
CONFIG_NAME = "citewatch.toml"


def discover(
    paths: list[Path], exclude: Iterable[Path] = (), skipped: list[Path] | None = None
) -> Iterator[Path]:
    """Files given directly, and files under folders recursively (sorted, deterministic).

    Inside folders, skips hidden files and folders, the manifest ``corpus.toml``, the config
    ``citewatch.toml``, ``README*``, the backups ``citewatch fix --write`` leaves (``*.bak``,
    ``*.bak.N``, ``*.orig``), folders holding a report manifest (``.citewatch-reports.json``:
    citewatch's own reports), and every file or folder in ``exclude`` (compared as resolved
    paths; citewatch's own database and reports folder). Files of other types — an extension
    that is none of the profile formats (``notes.docx``, ``data.csv``, ``audit.log``) — are not
    read either, but appended to ``skipped`` so the caller can say so; a file without an extension
    is read (its content decides). Exclusions apply to folder walks only: a path given in
    ``paths`` is always taken, as the user asked for it (an unknown format then becomes a
    finding). Each file is yielded once.
    """
    excluded = frozenset(_resolved(Path(p)) for p in exclude)
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            candidates: Iterator[Path] = _walk(path, excluded)
        else:
            candidates = iter([path])
        for file in candidates:
            key = _resolved(file)
            if key in seen:
                continue
            seen.add(key)
            if path.is_dir() and _other_type(file.name):
                if skipped is not None:
                    skipped.append(file)
                continue
            yield file


_EXTENSION = re.compile(r"\.[A-Za-z0-9]*[A-Za-z][A-Za-z0-9-]{0,11}")  # .csv, .db-wal; not .2023


def _other_type(name: str) -> bool:
    """A real extension (letters in it: ``.csv``, ``.log``; not ``.2023``) of no profile format."""
    suffix = Path(name).suffix
    return bool(_EXTENSION.fullmatch(suffix)) and suffix.lower() not in _FORMATS


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _walk(root: Path, excluded: frozenset[Path] = frozenset()) -> Iterator[Path]:
    """Files in path order (names sorted at each level), without recursion: deep trees cannot
    overflow the stack, symlinked folders are not followed (no loops). Entries in ``excluded``
    (resolved paths) are neither yielded nor walked."""
    # Folders are only entered when they are not symlinks, so a resolved folder joined with an
    # entry's name is that entry's resolved path, unless the entry is itself a symlink.
    stack: list[tuple[Path, Path, bool]] = [(root, _resolved(root), True)]
    while stack:
        path, real, is_dir = stack.pop()
        if not is_dir:
            yield path
            continue
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                folder = False
            if not folder and _is_skipped(entry.name):
                continue
            entry_real = real / entry.name
            if excluded:
                try:
                    link = entry.is_symlink()
                except OSError:
                    link = False
                if entry_real in excluded or (link and _resolved(path / entry.name) in excluded):
                    continue
            if folder:
                if not os.path.exists(os.path.join(entry.path, REPORTS_MANIFEST)):
                    stack.append((path / entry.name, entry_real, True))
            else:
                stack.append((path / entry.name, entry_real, False))


def _is_skipped(name: str) -> bool:
    low = name.lower()
    if (
        low in (MANIFEST_NAME, CONFIG_NAME)
        or low.startswith("readme")
        or low.endswith((".bak", ".orig"))
    ):
        return True
    stem, _, suffix = low.rpartition(".")
    return suffix.isdigit() and stem.endswith(".bak")


# -- reading --------------------------------------------------------------------------------------
def read_profile(
    path: Path, *, base_url: str | None = None, manifest: Manifest | None = None
) -> Profile:
    """Read one profile file; every problem becomes a finding, nothing raises for bad input."""
    profile = Profile(path=path.as_posix(), format=_FORMATS.get(path.suffix.lower(), "unknown"))
    data = _read_bytes(path, profile)
    if data is None:
        return profile
    profile.sha256 = hashlib.sha256(data).hexdigest()
    if not data.strip():
        profile.findings.append(Finding("empty", "the file is empty"))
        return profile
    fmt = _sniff(path, data)
    if fmt is None:
        profile.format = "unknown"
        profile.findings.append(
            Finding(
                "unknown_format",
                f"unknown file type {path.suffix or '(no extension)'!r}: not text, Markdown, "
                "HTML or PDF",
            )
        )
        return profile
    profile.format = fmt
    extracted = _extract(fmt, data, profile)
    if extracted is None:
        return profile
    entry = manifest.get(path) if manifest else None
    profile.title = (entry.title if entry and entry.title else None) or extracted.title
    profile.authors = (entry.authors if entry and entry.authors else None) or extracted.authors
    profile.published = (entry.published if entry else None) or extracted.published
    profile.findings.extend(extracted.findings)
    _resolve_all(profile, extracted, base_url or (entry.url if entry else None))
    return profile


def _read_bytes(path: Path, profile: Profile) -> bytes | None:
    try:
        size = path.stat().st_size
        if path.is_dir():
            profile.findings.append(Finding("unreadable", "is a folder, not a file"))
            return None
        if size > MAX_BYTES:
            profile.sha256 = _hash_file(path)
            profile.findings.append(
                Finding(
                    "too_large", f"{size:,} bytes is over the {MAX_BYTES:,}-byte limit; not read"
                )
            )
            return None
        return path.read_bytes()
    except OSError as exc:
        profile.findings.append(Finding("unreadable", f"cannot read: {exc.strerror or exc}"))
        return None


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sniff(path: Path, data: bytes) -> str | None:
    """The format: PDF by magic bytes, else by extension, else HTML by its start, else None."""
    if b"%PDF-" in data[:1024]:
        return "pdf"
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt and fmt != "pdf":
        return fmt
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or (
        head.startswith(b"<?xml") and b"<html" in head
    ):
        return "html"
    if fmt == "pdf":
        return "pdf"  # a .pdf that is not a PDF: the PDF reader reports it unreadable
    if not path.suffix and b"\x00" not in data[:_SNIFF]:
        return "text"  # no extension at all: the text reader is the fallback
    return None


def _decode(data: bytes, profile: Profile) -> str | None:
    """UTF-8 (BOM allowed); else UTF-16 by BOM; else UTF-8 with replacement and a finding."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        profile.findings.append(
            Finding("encoding", "UTF-16 text (columns count decoded characters)")
        )
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data[:_SNIFF]:
        profile.findings.append(Finding("binary", "binary data (NUL bytes), not a text document"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        profile.findings.append(
            Finding(
                "encoding",
                f"not valid UTF-8 (first bad byte at offset {exc.start}); decoded with replacement "
                "characters",
                line=line,
            )
        )
        return data.decode("utf-8-sig", errors="replace")


def _extract(fmt: str, data: bytes, profile: Profile) -> Extracted | None:
    reader: Callable[[str], Extracted]
    try:
        if fmt == "pdf":
            from .pdf import PDFError, read_pdf

            try:
                return read_pdf(data)
            except PDFError as exc:
                profile.findings.append(Finding("unreadable", str(exc)))
                return None
        text = _decode(data, profile)
        if text is None:
            return None
        if not text.strip():
            profile.findings.append(Finding("empty", "the file holds only whitespace"))
            return None
        if fmt == "markdown":
            from .markdown import read_markdown as reader
        elif fmt == "html":
            from .html import read_html as reader
        else:
            from .text import read_text as reader
        return reader(text)
    except Exception as exc:  # a reader must never stop the scan; the finding says what broke
        profile.findings.append(
            Finding("unreadable", f"the {fmt} reader failed: {type(exc).__name__}: {exc}")
        )
        return None


# -- resolution -----------------------------------------------------------------------------------
def _resolve_all(profile: Profile, extracted: Extracted, given: str | None) -> None:
    base = _choose_base(profile, extracted, given)
    for ref in sorted(extracted.refs, key=lambda r: (r.line, r.column)):
        item = _citation(ref, base)
        if isinstance(item, Citation):
            profile.citations.append(item)
        else:
            profile.findings.append(item)


def _choose_base(profile: Profile, extracted: Extracted, given: str | None) -> str | None:
    address = given or (
        extracted.canonical if extracted.canonical and is_absolute(extracted.canonical) else None
    )
    base = address
    if extracted.base_href is not None:
        try:
            base = parse(extracted.base_href.strip(), address).href
        except InvalidURL:
            profile.findings.append(
                Finding(
                    "malformed_url",
                    f"<base href={extracted.base_href!r}> cannot be resolved; ignored",
                    raw=extracted.base_href,
                )
            )
    if base is None and any(_needs_base(ref) for ref in extracted.refs):
        base = _guess_base(extracted.refs)
        if base is not None:
            profile.base_url_guessed = True
            profile.findings.append(
                Finding(
                    "guessed_base_url",
                    f"no base URL (give --base-url or a manifest url); guessed {base} from the "
                    "document's own links",
                    raw=base,
                )
            )
    profile.base_url = base
    return base


def _target(ref: Ref) -> str:
    return ref.target if ref.target is not None else ref.raw


def _needs_base(ref: Ref) -> bool:
    target = _target(ref).strip()
    return bool(target) and not target.startswith("#") and not is_absolute(target)


def _guess_base(refs: list[Ref]) -> str | None:
    """The most common https origin (else http) among the absolute links, archives excepted."""
    origins: Counter[str] = Counter()
    for ref in refs:
        target = _target(ref).strip()
        if not target.lower().startswith(("http://", "https://")):
            continue
        try:
            url = parse(target)
        except InvalidURL:
            continue
        if url.hostname and url.hostname.lower() not in WAYBACK_HOSTS:
            origins[f"{url.protocol}//{url.host}/"] += 1
    for scheme in ("https:", "http:"):
        ranked = [(n, o) for o, n in origins.items() if o.startswith(scheme)]
        if ranked:
            best = max(n for n, _ in ranked)
            return next(o for o in origins if o.startswith(scheme) and origins[o] == best)
    return None


def _citation(ref: Ref, base: str | None) -> Citation | Finding:
    target = _target(ref)
    try:
        resolved = resolve(target, base)
    except InvalidURL as exc:
        message = (
            "relative link and no base URL"
            if not base and not is_absolute(target.strip())
            else f"not a valid URL: {exc}"
        )
        return Finding("malformed_url", message, line=ref.line, raw=ref.raw)
    except Exception as exc:  # anything ada cannot digest is a bad URL, not a crash
        return Finding("malformed_url", f"not a valid URL: {exc}", line=ref.line, raw=ref.raw)
    if resolved.skip_reason and resolved.scheme:
        # urls.resolve records mailto:/data:/file:… without parsing them; a link a browser could
        # not follow either is malformed, not "skipped".
        try:
            parse(target.strip(), base)
        except InvalidURL as exc:
            return Finding("malformed_url", f"not a valid URL: {exc}", line=ref.line, raw=ref.raw)
    return Citation(
        url=resolved.url,
        raw=ref.raw,
        line=ref.line,
        column=ref.column,
        text=ref.text,
        context=ref.context,
        section=ref.section,
        role=ref.role,
        fragment=resolved.fragment,
        archived=resolved.archived,
        skip_reason=resolved.skip_reason,
        page=ref.page,
    )
