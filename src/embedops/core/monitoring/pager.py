"""Paging on-call: PagerDuty Events API v2 events and a durable outbox.

One incident per failing (check, asset, partition): a ``trigger`` when its latest evaluation fails at
ERROR severity, a ``resolve`` with the same dedup_key when it passes again. Events wait in an
outbox in the control database (EMBEDOPS_DATABASE_URL) until the pager accepts them, so a failed
delivery is retried, in order, on the next sensor tick and never lost. The routing key is added
at send time and never stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from embedops.core import control
from embedops.core.control import incidents, outbox
from embedops.core.settings import Settings

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
    """Incident state per dedup_key and the events still to deliver, in the control database."""

    def __init__(self, database: str | Engine) -> None:
        self._engine = control.open_engine(database)

    @classmethod
    def at(cls, settings: Settings) -> PagerOutbox:
        """The outbox in the control database the settings name."""
        return cls(settings.control_url)

    def observe(self, evaluation: Evaluation) -> str | None:
        """Queue a trigger or resolve when the evaluation changes the incident's state; returns the action."""
        key = evaluation.dedup_key
        now = datetime.now(UTC).isoformat()
        with control.serialised(self._engine, f"incident:{key}") as conn:
            found = conn.execute(select(incidents.c.state).where(incidents.c.dedup_key == key)).scalar()
            open_ = found == "triggered"
            if evaluation.pages and not open_:
                action, event = "trigger", trigger_event(evaluation)
            elif not evaluation.pages and open_:
                action, event = "resolve", resolve_event(key)
            else:
                return None
            state = "triggered" if action == "trigger" else "resolved"
            control.upsert(
                conn, incidents, {"dedup_key": key, "state": state, "updated_at": now},
                keys=["dedup_key"], update=["state", "updated_at"],
            )
            conn.execute(insert(outbox).values(
                dedup_key=key, action=action, event=json.dumps(event, default=str), created_at=now, attempts=0
            ))
        return action

    def pending(self) -> list[Pending]:
        o = outbox.c
        query = select(o.id, o.dedup_key, o.action, o.event, o.attempts).where(o.sent_at.is_(None)).order_by(o.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Pending(i, k, a, json.loads(e), n) for i, k, a, e, n in rows]

    def mark_sent(self, item_id: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == item_id).values(
                sent_at=datetime.now(UTC).isoformat(), attempts=outbox.c.attempts + 1
            ))

    def mark_failed(self, item_id: int, error: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == item_id).values(
                attempts=outbox.c.attempts + 1, last_error=error[:500]
            ))

    def open_incidents(self) -> list[str]:
        i = incidents.c
        with self._engine.connect() as conn:
            rows = conn.execute(select(i.dedup_key).where(i.state == "triggered").order_by(i.dedup_key)).all()
        return [r[0] for r in rows]

    def close(self) -> None:
        """Nothing to close: connections return to the process's pool after each call."""
