"""Markdown reports: one per profile, and ``index.md`` with the corpus summary.

Plain Markdown (GFM tables) so the run-to-run diff and every citation's provenance read well in a
terminal, a pull request or a Git forge. Untrusted profile text goes through :mod:`.safe`: it is
escaped, never interpreted, and only http(s) URLs become links.
"""

from __future__ import annotations

from collections.abc import Iterable

from .data import (
    NO_LONGER_DEAD,
    NOW_IGNORED,
    PROFILE_REMOVED,
    RECOVERED,
    REMOVED,
    VERDICT_ORDER,
    CitationChange,
    CitationRecord,
    ProfileGroup,
    ReportData,
)
from .fmt import (
    archive_links_label,
    comparison_text,
    day,
    days_label,
    interrupted_text,
    last_check_label,
    network_text,
    not_compared_text,
    offline_attempt_label,
    pct,
    since_label,
)
from .safe import md_code, md_link, md_text, md_url


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return lines


def _verdict_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {v}" for v, n in counts.items()) or "none"


def _snapshot_line(c: CitationRecord) -> str:
    s = c.best_snapshot
    if s is None:
        return "none known (no 2xx capture)"
    text = f"{md_link(day(s.timestamp) + ' ' + s.timestamp[8:], s.replay_url)}"
    extra = [f"HTTP {s.status}" if s.status else "", days_label(s.days_from_citation)]
    return text + " (" + ", ".join(e for e in extra if e) + ")"


def _replacement_line(c: CitationRecord) -> str:
    note = md_text(c.replacement_note)
    if c.replacement is not None:
        return f"{md_url(c.replacement)} ({note})"
    if c.broken:
        head, _, rest = note.partition(":")
        return f"**none: {head}**" + (f" —{rest}" if rest else "")
    return note


def _replacement_cell(c: CitationRecord) -> str:
    if c.replacement:
        return md_url(c.replacement)
    return "**no archived copy known" + ("**" if c.archive_asked else " yet**")


def citation_details(index: int, c: CitationRecord) -> list[str]:
    """The full provenance block of one citation."""
    title = md_text(c.anchor_text) or md_code(c.raw)
    heading = f"### {index}. line {c.line}"
    if c.section:
        heading += f" · {md_text(c.section)}"
    heading += f" — {title}"
    lines = [heading, ""]
    items = [
        (
            "Where",
            f"{md_code(c.location)}, column {c.column}" + (f", page {c.page}" if c.page else ""),
        ),
        ("Role", c.role),
        ("Sentence", md_text(c.sentence) if c.sentence else "—"),
        (
            "URL as cited",
            md_url(c.cited_url) + (f" (raw {md_code(c.raw)})" if c.raw != c.cited_url else ""),
        ),
    ]
    if c.url and c.url != c.cited_url.split("#")[0]:
        items.append(("Checked URL", md_url(c.url)))
    if c.skip_reason:
        items.append(("Not checked", md_text(c.skip_reason)))
    verdict = f"**{md_text(c.verdict_label)}** {since_label(c)}".strip()
    if c.archived_timestamp:
        verdict += " (of the original URL)"
    if c.ignored is not None:
        verdict += f" — ignored: {md_text(c.ignored)}"
    items.append(("Verdict", verdict))
    last = md_text(last_check_label(c))
    if c.last_final_url and c.last_final_url != c.url:
        last += f" → final URL {md_url(c.last_final_url)}"
    if c.last_error:
        last += f" ({md_text(c.last_error)})"
    if c.offline_checked:
        last += f" — {md_text(offline_attempt_label(c))}"
    items.append(("Last check", last))
    if c.moved_to:
        items.append(("Moved to", md_url(c.moved_to)))
    if c.cited_capture is not None:
        label = md_text(c.cited_capture.label())
        items.append(("Cited capture", f"**{label}**" if c.cited_capture.fails else label))
    if c.broken_reason:
        items.append(("Broken", md_text(c.broken_reason)))
    items.append(("Suggested replacement", _replacement_line(c)))
    items.append(("Best snapshot", _snapshot_line(c)))
    captures = "; ".join(md_text(cap.label()) for cap in c.captures) or "none"
    items.append(("Capture requests", captures))
    if c.drift is not None:
        items.append(("Content drift", f"{md_text(c.drift.label())} — {md_text(c.drift.reason)}"))
    if c.evidence:
        items.append(("Evidence", md_code(c.evidence)))
    lines += [f"- **{name}:** {value}" for name, value in items]
    return lines + [""]


def profile_markdown(group: ProfileGroup, data: ReportData) -> str:
    lines = [f"# {md_text(group.display_title)} — citations", ""]
    meta = [f"Profile {md_code(group.path)}"]
    if group.authors:
        meta.append("by " + ", ".join(md_text(a) for a in group.authors))
    meta.append(f"published {group.published}" if group.published else "no publication date")
    if group.format:
        meta.append(f"format {group.format}")
    lines += [" · ".join(meta), ""]
    lines += [
        f"Generated {data.generated_at}"
        + (f" from run {data.run_id}" if data.run_id is not None else "")
        + " · [corpus summary](index.md)",
        "",
    ]
    lines += _run_notes(data, quiet_when_ok=True)
    lines += [
        f"**{len(group.citations)} citations** ({group.sources} sources): "
        f"{_verdict_counts(group.by_verdict)}. **{group.broken} broken.**",
        "",
    ]
    action = [c for c in group.citations if c.broken or c.replacement_kind == "moved"]
    if action:
        lines += ["## Needs attention", ""]
        lines += _table(
            ["line", "anchor text", "URL", "verdict", "suggested replacement"],
            [
                [
                    str(c.line),
                    md_text(c.anchor_text),
                    md_url(c.cited_url),
                    md_text(c.attention_label),
                    _replacement_cell(c),
                ]
                for c in action
            ],
        )
        lines.append("")
    lines += ["## Citations", ""]
    lines += _table(
        ["#", "line", "role", "anchor text", "URL", "verdict", "last check", "best snapshot"],
        [
            [
                str(i),
                str(c.line),
                c.role,
                md_text(c.anchor_text),
                md_url(c.cited_url),
                md_text(c.verdict_label),
                md_text(last_check_label(c)),
                md_link(day(c.best_snapshot.timestamp), c.best_snapshot.replay_url)
                if c.best_snapshot
                else "—",
            ]
            for i, c in enumerate(group.citations, 1)
        ],
    )
    lines += ["", "## Provenance of each citation", ""]
    for i, c in enumerate(group.citations, 1):
        lines += citation_details(i, c)
    if group.findings:
        lines += ["## Findings (input problems, not citations)", ""]
        lines += _table(
            ["line", "kind", "message", "text"],
            [
                [
                    str(f.line or ""),
                    md_text(f.kind),
                    md_text(f.message),
                    md_code(f.raw) if f.raw else "",
                ]
                for f in group.findings
            ],
        )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _run_notes(data: ReportData, quiet_when_ok: bool = False) -> list[str]:
    """The network health of the reported run (bold unless ok) and the runs that never finished."""
    lines: list[str] = []
    network = data.network
    if not (quiet_when_ok and (network is None or network.health == "ok")):
        text = md_text(network_text(network))
        if network is not None and network.health != "ok":
            head, _, rest = text.partition(" — ")
            text = f"**{head}**" + (f" — {rest}" if rest else "")
        lines += [text, ""]
    for run in data.interrupted:
        lines += [f"**{md_text(interrupted_text(run, data.run_id))}**", ""]
    return lines


def _change_table(changes: tuple[CitationChange, ...] | list[CitationChange]) -> list[str]:
    if not changes:
        return ["- none"]
    return _table(
        ["where", "URL", "why", "detail"],
        [
            [md_code(ch.location), md_url(ch.url or ch.cited_url), ch.why, md_text(ch.detail)]
            for ch in changes
        ],
    )


def _since_previous_audit(data: ReportData) -> list[str]:
    diff = data.diff
    lines = ["## Since the previous audit", ""]
    if diff.previous_run is None:
        lines += [
            f"No earlier {diff.policy} audit in this database: nothing to compare with yet.",
            "",
        ]
        if not_compared_text(diff):
            lines += [md_text(not_compared_text(diff)), ""]
        return lines
    gone = diff.no_longer_broken
    recovered = [c for c in gone if c.why == RECOVERED]
    removed = [c for c in gone if c.why in (REMOVED, PROFILE_REMOVED)]
    lines += [
        f"{md_text(comparison_text(diff))}: **{len(diff.newly_broken_citations)} newly broken**, "
        f"**{len(recovered)} recovered**, **{len(removed)} removed**"
        + (f", {diff.count(NOW_IGNORED)} ignored" if diff.count(NOW_IGNORED) else "")
        + (f", {diff.count(NO_LONGER_DEAD)} no longer dead" if diff.count(NO_LONGER_DEAD) else "")
        + f" (citations); {len(diff.changes)} verdict changes (URLs). "
        f"Broken citations: {diff.broken_before} at audit run {diff.previous_run}, "
        f"{data.summary['broken_citations']} now.",
        "",
    ]
    if not_compared_text(diff):
        lines += [md_text(not_compared_text(diff)), ""]
    sections = [
        ("Newly broken", diff.newly_broken_citations, True),
        ("Recovered", recovered, True),
        ("Removed", removed, True),
        ("Ignored", [c for c in gone if c.why == NOW_IGNORED], False),
        ("No longer dead", [c for c in gone if c.why == NO_LONGER_DEAD], False),
    ]
    for title, changes, always in sections:
        if changes or always:
            lines += [f"### {title} ({len(changes)})", ""]
            lines += _change_table(changes)
            lines.append("")
    if diff.changes:
        lines += [f"### All verdict changes ({len(diff.changes)})", ""]
        lines += _table(
            ["URL", "before", "after"],
            [[md_url(ch.url), md_text(ch.before), md_text(ch.after)] for ch in diff.changes],
        )
        lines.append("")
    return lines


def index_markdown(data: ReportData, chart: str | None = "trend.svg") -> str:
    """The corpus summary; ``chart`` is the relative path of the trend SVG, if one was written."""
    s = data.summary
    lines = ["# citewatch — corpus report", ""]
    lines += [
        f"Generated {data.generated_at}"
        + (f" from run {data.run_id}" if data.run_id is not None else "")
        + ".",
        "",
    ]
    lines += _run_notes(data)
    lines += ["## Summary", ""]
    rot = s["link_rot"]
    lines += _table(
        ["measure", "value"],
        [
            [
                "network",
                md_text(
                    f"{data.network.health} (run {data.network.run_id})"
                    if data.network
                    else "not checked yet"
                ),
            ],
            ["profiles", str(s["profiles"])],
            ["citations", f"{s['citations']} ({s['skipped_citations']} not checkable)"],
            ["distinct URLs", str(s["urls"])],
            ["broken citations", str(s["broken_citations"])],
            ["cited archive links", archive_links_label(s)],
            [
                "link-rot rate",
                f"{pct(s['link_rot_rate'])} ({rot['dead_source_urls']} dead of "
                f"{rot['judged_source_urls']} judged source URLs)",
            ],
            [
                "archive coverage",
                f"{pct(s['archive_coverage'])} ({s['archived_urls']} of {s['urls']} URLs have a 2xx snapshot)",
            ],
        ],
    )
    lines += ["", "## Verdicts", ""]
    lines += _table(
        ["verdict", "URLs", "citations"],
        [
            [v, str(s["by_verdict"].get(v, 0)), str(s["citations_by_verdict"].get(v, 0))]
            for v in VERDICT_ORDER
            if s["by_verdict"].get(v) or s["citations_by_verdict"].get(v)
        ],
    )
    lines += ["", "## Sources vs navigation", ""]
    lines += _table(
        ["role", "citations", "URLs", "broken citations", "dead URLs"],
        [
            [
                role,
                str(r["citations"]),
                str(r["urls"]),
                str(r["broken_citations"]),
                str(r["dead_urls"]),
            ]
            for role, r in s["roles"].items()
        ],
    )
    lines += [""] + _since_previous_audit(data)
    basis = "audit run" if data.trend_basis == "audit" else "run that changed a verdict"
    lines += ["## Trend", "", f"Distinct cited URLs by verdict, per {basis}.", ""]
    if chart and data.trend:
        lines += [f"![Verdicts per {basis}]({chart})", ""]
    if data.trend:
        lines += _table(
            ["run", "date"] + list(VERDICT_ORDER),
            [
                [str(p.run_id), day(p.started)] + [str(p.counts.get(v, 0)) for v in VERDICT_ORDER]
                for p in data.trend
            ],
        )
    else:
        lines.append("No runs with verdicts yet.")
    lines += ["", "## Profiles", ""]
    lines += _table(
        ["profile", "published", "citations", "broken", "verdicts", "report"],
        [
            [
                md_text(g.display_title),
                g.published or "",
                str(len(g.citations)),
                str(g.broken),
                md_text(_verdict_counts(g.by_verdict)),
                f"[{g.slug}.md]({g.slug}.md)",
            ]
            for g in data.profiles
        ],
    )
    broken = [c for c in data.citations if c.broken]
    if broken:
        lines += ["", "## Broken citations", ""]
        lines += _table(
            ["where", "anchor text", "URL", "why", "suggested replacement"],
            [
                [
                    md_code(c.location),
                    md_text(c.anchor_text),
                    md_url(c.cited_url),
                    md_text(c.broken_reason),
                    _replacement_cell(c),
                ]
                for c in broken
            ],
        )
    return "\n".join(lines).rstrip() + "\n"
