"""The database's size after 100,000 webhook deliveries, with and without pruning.

Deliveries arrive 1,000 a day for 100 simulated days (as GitHub's examples would be
recorded: one row each). With pruning, the service's hourly prune runs once a simulated
day with its 30-day retention; without, nothing is deleted. Sizes are the database file
plus its write-ahead log after a checkpoint, as on disk.

    .venv/bin/python bench/store_size.py
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import DELIVERY_RETENTION
from bot.store import Store

DAY = 86400.0
DAYS = 100
PER_DAY = 1000


def on_disk(path: Path) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def simulate(data_dir: Path, prune: bool) -> tuple[int, int, float]:
    """Bytes on disk, deliveries kept, and the slowest prune's seconds."""
    store = await Store.open(data_dir)
    start = time.time() - DAYS * DAY
    slowest = 0.0
    try:
        for day in range(DAYS):
            received = start + day * DAY
            rows = [
                (f"d-{day}-{n}", "push", None, "octo-org/physics101", 1001, received, "accepted")
                for n in range(PER_DAY)
            ]
            with sqlite3.connect(store.path) as db:
                db.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?)", rows)
            if prune:
                # "Now" is the end of this simulated day: the cutoff moves with it.
                behind = (DAYS - day - 1) * DAY
                began = time.perf_counter()
                await store.prune_deliveries(DELIVERY_RETENTION + behind)
                slowest = max(slowest, time.perf_counter() - began)
        with sqlite3.connect(store.path) as db:
            [(kept,)] = db.execute("SELECT COUNT(*) FROM deliveries").fetchall()
        return on_disk(store.path), kept, slowest
    finally:
        await store.close()


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        pruned = await simulate(Path(tmp) / "pruned", True)
        kept_all = await simulate(Path(tmp) / "all", False)
    total = DAYS * PER_DAY
    for name, (size, kept, slowest) in (("with pruning", pruned), ("without", kept_all)):
        print(
            f"{total:,} deliveries over {DAYS} days, {name}: {size / 2**20:.1f} MiB on disk,"
            f" {kept:,} kept"
            + (f", slowest daily prune {slowest * 1000:.0f} ms" if slowest else "")
        )
    print(f"ratio: {kept_all[0] / pruned[0]:.1f}x smaller with pruning")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
