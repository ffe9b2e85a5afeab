"""Liveness checking: scheduler (politeness), probe (HTTP), classify (outcomes, soft-404),
retry (transient failures), health (is our own network up?) and runner (one ``check`` run)."""

from .runner import CheckRunResult, run_check

__all__ = ["CheckRunResult", "run_check"]
