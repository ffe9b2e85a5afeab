"""A URL's verdict from its whole check history (DESIGN §5): evidence first, never our own outages.

Rules, applied to the history oldest → newest:

1. Checks from ``offline`` runs are ignored entirely; connection-level failures (timeout, connect,
   TLS, DNS) from runs whose network was not ``ok`` are ignored too — they neither count towards
   ``dead`` nor break a streak.
2. The latest remaining check decides the kind of verdict: ok → ``alive``; ok after a permanent
   (301/308-only) redirect → ``moved`` (with the new URL); blocked → ``blocked``; skipped → ``skipped``.
3. Definitive failures (not_found, gone, soft_404, dns_error on a healthy network) form a streak
   counted back from the latest check. ``dead`` needs ``confirm_failures`` of them spanning at least
   ``confirm_span`` seconds; before that the URL is ``failing``. In one-shot mode a single definitive
   failure gives ``dead`` with ``confirmed=False``.
4. Any other failure (server errors after retries, timeouts on a healthy network, too many
   redirects, other 4xx) is ``failing`` — never ``dead``.

>>> rows = [{"outcome": "not_found", "checked_at": f"2024-01-0{d}T00:00:00Z", "run_network": "ok"}
...         for d in (1, 3, 5)]
>>> decide(rows, Policy()).verdict
<Verdict.DEAD: 'dead'>
>>> decide(rows[:2], Policy()).verdict
<Verdict.FAILING: 'failing'>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .config import Settings
from .models import (
    CONNECTION_FAILURES,
    DEFINITIVE_FAILURES,
    NetworkHealth,
    Outcome,
    Verdict,
)


@dataclass(frozen=True, slots=True)
class Policy:
    """How much evidence ``dead`` needs."""

    confirm_failures: int = 3
    """K: consecutive definitive failures."""
    confirm_span: float = 3 * 86400.0
    """D: seconds between the first and the last of them."""
    one_shot: bool = False
    """Editors' mode: one definitive failure gives an unconfirmed ``dead``."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.confirm_failures, settings.confirm_span, settings.one_shot)


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict and what goes with it."""

    verdict: Verdict
    confirmed: bool = True
    """False only for a one-shot ``dead`` not yet backed by K failures over D."""
    moved_to: str | None = None
    """For ``moved``: where the permanent redirect leads."""
    since: str | None = None
    """checked_at of the check where the current state (e.g. the failure streak) began."""


def network_of(check: Mapping[str, Any]) -> str:
    """The health of the run that made a check (the run's final word wins over the check's own)."""
    return str(check.get("run_network") or check.get("network") or NetworkHealth.OK)


def counts(check: Mapping[str, Any]) -> bool:
    """Whether a check is evidence about the URL (rule 1)."""
    network = network_of(check)
    if network == NetworkHealth.OFFLINE:
        return False
    return not (check["outcome"] in CONNECTION_FAILURES and network != NetworkHealth.OK)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def decide(checks: Sequence[Mapping[str, Any]], policy: Policy) -> Decision:
    """The verdict from a URL's history rows (as :meth:`Store.checks_for` returns them)."""
    evidence = [check for check in checks if counts(check)]
    if not evidence:
        return Decision(Verdict.UNCHECKED)
    latest = evidence[-1]
    outcome = Outcome(latest["outcome"])
    since = latest["checked_at"]
    if outcome is Outcome.OK:
        return Decision(Verdict.ALIVE, since=since)
    if outcome is Outcome.REDIRECTED:
        if latest.get("permanent_redirect") and latest.get("final_url"):
            return Decision(Verdict.MOVED, moved_to=latest["final_url"], since=since)
        return Decision(Verdict.ALIVE, since=since)
    if outcome is Outcome.BLOCKED:
        return Decision(Verdict.BLOCKED, since=since)
    if outcome is Outcome.SKIPPED:
        return Decision(Verdict.SKIPPED, since=since)
    if outcome not in DEFINITIVE_FAILURES:
        return Decision(Verdict.FAILING, since=since)
    streak: list[Mapping[str, Any]] = []
    for check in reversed(evidence):
        if Outcome(check["outcome"]) not in DEFINITIVE_FAILURES:
            break
        streak.append(check)
    streak.reverse()
    first = _moment(streak[0]["checked_at"])
    for check_number, check in enumerate(streak, start=1):
        spanned = (_moment(check["checked_at"]) - first).total_seconds()
        if check_number >= policy.confirm_failures and spanned >= policy.confirm_span:
            return Decision(Verdict.DEAD, since=check["checked_at"])
    if policy.one_shot:
        return Decision(Verdict.DEAD, confirmed=False, since=streak[0]["checked_at"])
    return Decision(Verdict.FAILING, since=streak[0]["checked_at"])
