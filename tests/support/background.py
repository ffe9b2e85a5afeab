"""A server that runs its own asyncio loop in a background thread, for tests that use the
synchronous CLI against real sockets. Subclasses implement :meth:`_serve`: create the servers,
call ``self._ready.set()``, then wait for ``self._stop``."""

from __future__ import annotations

import asyncio
import threading
from typing import Self


class BackgroundServer:
    """Start/stop and context-manager plumbing shared by simweb and simwayback."""

    name = "server"

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError(f"{self.name} did not start")
        if self._failure is not None:
            raise RuntimeError(f"{self.name} failed to start") from self._failure
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(15)
        self._after_stop()

    def _after_stop(self) -> None:
        """Release anything held outside the loop (subclasses)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.set_exception_handler(lambda _loop, context: self.errors.append(context["message"]))
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._failure = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        raise NotImplementedError
