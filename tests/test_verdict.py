"""Verdict rules (DESIGN §5, issue 3), table-driven: history in, verdict out."""

from __future__ import annotations

from typing import Any

import pytest

from citewatch.models import Verdict
from citewatch.verdict import Decision, Policy, counts, decide


def h(*entries: str) -> list[dict[str, Any]]:
    """History from 'outcome@day[/network]' entries, e.g. 'not_found@0', 'timeout@2/degraded'."""
    rows = []
    for entry in entries:
        outcome, _, rest = entry.partition("@")
        day, _, network = rest.partition("/")
        hours = float(day) * 24
        stamp = f"2030-01-{1 + int(hours // 24):02d}T{int(hours % 24):02d}:00:00.000000Z"
        rows.append(
            {
                "outcome": outcome,
                "checked_at": stamp,
                "run_network": network or "ok",
                "final_url": "https://new.example/" if outcome == "redirected" else None,
                "permanent_redirect": int(outcome == "redirected"),
            }
        )
    return rows


DEFAULT = Policy()
CASES: list[tuple[str, list[str], Policy, Verdict, bool]] = [
    ("no history", [], DEFAULT, Verdict.UNCHECKED, True),
    ("ok", ["ok@0"], DEFAULT, Verdict.ALIVE, True),
    ("one 404", ["not_found@0"], DEFAULT, Verdict.FAILING, True),
    (
        "3 x 404 in 2 days",
        ["not_found@0", "not_found@1", "not_found@2"],
        DEFAULT,
        Verdict.FAILING,
        True,
    ),
    (
        "3 x 404 over 3 days",
        ["not_found@0", "not_found@1.5", "not_found@3"],
        DEFAULT,
        Verdict.DEAD,
        True,
    ),
    ("2 x 404 over 9 days", ["not_found@0", "not_found@9"], DEFAULT, Verdict.FAILING, True),
    ("mixed definitive", ["gone@0", "soft_404@2", "dns_error@3"], DEFAULT, Verdict.DEAD, True),
    (
        "success resets",
        ["not_found@0", "not_found@1", "ok@2", "not_found@3", "not_found@4"],
        DEFAULT,
        Verdict.FAILING,
        True,
    ),
    (
        "server error breaks streak",
        ["not_found@0", "server_error@1.5", "not_found@2", "not_found@3"],
        DEFAULT,
        Verdict.FAILING,
        True,
    ),
    (
        "server errors never dead",
        ["server_error@0", "server_error@2", "server_error@4"],
        DEFAULT,
        Verdict.FAILING,
        True,
    ),
    (
        "timeouts on ok network: failing",
        ["timeout@0", "timeout@2", "timeout@4"],
        DEFAULT,
        Verdict.FAILING,
        True,
    ),
    ("too many redirects", ["too_many_redirects@0"], DEFAULT, Verdict.FAILING, True),
    ("client error", ["client_error@0"], DEFAULT, Verdict.FAILING, True),
    (
        "dns on ok network counts",
        ["dns_error@0", "dns_error@1.5", "dns_error@3"],
        DEFAULT,
        Verdict.DEAD,
        True,
    ),
    (
        "dns on degraded network ignored",
        ["ok@0", "dns_error@1/degraded", "dns_error@2/degraded"],
        DEFAULT,
        Verdict.ALIVE,
        True,
    ),
    (
        "offline runs ignored entirely",
        ["ok@0", "not_found@1/offline", "not_found@2/offline", "not_found@4/offline"],
        DEFAULT,
        Verdict.ALIVE,
        True,
    ),
    (
        "degraded conn failures neither count nor break",
        [
            "not_found@0",
            "timeout@1/degraded",
            "not_found@2",
            "connect_error@2.5/degraded",
            "not_found@3",
        ],
        DEFAULT,
        Verdict.DEAD,
        True,
    ),
    (
        "degraded 404 still counts",
        ["not_found@0/degraded", "not_found@1.5", "not_found@3/degraded"],
        DEFAULT,
        Verdict.DEAD,
        True,
    ),
    ("only degraded conn failures", ["tls_error@0/degraded"], DEFAULT, Verdict.UNCHECKED, True),
    ("moved", ["redirected@0"], DEFAULT, Verdict.MOVED, True),
    ("blocked", ["ok@0", "blocked@1"], DEFAULT, Verdict.BLOCKED, True),
    ("blocked never dead", ["blocked@0", "blocked@2", "blocked@4"], DEFAULT, Verdict.BLOCKED, True),
    ("skipped", ["skipped@0"], DEFAULT, Verdict.SKIPPED, True),
    (
        "recovered",
        ["not_found@0", "not_found@2", "not_found@4", "ok@5"],
        DEFAULT,
        Verdict.ALIVE,
        True,
    ),
    ("one-shot single 404", ["not_found@0"], Policy(one_shot=True), Verdict.DEAD, False),
    ("one-shot after success", ["ok@0", "gone@1"], Policy(one_shot=True), Verdict.DEAD, False),
    (
        "one-shot confirmed when K over D",
        ["not_found@0", "not_found@1.5", "not_found@3"],
        Policy(one_shot=True),
        Verdict.DEAD,
        True,
    ),
    ("one-shot server error", ["server_error@0"], Policy(one_shot=True), Verdict.FAILING, True),
    (
        "one-shot degraded dns",
        ["dns_error@0/degraded"],
        Policy(one_shot=True),
        Verdict.UNCHECKED,
        True,
    ),
    ("K=1 D=0", ["not_found@0"], Policy(1, 0.0), Verdict.DEAD, True),
    (
        "K=5",
        ["not_found@0", "not_found@2", "not_found@4", "not_found@6"],
        Policy(5, 0.0),
        Verdict.FAILING,
        True,
    ),
]


@pytest.mark.parametrize(
    ("history", "policy", "verdict", "confirmed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_verdict_rules(
    history: list[str], policy: Policy, verdict: Verdict, confirmed: bool
) -> None:
    decision = decide(h(*history), policy)
    assert (decision.verdict, decision.confirmed) == (verdict, confirmed)


def test_moved_carries_the_new_url() -> None:
    assert decide(h("redirected@0"), DEFAULT).moved_to == "https://new.example/"


def test_temporary_redirect_chain_is_alive() -> None:
    rows = h("redirected@0")
    rows[0]["permanent_redirect"] = 0
    assert decide(rows, DEFAULT) == Decision(Verdict.ALIVE, since=rows[0]["checked_at"])


def test_dead_since_is_the_confirming_check() -> None:
    rows = h("not_found@0", "not_found@1.5", "not_found@3", "not_found@4")
    assert decide(rows, DEFAULT).since == rows[2]["checked_at"]
    assert decide(rows[:2], DEFAULT).since == rows[0]["checked_at"]


def test_check_network_is_used_when_the_run_has_none() -> None:
    row = {"outcome": "timeout", "checked_at": "2030-01-01T00:00:00Z", "network": "degraded"}
    assert not counts({**row, "run_network": None})
    assert counts({**row, "network": "ok", "run_network": None})
    assert not counts({**row, "network": "ok", "run_network": "offline"})
