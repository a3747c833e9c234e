"""P6: peak RSS of embedops' ingest against corpus size, from the child-process runs of the scaling family."""

from __future__ import annotations


def points(runs: list[dict]) -> list[dict]:
    """One row per embedops child run that measured RSS: chunks, RSS before, peak per step."""
    out = []
    for r in runs:
        t = r["tools"].get("embedops")
        if not t or t["cold"].get("peak_rss_mb") is None:
            continue
        out.append({"label": r["label"], "documents": r["documents"], "source_mb": r["source_mb"],
                    "chunks": t["cold"].get("chunks", 0), "rss_before_mb": t["cold"]["rss_before_mb"],
                    "cold": t["cold"]["peak_rss_mb"], "rerun": t["rerun"].get("peak_rss_mb") or 0.0,
                    "edits": t["edits"].get("peak_rss_mb") or 0.0})
    return sorted(out, key=lambda p: p["chunks"])


def summarize(runs: list[dict]) -> dict:
    """The largest run's figures, growth per 10k chunks between the smallest and largest, and a verdict."""
    rows = points(runs)
    if not rows:
        return {}
    big, small = rows[-1], rows[0]
    growth = big["cold"] - big["rss_before_mb"]
    out = {"documents": big["documents"], "chunks": big["chunks"], "source_mb": big["source_mb"],
           "cold_peak_rss_mb": big["cold"], "cold_growth_mb": growth, "rerun_peak_rss_mb": big["rerun"],
           "edits_peak_rss_mb": big["edits"], "points": rows}
    if big["chunks"] < 10 * max(small["chunks"], 1):
        out["streams"] = None
        out["verdict"] = "The corpus sizes measured are too close together (less than 10x apart) to judge a trend."
        return out
    small_growth = small["cold"] - small["rss_before_mb"]
    slope = (growth - small_growth) / (big["chunks"] - small["chunks"]) * 10_000
    out["growth_mb_per_10k_chunks"] = round(slope, 1)
    out["streams"] = growth <= 2 * max(small_growth, 1.0)
    if out["streams"]:
        out["verdict"] = (f"Peak RSS stays nearly flat from {small['chunks']:,} to {big['chunks']:,} chunks "
                          f"(+{small_growth:.0f} MiB to +{growth:.0f} MiB over the loaded process): it streams.")
    else:
        out["verdict"] = (
            f"Not flat yet: the ingest's peak grows with the corpus, +{small_growth:.0f} MiB at "
            f"{small['chunks']:,} chunks to +{growth:.0f} MiB at {big['chunks']:,} chunks, about {slope:.0f} MiB per "
            f"10k chunks ({big['source_mb']:.0f} MB of source text at the largest size). The scan, chunk and "
            "embedding steps read and write batch by batch and hold only ids and hashes per chunk; what still "
            "grows is LanceDB's side of a tenant's first sync (its file writer and the HNSW index build) and "
            "the invariant checks, which read the whole index table with vectors.")
    return out
