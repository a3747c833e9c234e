"""Paging on-call: PagerDuty Events API v2 events and a durable outbox.

One incident per failing (check, asset, partition): a ``trigger`` when its latest evaluation fails at
ERROR severity, a ``resolve`` with the same dedup_key when it passes again. Events wait in a SQLite
outbox under EMBEDOPS_HOME until the pager accepts them, so a failed delivery is retried, in order,
on the next sensor tick and never lost. The routing key is added at send time and never stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from embedops.core.monitoring.state import state_dir
from embedops.core.sqlite import open_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
  dedup_key TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL, action TEXT NOT NULL, event TEXT NOT NULL,
  created_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, sent_at TEXT);
"""
SUMMARY_LIMIT = 1024  # PagerDuty truncates longer summaries


@dataclass(frozen=True)
class Evaluation:
    """The latest evaluation of one check on one asset partition, as the pager sees it."""

    check: str
    asset: str
    partition: str | None
    passed: bool
    severity: str
    description: str = ""
    details: dict[str, Any] | None = None

    @property
    def dedup_key(self) -> str:
        return f"embedops/{self.asset}/{self.check}/{self.partition or '-'}"

    @property
    def pages(self) -> bool:
        return not self.passed and self.severity == "ERROR"


def trigger_event(evaluation: Evaluation, source: str = "embedops") -> dict[str, Any]:
    """A PagerDuty v2 ``trigger`` body, without the routing key."""
    where = f"{evaluation.asset}[{evaluation.partition}]" if evaluation.partition else evaluation.asset
    summary = f"embedops: check {evaluation.check} failed on {where}: {evaluation.description}"
    return {
        "event_action": "trigger",
        "dedup_key": evaluation.dedup_key,
        "payload": {
            "summary": summary[:SUMMARY_LIMIT],
            "source": f"{source}:{where}",
            "severity": "error",
            "custom_details": {
                "check": evaluation.check,
                "asset": evaluation.asset,
                "partition": evaluation.partition,
                "description": evaluation.description,
                **(evaluation.details or {}),
            },
        },
    }


def resolve_event(dedup_key: str) -> dict[str, Any]:
    """A PagerDuty v2 ``resolve`` body for an open incident, without the routing key."""
    return {"event_action": "resolve", "dedup_key": dedup_key}


def with_routing_key(event: dict[str, Any], routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, **event}


@dataclass(frozen=True)
class Pending:
    id: int
    dedup_key: str
    action: str
    event: dict[str, Any]
    attempts: int


class PagerOutbox:
    """Incident state per dedup_key and the events still to deliver, in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = open_db(self.path, _SCHEMA)

    @classmethod
    def at(cls, home: Path) -> PagerOutbox:
        return cls(state_dir(home) / "pager.sqlite")

    def observe(self, evaluation: Evaluation) -> str | None:
        """Queue a trigger or resolve when the evaluation changes the incident's state; returns the action."""
        key = evaluation.dedup_key
        now = datetime.now(UTC).isoformat()
        with self._conn:
            row = self._conn.execute("SELECT state FROM incidents WHERE dedup_key = ?", (key,)).fetchone()
            open_ = row is not None and row[0] == "triggered"
            if evaluation.pages and not open_:
                action, event = "trigger", trigger_event(evaluation)
            elif not evaluation.pages and open_:
                action, event = "resolve", resolve_event(key)
            else:
                return None
            state = "triggered" if action == "trigger" else "resolved"
            self._conn.execute(
                "INSERT INTO incidents VALUES (?, ?, ?) ON CONFLICT(dedup_key) DO UPDATE SET state=?, updated_at=?",
                (key, state, now, state, now),
            )
            self._conn.execute(
                "INSERT INTO outbox (dedup_key, action, event, created_at) VALUES (?, ?, ?, ?)",
                (key, action, json.dumps(event, default=str), now),
            )
        return action

    def pending(self) -> list[Pending]:
        rows = self._conn.execute(
            "SELECT id, dedup_key, action, event, attempts FROM outbox WHERE sent_at IS NULL ORDER BY id"
        ).fetchall()
        return [Pending(i, k, a, json.loads(e), n) for i, k, a, e, n in rows]

    def mark_sent(self, item_id: int) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                (datetime.now(UTC).isoformat(), item_id),
            )

    def mark_failed(self, item_id: int, error: str) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error[:500], item_id)
            )

    def open_incidents(self) -> list[str]:
        rows = self._conn.execute("SELECT dedup_key FROM incidents WHERE state = 'triggered' ORDER BY dedup_key")
        return [r[0] for r in rows]

    def close(self) -> None:
        self._conn.close()
