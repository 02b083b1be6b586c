"""Jobs and the check runs the service opened for them."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from bot.store.database import PRUNE_BATCH, Database
from bot.store.records import (
    CANCELLED,
    QUEUED,
    RUNNING,
    SUPERSEDED,
    CheckRunRecord,
    Job,
    NewJob,
    job_from_row,
)


class JobTables(Database):
    """The durable job queue and the check runs of its jobs."""

    # -- jobs -------------------------------------------------------------------------

    def _insert_job(
        self, db: sqlite3.Connection, job: NewJob, delivery_id: str | None
    ) -> tuple[int, list[Job]] | None:
        superseded: list[Job] = []
        now = time.time()
        if (
            job.dedupe_key is not None
            and db.execute(
                "SELECT 1 FROM jobs WHERE course=? AND dedupe_key=?", (job.course, job.dedupe_key)
            ).fetchone()
        ):
            return None
        if job.coalesce_key is not None:
            rows = db.execute(
                "SELECT * FROM jobs WHERE course=? AND kind=? AND coalesce_key=? AND state=?",
                (job.course, job.kind, job.coalesce_key, QUEUED),
            ).fetchall()
            superseded = [job_from_row(r) for r in rows]
            db.executemany(
                "UPDATE jobs SET state=?, finished_at=? WHERE id=?",
                [(SUPERSEDED, now, old.id) for old in superseded],
            )
        cursor = db.execute(
            "INSERT INTO jobs (course, kind, payload, state, coalesce_key, installation_id, "
            "delivery_id, created_at, dedupe_key) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                job.course,
                job.kind,
                json.dumps(job.payload),
                QUEUED,
                job.coalesce_key,
                job.installation_id,
                delivery_id,
                now,
                job.dedupe_key,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid, superseded

    async def enqueue(self, job: NewJob) -> tuple[int, list[Job]] | None:
        """Add a job outside any delivery (a timer, a button): its id and what it replaced,
        or None when its dedupe key was already asked for."""
        return await self._transaction(lambda db: self._insert_job(db, job, None))

    async def job(self, job_id: int) -> Job | None:
        rows = await self._fetch("SELECT * FROM jobs WHERE id=?", (job_id,))
        return job_from_row(rows[0]) if rows else None

    async def jobs(self, *, course: str | None = None, states: Iterable[str] = ()) -> list[Job]:
        sql, params = "SELECT * FROM jobs WHERE 1=1", []
        if course is not None:
            sql += " AND course=?"
            params.append(course)
        states = list(states)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params.extend(states)
        return [job_from_row(r) for r in await self._fetch(sql + " ORDER BY id", params)]

    async def claim_runnable(self, busy_courses: set[str], limit: int) -> list[Job]:
        """Mark up to ``limit`` due jobs running, oldest first, one per course not busy."""

        def run(db: sqlite3.Connection) -> list[Job]:
            now = time.time()
            rows = db.execute(
                "SELECT * FROM jobs WHERE state=? AND not_before<=? ORDER BY id", (QUEUED, now)
            ).fetchall()
            claimed: list[Job] = []
            taken = set(busy_courses)
            for row in rows:
                if len(claimed) >= limit:
                    break
                if row["course"] in taken:
                    continue
                taken.add(row["course"])
                db.execute(
                    "UPDATE jobs SET state=?, started_at=?, attempts=attempts+1 WHERE id=?",
                    (RUNNING, now, row["id"]),
                )
                job = job_from_row(row)
                job.state, job.started_at, job.attempts = RUNNING, now, job.attempts + 1
                claimed.append(job)
            return claimed

        return await self._transaction(run)

    async def next_due_at(self) -> float | None:
        rows = await self._fetch("SELECT MIN(not_before) FROM jobs WHERE state=?", (QUEUED,))
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def finish_job(
        self,
        job_id: int,
        state: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        await self._transaction(
            lambda db: db.execute(
                "UPDATE jobs SET state=?, finished_at=?, result=?, error=? WHERE id=?",
                (state, time.time(), json.dumps(result) if result else None, error, job_id),
            )
        )

    async def retry_job(self, job_id: int, not_before: float, error: str) -> None:
        await self._transaction(
            lambda db: db.execute(
                "UPDATE jobs SET state=?, not_before=?, error=?, started_at=NULL WHERE id=?",
                (QUEUED, not_before, error, job_id),
            )
        )

    async def cancel_queued(self, job_id: int) -> bool:
        return await self._transaction(
            lambda db: db.execute(
                "UPDATE jobs SET state=?, finished_at=? WHERE id=? AND state=?",
                (CANCELLED, time.time(), job_id, QUEUED),
            ).rowcount
            > 0
        )

    async def requeue_running(self) -> list[int]:
        """After a crash: every job left running goes back to the queue (operations are
        idempotent, so running one again is safe)."""

        def run(db: sqlite3.Connection) -> list[int]:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE state=?", (RUNNING,))]
            db.execute(
                "UPDATE jobs SET state=?, started_at=NULL, not_before=0 WHERE state=?",
                (QUEUED, RUNNING),
            )
            return ids

        return await self._transaction(run)

    async def prune_jobs(self, older_than_seconds: float, *, batch: int = PRUNE_BATCH) -> int:
        """Delete jobs that finished over ``older_than_seconds`` ago; how many went.

        Their completed check runs and their deployment notes (meta ``deployment:job:{id}``,
        see ``Reporter.start_deployment``) go with them. A job still queued or running is
        kept, and so is a check run not completed yet: start-up concludes it.
        """
        cutoff = time.time() - older_than_seconds
        params = (QUEUED, RUNNING, cutoff, batch)

        def run(db: sqlite3.Connection) -> int:
            # Each statement picks the same oldest ``batch`` finished jobs.
            db.execute(
                "DELETE FROM check_runs WHERE status='completed' AND job_id IN (SELECT id FROM jobs"
                " WHERE state NOT IN (?,?) AND finished_at < ? ORDER BY id LIMIT ?)",
                params,
            )
            db.execute(
                "DELETE FROM meta WHERE key IN (SELECT 'deployment:job:' || id FROM jobs"
                " WHERE state NOT IN (?,?) AND finished_at < ? ORDER BY id LIMIT ?)",
                params,
            )
            return db.execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
                " WHERE state NOT IN (?,?) AND finished_at < ? ORDER BY id LIMIT ?)",
                params,
            ).rowcount

        return await self._in_batches(run, batch)

    async def job_counts(self) -> dict[tuple[str, str], int]:
        rows = await self._fetch("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state")
        return {(r[0], r[1]): r[2] for r in rows}

    # -- check runs ------------------------------------------------------------------

    async def record_check_run(self, run: CheckRunRecord) -> None:
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO check_runs VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "job_id=excluded.job_id, status=excluded.status, "
                "conclusion=excluded.conclusion, updated_at=excluded.updated_at",
                (
                    run.id,
                    run.course,
                    run.installation_id,
                    run.head_sha,
                    run.job_id,
                    run.status,
                    run.conclusion,
                    time.time(),
                ),
            )
        )

    async def check_runs(
        self, *, job_id: int | None = None, open_only: bool = False
    ) -> list[CheckRunRecord]:
        sql, params = "SELECT * FROM check_runs WHERE 1=1", []
        if job_id is not None:
            sql += " AND job_id=?"
            params.append(job_id)
        if open_only:
            sql += " AND status != 'completed'"
        rows = await self._fetch(sql + " ORDER BY id", params)
        return [
            CheckRunRecord(
                id=r["id"],
                course=r["course"],
                installation_id=r["installation_id"],
                head_sha=r["head_sha"],
                job_id=r["job_id"],
                status=r["status"],
                conclusion=r["conclusion"],
            )
            for r in rows
        ]

    async def recent_jobs(self, course: str, limit: int = 10) -> list[Job]:
        rows = await self._fetch(
            "SELECT * FROM jobs WHERE course=? ORDER BY id DESC LIMIT ?", (course, limit)
        )
        return [job_from_row(r) for r in rows]
