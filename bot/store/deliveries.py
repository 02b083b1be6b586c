"""Deliveries, installations and courses: what webhook intake records."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable

from bot.store.database import PRUNE_BATCH, Database
from bot.store.records import (
    Change,
    Course,
    Delivery,
    NewJob,
    Recorded,
)


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
    now = time.time()
    rows = [(name, installation_id, repo_id, now) for name, repo_id in repositories]
    return lambda db: db.executemany(
        "INSERT INTO courses VALUES (?,?,?,1,?) ON CONFLICT(full_name) DO UPDATE SET "
        "installation_id=excluded.installation_id, repo_id=excluded.repo_id, active=1, "
        "updated_at=excluded.updated_at",
        rows,
    )


def remove_courses(full_names: Iterable[str]) -> Change:
    rows = [(time.time(), name) for name in full_names]
    return lambda db: db.executemany(
        "UPDATE courses SET active=0, updated_at=? WHERE full_name=?", rows
    )


class DeliveryTables(Database):
    """Deliveries with their changes and jobs, installations and courses."""

    # -- deliveries ---------------------------------------------------------------

    async def record_delivery(
        self, delivery: Delivery, jobs: list[NewJob], changes: Iterable[Change] = ()
    ) -> Recorded:
        """Record a delivery, its changes and its jobs atomically; a known id records nothing.

        Deliveries that arrive while a commit is under way share the next one (group
        commit), each in its own savepoint; each caller returns only once its row is
        committed.
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
                try:
                    outcomes = await self._call(
                        self._record_batch, [(d, j, c) for d, j, c, _ in batch]
                    )
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
        finally:
            self._flusher = None

    def _record_batch(
        self, batch: list[tuple[Delivery, list[NewJob], list[Change]]]
    ) -> list[Recorded | Exception]:
        db = self._db
        outcomes: list[Recorded | Exception] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for delivery, jobs, changes in batch:
                db.execute("SAVEPOINT delivery")
                try:
                    outcomes.append(self._record_one(db, delivery, jobs, changes))
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
        for change in changes:
            change(db)
        recorded = Recorded(duplicate=False)
        for job in jobs:
            inserted = self._insert_job(db, job, delivery.id)
            if inserted is not None:
                recorded.job_ids.append(inserted[0])
                recorded.superseded.extend(inserted[1])
        return recorded

    async def has_delivery(self, delivery_id: str) -> bool:
        rows = await self._fetch("SELECT 1 FROM deliveries WHERE id=?", (delivery_id,))
        return bool(rows)

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
