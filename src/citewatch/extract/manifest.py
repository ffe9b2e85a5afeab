"""The corpus manifest: each profile's canonical URL (its base for relative links) and overrides.

A text dump does not say where it came from, so ``/experts/abdullah-hayek/`` can only be resolved
if someone records the page's address. That record is ``corpus.toml`` in the corpus folder::

    # citations/corpus.toml
    [[profile]]
    path = "profile-liwa-al-baqir.txt"        # relative to this file's folder
    url = "https://www.washingtoninstitute.org/policy-analysis/profile-liwa-al-baqir"
    title = "Profile: Liwa al-Baqir"          # optional: overrides what the reader found
    authors = ["Abdullah Hayek", "Michael Knights"]   # optional (a string is one author)
    published = "2023-11-01"                  # optional: a TOML date or a date string

Only ``path`` is required. Entries are keyed by the profile file's resolved path, so a profile is
found however it was named on the command line. A sub-folder may hold its own ``corpus.toml`` (its
paths relative to that sub-folder); :func:`load_manifest` reads every one under the folder it is
given, and for one profile file the nearest one wins. A malformed manifest raises
:class:`ValueError` with the file and the reason: a wrong base URL silently resolving every link
elsewhere would be worse than stopping.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..urls import is_absolute
from .metadata import parse_date

MANIFEST_NAME = "corpus.toml"
_KEYS = {"path", "url", "title", "authors", "published"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``[[profile]]`` table."""

    path: Path
    """Resolved path of the profile file."""
    url: str | None = None
    title: str | None = None
    authors: list[str] | None = None
    published: str | None = None


@dataclass(slots=True)
class Manifest:
    """The entries of the ``corpus.toml`` files of a corpus (empty when there is none)."""

    source: Path | None = None
    entries: dict[Path, Entry] = field(default_factory=dict)

    def get(self, path: Path) -> Entry | None:
        """The entry for a profile file, however its path is spelled."""
        try:
            return self.entries.get(path.resolve())
        except OSError:
            return None

    def __len__(self) -> int:
        return len(self.entries)


def load_manifest(root: Path) -> Manifest:
    """Every ``corpus.toml`` in ``root`` (a folder, or a file's own folder) and its sub-folders.

    Hidden folders are not searched. An entry in a deeper manifest overrides one for the same file
    in a shallower one; an empty :class:`Manifest` when there is none.
    """
    folder = root if root.is_dir() else root.parent
    merged = Manifest()
    for source in _manifest_files(folder):  # shallowest first: deeper ones override
        manifest = _load_one(source)
        if merged.source is None:
            merged.source = source
        merged.entries.update(manifest.entries)
    return merged


def _manifest_files(folder: Path) -> list[Path]:
    found: list[tuple[int, str, Path]] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if MANIFEST_NAME in files:
            path = Path(current) / MANIFEST_NAME
            found.append((len(path.relative_to(folder).parts), path.as_posix(), path))
    return [path for *_, path in sorted(found)]


def _load_one(source: Path) -> Manifest:
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ValueError(f"{source}: cannot be read: {exc}") from exc
    tables = data.get("profile", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ValueError(f"{source}: 'profile' must be an array of tables ([[profile]])")
    manifest = Manifest(source=source)
    folder = source.parent.resolve()
    for number, table in enumerate(tables, start=1):
        entry = _entry(table, folder, f"{source}: [[profile]] #{number}")
        if entry.path in manifest.entries:
            raise ValueError(f"{source}: [[profile]] #{number}: {table['path']!r} is listed twice")
        manifest.entries[entry.path] = entry
    return manifest


def _entry(table: dict[str, object], folder: Path, where: str) -> Entry:
    unknown = set(table) - _KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    path = table.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError(f"{where}: 'path' (a string, relative to the manifest) is required")
    url = table.get("url")
    if url is not None and (
        not isinstance(url, str) or not url.lower().startswith(("http://", "https://"))
    ):
        raise ValueError(f"{where}: 'url' must be an absolute http(s) URL, got {url!r}")
    if isinstance(url, str) and not is_absolute(url):
        raise ValueError(f"{where}: 'url' {url!r} is not a valid URL")
    title = table.get("title")
    if title is not None and not isinstance(title, str):
        raise ValueError(f"{where}: 'title' must be a string")
    authors = table.get("authors")
    if isinstance(authors, str):
        authors = [authors]
    if authors is not None and (
        not isinstance(authors, list) or not all(isinstance(a, str) for a in authors)
    ):
        raise ValueError(f"{where}: 'authors' must be a string or a list of strings")
    published = table.get("published")
    if isinstance(published, dt.datetime):
        published = published.date().isoformat()
    elif isinstance(published, dt.date):
        published = published.isoformat()
    elif published is not None:
        parsed = parse_date(published) if isinstance(published, str) else None
        if parsed is None:
            raise ValueError(f"{where}: 'published' {published!r} is not a date (use YYYY-MM-DD)")
        published = parsed
    return Entry(
        path=(folder / path).resolve(),
        url=url,
        title=title,
        authors=list(authors) if authors is not None else None,
        published=published,
    )
