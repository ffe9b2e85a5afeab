"""Helpers for driving ``check`` end-to-end without the CLI: settings aimed at a simweb, a seeded
store, and one call that runs a check the way the CLI will (begin_run → run_check → finish_run)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from citewatch.check.runner import CheckRunResult, run_check
from citewatch.config import Settings
from citewatch.models import Citation, Profile
from citewatch.net import ConnectTo, NameResolutionError, RoutingBackend
from citewatch.progress import NullReporter
from citewatch.store import Store

from .simweb import SimWeb


def settings_for(web: SimWeb, **overrides: Any) -> Settings:
    """Settings that reach ``web`` (connect-to + CA), with small timeouts and no backoff."""
    settings = Settings(
        retries=1,
        backoff=0.0,
        retry_after_cap=0.2,
        per_host=2,
        canary=web.url("canary.test", "/"),
    )
    settings.net.connect_to = [ConnectTo.parse(spec) for spec in web.connect_to]
    settings.net.cacert = web.ca_path
    settings.net.timeout = 0.5
    settings.net.concurrency = 16
    for key, value in overrides.items():
        target = settings.net if hasattr(settings.net, key) else settings
        setattr(target, key, value)
    return settings


def seed(store: Store, urls: Iterable[str], path: str = "profiles/p.md") -> None:
    """Store one profile citing ``urls`` (built directly; no extraction involved)."""
    urls = list(urls)
    citations = [Citation(url=u, raw=u, line=i + 1, column=1) for i, u in enumerate(urls)]
    digest = hashlib.sha256("\n".join([path, *urls]).encode()).hexdigest()
    run_id = store.begin_run("scan")
    store.save_profile(Profile(path=path, sha256=digest, citations=citations), run_id)
    store.finish_run(run_id)


def check(
    store: Store,
    settings: Settings,
    *,
    now: Callable[[], datetime] | None = None,
    only_urls: list[str] | None = None,
    **kwargs: Any,
) -> CheckRunResult:
    """One ``check`` run, as the CLI does it."""
    run_id = store.begin_run("check", ["check"])
    result = asyncio.run(
        run_check(store, run_id, settings, NullReporter(), only_urls, now=now, **kwargs)
    )
    store.finish_run(run_id, counts=result.summary)
    return result


def by_url(result: CheckRunResult) -> dict[str, dict[str, Any]]:
    return {item["url"]: item for item in result.urls}


def url_row(store: Store, url: str) -> dict[str, Any]:
    return store.query("SELECT * FROM urls WHERE url = ?", [url])[0]


def checks_of(store: Store, url: str) -> list[dict[str, Any]]:
    return store.checks_for(url_row(store, url)["id"])


def fake_resolver(original: Callable[..., Any]) -> Callable[..., Any]:
    """A ``RoutingBackend._resolve`` that never asks real DNS for test names: ``*.invalid`` does
    not exist, ``localhost`` is 127.0.0.1; anything else goes to ``original``."""

    async def resolve(self: RoutingBackend, host: str, port: int) -> list[str]:
        if host.endswith(".invalid"):
            raise NameResolutionError(f"cannot resolve {host}: Name or service not known")
        if host == "localhost":
            return ["127.0.0.1"]
        return await original(self, host, port)

    return resolve
