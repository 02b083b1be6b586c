"""Recording deliveries: committed before the caller hears back, the event loop never waiting
for SQLite's write lock, the WAL kept bounded under steady intake, redeliveries changing
nothing (also after a restart)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from bot import store as st
from bot.store.deliveries import RESTART_EVERY


def delivery(delivery_id: str | None = None) -> st.Delivery:
    return st.Delivery(delivery_id or str(uuid.uuid4()), "push", None, "o/r", 7, "ignored")


def job() -> st.NewJob:
    return st.NewJob("o/r", "deploy", {"sha": "abc"}, installation_id=7)


@pytest.fixture
async def store(tmp_path: Path):
    s = await st.Store.open(tmp_path / "data")
    yield s
    await s.close()


def database(store: st.Store) -> sqlite3.Connection:
    """A connection of another party (another process would see the same)."""
    return sqlite3.connect(store.path, isolation_level=None)


async def test_a_delivery_is_committed_when_recording_returns(store: st.Store) -> None:
    other = database(store)
    recorded = await store.record_delivery(delivery("d-1"), [job()])
    assert not recorded.duplicate and len(recorded.job_ids) == 1
    assert other.execute("SELECT outcome FROM deliveries WHERE id='d-1'").fetchall() == [
        ("ignored",)
    ]
    assert other.execute("SELECT delivery_id FROM jobs").fetchall() == [("d-1",)]
    other.close()


async def test_deliveries_arriving_together_are_each_recorded(store: st.Store) -> None:
    ids = [f"d-{n}" for n in range(50)]
    results = await asyncio.gather(*(store.record_delivery(delivery(i), []) for i in ids))
    assert not any(r.duplicate for r in results)
    other = database(store)
    assert other.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (50,)
    other.close()


async def test_a_failing_change_fails_its_own_delivery_only(store: st.Store) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO no_such_table VALUES (1)")

    results = await asyncio.gather(
        store.record_delivery(delivery("a"), []),
        store.record_delivery(delivery("b"), [job()], [broken]),
        store.record_delivery(delivery("c"), []),
        return_exceptions=True,
    )
    assert isinstance(results[1], sqlite3.OperationalError)
    other = database(store)
    assert other.execute("SELECT id FROM deliveries ORDER BY id").fetchall() == [("a",), ("c",)]
    assert other.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    other.close()


async def test_the_event_loop_runs_on_while_another_writer_holds_the_lock(
    store: st.Store,
) -> None:
    await store.record_delivery(delivery(), [])  # the intake connection is open
    other = database(store)
    other.execute("BEGIN IMMEDIATE")  # another writer (a job, another process) holds it
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticking = asyncio.create_task(ticker())
    recording = asyncio.create_task(store.record_delivery(delivery("while-locked"), [job()]))
    # The loop keeps serving while the write waits for the lock: 20 ticks go by (however
    # slow the machine), and all the while nothing is answered before it is committed.
    deadline = asyncio.get_running_loop().time() + 30
    while ticks < 20 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
        assert not recording.done()
    ticks_while_locked = ticks
    other.execute("COMMIT")
    recorded = await asyncio.wait_for(recording, 10)
    ticking.cancel()
    assert ticks_while_locked >= 20
    assert not recorded.duplicate and recorded.job_ids
    assert other.execute("SELECT 1 FROM deliveries WHERE id='while-locked'").fetchall() == [(1,)]
    other.close()


async def test_the_wal_stays_bounded_under_steady_intake(store: st.Store) -> None:
    wal = Path(f"{store.path}-wal")
    sizes = []
    for _ in range(4 * RESTART_EVERY):
        await store.record_delivery(delivery(), [])
        sizes.append(wal.stat().st_size)
    # One restart interval's worth of pages (a few per commit), then it starts over;
    # unchecked it grows by about 15 KB a commit, here to about 30 MB.
    assert max(sizes) < 12 * 2**20, f"WAL grew to {max(sizes)} bytes"


async def test_a_redelivery_changes_nothing_also_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = await st.Store.open(data)
    assert not (await first.record_delivery(delivery("same"), [job()])).duplicate
    again = await first.record_delivery(delivery("same"), [job()])
    assert again.duplicate and not again.job_ids
    await first.close()

    restarted = await st.Store.open(data)
    try:
        after = await restarted.record_delivery(delivery("same"), [job()])
        assert after.duplicate and not after.job_ids
        other = database(restarted)
        assert other.execute("SELECT COUNT(*) FROM jobs").fetchone() == (1,)
        other.close()
    finally:
        await restarted.close()


async def test_recording_after_close_is_refused(tmp_path: Path) -> None:
    store = await st.Store.open(tmp_path / "data")
    await store.record_delivery(delivery(), [])
    await store.close()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="closed"):
        await store.record_delivery(delivery(), [])
    assert time.monotonic() - started < 5


async def test_a_job_replacing_a_queued_one_reports_what_it_replaced(store: st.Store) -> None:
    def deploy(sha: str) -> st.NewJob:
        return st.NewJob("o/r", "deploy", {"sha": sha}, 7, coalesce_key="deploy:o/r")

    first = await store.record_delivery(delivery("one"), [deploy("a")])
    second = await store.record_delivery(delivery("two"), [deploy("b")])
    assert [job.id for job in second.superseded] == first.job_ids
    assert [job.payload for job in second.superseded] == [{"sha": "a"}]
    assert (await store.job(first.job_ids[0])).state == st.SUPERSEDED


async def test_a_delivery_that_cannot_be_stored_fails_alone(store: st.Store) -> None:
    # A value SQLite cannot bind: the one statement fails, the batch goes on.
    unstorable = st.Delivery("bad", "push", None, None, {"id": 1}, "ignored")  # type: ignore[arg-type]
    results = await asyncio.gather(
        store.record_delivery(delivery("before"), []),
        store.record_delivery(unstorable, []),
        store.record_delivery(delivery("after"), [job()]),
        return_exceptions=True,
    )
    assert isinstance(results[1], sqlite3.ProgrammingError)
    other = database(store)
    rows = other.execute("SELECT id FROM deliveries ORDER BY id").fetchall()
    assert rows == [("after",), ("before",)]
    assert other.execute("SELECT delivery_id FROM jobs").fetchall() == [("after",)]
    other.close()


async def test_a_course_remembered_without_its_id_keeps_the_id_it_had(store: st.Store) -> None:
    # A deploy remembers the course with no repository id; the id the installation event
    # gave (the course's ownership tag in DigitalOcean) must survive it.
    await store.add_courses(7, [("physics/p101", 4242)])
    await store.add_courses(7, [("physics/p101", None)])
    course = await store.course("physics/p101")
    assert course is not None and course.repo_id == 4242
