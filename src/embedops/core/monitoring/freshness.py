"""Freshness: how long a source change waits for its vectors, and which documents are stale.

Lag of a document = time from its source modification (or the tenant's first materialization in the
space, whichever is later) to the newest vector of that version; a change not yet embedded counts
from its modification time until now. Staleness policies are chosen per path pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np
import pyarrow as pa

from embedops.core.monitoring import Outcome
from embedops.core.monitoring.config import FreshnessConfig, PolicyRule

HOUR = 3600.0
MAX_AGE = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
BUCKETS = ((60, "< 1 min"), (HOUR, "1 min - 1 h"), (6 * HOUR, "1 h - 6 h"), (24 * HOUR, "6 h - 24 h"),
           (7 * 24 * HOUR, "1 d - 7 d"), (float("inf"), ">= 7 d"))


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """``**`` spans folders, ``*`` and ``?`` stay within one path segment."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def policy_for(doc_id: str, rules: tuple[PolicyRule, ...], default: str) -> str:
    """The policy of the first rule whose pattern matches the whole document id, else ``default``."""
    for rule in rules:
        if _glob(rule.pattern).fullmatch(doc_id):
            return rule.policy
    return default


@dataclass
class DocFreshness:
    """One document's vectors against its source."""

    doc_id: str
    modified_at: datetime | None
    embedded_first: datetime
    embedded_last: datetime
    pending: bool = False
    models: set[str] = field(default_factory=set)


def documents(index: pa.Table, live: dict[str, datetime], changed: set[str]) -> list[DocFreshness]:
    """Per document of the index: live modification time, oldest and newest vector, models used.

    ``changed`` are documents whose source content differs from what their vectors were made from.
    """
    docs: dict[str, DocFreshness] = {}
    if index.num_rows == 0:
        return []
    columns = [index.column(c).to_pylist() for c in ("doc_id", "embedded_at", "model")]
    for doc_id, at, model in zip(*columns, strict=True):
        if at is None:
            continue
        doc = docs.get(doc_id)
        if doc is None:
            doc = docs[doc_id] = DocFreshness(doc_id, live.get(doc_id), at, at, doc_id in changed)
        doc.embedded_first, doc.embedded_last = min(doc.embedded_first, at), max(doc.embedded_last, at)
        doc.models.add(model)
    return sorted(docs.values(), key=lambda d: d.doc_id)


def pending_changes(
    live: dict[str, datetime],
    materialized: pa.Table | None,
    index: pa.Table,
    checksum_of: Callable[[str], str | None],
) -> set[str]:
    """Documents whose source content now differs from the checksum their vectors were made from.

    A file whose modification time still equals the materialized one keeps its checksum; any other
    is hashed again through ``checksum_of``.
    """
    recorded: dict[str, tuple[datetime, str]] = {}
    if materialized is not None:
        for row in materialized.select(["doc_id", "modified_at", "checksum"]).to_pylist():
            recorded[row["doc_id"]] = (row["modified_at"], row["checksum"])
    indexed: dict[str, set[str]] = {}
    if index.num_rows:
        for doc_id, checksum in zip(
            index.column("doc_id").to_pylist(), index.column("source_checksum").to_pylist(), strict=True
        ):
            indexed.setdefault(doc_id, set()).add(checksum)
    changed = set()
    for doc_id, mtime in live.items():
        if doc_id not in indexed:
            continue
        known = recorded.get(doc_id)
        current = known[1] if known and known[0] == mtime else checksum_of(doc_id)
        if indexed[doc_id] != {current}:
            changed.add(doc_id)
    return changed


def lag_seconds(doc: DocFreshness, now: datetime, floor: datetime | None) -> float:
    """Seconds the document's current source version waited (or has been waiting) for its vectors."""
    if doc.modified_at is None:
        return 0.0
    start = max(doc.modified_at, floor) if floor else doc.modified_at
    end = now if doc.pending else doc.embedded_last
    return max(0.0, (end - start).total_seconds())


def stale_reason(doc: DocFreshness, policy: str, model: str, now: datetime, config: FreshnessConfig) -> str | None:
    """Why the document is stale under ``policy``, or None when it is not."""
    if policy == "never":
        return None
    if policy == "on_model_upgrade":
        other = sorted(m for m in doc.models if m != model)
        return f"embedded by {', '.join(other)}, not {model}" if other else None
    if policy in MAX_AGE and now - doc.embedded_first > MAX_AGE[policy]:
        return f"oldest vector from {doc.embedded_first:%Y-%m-%d %H:%M} UTC is older than its {policy} policy allows"
    grace = timedelta(hours=config.on_change_grace_hours)
    if doc.pending and doc.modified_at is not None and now - doc.modified_at >= grace:
        return f"source changed at {doc.modified_at:%Y-%m-%d %H:%M} UTC and is not re-embedded"
    return None


def histogram(lags: list[float]) -> str:
    """A Markdown histogram of lags: one row per bucket with a count and a bar."""
    counts = [0] * len(BUCKETS)
    for lag in lags:
        counts[next(i for i, (upper, _) in enumerate(BUCKETS) if lag < upper)] += 1
    top = max(counts) or 1
    lines = ["| lag | documents | |", "|---|---:|---|"]
    for (_, label), n in zip(BUCKETS, counts, strict=True):
        lines.append(f"| {label} | {n} | {'█' * round(20 * n / top)} |")
    return "\n".join(lines)


def freshness(
    docs: list[DocFreshness],
    config: FreshnessConfig,
    model: str,
    now: datetime,
    floor: datetime | None = None,
    limit: int = 50,
) -> Outcome:
    """p50/p99 lag against the SLO, and the documents stale under their policy."""
    lags = [lag_seconds(d, now, floor) for d in docs]
    p50 = float(np.percentile(lags, 50)) / HOUR if lags else 0.0
    p99 = float(np.percentile(lags, 99)) / HOUR if lags else 0.0
    stale = []
    for doc in docs:
        policy = policy_for(doc.doc_id, config.policies, config.default_policy)
        reason = stale_reason(doc, policy, model, now, config)
        if reason:
            stale.append({"doc_id": doc.doc_id, "policy": policy, "reason": reason})
    problems = []
    if p99 > config.slo_p99_hours:
        problems.append(f"p99 lag {p99:.2f} h exceeds the SLO of {config.slo_p99_hours} h")
    if config.slo_p50_hours is not None and p50 > config.slo_p50_hours:
        problems.append(f"p50 lag {p50:.2f} h exceeds the SLO of {config.slo_p50_hours} h")
    if stale:
        problems.append(f"{len(stale)} document(s) stale under their staleness policy")
    summary = f"p50 lag {p50:.2f} h, p99 {p99:.2f} h (SLO p99 <= {config.slo_p99_hours} h) over {len(docs)} documents"
    return Outcome(
        "freshness", passed=not problems, description="; ".join(problems) or summary,
        ids=[s["doc_id"] for s in stale][:limit],
        metadata={
            "documents": len(docs),
            "p50_lag_hours": round(p50, 4),
            "p99_lag_hours": round(p99, 4),
            "slo_p99_hours": config.slo_p99_hours,
            "pending_changes": sum(d.pending for d in docs),
            "stale_total": len(stale),
            "stale": stale[:limit],
        },
        markdown={"lag_histogram": histogram(lags)},
    )
