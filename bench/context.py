"""What every measurement gets: the data folder, a scratch folder, the slice sizes and a logger."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Sized for a 2-core machine: the full run takes about 25 minutes, the quick one under 2.
FULL = {
    "p1_docs": 120,  # SciFact abstracts through all-MiniLM-L6-v2 (about 3.5 chunks each)
    "p3_fraction": 0.01,
    "scale_docs": [1000, 5000],  # SciFact, static model, every tool
    "scale_chunks": [100_000, 1_000_000],  # SCALE: synthetic, static model, today's design and the previous
    "synthetic_docs": 50000,  # synthetic, static model, embedops only (P6: about 100k chunks)
    "variant_docs": 500,  # native splitters and LangChain batch size, static model
    "revision_fraction": 0.05,  # wiki articles moved to their next real version
    "wiki_articles": None,  # all 445
    "p4_vectors": [10000, 100000],
    "p4_queries": 200,
    "p4_e2e_queries": 100,
    "p4_ann": True,
    "cli": True,
}
QUICK = {
    "p1_docs": 6,
    "p3_fraction": 0.01,
    "scale_docs": [60],
    "scale_chunks": [10_000, 20_000],
    "synthetic_docs": 200,
    "variant_docs": 30,
    "revision_fraction": 0.05,
    "wiki_articles": 30,
    "p4_vectors": [2000],
    "p4_queries": 50,
    "p4_e2e_queries": 5,
    "p4_ann": True,
    "cli": False,
}


@dataclass
class Context:
    data: Path
    tmp: Path
    quick: bool
    sizes: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    quiet: bool = False

    def __post_init__(self) -> None:
        if not self.sizes:
            self.sizes = dict(QUICK if self.quick else FULL)

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.started:7.1f}s] {message}", file=sys.stderr, flush=True)
