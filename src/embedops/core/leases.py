"""Run leases: one writer per partition, across processes and hosts, through the control database.

A lease is a row (key, holder, expires_at). A holder (a Dagster run id) takes a free or expired lease
in one statement (an upsert that updates only when the lease expired or is already its own), and
a daemon thread renews it every ttl/3 while it is held. A holder that is killed stops renewing, so
its lease expires after at most ``ttl`` seconds and the next run takes it, or at once when the
caller can tell that the holder is over (``is_over``: Dagster knows the run ended, or its process is
gone). Expiry is by the database's clock, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, or_, select, update

from embedops.core import control
from embedops.core.control import leases
from embedops.errors import PartitionBusyError

DEFAULT_TTL_S = 60.0
POLL_S = 0.5


class Leases:
    """Leases in the control database."""

    def __init__(self, database: str | Engine, ttl: float = DEFAULT_TTL_S) -> None:
        self._engine = control.open_engine(database)
        self.ttl = ttl

    def try_acquire(self, key: str, holder: str) -> bool:
        """Take the lease if it is free, expired or already ``holder``'s; True when ``holder`` now has it."""
        with control.serialised(self._engine, f"lease:{key}") as conn:
            now = control.now_epoch(conn)
            values = {"key": key, "holder": holder, "expires_at": now + self.ttl, "acquired_at": now}
            taken = control.upsert(
                conn, leases, values, keys=["key"], update=["holder", "expires_at", "acquired_at"],
                where=or_(leases.c.expires_at < now, leases.c.holder == holder),
            )
        return taken == 1

    def holder(self, key: str) -> tuple[str, float] | None:
        """Who holds the lease and until when (seconds since the epoch), or None when it is free or expired."""
        with self._engine.connect() as conn:
            now = control.now_epoch(conn)
            row = conn.execute(select(leases.c.holder, leases.c.expires_at).where(leases.c.key == key)).first()
        if row is None or row[1] < now:
            return None
        return str(row[0]), float(row[1])

    def take_over(self, key: str, holder: str, dead: str) -> bool:
        """Take the lease from ``dead``, a holder known to be over; False when someone else has it by now."""
        with control.serialised(self._engine, f"lease:{key}") as conn:
            now = control.now_epoch(conn)
            done = conn.execute(
                update(leases)
                .where(leases.c.key == key, leases.c.holder == dead)
                .values(holder=holder, expires_at=now + self.ttl, acquired_at=now)
            )
        return done.rowcount == 1

    def renew(self, key: str, holder: str) -> bool:
        """Push the expiry ``ttl`` on; False when ``holder`` no longer holds the lease."""
        with control.serialised(self._engine, f"lease:{key}") as conn:
            now = control.now_epoch(conn)
            done = conn.execute(
                update(leases).where(leases.c.key == key, leases.c.holder == holder).values(expires_at=now + self.ttl)
            )
        return done.rowcount == 1

    def release(self, key: str, holder: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(leases).where(leases.c.key == key, leases.c.holder == holder))

    def acquire(
        self, key: str, holder: str, wait: float = 30.0, what: str | None = None,
        is_over: Callable[[str], bool] | None = None, busy_message: Callable[[str, str], str] | None = None,
    ) -> Lease:
        """Take the lease, waiting up to ``wait`` seconds for a live holder to let go.

        A holder for which ``is_over(holder)`` is true (a run known to have ended) does not hold it.
        Raises PartitionBusyError naming ``what`` (default: the key) and the run that holds it, or with
        ``busy_message(holder, until)`` when given.
        """
        deadline = time.monotonic() + wait
        while not self.try_acquire(key, holder):
            current = self.holder(key)
            if current is None:  # let go between the two statements: try again
                continue
            other, until = current
            if is_over is not None and is_over(other) and self.take_over(key, holder, other):
                break
            if time.monotonic() >= deadline:
                at = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                if busy_message is not None:
                    raise PartitionBusyError(busy_message(other, at))
                raise PartitionBusyError(
                    f"{what or key} is being written by run {other[:8]} (lease until {at}); "
                    f"wait for it or cancel that run (this run waited {wait:g} s: EMBEDOPS_LEASE_WAIT_S)"
                )
            time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.01)))
        return Lease(self, key, holder)

    @contextmanager
    def held(
        self, key: str, holder: str, wait: float = 30.0, what: str | None = None,
        is_over: Callable[[str], bool] | None = None, busy_message: Callable[[str, str], str] | None = None,
    ) -> Iterator[Lease]:
        """``acquire`` as a context manager: renewed while the block runs, released after it."""
        with self.acquire(key, holder, wait, what, is_over, busy_message) as lease:
            yield lease


class Lease:
    """A held lease, renewed by a daemon thread every ttl/3 until released."""

    def __init__(self, leases: Leases, key: str, holder: str) -> None:
        self.key, self.holder = key, holder
        self._leases = leases
        self._stop = threading.Event()
        self.lost = False  # set when a renewal found the lease taken by another holder
        self._thread = threading.Thread(target=self._renew, name=f"lease {key}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self._leases.ttl / 3):
            try:
                if not self._leases.renew(self.key, self.holder):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease lasts ttl
                continue

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._leases.ttl)
        if not self.lost:
            self._leases.release(self.key, self.holder)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
