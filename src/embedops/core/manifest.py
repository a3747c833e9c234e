"""The space manifest: each space's lifecycle state, its golden-set evaluations and every alias swap.

A SQLite file in EMBEDOPS_HOME (``manifest.sqlite``). The alias pointer itself lives in the vector
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
from pathlib import Path
from typing import Any

from embedops.core.sqlite import open_db

STATES = ("building", "validated", "serving", "retired")
FIRST_POINTING = "first-pointing"  # the action of the move that points an alias that pointed nowhere

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spaces (
    name TEXT PRIMARY KEY, space_id TEXT NOT NULL, state TEXT NOT NULL,
    auto_cutover INTEGER NOT NULL DEFAULT 1, declared_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alias_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alias TEXT NOT NULL, action TEXT NOT NULL,
    from_space TEXT, from_space_id TEXT, to_space TEXT NOT NULL, to_space_id TEXT NOT NULL,
    who TEXT NOT NULL, at TEXT NOT NULL, forced INTEGER NOT NULL, gate TEXT NOT NULL,
    status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, space TEXT NOT NULL, space_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL, golden TEXT NOT NULL, at TEXT NOT NULL, numbers TEXT NOT NULL);
"""


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
    """Space states, evaluations and alias history; every write is one SQLite transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = open_db(self.path, _SCHEMA, autocommit=True)

    # -- spaces ---------------------------------------------------------------------------------

    def sync_spaces(self, declared: dict[str, str], serving_ids: set[str]) -> None:
        """Record newly declared spaces ({name: space_id}) as building and mark what an alias serves.

        A name whose recipe changed (new space_id) is a new space: back to building.
        """
        now = _now()
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            known = {n: (sid, st) for n, sid, st in self._conn.execute("SELECT name, space_id, state FROM spaces")}
            for name, space_id in declared.items():
                state = "serving" if space_id in serving_ids else "building"
                if name not in known:
                    self._conn.execute(
                        "INSERT INTO spaces VALUES (?, ?, ?, 1, ?, ?)", (name, space_id, state, now, now)
                    )
                elif known[name][0] != space_id and known[name][1] != "retired":
                    self._conn.execute(
                        "UPDATE spaces SET space_id=?, state=?, auto_cutover=1, updated_at=? WHERE name=?",
                        (space_id, state, now, name),
                    )
                elif state == "serving" and known[name][1] != "serving":
                    self._set_state(name, "serving", now)
                elif known[name][1] == "serving" and space_id not in serving_ids:
                    self._set_state(name, "validated", now)

    def _set_state(self, name: str, state: str, now: str) -> None:
        self._conn.execute("UPDATE spaces SET state=?, updated_at=? WHERE name=?", (state, now, name))

    def set_state(self, name: str, state: str) -> None:
        if state not in STATES:
            raise ValueError(f"space state {state!r} is not one of {STATES}")
        with self._conn:
            self._set_state(name, state, _now())

    def hold(self, name: str) -> None:
        """Never promote this space automatically again (it served once, or was rolled back)."""
        with self._conn:
            self._conn.execute("UPDATE spaces SET auto_cutover=0, updated_at=? WHERE name=?", (_now(), name))

    def state(self, name: str) -> str | None:
        row = self._conn.execute("SELECT state FROM spaces WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def spaces(self) -> dict[str, dict[str, Any]]:
        cols = ("name", "space_id", "state", "auto_cutover", "declared_at", "updated_at")
        rows = self._conn.execute(f"SELECT {', '.join(cols)} FROM spaces ORDER BY declared_at, name")
        return {r[0]: {**dict(zip(cols, r, strict=True)), "auto_cutover": bool(r[3])} for r in rows}

    # -- evaluations ----------------------------------------------------------------------------

    def record_evaluation(
        self, space: str, space_id: str, fingerprint: str, golden: str, numbers: dict[str, Any]
    ) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO evaluations (space, space_id, fingerprint, golden, at, numbers) VALUES (?, ?, ?, ?, ?, ?)",
                (space, space_id, fingerprint, golden, _now(), json.dumps(numbers, sort_keys=True)),
            )

    def latest_evaluation(self, space_id: str, fingerprint: str | None = None) -> dict[str, Any] | None:
        """The newest evaluation of a space (on one golden set when ``fingerprint`` is given)."""
        query = "SELECT space, fingerprint, golden, at, numbers FROM evaluations WHERE space_id=?"
        args: tuple[str, ...] = (space_id,)
        if fingerprint is not None:
            query, args = query + " AND fingerprint=?", (space_id, fingerprint)
        row = self._conn.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
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
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO alias_history (alias, action, from_space, from_space_id, to_space, to_space_id, who, at,"
                " forced, gate, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                (
                    alias,
                    action,
                    from_space[0] if from_space else None,
                    from_space[1] if from_space else None,
                    to_space[0],
                    to_space[1],
                    who,
                    _now(),
                    int(forced),
                    json.dumps(gate, sort_keys=True, default=str),
                ),
            )
        return int(cur.lastrowid or 0)

    def finish_swap(self, swap_id: int, status: str = "done") -> None:
        """Mark a recorded move done (or failed) and update both spaces' states in one transaction."""
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("UPDATE alias_history SET status=? WHERE id=?", (status, swap_id))
            if status != "done":
                return
            row = self._conn.execute("SELECT from_space, to_space FROM alias_history WHERE id=?", (swap_id,)).fetchone()
            now = _now()
            if row[0] and row[0] != row[1]:
                self._conn.execute(
                    "UPDATE spaces SET state='validated', auto_cutover=0, updated_at=? WHERE name=?", (now, row[0])
                )
            self._set_state(row[1], "serving", now)

    def history(self, alias: str | None = None) -> list[Swap]:
        query = "SELECT * FROM alias_history" + (" WHERE alias=?" if alias else "") + " ORDER BY id"
        rows = self._conn.execute(query, (alias,) if alias else ())
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
        self._conn.close()
