"""Run leases: one writer per partition; a busy partition names the run that holds it; a killed holder's
lease expires. On SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from embedops.core.leases import Leases
from embedops.errors import PartitionBusyError

KEY = "tables/document_chunks/acme/docs-v1"
HOLD = """
import sys, time
from embedops.core.leases import Leases
Leases(sys.argv[1], ttl=float(sys.argv[2])).acquire(sys.argv[3], "deadbeef-killed-run", wait=0)
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def database(control_database: str) -> str:
    """A fresh control database, on SQLite then on PostgreSQL (tests/postgres.py)."""
    return control_database


def test_a_second_run_waits_then_is_told_which_run_holds_the_partition(database: str) -> None:
    leases = Leases(database, ttl=30)
    with leases.held(KEY, "1a2b3c4d-0000-run-one", wait=0):
        started = time.monotonic()
        with pytest.raises(PartitionBusyError) as busy:
            leases.acquire(KEY, "run-two", wait=1.0)
        assert time.monotonic() - started >= 1.0  # it waited before giving up
    message = str(busy.value)
    assert message.startswith(f"{KEY} is being written by run 1a2b3c4d (lease until ")
    assert "wait for it or cancel that run" in message and "\n" not in message
    with leases.held(KEY, "run-two", wait=0):  # released: the next run takes it at once
        assert leases.holder(KEY)[0] == "run-two"
    assert leases.holder(KEY) is None


def test_a_waiting_run_takes_the_lease_as_soon_as_the_holder_lets_go(database: str) -> None:
    leases = Leases(database, ttl=30)
    first = leases.acquire(KEY, "run-one", wait=0)
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    with leases.held(KEY, "run-two", wait=20):
        assert 0.4 < time.monotonic() - started < 5


def test_a_held_lease_is_renewed_past_its_ttl(database: str) -> None:
    leases = Leases(database, ttl=1.0)
    with leases.held(KEY, "run-one", wait=0):
        time.sleep(2.5)  # more than twice the ttl
        with pytest.raises(PartitionBusyError, match="run run-one "):
            leases.acquire(KEY, "run-two", wait=0)


def test_the_lease_of_a_killed_holder_expires_and_the_next_run_takes_it(database: str) -> None:
    ttl = 1.5
    holder = subprocess.Popen([sys.executable, "-c", HOLD, database, str(ttl), KEY], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        time.sleep(ttl + 0.5)  # alive, it renews: still its lease past the ttl
        leases = Leases(database, ttl=30)
        with pytest.raises(PartitionBusyError, match="by run deadbeef "):
            leases.acquire(KEY, "next-run", wait=0)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        started = time.monotonic()
        with leases.held(KEY, "next-run", wait=ttl * 4):
            assert time.monotonic() - started <= ttl + 1  # at most one ttl after its last renewal
            assert leases.holder(KEY)[0] == "next-run"
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)


def test_a_lease_of_a_run_known_to_be_over_is_taken_at_once(database: str) -> None:
    leases = Leases(database, ttl=60)
    assert leases.try_acquire(KEY, "crashed-run")  # taken, and never renewed: as by a process that died
    with pytest.raises(PartitionBusyError, match="crashed-"):  # not known to be over: it holds it until expiry
        leases.acquire(KEY, "next-run", wait=0, is_over=lambda holder: False)
    started = time.monotonic()
    with leases.held(KEY, "next-run", wait=30, is_over=lambda holder: holder == "crashed-run"):
        assert time.monotonic() - started < 5 and leases.holder(KEY)[0] == "next-run"
