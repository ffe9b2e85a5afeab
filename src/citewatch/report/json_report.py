"""``citations.json``: the whole corpus for machines — summary, profiles, and a record per citation.

The citation records carry the same fields as the CSV (see :func:`citation_dict`), with nested
objects for the best snapshot, drift and capture requests instead of flattened columns.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from .data import CitationRecord, ProfileGroup, ReportData

#: Bumped when a field is renamed or removed (additions keep the version).
FORMAT_VERSION = 1


def citation_dict(c: CitationRecord) -> dict[str, Any]:
    record = asdict(c)
    record["broken"] = c.broken
    record["broken_reason"] = c.broken_reason
    record["replacement_note"] = c.replacement_note
    if c.cited_capture is not None:
        record["cited_capture"] = {**asdict(c.cited_capture), "label": c.cited_capture.label()}
    record["location"] = c.location
    record["drift"] = None if c.drift is None else {**asdict(c.drift), "label": c.drift.label()}
    return record


def profile_dict(g: ProfileGroup) -> dict[str, Any]:
    return {
        "path": g.path,
        "slug": g.slug,
        "title": g.title,
        "authors": list(g.authors),
        "published": g.published,
        "format": g.format,
        "base_url": g.base_url,
        "citations": len(g.citations),
        "sources": g.sources,
        "broken": g.broken,
        "by_verdict": g.by_verdict,
        "findings": [asdict(f) for f in g.findings],
    }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def report_json(data: ReportData) -> str:
    """One JSON document; the summary is indented, profiles and citations are one per line.

    One record per line keeps a 100,000-citation corpus a third of the indented size while staying
    readable, greppable and diff-friendly.
    """
    head = {
        "format_version": FORMAT_VERSION,
        "generated_at": data.generated_at,
        "run_id": data.run_id,
        # The network health of the reported run, up front: an offline run judged nothing.
        "network": data.summary.get("network"),
        "interrupted_runs": data.summary.get("interrupted_runs", []),
        "summary": data.summary,  # last: the text is reopened after it, below
    }
    text = json.dumps(head, ensure_ascii=False, indent=2)[:-2]  # reopen the object after "summary"

    def array(items: list[str]) -> str:
        return "[\n" + ",\n".join("    " + item for item in items) + "\n  ]" if items else "[]"

    profiles = array([_compact(profile_dict(g)) for g in data.profiles])
    citations = array([_compact(citation_dict(c)) for c in data.citations])
    return f'{text},\n  "profiles": {profiles},\n  "citations": {citations}\n}}\n'
