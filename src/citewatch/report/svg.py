"""The verdict trend chart as inline SVG: stacked bars, one per audit run, no scripts, no network.

Built by hand (a few rects and texts) so the HTML report stays one self-contained file and a
Markdown viewer can show the same chart from ``trend.svg``. Every text is XML-escaped; colours use
presentation attributes (not ``style``) so a strict Content-Security-Policy does not affect them.

>>> "<svg" in trend_chart([])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from .data import VERDICT_ORDER, TrendPoint

#: One colour per verdict, shared with the HTML report's badges.
VERDICT_COLOURS: dict[str, str] = {
    "dead": "#c62828",
    "failing": "#ef6c00",
    "blocked": "#8e24aa",
    "moved": "#1565c0",
    "alive": "#2e7d32",
    "skipped": "#90a4ae",
    "unchecked": "#cfd8dc",
}

WIDTH, HEIGHT = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 130, 16, 44


def _nice_max(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def trend_chart(points: Sequence[TrendPoint], title: str = "Verdicts per audit run") -> str:
    """An SVG document fragment (``<svg …>…</svg>``) of verdict counts across runs."""
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label={quoteattr(title)} '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
    ]
    if not points:
        parts.append(
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" fill="#607d8b">'
            "No audit runs yet: the trend appears after the first audit.</text></svg>"
        )
        return "".join(parts)
    top = _nice_max(max(sum(p.counts.values()) for p in points))
    # Grid lines and y-axis labels.
    ticks = top if top < 5 else 5  # top is 1, 2, 5, 10, 20, 50…: every tick is a whole number
    for i in range(ticks + 1):
        value = top * i // ticks
        y = _TOP + plot_h - plot_h * i / ticks
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" '
            f'stroke="#e0e6ea" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#607d8b">'
            f"{value}</text>"
        )
    slot = plot_w / len(points)
    bar = max(2.0, min(40.0, slot * 0.7))
    label_every = max(1, round(len(points) / 10))
    for index, point in enumerate(points):
        x = _LEFT + slot * index + (slot - bar) / 2
        y = _TOP + plot_h
        total = sum(point.counts.values())
        tooltip = f"run {point.run_id} ({point.started[:10]}): " + ", ".join(
            f"{v} {point.counts.get(v, 0)}" for v in VERDICT_ORDER if point.counts.get(v)
        )
        parts.append(f"<g><title>{escape(tooltip)}</title>")
        for verdict in reversed(VERDICT_ORDER):
            count = point.counts.get(verdict, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{VERDICT_COLOURS.get(verdict, "#999")}"/>'
            )
        parts.append("</g>")
        if total and len(points) <= 20:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                f'fill="#37474f">{total}</text>'
            )
        if index % label_every == 0 or index == len(points) - 1:
            cx = x + bar / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{_TOP + plot_h + 15}" text-anchor="middle" fill="#37474f">'
                f"#{point.run_id}</text>"
                f'<text x="{cx:.1f}" y="{_TOP + plot_h + 28}" text-anchor="middle" '
                f'fill="#78909c" font-size="10">{escape(point.started[5:10])}</text>'
            )
    parts.append(
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" '
        'stroke="#90a4ae" stroke-width="1"/>'
    )
    # Legend.
    lx = WIDTH - _RIGHT + 16
    for i, verdict in enumerate(VERDICT_ORDER):
        ly = _TOP + 4 + i * 18
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="11" height="11" rx="2" '
            f'fill="{VERDICT_COLOURS[verdict]}"/>'
            f'<text x="{lx + 17}" y="{ly + 10}" fill="#37474f">{escape(verdict)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
