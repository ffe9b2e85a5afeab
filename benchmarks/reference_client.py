#!/usr/bin/env python3
"""reference_client: the least a Python process can do for bench_check's workload — a yardstick.

Usage:  python benchmarks/reference_client.py URLS.txt [--concurrency 100] [--per-host 10]
                                                      [--connect-address 127.0.0.1]

GETs every URL of URLS.txt (one per line) over keep-alive HTTP/1.1 connections with asyncio
protocols, at most ``--concurrency`` requests in flight and ``--per-host`` per host, follows
redirects (at most 10), and prints one JSON object: how many URLs ended in which status, and
the requests made. Nothing else: no classification, no retries, no TLS, no database, no
politeness beyond the two limits; responses must carry a Content-Length (the shared emulator's
do). It is not part of citewatch and checks nothing a user could rely on.

Why it exists: bench_check runs it beside citewatch and lychee, measured the same way, so the
table shows how much of a wall time is the emulator and CPython themselves (interpreter start,
``import asyncio``, the event loop) and how much is citewatch's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
from urllib.parse import urljoin, urlsplit


class _Connection(asyncio.Protocol):
    """One keep-alive connection; answers one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, dict[bytes, bytes]]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0"))
        if len(self.buffer) - end - 4 < length:
            return
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((int(lines[0].split()[1]), headers))


async def check_all(
    urls: list[str], concurrency: int, per_host: int, address: str | None = None
) -> dict[str, object]:
    """``address``: connect there instead of to each URL's host (the port is kept)."""
    loop = asyncio.get_running_loop()
    idle: dict[tuple[str, int], list[_Connection]] = collections.defaultdict(list)
    overall = asyncio.Semaphore(concurrency)
    hosts: dict[str, asyncio.Semaphore] = collections.defaultdict(
        lambda: asyncio.Semaphore(per_host)
    )
    requests = 0

    async def get(url: str) -> tuple[int, dict[bytes, bytes]]:
        nonlocal requests
        parts = urlsplit(url)
        origin = (address or parts.hostname or "", parts.port or 80)
        async with hosts[parts.netloc], overall:  # a host slot first: no global slot idles
            pool = idle[origin]
            while pool and pool[-1].closed:
                pool.pop()
            if pool:
                connection = pool.pop()
            else:
                _, connection = await loop.create_connection(_Connection, *origin)
            connection.waiter = loop.create_future()
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            assert connection.transport is not None
            connection.transport.write(
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "User-Agent: reference-client\r\n\r\n".encode("latin-1")
            )
            requests += 1
            answer = await connection.waiter
            pool.append(connection)
            return answer

    async def one(url: str) -> int | str:
        try:
            for _ in range(11):
                status, headers = await get(url)
                if status in (301, 302, 303, 307, 308) and b"location" in headers:
                    url = urljoin(url, headers[b"location"].decode("latin-1"))
                    continue
                return status
            return "too many redirects"
        except OSError as exc:
            return type(exc).__name__

    results = await asyncio.gather(*(one(url) for url in urls))
    counts = collections.Counter(str(result) for result in results)
    return {"urls": len(urls), "requests": requests, "results": dict(sorted(counts.items()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", help="a file with one URL per line")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--per-host", type=int, default=10)
    parser.add_argument("--connect-address", help="connect every request to this address")
    args = parser.parse_args()
    with open(args.urls, encoding="utf-8") as handle:
        urls = [line.strip() for line in handle if line.strip()]
    print(
        json.dumps(
            asyncio.run(check_all(urls, args.concurrency, args.per_host, args.connect_address))
        )
    )


if __name__ == "__main__":
    main()
