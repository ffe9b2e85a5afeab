"""HTML reports: one self-contained file per profile plus ``index.html`` with the corpus summary.

Self-contained (inline CSS, inline vanilla JS, inline SVG; no fonts, images or requests) and safe with
hostile profile text, in two independent layers:

1. Jinja2 autoescaping: every value from a profile is HTML-escaped, and only URLs that pass
   :func:`.safe.is_web_url` (absolute http/https) ever become an ``href``.
2. A Content-Security-Policy ``<meta>`` that allows exactly the one script and one style block this
   module ships (by SHA-256 hash) and nothing else: even markup that slipped past escaping could not
   run a script, load an image or submit a form.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import jinja2

from .. import __version__
from .data import VERDICT_ORDER, CitationRecord, ProfileGroup, ReportData
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
)
from .safe import is_web_url
from .svg import trend_chart

TEMPLATES = Path(__file__).parent / "templates"


def _sha256_source(text: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"
    )


def content_security_policy(script: str, style: str) -> str:
    """Allow only the given inline script and style (by hash); no fetches of any kind."""
    return (
        "default-src 'none'; "
        f"script-src {_sha256_source(script)}; "
        f"style-src {_sha256_source(style)}; "
        "img-src 'none'; base-uri 'none'; form-action 'none'"
    )


def _verdicts_in(citations: Iterable[CitationRecord]) -> list[str]:
    present = {c.verdict for c in citations}
    return [v for v in VERDICT_ORDER if v in present] + sorted(present - set(VERDICT_ORDER))


def _roles_in(citations: Iterable[CitationRecord]) -> list[str]:
    return sorted({c.role for c in citations})


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.tests["web_url"] = is_web_url
    env.filters.update(
        day=day,
        days=days_label,
        pct=pct,
        last_check=last_check_label,
        archive_links=archive_links_label,
        offline_attempt=offline_attempt_label,
    )
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    style = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    env.globals.update(
        js=script,
        css=style,
        csp=content_security_policy(script, style),
        version=__version__,
        verdict_order=VERDICT_ORDER,
        verdict_rank=lambda v: VERDICT_ORDER.index(v) if v in VERDICT_ORDER else len(VERDICT_ORDER),
        verdicts_in=_verdicts_in,
        roles_in=_roles_in,
        network_text=network_text,
        interrupted_text=interrupted_text,
        comparison_text=comparison_text,
        not_compared_text=not_compared_text,
    )
    return env


def profile_html(group: ProfileGroup, data: ReportData) -> str:
    return environment().get_template("profile.html.j2").render(group=group, data=data)


def index_html(data: ReportData) -> str:
    broken = [c for c in data.citations if c.broken]
    return (
        environment()
        .get_template("index.html.j2")
        .render(
            data=data,
            s=data.summary,
            diff=data.diff,
            chart=trend_chart(data.trend),
            broken=broken,
            slugs={g.path: g.slug for g in data.profiles},
        )
    )
