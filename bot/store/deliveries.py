"""Deliveries, installations and courses: what webhook intake records."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterable

from bot.store.database import PRUNE_BATCH, connect
from bot.store.jobs import JobTables
from bot.store.records import (
    Change,
    Course,
    Delivery,
    NewJob,
    Recorded,
)

logger = logging.getLogger(__name__)

# Intake commits between two WAL checkpoints in the background (SQLite's own default is
# every 1,000 pages, here about 60 intake commits of a dozen pages each: random delivery
# ids touch many pages), and between two that pause intake so the WAL can start over.
CHECKPOINT_EVERY = 64
RESTART_EVERY = 8 * CHECKPOINT_EVERY


def upsert_installation(installation_id: int, account: str, suspended: bool) -> Change:
    return lambda db: db.execute(
        "INSERT INTO installations VALUES (?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "account=excluded.account, suspended=excluded.suspended, updated_at=excluded.updated_at",
        (installation_id, account, int(suspended), time.time()),
    )


def remove_installation(installation_id: int) -> Change:
    def run(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM installations WHERE id=?", (installation_id,))
        db.execute(
            "UPDATE courses SET active=0, updated_at=? WHERE installation_id=?",
            (time.time(), installation_id),
        )

    return run


def add_courses(installation_id: int, repositories: Iterable[tuple[str, int | None]]) -> Change:
    """Courses (name, repository id if known) of an installation, active; a repository
    known under another name is followed there first (``follow_repository``)."""
    now = time.time()
    rows = [(name, installation_id, repo_id, now) for name, repo_id in repositories]

    def run(db: sqlite3.Connection) -> None:
        for name, _, repo_id, _ in rows:
            if repo_id is not None:
                _follow(db, repo_id, name)
        db.executemany(
            "INSERT INTO courses VALUES (?,?,?,1,?) ON CONFLICT(full_name) DO UPDATE SET "
            "installation_id=excluded.installation_id, "
            "repo_id=COALESCE(excluded.repo_id, courses.repo_id), active=1, "
            "updated_at=excluded.updated_at",
            rows,
        )

    return run


def parked_name(repo_id: int) -> str:
    """Where a repository's course waits once another repository took its name: keyed to
    its id, and no ``owner/repo`` that a route, a delivery or a job can name."""
    return f"repository#{repo_id}"


def follow_repository(repo_id: int, full_name: str, installation_id: int) -> Change:
    """Courses are known by their repository's id: the delivery's repository, now named
    ``full_name``, takes its course (server record, facts, monitor state, tokens, jobs)
    along from any older name, and a course another repository left under this name
    is put aside, keyed to that repository's id, out of sight."""

    def run(db: sqlite3.Connection) -> None:
        _follow(db, repo_id, full_name)
        db.execute(
            "INSERT INTO courses VALUES (?,?,?,1,?) ON CONFLICT(full_name) DO UPDATE SET "
            "repo_id=excluded.repo_id, installation_id=excluded.installation_id, active=1",
            (full_name, installation_id, repo_id, time.time()),
        )

    return run


def _follow(db: sqlite3.Connection, repo_id: int, full_name: str) -> None:
    here = db.execute("SELECT repo_id FROM courses WHERE full_name=?", (full_name,)).fetchone()
    if here is not None and here[0] is not None and here[0] != repo_id:
        # Another repository had this name (renamed, transferred or deleted since).
        parked = parked_name(here[0])
        move_course(db, full_name, parked)
        db.execute("UPDATE courses SET active=0 WHERE full_name=?", (parked,))
        db.execute(
            "UPDATE jobs SET state='cancelled', finished_at=?, error=? "
            "WHERE course=? AND state='queued'",
            (time.time(), "another repository took the course's name", parked),
        )
    elsewhere = db.execute(
        "SELECT full_name FROM courses WHERE repo_id=? AND full_name<>?", (repo_id, full_name)
    ).fetchone()
    if elsewhere is not None:
        move_course(db, elsewhere[0], full_name)


def move_course(db: sqlite3.Connection, old: str, new: str) -> None:
    """Every row of course ``old`` renamed to ``new``: the courses row, every table with a
    ``course`` column, and the small facts kept under ``…:{course}``."""
    if old == new:
        return
    db.execute("DELETE FROM courses WHERE full_name=?", (new,))
    db.execute("UPDATE courses SET full_name=? WHERE full_name=?", (new, old))
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        columns = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}
        if "course" in columns:
            # The table names come from the schema itself, not from any input.
            sql = f'UPDATE OR REPLACE "{table}" SET course=? WHERE course=?'  # noqa: S608
            db.execute(sql, (new, old))
    db.execute(
        "UPDATE OR REPLACE meta SET key = substr(key, 1, length(key) - ?) || ? "
        "WHERE length(key) > ? AND substr(key, -?) = ? AND substr(key, -? - 1, 1) = ':'",
        (len(old), new, len(old), len(old), old, len(old)),
    )


def remove_courses(full_names: Iterable[str]) -> Change:
    rows = [(time.time(), name) for name in full_names]
    return lambda db: db.executemany(
        "UPDATE courses SET active=0, updated_at=? WHERE full_name=?", rows
    )


class _Replayed(Exception):
    """A delivery whose request was recorded before under another delivery id."""


class DeliveryTables(JobTables):
    """Deliveries with their changes and jobs, installations and courses."""

    _intake_conn: sqlite3.Connection | None = None
    _intake_commits = 0
    _checkpointing: asyncio.Future[None] | None = None

    # -- deliveries ---------------------------------------------------------------

    async def record_delivery(
        self, delivery: Delivery, jobs: list[NewJob], changes: Iterable[Change] = ()
    ) -> Recorded:
        """Record a delivery, its changes and its jobs atomically; a known id records nothing.

        Deliveries that arrive in one turn of the event loop share one commit (group
        commit), each with jobs or changes in its own savepoint; each caller returns only
        once its row is committed. The commit is made on the event loop itself, on an
        intake connection of its own, when SQLite's write lock is free at once: under WAL
        with ``synchronous=NORMAL`` that is a write to the WAL (no fsync, no checkpoint:
        those stay on the store thread) and costs far less than two hops to the store
        thread. If another connection holds the lock, or a checkpoint is due, the batch
        goes to the store thread instead, so the loop never waits for a lock or a disk sync.
        """
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, jobs, list(changes), future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_deliveries())
        return await future

    async def _flush_deliveries(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                rows = [(d, j, c) for d, j, c, _ in batch]
                try:
                    outcomes = None
                    if self._intake_commits < RESTART_EVERY:
                        outcomes = self._record_inline(rows)
                    if outcomes is None:
                        outcomes = await self._call(self._record_and_checkpoint, rows)
                        self._intake_commits = 0
                except BaseException as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (*_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                # Let the deliveries that arrived meanwhile join the next batch.
                await asyncio.sleep(0)
        finally:
            self._flusher = None

    def _record_inline(
        self, batch: list[tuple[Delivery, list[NewJob], list[Change]]]
    ) -> list[Recorded | Exception] | None:
        """The batch committed on the intake connection; ``None`` if the write lock is taken."""
        db = self._intake_db()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            raise
        outcomes = self._commit_batch(db, batch)
        self._intake_commits += 1
        if self._intake_commits % CHECKPOINT_EVERY == 0 and self._checkpointing is None:
            # Copies the WAL into the database beside intake, syncing off the loop, so the
            # checkpoint that pauses intake later has little left to do.
            self._checkpointing = asyncio.ensure_future(self._call(self._checkpoint))
            self._checkpointing.add_done_callback(self._checkpointed)
        return outcomes

    def _checkpoint(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _checkpointed(self, future: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not future.cancelled() and future.exception() is not None:
            # Not fatal: the WAL only grows until the next checkpoint succeeds.
            logger.warning("WAL checkpoint failed: %s", future.exception())

    def _record_and_checkpoint(
        self, batch: list[tuple[Delivery, list[NewJob], list[Change]]]
    ) -> list[Recorded | Exception]:
        """A WAL checkpoint, then ``_record_batch``, on the store thread.

        The intake connection never checkpoints (a checkpoint syncs to disk). A checkpoint
        beside steady intake never catches up with it, and SQLite starts the WAL over only
        once one has, so every ``RESTART_EVERY`` commits a batch is recorded here instead:
        no intake commit runs meanwhile, the checkpoint completes, and this batch's commit
        starts the WAL over (syncing the WAL's new header here too, not on the loop).
        """
        self._checkpoint()
        return self._record_batch(batch)

    def _intake_db(self) -> sqlite3.Connection:
        if self._intake_conn is None:
            if self._conn is None:
                raise RuntimeError("the store is closed")
            conn = connect(self.path)
            # Never wait for the lock nor checkpoint here: the event loop runs this.
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._intake_conn = conn
        return self._intake_conn

    async def close(self) -> None:
        for pending in (self._flusher, self._checkpointing):
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
        if self._intake_conn is not None:
            self._intake_conn.close()
            self._intake_conn = None
        await super().close()

    def _record_batch(
        self, batch: list[tuple[Delivery, list[NewJob], list[Change]]]
    ) -> list[Recorded | Exception]:
        """The batch in one transaction on the store thread's connection, waiting for the lock."""
        self._db.execute("BEGIN IMMEDIATE")
        return self._commit_batch(self._db, batch)

    def _commit_batch(
        self, db: sqlite3.Connection, batch: list[tuple[Delivery, list[NewJob], list[Change]]]
    ) -> list[Recorded | Exception]:
        """Record each delivery in a savepoint of ``db``'s open transaction, then commit."""
        outcomes: list[Recorded | Exception] = []
        try:
            for delivery, jobs, changes in batch:
                if not jobs and not changes and delivery.content_key is None:
                    # One statement, which SQLite undoes alone if it fails: no savepoint
                    # needed (most deliveries are ignored ones, and this halves their cost).
                    try:
                        outcomes.append(self._record_one(db, delivery, jobs, changes))
                    except Exception as exc:
                        outcomes.append(exc)
                    continue
                db.execute("SAVEPOINT delivery")
                try:
                    outcomes.append(self._record_one(db, delivery, jobs, changes))
                except _Replayed:
                    db.execute("ROLLBACK TO delivery")
                    outcomes.append(Recorded(duplicate=True))
                except Exception as exc:
                    db.execute("ROLLBACK TO delivery")
                    outcomes.append(exc)
                db.execute("RELEASE delivery")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return outcomes

    def _record_one(
        self, db: sqlite3.Connection, delivery: Delivery, jobs: list[NewJob], changes: list[Change]
    ) -> Recorded:
        cursor = db.execute(
            "INSERT OR IGNORE INTO deliveries VALUES (?,?,?,?,?,?,?)",
            (
                delivery.id,
                delivery.event,
                delivery.action,
                delivery.repository,
                delivery.installation_id,
                delivery.received_at,
                delivery.outcome,
            ),
        )
        if cursor.rowcount == 0:
            return Recorded(duplicate=True)
        if delivery.content_key is not None:
            # The same request under another delivery id (a replayed body): nothing runs.
            # Its row keeps the key as long as deliveries are kept.
            cursor = db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?,?,?,?,?,?,?)",
                (
                    delivery.content_key,
                    delivery.event,
                    delivery.action,
                    delivery.repository,
                    delivery.installation_id,
                    delivery.received_at,
                    f"request of delivery {delivery.id}",
                ),
            )
            if cursor.rowcount == 0:
                # Undone with the savepoint's other writes: only the first one is kept.
                raise _Replayed()
        for change in changes:
            change(db)
        recorded = Recorded(duplicate=False)
        for job in jobs:
            inserted = self._insert_job(db, job, delivery.id)
            if inserted is not None:
                recorded.job_ids.append(inserted[0])
                recorded.superseded.extend(inserted[1])
        return recorded

    async def delivery(self, delivery_id: str) -> Delivery | None:
        rows = await self._fetch("SELECT * FROM deliveries WHERE id=?", (delivery_id,))
        return Delivery(**dict(rows[0])) if rows else None

    async def prune_deliveries(self, older_than_seconds: float, *, batch: int = PRUNE_BATCH) -> int:
        """Delete deliveries received over ``older_than_seconds`` ago; how many went.

        GitHub redelivers only recent deliveries, so an old id guards against nothing.
        SQLite keeps the freed pages and the next inserts reuse them: the file stops
        growing at the size of the deliveries kept, without a VACUUM that would rewrite
        the file while intake waits.
        """
        cutoff = time.time() - older_than_seconds

        def run(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM deliveries WHERE rowid IN "
                "(SELECT rowid FROM deliveries WHERE received_at < ? LIMIT ?)",
                (cutoff, batch),
            ).rowcount

        return await self._in_batches(run, batch)

    # -- installations and courses -------------------------------------------------

    async def upsert_installation(
        self, installation_id: int, account: str, suspended: bool
    ) -> None:
        await self._transaction(upsert_installation(installation_id, account, suspended))

    async def remove_installation(self, installation_id: int) -> None:
        await self._transaction(remove_installation(installation_id))

    async def installation_suspended(self, installation_id: int) -> bool:
        rows = await self._fetch(
            "SELECT suspended FROM installations WHERE id=?", (installation_id,)
        )
        return bool(rows and rows[0]["suspended"])

    async def add_courses(
        self, installation_id: int, repositories: Iterable[tuple[str, int | None]]
    ) -> None:
        await self._transaction(add_courses(installation_id, repositories))

    async def remove_courses(self, full_names: Iterable[str]) -> None:
        await self._transaction(remove_courses(full_names))

    async def course(self, full_name: str) -> Course | None:
        rows = await self._fetch(
            "SELECT full_name, installation_id, repo_id, active FROM courses WHERE full_name=?",
            (full_name,),
        )
        if not rows:
            return None
        row = rows[0]
        return Course(row[0], row[1], row[2], bool(row[3]))

    async def courses(self, *, active_only: bool = True) -> list[Course]:
        sql = "SELECT full_name, installation_id, repo_id, active FROM courses"
        if active_only:
            sql += " WHERE active=1"
        rows = await self._fetch(sql + " ORDER BY full_name")
        return [Course(r[0], r[1], r[2], bool(r[3])) for r in rows]
