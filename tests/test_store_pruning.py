"""Bounded storage: old deliveries and finished jobs are pruned, on a schedule, and the
database file stops growing because SQLite reuses the pages pruning frees."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from bot.app import DELIVERY_RETENTION, JOB_RETENTION, make_app
from bot.jobs.runner import JobKinds
from bot.services import SERVICES
from bot.store import DONE, FAILED, QUEUED, CheckRunRecord, NewJob, Store

DAY = 86400.0


def insert_deliveries(path: Path, first: int, count: int, received_at: float) -> None:
    """Write deliveries in bulk through a connection of its own, as if received long ago,
    then checkpoint, so the database file holds every page they take."""
    rows = [
        (f"delivery-{n:08}", "push", None, "octo-org/physics101", 1001, received_at, "accepted")
        for n in range(first, first + count)
    ]
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?)", rows)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def execute(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


async def test_pruning_keeps_the_database_bounded_over_100000_deliveries(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        insert_deliveries(store.path, 0, 1000, time.time() - DAY)  # recent: kept
        old = time.time() - DELIVERY_RETENTION - DAY
        sizes = []
        for round_ in range(3):
            insert_deliveries(store.path, 10**6 * (round_ + 1), 100_000, old)
            sizes.append(store.path.stat().st_size)
            assert await store.prune_deliveries(DELIVERY_RETENTION) == 100_000
            assert execute(store.path, "SELECT COUNT(*) FROM deliveries") == [(1000,)]
        assert await store.delivery("delivery-00000999") is not None
        assert await store.delivery("delivery-01000000") is None
        # The first 100,000 grew the file; later ones fill the pages pruning freed.
        assert sizes[0] > 5 * 1024 * 1024
        assert sizes[2] <= sizes[0] * 1.02, sizes
    finally:
        await store.close()


async def test_finished_jobs_go_with_their_completed_check_runs(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        ids = {}
        for name in ("old-done", "old-failed", "old-queued", "recent-done", "old-open-run"):
            job_id, _ = await store.enqueue(NewJob("octo-org/physics101", "deploy"))
            ids[name] = job_id
            await store.record_check_run(
                CheckRunRecord(
                    9000 + job_id,
                    "octo-org/physics101",
                    1001,
                    "a" * 40,
                    job_id,
                    "in_progress" if name == "old-open-run" else "completed",
                )
            )
            await store.set_meta(f"deployment:job:{job_id}", "77")
        for name in ("old-done", "recent-done", "old-open-run"):
            await store.finish_job(ids[name], DONE)
        await store.finish_job(ids["old-failed"], FAILED)
        long_ago = time.time() - JOB_RETENTION - DAY
        # Even a finish time would not make a queued job prunable: only its state counts.
        for name in ("old-done", "old-failed", "old-queued", "old-open-run"):
            execute(
                store.path,
                "UPDATE jobs SET created_at=?, finished_at=? WHERE id=?",
                (long_ago, long_ago, ids[name]),
            )
        assert await store.prune_jobs(JOB_RETENTION, batch=1) == 3
        left = {job.id: job.state for job in await store.jobs()}
        assert left == {ids["old-queued"]: QUEUED, ids["recent-done"]: DONE}
        runs = {run.job_id for run in await store.check_runs()}
        # A check run not completed stays, for start-up to conclude.
        assert runs == {ids["old-queued"], ids["recent-done"], ids["old-open-run"]}
        assert await store.get_meta(f"deployment:job:{ids['old-done']}") is None
        assert await store.get_meta(f"deployment:job:{ids['recent-done']}") == "77"
    finally:
        await store.close()


async def test_the_service_prunes_on_its_schedule(aiohttp_client, make_settings) -> None:
    client = await aiohttp_client(
        make_app(make_settings(), job_kinds=JobKinds(), monitoring=False, prune_every=0.05)
    )
    store = client.app[SERVICES].store
    insert_deliveries(store.path, 0, 10, time.time() - DELIVERY_RETENTION - DAY)
    insert_deliveries(store.path, 10, 1, time.time())
    for _ in range(200):
        if await store.delivery("delivery-00000000") is None:
            break
        await asyncio.sleep(0.05)
    assert execute(store.path, "SELECT id FROM deliveries") == [("delivery-00000010",)]
