"""Plain statements of where embedops is behind, computed from the figures of a run."""

from __future__ import annotations

from bench.report import PEERS, _pct, _s, projected_p2


def findings(results: dict) -> list[str]:
    """One sentence per shortfall, with its numbers."""
    out = []
    p1 = results.get("p1")
    if p1 and "ratio" in p1 and p1["ratio"] < 0.9:
        cpu = p1.get("encode_cpu_seconds_runs"), p1.get("encode_sliced_cpu_seconds_runs")
        per_batch = f"{min(cpu[0]) / min(cpu[1]):.2f}x by CPU time, " if all(cpu) else ""
        out.append(
            f"P1: the cold ingest runs at {p1['ratio']:.2f}x the model's own encode() (goal 0.9; wall "
            f"{p1.get('ratio_wall', p1['ratio'])}, CPU {p1.get('ratio_cpu', 'n/a')}). Calling encode() one batch of "
            f"32 at a time, as embed_chunks does, alone costs: it runs at {per_batch}"
            f"{p1['encode_seconds'] / p1['encode_sliced_seconds']:.2f}x by wall time of the whole-list call "
            "(sentence-transformers sorts the texts of one call by length before batching, so a whole list pads "
            "less). The rest is the pipeline's own work: chunking with repeated token counts, hashing and the "
            "cache, Parquet and LanceDB writes, the invariant checks and two Dagster runs.")
    p2 = results.get("p2")
    if p2 and "fraction" in p2 and p2["fraction"] > 0.05:
        out.append(f"P2: an unchanged re-run of {p2['documents']} documents still takes {_s(p2['rerun_seconds'])} "
                   f"({_pct(p2['fraction'])} of the cold ingest): two Dagster runs, and every table read, rewritten "
                   "and checked in full even when nothing changed.")
    proj = projected_p2(results)
    if proj and proj["projected_fraction"] > 0.05:
        out.append(f"P2 at {proj['documents']} documents: the re-run takes {_s(proj['rerun_seconds'])}, "
                   f"{_pct(proj['projected_fraction'])} of a (projected) MiniLM cold ingest.")
    for key in ("main", "revisions"):
        r = (results.get("p3") or {}).get(key)
        if not r or "embedops" not in r["tools"]:
            continue
        e = r["tools"]["embedops"]
        for peer in PEERS:
            t = r["tools"].get(peer)
            if not t:
                continue
            if t["edits"]["seconds"] < e["edits"]["seconds"]:
                out.append(f"P3 ({r['label']}): {peer} applies the edits in {_s(t['edits']['seconds'])} against "
                           f"embedops' {_s(e['edits']['seconds'])} ({t['edits']['calls']} vs {e['edits']['calls']} "
                           "texts to the model): embedops' cost is its fixed per-run work, not the model; the peer "
                           "keeps everything in memory and persists nothing.")
            if t["edits"]["calls"] < e["edits"]["calls"]:
                out.append(f"P3 ({r['label']}): {peer} sent fewer texts to the model than embedops "
                           f"({t['edits']['calls']} vs {e['edits']['calls']}).")
            if t["rerun"]["seconds"] < e["rerun"]["seconds"]:
                out.append(f"P2/P3 ({r['label']}): {peer}'s unchanged re-run takes {_s(t['rerun']['seconds'])}, "
                           f"embedops' {_s(e['rerun']['seconds'])}.")
    lookups = [(r["label"], r["tools"]["embedops"]["rerun"]) for r in results.get("scaling", [])
               if r["tools"].get("embedops", {}).get("rerun", {}).get("identity_lookup_seconds")]
    if lookups:
        label, step = lookups[0]
        out.append(f"Every run of a space whose model package is imported under another name than its distribution "
                   f"(static_model, shipped by tokenlearn-static-model) calls importlib.metadata."
                   f"packages_distributions() {step['identity_lookups']} times through ModelSpec.identity, which is "
                   f"recomputed for each freshly loaded space config: {step['identity_lookup_seconds']:.2f} s of the "
                   f"{step['seconds']:.2f} s unchanged re-run of {label}. The default MiniLM space does not pay it.")
    for r in results.get("scaling", []):
        e = r["tools"].get("embedops")
        if e and e["rerun"]["seconds"] / e["cold"]["seconds"] > 0.05:
            rerun, edit = e["rerun"]["seconds"] / e["cold"]["seconds"], e["edits"]["seconds"] / e["cold"]["seconds"]
            out.append(f"Scaling ({r['label']}): the unchanged re-run is {_pct(rerun)} of the static-model cold "
                       f"ingest and the edits {_pct(edit)}: the time of a run grows with the corpus even when the "
                       "change does not.")
    p4 = results.get("p4")
    for e in (p4 or {}).get("sizes", []):
        if not e.get("served_index") and "ivf_pq" in e and e["vectors"] >= 10_000:
            out.append(f"P4 ({e['vectors']:,} vectors): no vector index is served, every query scans the table "
                       f"(p50 {e['flat']['p50_ms']} ms).")
        if e.get("served_index") and e["flat"]["recall_at_10"] < 0.99:
            out.append(f"P4 ({e['vectors']:,} vectors): the {e['served_index']} index embedops serves answers in "
                       f"{e['flat']['p50_ms']} ms (exact scan {e.get('exact_scan', {}).get('p50_ms', 'n/a')} ms) at "
                       f"recall@10 {e['flat']['recall_at_10']}: about {1 - e['flat']['recall_at_10']:.0%} of exact "
                       "top-10 results are missed; search takes no recall or ef parameter to trade latency back.")
    p6 = results.get("p6")
    if p6 and p6.get("streams") is False:
        out.append("P6: " + p6["verdict"])
    return out
