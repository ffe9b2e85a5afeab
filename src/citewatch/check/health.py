"""Is *our* network up? A run's health decides whether its failures may count against URLs.

Two signals: the canary (``settings.canary_url``, the Wayback endpoint by default — any HTTP answer
means reachable) and the share of distinct hosts that failed at connection level (timeout, DNS,
refused/reset, TLS) with no HTTP answer at all. While the canary answers, our resolver and our TLS
path demonstrably work, so a name that does not resolve (link rot is full of expired domains) or a
certificate that does not verify (expired, issued for another name) is evidence about that host,
not about our network: such failures then stay out of the share.

* canary down and (no host answered, or ≥ 80 % of hosts unreachable) → ``offline``: nothing is judged;
* canary down but some hosts answer → ``degraded``: connection-level failures do not count;
* canary up, hosts unreachable and none answering → the canary alone gets through (an egress
  filter, a resolver that fails every other name): ``offline`` from five such hosts — nothing can
  be judged, and the exit code must not say "all fine" — ``degraded`` below that (too few to
  tell an outage from a handful of dead servers: connection failures do not count);
* canary up, some hosts answering, at least five unreachable and > 50 % of the hosts →
  ``degraded``;
* otherwise ``ok``: with the canary and other hosts answering, a few servers that refuse or time
  out are evidence about those servers (a connection failure alone never makes a URL ``dead``,
  only ``failing``), not grounds to stop judging the whole run.

>>> assess(canary_ok=False, answered=0, unreachable=3)
<NetworkHealth.OFFLINE: 'offline'>
>>> assess(canary_ok=True, answered=9, unreachable=1)
<NetworkHealth.OK: 'ok'>
>>> assess(canary_ok=True, answered=0, unreachable=6)
<NetworkHealth.OFFLINE: 'offline'>
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import CONNECTION_FAILURES, NetworkHealth, Outcome

OFFLINE_SHARE = 0.8
DEGRADED_SHARE = 0.5
#: With the canary answering, fewer unreachable hosts than this say nothing about our network.
MIN_UNREACHABLE_HOSTS = 5
#: After this many connection-level failures in a row, the canary is asked again.
SUSPICION_STREAK = 20
#: Unresolvable names, outnumbering the hosts that answered, that make the resolver suspect.
MIN_SUSPECT_NAMES = 5


def assess(canary_ok: bool, answered: int, unreachable: int) -> NetworkHealth:
    """The health rule above, from the canary and host counts."""
    total = answered + unreachable
    share = unreachable / total if total else 0.0
    if not canary_ok:
        if answered == 0 or share >= OFFLINE_SHARE:
            return NetworkHealth.OFFLINE
        return NetworkHealth.DEGRADED
    if answered == 0 and unreachable:  # the canary alone got through
        return (
            NetworkHealth.OFFLINE
            if unreachable >= MIN_UNREACHABLE_HOSTS
            else NetworkHealth.DEGRADED
        )
    if unreachable < MIN_UNREACHABLE_HOSTS:
        return NetworkHealth.OK
    if share > DEGRADED_SHARE:
        return NetworkHealth.DEGRADED
    return NetworkHealth.OK


@dataclass(slots=True)
class HealthMonitor:
    """Collects per-host evidence during a run."""

    canary_url: str
    canary_ok: bool = True
    canary_error: str | None = None
    _answered: set[str] = field(default_factory=set)
    _failed: set[str] = field(default_factory=set)
    _unresolved: set[str] = field(default_factory=set)
    """Hosts whose name did not resolve or whose certificate did not verify (see above)."""
    streak: int = 0
    """Connection-level failures in a row (any HTTP answer resets it)."""

    def observe(self, host: str, outcome: Outcome, got_answer: bool) -> None:
        """Record one probe's result for ``host``. Policy skips and bad URLs say nothing."""
        if got_answer:
            self._answered.add(host)
            self._failed.discard(host)
            self._unresolved.discard(host)
            self.streak = 0
        elif outcome in CONNECTION_FAILURES:
            if host not in self._answered:
                own = outcome in (Outcome.DNS_ERROR, Outcome.TLS_ERROR)
                (self._unresolved if own else self._failed).add(host)
            self.streak += 1

    @property
    def answered(self) -> int:
        return len(self._answered)

    @property
    def unreachable(self) -> int:
        """Hosts that failed at connection level. Names that do not resolve and certificates
        that do not verify count only while the canary is down, or when they are over 80 % of
        the hosts seen (a broken or filtering resolver says "no such name" for nearly everything,
        an intercepting proxy breaks every certificate; an old corpus with many expired domains
        stays below that): then such a failure is no evidence about a site."""
        unresolved = len(self._unresolved)
        resolver_suspect = unresolved >= MIN_SUSPECT_NAMES and unresolved > 4 * len(self._answered)
        counted = not self.canary_ok or resolver_suspect
        return len(self._failed) + (len(self._unresolved) if counted else 0)

    @property
    def status(self) -> NetworkHealth:
        return assess(self.canary_ok, self.answered, self.unreachable)

    @property
    def suspicious(self) -> bool:
        """Enough failures in a row that the canary should be asked again."""
        return self.streak >= SUSPICION_STREAK

    def explain(self) -> str:
        """One line for the user: why the run is offline or degraded."""
        total = self.answered + self.unreachable
        canary = (
            f"the canary {self.canary_url} is reachable"
            if self.canary_ok
            else f"the canary {self.canary_url} is unreachable"
            + (f" ({self.canary_error})" if self.canary_error else "")
        )
        if not total:
            return canary
        if self.canary_ok and not self.answered:
            return (
                f"{canary}, but none of the {total} cited hosts answered (an egress filter or a "
                "failing resolver on our side?)"
            )
        return f"{canary}; {self.unreachable} of {total} hosts unreachable"
