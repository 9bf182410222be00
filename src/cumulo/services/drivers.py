"""A driver's passes in a daemon thread, started and stopped as a whole.

Sweeps and pipelines are advanced the same way: a driver holds leases on the
sweeps or pipeline runs it advances and makes one pass at a time
(``tick()``, returning how many it is busy with). The worker runs the passes,
sooner while something is in flight, and at once when the service wakes it
(a submit, a cancel, a job that ended). ``stop`` gives the leases back, so a
worker started later, here or in another process, takes them over at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, Protocol, Self, TypeVar

from cumulo.core.errors import CumuloError

log = logging.getLogger("cumulo.drivers")


class Driver(Protocol):
    def tick(self) -> int: ...

    def release(self) -> None: ...


D = TypeVar("D", bound=Driver)


class DriverWorker(Generic[D]):
    """Runs ``make_driver()``'s passes every ``poll_seconds`` while busy, ``idle_seconds`` when not.

    The server's lifespan starts it; an embedded process starts it on its first
    submit (``ensure_started``).
    """

    def __init__(
        self,
        what: str,
        make_driver: Callable[[], D],
        poll_seconds: float,
        idle_seconds: float,
    ) -> None:
        self.what = what
        self.make_driver = make_driver
        self.poll_seconds, self.idle_seconds = poll_seconds, idle_seconds
        self.driver: D | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> Self:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self.driver = self.make_driver()
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._loop,
                    args=(self.driver, self._stop),
                    name=f"cumulo-{self.what}",
                    daemon=True,
                )
                self._thread.start()
        return self

    def ensure_started(self) -> Self:
        return self.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread, driver, stop = self._thread, self.driver, self._stop
            self._thread = self.driver = None
        if thread is None or driver is None:
            return
        stop.set()
        self._wake.set()
        thread.join(timeout)
        try:
            driver.release()
        except CumuloError as exc:
            log.warning("could not give back the %s' leases: %s", self.what, exc.message)

    def _loop(self, driver: D, stop: threading.Event) -> None:
        while not stop.is_set():
            busy = 0
            try:
                busy = driver.tick()
            except Exception:
                log.exception("%s pass failed; retrying", self.what)
            self._wake.wait(self.poll_seconds if busy else self.idle_seconds)
            self._wake.clear()
