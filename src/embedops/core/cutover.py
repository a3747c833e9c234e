"""Moving an alias: first pointing, gated cutover, rollback and retirement, each one atomic repoint in the store.

The store's alias pointer is the single source of truth for what is served (readers see the old or
the new pointer, never anything between); the manifest records each move before and after it
happens, so a crash between the two is visible and a rollback still knows the previous space. A
lease in the control database (key ``alias/<alias>``) serialises moves of one alias across processes
and hosts: a second mover waits for the first, then fails naming it.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from embedops.core.leases import Leases
from embedops.core.manifest import FIRST_POINTING, Manifest, Swap
from embedops.core.migration import GateResult, MigrationConfig, TenantStatus, gate, tenant_status
from embedops.core.sources import SourceRoot
from embedops.core.spaces import SpacesConfig, SpaceSpec
from embedops.core.stores.base import VectorStore, index_schema
from embedops.core.tables import TableStore
from embedops.errors import AliasError, GateRefusedError, NotMaterializedError, UnknownSpaceError


def who_am_i() -> str:
    """The person (or process) a manual move is recorded under: EMBEDOPS_USER, else the login."""
    try:
        return os.environ.get("EMBEDOPS_USER") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


# How long a move waits for another move of the same alias (moves are short: a pointer and two manifest rows).
ALIAS_WAIT_S = 30.0


@contextmanager
def alias_lock(manifest: Manifest, alias: str, wait: float = ALIAS_WAIT_S) -> Iterator[None]:
    """Exclusive hold on one alias across processes and hosts: the lease ``alias/<alias>`` in the control
    database the manifest is in, waiting up to ``wait`` seconds for another mover, then PartitionBusyError
    naming it."""
    holder = f"{who_am_i()} on {socket.gethostname()} (pid {os.getpid()}, {uuid.uuid4().hex[:8]})"

    def busy(other: str, until: str) -> str:
        return (
            f"alias {alias!r} is being moved by {other} (lease until {until}); wait for that move to finish "
            f"and try again (this move waited {wait:g} s)"
        )

    with Leases(manifest.engine).held(f"alias/{alias}", holder, wait, busy_message=busy):
        yield


def _space_name(config: SpacesConfig, space_id: str | None) -> str | None:
    if space_id is None:
        return None
    try:
        return config.by_id(space_id).name
    except UnknownSpaceError:
        return space_id


def check_gate(
    config: SpacesConfig,
    migration: MigrationConfig,
    candidate: SpaceSpec,
    alias: str,
    store: VectorStore,
    tables: TableStore,
    manifest: Manifest,
    tenants: Mapping[str, SourceRoot],
) -> GateResult:
    """Gather the gate's inputs (tenant states, latest evaluations) and decide.

    ``tenants`` maps every customer tenant to its source folder, which reconciliation compares with.
    """
    serving_id = store.get_alias(alias)
    serving = None
    if serving_id is not None:
        try:
            serving = config.by_id(serving_id)
        except UnknownSpaceError:
            serving = None
    statuses: list[TenantStatus] = [tenant_status(tables, store, t, candidate, root) for t, root in tenants.items()]
    candidate_eval = manifest.latest_evaluation(candidate.space_id)
    serving_eval = None
    if serving is not None and candidate_eval is not None:
        serving_eval = manifest.latest_evaluation(serving.space_id, candidate_eval["fingerprint"])
    result = gate(candidate, serving, statuses, candidate_eval, serving_eval, migration.tolerance)
    if manifest.state(candidate.name) == "retired":
        result.passed = False
        result.reasons.append(f"space {candidate.name!r} is retired")
    result.numbers["alias"] = alias
    return result


def cutover(
    store: VectorStore,
    manifest: Manifest,
    config: SpacesConfig,
    alias: str,
    space: SpaceSpec,
    verdict: GateResult,
    who: str,
    force: bool = False,
) -> Swap:
    """Point ``alias`` at ``space`` when the gate passed (or ``force``), recording the move."""
    with alias_lock(manifest, alias):
        current = store.get_alias(alias)
        if current == space.space_id:
            raise AliasError(f"alias {alias!r} already points at space {space.name!r} ({space.space_id})")
        if manifest.state(space.name) == "retired":
            raise AliasError(f"space {space.name!r} is retired; declare it anew to serve it")
        if not verdict.passed and not force:
            raise GateRefusedError(
                f"cutover of alias {alias!r} to {space.name!r} refused: {'; '.join(verdict.reasons)}. "
                "Fix these, or override with --force (recorded as forced)"
            )
        action = "forced-cutover" if force and not verdict.passed else "cutover"
        return _move(store, manifest, config, alias, current, space, who, action, verdict.to_json(), force)


def point_first(
    store: VectorStore,
    manifest: Manifest,
    config: SpacesConfig,
    alias: str,
    space: SpaceSpec,
    who: str,
    details: dict[str, Any],
) -> Swap | None:
    """Point an alias that points nowhere yet at ``space``: its first pointing, a move like any other.

    Under the alias lock and recorded in the manifest (action ``first-pointing``, ``details`` such as the
    run id kept with it). None when the alias already points somewhere: it is pointed first only once,
    whichever of several concurrent first syncs gets the lock first.
    """
    with alias_lock(manifest, alias):
        if store.get_alias(alias) is not None:
            return None
        return _move(store, manifest, config, alias, None, space, who, FIRST_POINTING, details, False)


def _move(
    store: VectorStore,
    manifest: Manifest,
    config: SpacesConfig,
    alias: str,
    current: str | None,
    space: SpaceSpec,
    who: str,
    action: str,
    gate_json: dict[str, Any],
    forced: bool,
) -> Swap:
    source = (_space_name(config, current) or "", current) if current else None
    swap_id = manifest.begin_swap(alias, action, source, (space.name, space.space_id), who, gate_json, forced)  # type: ignore[arg-type]
    try:
        store.set_alias(alias, space.space_id)
    except BaseException:
        manifest.finish_swap(swap_id, "failed")
        raise
    manifest.finish_swap(swap_id)
    return next(s for s in manifest.history(alias) if s.id == swap_id)


def forced_admission(manifest: Manifest, alias: str, space_id: str) -> Swap | None:
    """The forced cutover by which ``space_id`` last entered service on ``alias`` past a refusing gate.

    None when its last cutover onto the alias passed the gate, or it never had one (the space the
    alias started on). A rollback does not count: it moves without asking the gate.
    """
    for swap in reversed(manifest.history(alias)):
        landed = swap.status in ("done", "pending")
        if landed and swap.to_space_id == space_id and swap.action in ("cutover", "forced-cutover"):
            return swap if swap.forced else None
    return None


def rollback(
    store: VectorStore,
    manifest: Manifest,
    config: SpacesConfig,
    alias: str,
    who: str,
    force: bool = False,
) -> Swap:
    """Point ``alias`` back at the space it served before its last move: one atomic repoint.

    A space that went into service only by a forced cutover past the gate is not a rollback target:
    moving back onto it needs ``force`` and is recorded as forced, like the cutover that put it there.
    """
    with alias_lock(manifest, alias):
        current = store.get_alias(alias)
        if current is None:
            raise AliasError(f"alias {alias!r} points at no space; there is nothing to roll back")
        last = manifest.previous(alias, current)
        if last is None or not last.from_space_id:
            raise AliasError(
                f"alias {alias!r} has no recorded previous space (it serves {_space_name(config, current)!r} "
                "since its first pointing); see `embedops spaces --json` for the history"
            )
        try:
            target = config.by_id(last.from_space_id)
        except UnknownSpaceError as exc:
            raise AliasError(
                f"previous space {last.from_space!r} of alias {alias!r} is no longer declared in "
                "the space config; declare it again to roll back to it"
            ) from exc
        if manifest.state(target.name) == "retired":
            raise AliasError(f"previous space {target.name!r} of alias {alias!r} is retired; cannot roll back")
        forced = forced_admission(manifest, alias, target.space_id)
        if forced is not None and not force:
            reasons = "; ".join(forced.gate.get("reasons", [])) or "see the swap's gate numbers"
            raise GateRefusedError(
                f"rollback of alias {alias!r} to space {target.name!r} refused: {target.name!r} failed the "
                f"cutover gate ({reasons}) and served only by forced cutover #{forced.id} ({forced.who}, "
                f"{forced.at}). Cut over to it through the gate (`embedops cutover --alias {alias} --space "
                f"{target.name}`), or override with `embedops rollback --alias {alias} --force` (recorded as forced)"
            )
        gate_json: dict[str, Any] = {"rolled_back_swap": last.id}
        if forced is not None:
            gate_json.update(forced_past=forced.id, reasons=forced.gate.get("reasons", []))
        action = "forced-rollback" if forced is not None else "rollback"
        swap = _move(store, manifest, config, alias, current, target, who, action, gate_json, forced is not None)
        manifest.hold(last.to_space)
        return swap


@dataclass
class Retirement:
    space: str
    space_id: str
    policy: str
    tenants_emptied: list[str]


def retire(
    store: VectorStore,
    manifest: Manifest,
    config: SpacesConfig,
    space: SpaceSpec,
    policy: str,
    aliases: Iterable[str],
) -> Retirement:
    """Retire a space no alias points at; under drop-on-retire its vectors leave the store."""
    names = sorted(set(aliases) | {config.alias} | {s.alias for s in manifest.history()})
    with alias_lock(manifest, config.alias):
        for alias in names:
            if store.get_alias(alias) == space.space_id:
                raise AliasError(
                    f"space {space.name!r} is served by alias {alias!r}; cut over or roll back to another "
                    f"space first (`embedops cutover --alias {alias} --space OTHER`)"
                )
        emptied = []
        if policy == "drop-on-retire":
            empty = index_schema(space.dimension).empty_table()
            for tenant in store.tenants(space.space_id):
                try:
                    store.sync(tenant, space.space_id, space.name, empty)
                except NotMaterializedError:
                    continue
                emptied.append(tenant)
        manifest.set_state(space.name, "retired")
    return Retirement(space.name, space.space_id, policy, emptied)


def open_manifest(database: str | Engine, config: SpacesConfig, store: VectorStore) -> Manifest:
    """The manifest in the control database (a URL or engine), brought up to date with the declared spaces
    and the aliases."""
    manifest = Manifest(database)
    aliases = {config.alias} | {s.alias for s in manifest.history()}
    serving = {sid for sid in (store.get_alias(a) for a in aliases) if sid is not None}
    manifest.sync_spaces({s.name: s.space_id for s in config.spaces}, serving)
    return manifest


def active_spaces(config: SpacesConfig, manifest: Manifest) -> list[SpaceSpec]:
    """Declared spaces that are not retired: the ones a source change must reach (dual write)."""
    return [s for s in config.spaces if manifest.state(s.name) != "retired"]
