"""Shared fixtures. Keep this file thin: fixture code lives in tests/support/."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `support` (not `tests`: waybackpy ships one)

from support.simwayback import make_simwayback  # noqa: E402, F401 - fixture
from support.simweb import Host, SimWeb  # noqa: E402


@pytest.fixture
def make_simweb(tmp_path: Path) -> Iterator[Callable[..., SimWeb]]:
    """Factory: ``make_simweb(hosts={name: Host(...)}, latency=0.0)`` → a started :class:`SimWeb`."""
    started: list[SimWeb] = []

    def make(hosts: dict[str, Host] | None = None, **kwargs: object) -> SimWeb:
        web = SimWeb(hosts, workdir=tmp_path, max_seconds=120, **kwargs).start()  # type: ignore[arg-type]
        started.append(web)
        return web

    yield make
    for web in started:
        web.stop()


@pytest.fixture
def simweb(make_simweb: Callable[..., SimWeb]) -> SimWeb:
    """A simulated web with the standard odd hosts (see support.simweb.STANDARD_HOSTS)."""
    from support.simweb import STANDARD_HOSTS

    return make_simweb(STANDARD_HOSTS())
