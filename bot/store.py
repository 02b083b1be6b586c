"""The service's durable state in SQLite: deliveries, installations, courses, servers, jobs
and the check runs the app has opened.

SQLite runs on one dedicated thread so the event loop never blocks on disk; every public
method is a coroutine. The schema is versioned: ``MIGRATIONS`` only ever grows.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deploy.model import ServerRecord

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        action TEXT,
        repository TEXT,
        installation_id INTEGER,
        received_at REAL NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX deliveries_received ON deliveries(received_at);
    CREATE TABLE installations (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        suspended INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE TABLE courses (
        full_name TEXT PRIMARY KEY,
        installation_id INTEGER NOT NULL,
        repo_id INTEGER,
        active INTEGER NOT NULL DEFAULT 1,
        updated_at REAL NOT NULL
    );
    CREATE TABLE servers (
        course TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        course TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL DEFAULT 0,
        coalesce_key TEXT,
        installation_id INTEGER,
        delivery_id TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        error TEXT,
        result TEXT
    );
    CREATE INDEX jobs_state ON jobs(state, not_before);
    CREATE TABLE check_runs (
        id INTEGER PRIMARY KEY,
        course TEXT NOT NULL,
        installation_id INTEGER NOT NULL,
        head_sha TEXT NOT NULL,
        job_id INTEGER,
        status TEXT NOT NULL,
        conclusion TEXT,
        updated_at REAL NOT NULL
    );
    CREATE INDEX check_runs_open ON check_runs(status);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
    CREATE INDEX jobs_dedupe ON jobs(course, dedupe_key);
    CREATE TABLE monitor (
        course TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        issue_number INTEGER,
        detail TEXT,
        checked_at REAL,
        changed_at REAL
    );
    """,
)

# Job states. A job is "open" while queued or running.
QUEUED, RUNNING, DONE, FAILED, CANCELLED, SUPERSEDED = (
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
    "superseded",
)
FINAL_STATES = (DONE, FAILED, CANCELLED, SUPERSEDED)


@dataclass
class NewJob:
    """A job a handler asks for; it becomes a row when its delivery is recorded."""

    course: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    installation_id: int | None = None
    # A newer job with the same key replaces this one while it is still queued.
    coalesce_key: str | None = None
    # A job with the same key for the same course is asked for once: the second is dropped.
    dedupe_key: str | None = None


@dataclass
class Job:
    id: int
    course: str
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    not_before: float
    coalesce_key: str | None
    installation_id: int | None
    delivery_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    result: dict[str, Any] | None
    dedupe_key: str | None = None


@dataclass
class Delivery:
    id: str
    event: str
    action: str | None
    repository: str | None
    installation_id: int | None
    outcome: str
    received_at: float = field(default_factory=time.time)


@dataclass
class CheckRunRecord:
    id: int
    course: str
    installation_id: int
    head_sha: str
    job_id: int | None
    status: str
    conclusion: str | None = None


@dataclass
class Course:
    full_name: str
    installation_id: int
    repo_id: int | None
    active: bool


@dataclass
class MonitorState:
    course: str
    state: str = "unknown"  # up | down | unknown
    failures: int = 0
    issue_number: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    checked_at: float | None = None
    changed_at: float | None = None


@dataclass
class Recorded:
    """What recording a delivery did."""

    duplicate: bool
    job_ids: list[int] = field(default_factory=list)
    superseded: list[Job] = field(default_factory=list)


def _monitor_state(row: sqlite3.Row) -> MonitorState:
    data = dict(row)
    data["detail"] = json.loads(data["detail"]) if data["detail"] else {}
    return MonitorState(**data)


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["payload"] = json.loads(data["payload"])
    data["result"] = json.loads(data["result"]) if data["result"] else None
    return Job(**data)


# A change to the store that a webhook handler asks for; it runs inside the transaction
# that records the delivery, so a delivery and its effects are committed together or not at all.
Change = Callable[[sqlite3.Connection], object]


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


class Store:
    """Async facade over one SQLite connection owned by one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[
            tuple[Delivery, list[NewJob], list[Change], asyncio.Future[Recorded]]
        ] = []
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, data_dir: Path) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = cls(data_dir / "classroom.sqlite3")
        await store._call(store._open)
        return store

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a crash of the process (SIGKILL) without an
        # fsync per commit; only a power loss can cost the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the store is closed")
        return self._conn

    async def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result

        return await self._call(run)

    async def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return await self._call(lambda: self._db.execute(sql, tuple(params)).fetchall())

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

    async def prune_deliveries(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        return await self._transaction(
            lambda db: db.execute(
                "DELETE FROM deliveries WHERE received_at < ?", (cutoff,)
            ).rowcount
        )

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

    # -- servers (deploy.model.ServerRecords) --------------------------------------

    async def get_server(self, course: str) -> ServerRecord | None:
        rows = await self._fetch("SELECT record FROM servers WHERE course=?", (course,))
        return ServerRecord(**json.loads(rows[0][0])) if rows else None

    async def save_server(self, course: str, record: ServerRecord) -> None:
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO servers VALUES (?,?,?) ON CONFLICT(course) DO UPDATE SET "
                "record=excluded.record, updated_at=excluded.updated_at",
                (course, json.dumps(asdict(record)), time.time()),
            )
        )

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
            superseded = [_job(r) for r in rows]
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
        return _job(rows[0]) if rows else None

    async def jobs(self, *, course: str | None = None, states: Iterable[str] = ()) -> list[Job]:
        sql, params = "SELECT * FROM jobs WHERE 1=1", []
        if course is not None:
            sql += " AND course=?"
            params.append(course)
        states = list(states)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            params.extend(states)
        return [_job(r) for r in await self._fetch(sql + " ORDER BY id", params)]

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
                job = _job(row)
                job.state, job.started_at, job.attempts = RUNNING, now, job.attempts + 1
                claimed.append(job)
            return claimed

        return await self._transaction(run)

    async def next_due_at(self) -> float | None:
        rows = await self._fetch("SELECT MIN(not_before) FROM jobs WHERE state=?", (QUEUED,))
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def finish_job(
        self, job_id: int, state: str, *, result: dict | None = None, error: str | None = None
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

    # -- monitoring -------------------------------------------------------------------

    async def monitor_state(self, course: str) -> MonitorState:
        rows = await self._fetch("SELECT * FROM monitor WHERE course=?", (course,))
        return _monitor_state(rows[0]) if rows else MonitorState(course)

    async def monitor_states(self) -> dict[str, MonitorState]:
        rows = await self._fetch("SELECT * FROM monitor")
        return {row["course"]: _monitor_state(row) for row in rows}

    async def monitored_courses(self) -> list[tuple[Course, dict[str, Any]]]:
        """Every active course with what its last deploy remembered, in one query."""
        rows = await self._fetch(
            "SELECT c.full_name, c.installation_id, c.repo_id, c.active, m.value "
            "FROM courses c JOIN meta m ON m.key = 'course:' || c.full_name "
            "WHERE c.active=1 ORDER BY c.full_name"
        )
        return [(Course(r[0], r[1], r[2], bool(r[3])), json.loads(r[4])) for r in rows]

    async def save_monitor_state(self, state: MonitorState) -> None:
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO monitor VALUES (?,?,?,?,?,?,?) ON CONFLICT(course) DO UPDATE SET "
                "state=excluded.state, failures=excluded.failures, "
                "issue_number=excluded.issue_number, detail=excluded.detail, "
                "checked_at=excluded.checked_at, changed_at=excluded.changed_at",
                (
                    state.course,
                    state.state,
                    state.failures,
                    state.issue_number,
                    json.dumps(state.detail),
                    state.checked_at,
                    state.changed_at,
                ),
            )
        )

    async def course_facts(self, course: str) -> dict[str, Any]:
        """What the last deploy learnt of a course (hub URL, monitor schedule)."""
        raw = await self.get_meta(f"course:{course}")
        return json.loads(raw) if raw else {}

    async def save_course_facts(self, course: str, facts: dict[str, Any]) -> None:
        await self.set_meta(f"course:{course}", json.dumps(facts))

    # -- small facts -------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        rows = await self._fetch("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO meta VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )
        )
