"""The benchmark's reference client (benchmarks/reference_client.py) does what its table row says."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _reference_client() -> Any:
    spec = importlib.util.spec_from_file_location(
        "reference_client", BENCHMARKS / "reference_client.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_client_follows_redirects_and_counts_every_request(make_simweb: Any) -> None:
    web = make_simweb()
    base = f"http://news.test:{web.http_port}"
    urls = [f"{base}/ok/a", f"{base}/dead/b", f"{base}/redirect/1/c", f"{base}/gone/d"]
    result = asyncio.run(
        _reference_client().check_all(urls, concurrency=4, per_host=2, address=web.bind)
    )
    assert result["urls"] == 4
    assert result["results"] == {"200": 2, "404": 1, "410": 1}
    assert result["requests"] == 5  # one redirect hop
