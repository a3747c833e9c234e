"""The space manifest: each space's lifecycle state, its golden-set evaluations and every alias swap.

Three tables of the control database (EMBEDOPS_DATABASE_URL). The alias pointer itself lives in the vector
store (one atomic repoint there); the manifest records who moved it, when, from which space to which,
and the gate's numbers, which is what a rollback reads. States:

- ``building``: declared, not yet through the cutover gate (its backfill may be running)
- ``validated``: passed the gate, or served before and is kept as a rollback target
- ``serving``: an alias points at it
- ``retired``: given up by ``embedops spaces retire``; its vectors are gone per its deletion policy
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from embedops.core import control
from embedops.core.control import alias_history, evaluations, spaces

STATES = ("building", "validated", "serving", "retired")
FIRST_POINTING = "first-pointing"  # the action of the move that points an alias that pointed nowhere


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Swap:
    """One alias move, as recorded: cutover, forced cutover, rollback or the initial pointing."""

    id: int
    alias: str
    action: str
    from_space: str | None
    from_space_id: str | None
    to_space: str
    to_space_id: str
    who: str
    at: str
    forced: bool
    gate: dict[str, Any]
    status: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Manifest:
    """Space states, evaluations and alias history; every write is one transaction, the read-then-write
    ones serialised (``control.serialised``)."""

    def __init__(self, database: str | Engine) -> None:
        self._engine = control.open_engine(database)

    @property
    def engine(self) -> Engine:
        """The control database's engine: another Manifest on it sees the same spaces and history."""
        return self._engine

    # -- spaces ---------------------------------------------------------------------------------

    def sync_spaces(self, declared: dict[str, str], serving_ids: set[str]) -> None:
        """Record newly declared spaces ({name: space_id}) as building and mark what an alias serves.

        A name whose recipe changed (new space_id) is a new space: back to building.
        """
        now = _now()
        with control.serialised(self._engine, "manifest") as conn:
            rows = conn.execute(select(spaces.c.name, spaces.c.space_id, spaces.c.state))
            known = {n: (sid, st) for n, sid, st in rows}
            for name, space_id in declared.items():
                state = "serving" if space_id in serving_ids else "building"
                if name not in known:
                    conn.execute(insert(spaces).values(
                        name=name, space_id=space_id, state=state, auto_cutover=True, declared_at=now, updated_at=now
                    ))
                elif known[name][0] != space_id and known[name][1] != "retired":
                    conn.execute(update(spaces).where(spaces.c.name == name).values(
                        space_id=space_id, state=state, auto_cutover=True, updated_at=now
                    ))
                elif state == "serving" and known[name][1] != "serving":
                    _set_state(conn, name, "serving", now)
                elif known[name][1] == "serving" and space_id not in serving_ids:
                    _set_state(conn, name, "validated", now)

    def set_state(self, name: str, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"space state {state!r} is not one of {STATES}")
        with self._engine.begin() as conn:
            _set_state(conn, name, state, _now())

    def hold(self, name: str) -> None:
        """Never promote this space automatically again (it served once, or was rolled back)."""
        with self._engine.begin() as conn:
            conn.execute(update(spaces).where(spaces.c.name == name).values(auto_cutover=False, updated_at=_now()))

    def state(self, name: str) -> str | None:
        with self._engine.connect() as conn:
            found = conn.execute(select(spaces.c.state).where(spaces.c.name == name)).scalar()
        return None if found is None else str(found)

    def spaces(self) -> dict[str, dict[str, Any]]:
        cols = ("name", "space_id", "state", "auto_cutover", "declared_at", "updated_at")
        query = select(*(spaces.c[c] for c in cols)).order_by(spaces.c.declared_at, spaces.c.name)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {r[0]: {**dict(zip(cols, r, strict=True)), "auto_cutover": bool(r[3])} for r in rows}

    # -- evaluations ----------------------------------------------------------------------------

    def record_evaluation(
        self, space: str, space_id: str, fingerprint: str, golden: str, numbers: dict[str, Any]
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(evaluations).values(
                space=space, space_id=space_id, fingerprint=fingerprint, golden=golden, at=_now(),
                numbers=json.dumps(numbers, sort_keys=True),
            ))

    def latest_evaluation(self, space_id: str, fingerprint: str | None = None) -> dict[str, Any] | None:
        """The newest evaluation of a space (on one golden set when ``fingerprint`` is given)."""
        e = evaluations.c
        query = select(e.space, e.fingerprint, e.golden, e.at, e.numbers).where(e.space_id == space_id)
        if fingerprint is not None:
            query = query.where(e.fingerprint == fingerprint)
        with self._engine.connect() as conn:
            row = conn.execute(query.order_by(e.id.desc()).limit(1)).first()
        if row is None:
            return None
        return {"space": row[0], "fingerprint": row[1], "golden": row[2], "at": row[3], **json.loads(row[4])}

    # -- alias history --------------------------------------------------------------------------

    def begin_swap(
        self,
        alias: str,
        action: str,
        from_space: tuple[str, str] | None,
        to_space: tuple[str, str],
        who: str,
        gate: dict[str, Any],
        forced: bool = False,
    ) -> int:
        """Record an alias move before it happens (status pending); ``finish_swap`` after."""
        with self._engine.begin() as conn:
            found = conn.execute(
                insert(alias_history).values(
                    alias=alias,
                    action=action,
                    from_space=from_space[0] if from_space else None,
                    from_space_id=from_space[1] if from_space else None,
                    to_space=to_space[0],
                    to_space_id=to_space[1],
                    who=who,
                    at=_now(),
                    forced=bool(forced),
                    gate=json.dumps(gate, sort_keys=True, default=str),
                    status="pending",
                ).returning(alias_history.c.id)
            ).scalar_one()
        return int(found)

    def finish_swap(self, swap_id: int, status: str = "done") -> None:
        """Mark a recorded move done (or failed) and update both spaces' states in one transaction."""
        h = alias_history.c
        with control.serialised(self._engine, "manifest") as conn:
            conn.execute(update(alias_history).where(h.id == swap_id).values(status=status))
            if status != "done":
                return
            row = conn.execute(select(h.from_space, h.to_space).where(h.id == swap_id)).one()
            now = _now()
            if row[0] and row[0] != row[1]:
                conn.execute(update(spaces).where(spaces.c.name == row[0]).values(
                    state="validated", auto_cutover=False, updated_at=now
                ))
            _set_state(conn, row[1], "serving", now)

    def history(self, alias: str | None = None) -> list[Swap]:
        h = alias_history.c
        query = select(
            h.id, h.alias, h.action, h.from_space, h.from_space_id, h.to_space, h.to_space_id, h.who, h.at,
            h.forced, h.gate, h.status,
        )
        if alias:
            query = query.where(h.alias == alias)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(h.id)).all()
        return [
            Swap(
                id=r[0],
                alias=r[1],
                action=r[2],
                from_space=r[3],
                from_space_id=r[4],
                to_space=r[5],
                to_space_id=r[6],
                who=r[7],
                at=r[8],
                forced=bool(r[9]),
                gate=json.loads(r[10]),
                status=r[11],
            )
            for r in rows
        ]

    def first_pointing(self, alias: str) -> Swap | None:
        """The move that first pointed the alias (action ``first-pointing``), or None when none is recorded."""
        return next((s for s in self.history(alias) if s.action == FIRST_POINTING and s.status == "done"), None)

    def previous(self, alias: str, current_space_id: str) -> Swap | None:
        """The move that put the alias on its current space (a pending move counts if it landed)."""
        for swap in reversed(self.history(alias)):
            if swap.to_space_id == current_space_id and swap.status in ("done", "pending"):
                return swap
        return None

    def close(self) -> None:
        """Nothing to close: connections return to the process's pool after each call."""


def _set_state(conn: Connection, name: str, state: str, now: str) -> None:
    conn.execute(update(spaces).where(spaces.c.name == name).values(state=state, updated_at=now))
