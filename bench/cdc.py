"""Freshness of a table source end to end: a steady stream of changes to a PostgreSQL table, followed through
its replication slot, each change timed from its commit to the moment the index shows it.

    python -m bench --only CDC            # 2 changes/s for 5 minutes (30 s with --quick)
    python -m bench.cdc --rate 2 --seconds 300 --interval 15 --out /tmp/cdc.json

Run by hand (never by CI). A real PostgreSQL server (Debian's, wal_level=logical, wal2json) on 127.0.0.1, the
default space (all-MiniLM-L6-v2). A writer thread commits ``rate`` changes a second (half inserts, a third
updates, the rest deletes), each insert or update with a unique marker word. A consumer does what a
cdc_sensor tick and its table_changes_job run do, every ``interval`` seconds: peek the slot, apply, confirm.
After each apply it reads the index: a change is visible when its row's index text holds its marker (or the
deleted row has no vectors). Lag = visible - commit. At the end: the index equals a full read of the table (0
lost), and no chunk is held twice (0 applied twice). Not counted here: the daemon launching the run in a new
process (a few seconds: the process start and imports; see docs/production.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ENV = "BENCH_CDC_DATABASE_URL"


def _execute(server: Any, sql: str, *params: object) -> None:
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


class Writer(threading.Thread):
    """Commits ``rate`` changes a second for ``seconds``; remembers each change's commit time and marker."""

    def __init__(self, server: Any, rate: float, seconds: float, first_id: int) -> None:
        super().__init__(daemon=True)
        self.server, self.rate, self.seconds = server, rate, seconds
        self.next_id = first_id
        self.live: list[int] = list(range(1, first_id))
        self.changes: list[dict[str, Any]] = []
        self.random = random.Random(7)

    def run(self) -> None:
        conn = self.server.connect()
        conn.autocommit = True
        started = time.monotonic()
        n = 0
        with conn.cursor() as cur:
            while time.monotonic() - started < self.seconds:
                due = started + n / self.rate
                time.sleep(max(0.0, due - time.monotonic()))
                roll = self.random.random()
                marker = f"zq{n:05d}"
                if roll < 0.5 or len(self.live) < 5:
                    row, op = self.next_id, "I"
                    self.next_id += 1
                    cur.execute("INSERT INTO items VALUES (%s, %s, %s)", (row, f"Item {row}",
                                f"Row {row} carries the marker {marker} in its body."))
                    self.live.append(row)
                elif roll < 0.85:
                    row, op = self.random.choice(self.live), "U"
                    cur.execute("UPDATE items SET body = %s WHERE id = %s",
                                (f"Row {row} was edited and carries {marker} now.", row))
                else:
                    row, op = self.live.pop(self.random.randrange(len(self.live))), "D"
                    cur.execute("DELETE FROM items WHERE id = %s", (row,))
                self.changes.append({"n": n, "row": row, "op": op, "marker": marker, "committed": time.time()})
                n += 1
        conn.close()


def _index_texts(project: Any, tenant: str) -> dict[str, str]:
    table = project.store.export(tenant, project.spaces.serving_space.space_id)
    out: dict[str, str] = {}
    for row in table.to_pylist():
        out[row["doc_id"]] = out.get(row["doc_id"], "") + " " + row["text"]
    return out


def measure(rate: float = 2.0, seconds: float = 300.0, interval: float = 15.0, seed_rows: int = 20,
            log: Any = print) -> dict[str, Any]:
    from tests.conftest import make_project
    from tests.postgres import LOGICAL_CONF, pg_server

    from embedops.core import cdc
    from embedops.pipelines.cdc import sync_table_tenant
    from embedops.pipelines.runs import run_ingest

    with pg_server(LOGICAL_CONF) as server:
        os.environ[ENV] = server.url
        _execute(server, "CREATE TABLE items (id integer PRIMARY KEY, title text, body text)")
        for i in range(1, seed_rows + 1):
            _execute(server, "INSERT INTO items VALUES (%s, %s, %s)", i, f"Item {i}", f"Row {i} is a seed row.")
        project = make_project(Path(tempfile.mkdtemp(prefix="bench-cdc-")))
        source = cdc.TableSource(ENV, "items", "id", ("title", "body"))
        started = time.perf_counter()
        run_ingest(project.defs, project.instance, "acme", [project.spaces.serving_space], source=source.location)
        log(f"CDC: initial load of {seed_rows} rows in {time.perf_counter() - started:.1f} s")

        writer = Writer(server, rate, seconds, seed_rows + 1)
        writer.start()
        visible: dict[int, float] = {}
        syncs: list[dict[str, Any]] = []
        next_tick = time.monotonic() + interval

        def settle() -> None:
            tick = time.perf_counter()
            summary = sync_table_tenant(project.defs, project.instance, "acme")
            applied = time.perf_counter() - tick
            now, texts = time.time(), _index_texts(project, "acme")
            last: dict[int, dict[str, Any]] = {}
            for change in list(writer.changes):
                last[change["row"]] = change
            for change in list(writer.changes):
                if change["n"] in visible or change["committed"] > now:
                    continue
                current = last[change["row"]]
                if current["n"] != change["n"]:  # a later change of the row supersedes it: visible with it
                    if current["n"] in visible:
                        visible[change["n"]] = visible[current["n"]]
                    continue
                text = texts.get(f"items/{change['row']}")
                shown = text is None if change["op"] == "D" else text is not None and change["marker"] in text
                if shown:
                    visible[change["n"]] = now
            syncs.append({"changed": summary.changed, "deleted": summary.deleted, "wall_s": round(applied, 2),
                          "apply_s": summary.apply_s})

        while writer.is_alive():
            time.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick += interval
            settle()
            log(f"CDC: sync {len(syncs)}: {syncs[-1]}; {len(visible)}/{len(writer.changes)} changes visible")
        writer.join()
        for _ in range(3):  # the stream stopped: the consumer catches up
            settle()
            if len(visible) == len(writer.changes):
                break

        lags = [visible[c["n"]] - c["committed"] for c in writer.changes if c["n"] in visible]
        texts = _index_texts(project, "acme")
        table = {r.doc_id: r.text for r in cdc.read_current(source)}
        rows = project.store.export("acme", project.spaces.serving_space.space_id).to_pylist()
        # lost: a row whose index presence differs from the table, or a change never seen in the index
        lost = sorted(set(table) ^ set(texts)) + [c["n"] for c in writer.changes if c["n"] not in visible]
        walls = [s["wall_s"] for s in syncs if s["changed"] or s["deleted"]]
        return {
            "rate_per_s": rate, "seconds": seconds, "sensor_interval_s": interval, "changes": len(writer.changes),
            "visible": len(visible), "lost": len(lost), "lost_ids": lost[:10],
            "applied_twice": len(rows) - len({r["chunk_id"] for r in rows}),
            "lag_p50_s": round(float(np.percentile(lags, 50)), 2) if lags else None,
            "lag_p99_s": round(float(np.percentile(lags, 99)), 2) if lags else None,
            "lag_max_s": round(max(lags), 2) if lags else None,
            "syncs": len(syncs), "sync_wall_p50_s": round(float(np.median(walls)), 2) if walls else None,
            "sync_wall_max_s": round(max(walls), 2) if walls else None,
            "slot_after": cdc.slot_lag(source).__dict__,
        }


def run(ctx: Any) -> dict[str, Any]:
    """The CDC family of ``python -m bench``: 2 changes/s for 5 minutes (30 s with --quick)."""
    return measure(seconds=30.0 if ctx.quick else 300.0, log=ctx.log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between consumer ticks")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.rate, args.seconds, args.interval, log=lambda m: print(m, file=sys.stderr, flush=True))
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
