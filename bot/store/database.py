"""The store's SQLite connection on its own thread, its versioned schema, and small facts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

from bot.store.records import Change, Delivery, NewJob, Recorded

T = TypeVar("T")

# Rows one pruning transaction deletes: webhook intake's commits interleave with a long
# prune instead of waiting behind one big delete.
PRUNE_BATCH = 5000

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
    """
    CREATE TABLE course_tokens (
        course TEXT PRIMARY KEY,
        ciphertext BLOB NOT NULL,
        last_four TEXT NOT NULL,
        account TEXT NOT NULL,
        email TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # Courses' own SSH keys (by repository id), and courses found by repository id.
    """
    CREATE TABLE course_keys (
        repo_id INTEGER PRIMARY KEY,
        ciphertext BLOB NOT NULL,
        public_line TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX courses_repo_id ON courses(repo_id);
    """,
)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the store's database, set up as every connection of the store is."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL survives a crash of the process (SIGKILL) without an
    # fsync per commit; only a power loss can cost the last commits.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class Database:
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
    async def open(cls, data_dir: Path) -> Self:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = cls(data_dir / "classroom.sqlite3")
        await store._call(store._open)
        return store

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _open(self) -> None:
        conn = connect(self.path)
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

    async def _in_batches(self, delete: Callable[[sqlite3.Connection], int], batch: int) -> int:
        """Run ``delete`` (rows deleted, at most ``batch``) in transactions until it is done."""
        total = 0
        while True:
            deleted = await self._transaction(delete)
            total += deleted
            if deleted < batch:
                return total

    async def _fetch(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return await self._call(lambda: self._db.execute(sql, tuple(params)).fetchall())

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
