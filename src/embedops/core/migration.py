"""Model migration logic, Dagster-free: settings, hot-first order, per-tenant state, the gate, fusion.

A migration backfills a candidate space tenant by tenant (hottest first), keeps it current with
dual writes, measures it on a golden set, and moves the alias only through the gate: every tenant
materialized and reconciled, and candidate recall@10 >= serving recall@10 - tolerance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from embedops.core.golden import GOLDEN_TENANT
from embedops.core.monitoring import Outcome
from embedops.core.monitoring.reconcile import quarantined_documents, reconcile_tenant
from embedops.core.sources import SourceRoot
from embedops.core.spaces import MigrationConfig, SpaceSpec
from embedops.core.stores.base import Hit, VectorStore
from embedops.core.tables import TableStore
from embedops.core.tenants import validate_tenant
from embedops.errors import InvalidTenantError

GATE_METRIC = "recall@10"


@dataclass(frozen=True)
class HotTenant:
    """A tenant's place in a backfill: recorded searches, configured weight, and run priority."""

    tenant: str
    searches: int
    weight: float
    priority: int


def hot_first(tenants: Iterable[str], searches: Mapping[str, int], config: MigrationConfig) -> list[HotTenant]:
    """Tenants hottest first: recorded search traffic, then the configured weight, then the name.

    The weight orders tenants with equal traffic (notably none recorded yet); priority is the
    ``dagster/priority`` tag of the tenant's run, highest first.
    """
    names = sorted(set(tenants))
    ordered = sorted(names, key=lambda t: (-searches.get(t, 0), -config.weight(t), t))
    return [HotTenant(t, searches.get(t, 0), config.weight(t), len(ordered) - i) for i, t in enumerate(ordered)]


def known_tenants(registered: Iterable[str], tables: TableStore, extra: Iterable[str] = ()) -> list[str]:
    """Customer tenants: registered ones, ones whose sources were read, and ``extra`` (partitions).

    The golden-set namespace is never a customer tenant.
    """
    found = set(registered) | set(extra)
    found |= set(tables.partitions("source_documents"))
    tenants = []
    for name in sorted(found - {GOLDEN_TENANT}):
        try:
            tenants.append(validate_tenant(name))
        except InvalidTenantError:
            continue
    return tenants


@dataclass
class TenantStatus:
    """One tenant in one space: materialized means its chunks and vectors reflect the sources it read
    and the reconciliation check (the same function as the asset check) passes on it."""

    tenant: str
    space: str
    documents: int = 0
    chunks: int = 0
    index_rows: int = 0
    problems: list[str] = field(default_factory=list)
    reconciliation: Outcome | None = None

    @property
    def materialized(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "materialized": self.materialized,
            "documents": self.documents,
            "chunks": self.chunks,
            "index_rows": self.index_rows,
            "problems": self.problems,
            "reconciliation": None
            if self.reconciliation is None
            else {"passed": self.reconciliation.passed, "description": self.reconciliation.description},
        }


def tenant_status(
    tables: TableStore, store: VectorStore, tenant: str, space: SpaceSpec, source_root: SourceRoot
) -> TenantStatus:
    """Is the tenant materialized and reconciled in ``space``? Every reason it is not, by name.

    ``source_root`` is the tenant's source folder, which the reconciliation compares the index with.
    """
    status = TenantStatus(tenant, space.name)
    docs = tables.read_columns("source_documents", (tenant,), ["doc_id", "checksum"])
    chunks = tables.read_columns("document_chunks", (tenant, space.name), ["doc_id", "source_checksum", "config_hash"])
    vectors = tables.latest("chunk_embeddings", (tenant, space.name))
    if docs is None:
        status.problems.append("its source documents were never read")
        return status
    status.documents = docs.num_rows
    if chunks is None or vectors is None:
        status.problems.append(
            f"not materialized in space {space.name!r} (no {'chunks' if chunks is None else 'vectors'})"
        )
        return status
    status.chunks = chunks.num_rows
    sources = dict(zip(docs.column("doc_id").to_pylist(), docs.column("checksum").to_pylist(), strict=True))
    chunked = dict(zip(chunks.column("doc_id").to_pylist(), chunks.column("source_checksum").to_pylist(), strict=True))
    quarantined = quarantined_documents(tables, tenant, space)
    stale = sorted(d for d in sources if d not in quarantined and chunked.get(d) != sources[d])
    ghosts = sorted(set(chunked) - set(sources))
    if stale:
        status.problems.append(f"{len(stale)} document(s) changed or added since it was materialized: {stale[:5]}")
    if ghosts:
        status.problems.append(f"{len(ghosts)} deleted document(s) still chunked: {ghosts[:5]}")
    if set(chunks.column("config_hash").to_pylist()) - {space.config_hash}:
        status.problems.append("chunks were made with another recipe of this space")
    status.reconciliation = reconcile_tenant(tables, store, source_root, tenant, space, limit=5)
    status.index_rows = int(status.reconciliation.metadata["index_rows"])
    if not status.reconciliation.passed:
        status.problems.append(f"reconciliation fails: {status.reconciliation.description}")
    return status


@dataclass
class GateResult:
    """The cutover gate's verdict, every reason it refused, and the numbers it decided on."""

    passed: bool
    reasons: list[str]
    numbers: dict[str, Any]
    needs_evaluation: bool = False  # a golden-set evaluation of the candidate (or serving) is missing

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, **self.numbers}

    @property
    def ready_for_evaluation(self) -> bool:
        """Every tenant is materialized and reconciled; the golden-set numbers are what is missing."""
        return self.needs_evaluation and self.numbers["tenants_materialized"] == self.numbers["tenants"]

    def explain(self) -> str:
        return "gate passed" if self.passed else "gate refused: " + "; ".join(self.reasons)


def gate(
    candidate: SpaceSpec,
    serving: SpaceSpec | None,
    statuses: Sequence[TenantStatus],
    candidate_eval: Mapping[str, Any] | None,
    serving_eval: Mapping[str, Any] | None,
    tolerance: float,
) -> GateResult:
    """Every tenant materialized and reconciled, and candidate recall@10 >= serving - tolerance."""
    reasons = [f"tenant {s.tenant!r}: {p}" for s in statuses for p in s.problems]
    numbers: dict[str, Any] = {
        "candidate": candidate.name,
        "serving": serving.name if serving else None,
        "tolerance": tolerance,
        "tenants": len(statuses),
        "tenants_materialized": sum(s.materialized for s in statuses),
    }
    if serving is not None and serving.space_id == candidate.space_id:
        reasons.append(f"space {candidate.name!r} already serves the alias")
    needs_evaluation = candidate_eval is None or (serving is not None and serving_eval is None)
    if candidate_eval is None:
        reasons.append(
            f"space {candidate.name!r} has no golden-set evaluation; materialize golden_set_evaluation "
            f"for it or run `embedops evaluate --space {candidate.name}`"
        )
    else:
        numbers.update({f"candidate_{k}": candidate_eval[k] for k in ("recall@10", "ndcg@10", "mrr@10")})
        numbers["golden"] = candidate_eval.get("fingerprint")
    if serving is not None and candidate_eval is not None:
        if serving_eval is None:
            reasons.append(
                f"serving space {serving.name!r} has no evaluation on the same golden set "
                f"({candidate_eval.get('fingerprint')}); evaluate it too"
            )
        else:
            numbers.update({f"serving_{k}": serving_eval[k] for k in ("recall@10", "ndcg@10", "mrr@10")})
            want = float(serving_eval[GATE_METRIC]) - tolerance
            if float(candidate_eval[GATE_METRIC]) < want:
                reasons.append(
                    f"{GATE_METRIC} of {candidate.name!r} is {candidate_eval[GATE_METRIC]:.4f}, below serving "
                    f"{serving.name!r} {serving_eval[GATE_METRIC]:.4f} - tolerance {tolerance} = {want:.4f}"
                )
    return GateResult(passed=not reasons, reasons=reasons, numbers=numbers, needs_evaluation=needs_evaluation)


@dataclass(frozen=True)
class FusedHit:
    """A result of reciprocal-rank fusion: the hit, its fused score and its rank in each space."""

    hit: Hit
    score: float
    ranks: dict[str, int]


def rrf_fuse(rankings: Mapping[str, Sequence[Hit]], k: int, k0: int = 60) -> list[FusedHit]:
    """Reciprocal-rank fusion of per-space result lists: score = sum 1 / (k0 + rank).

    Only ranks are combined; no similarity of one space is ever compared with another's. Results
    are matched by chunk id (same document, same text), else they stay separate.
    """
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    ranks: dict[str, dict[str, int]] = {}
    for space, hits in rankings.items():
        for rank, hit in enumerate(hits, 1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k0 + rank)
            first.setdefault(hit.chunk_id, hit)
            ranks.setdefault(hit.chunk_id, {})[space] = rank
    order = sorted(scores, key=lambda c: (-scores[c], min(ranks[c].values()), c))
    return [FusedHit(first[c], scores[c], ranks[c]) for c in order[:k]]
