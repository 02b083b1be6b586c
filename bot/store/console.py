"""What the console reads and keeps: a course's recent jobs, and its own DigitalOcean token.

A course's token is stored only encrypted (Fernet, with a key in ``BOT_DATA_DIR``), beside
its last four characters for display and the DigitalOcean account it belongs to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

from bot.store.database import Database
from bot.store.records import Course, Job, job_from_row
from deploy.model import ServerRecord


@dataclass(frozen=True)
class CourseToken:
    course: str
    ciphertext: bytes
    last_four: str
    account: str  # the DigitalOcean account's uuid
    email: str


class ConsoleTables(Database):
    """Recent jobs by course, and per-course DigitalOcean tokens."""

    async def courses_with_servers(
        self, names: Iterable[str]
    ) -> list[tuple[Course, ServerRecord | None]]:
        """The active courses among ``names``, each with its server record, in one query."""
        wanted = sorted(set(names))
        if not wanted:
            return []
        found: list[tuple[Course, ServerRecord | None]] = []
        # SQLite allows 32,766 parameters; a person reaches far fewer repositories.
        for start in range(0, len(wanted), 10_000):
            chunk = wanted[start : start + 10_000]
            sql = (
                "SELECT c.full_name, c.installation_id, c.repo_id, c.active, s.record "
                "FROM courses c LEFT JOIN servers s ON s.course = c.full_name "
                "WHERE c.active=1 AND c.full_name IN "
            )
            sql += f"({','.join('?' * len(chunk))})"
            rows = await self._fetch(sql, chunk)
            found.extend(
                (
                    Course(r[0], r[1], r[2], bool(r[3])),
                    ServerRecord(**json.loads(r[4])) if r[4] else None,
                )
                for r in rows
            )
        return sorted(found, key=lambda pair: pair[0].full_name)

    async def recent_jobs(self, course: str, limit: int = 10) -> list[Job]:
        rows = await self._fetch(
            "SELECT * FROM jobs WHERE course=? ORDER BY id DESC LIMIT ?", (course, limit)
        )
        return [job_from_row(r) for r in rows]

    async def course_token(self, course: str) -> CourseToken | None:
        rows = await self._fetch(
            "SELECT course, ciphertext, last_four, account, email FROM course_tokens "
            "WHERE course=?",
            (course,),
        )
        return CourseToken(*rows[0]) if rows else None

    async def save_course_token(self, token: CourseToken) -> None:
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO course_tokens VALUES (?,?,?,?,?,?) ON CONFLICT(course) DO UPDATE "
                "SET ciphertext=excluded.ciphertext, last_four=excluded.last_four, "
                "account=excluded.account, email=excluded.email, updated_at=excluded.updated_at",
                (
                    token.course,
                    token.ciphertext,
                    token.last_four,
                    token.account,
                    token.email,
                    time.time(),
                ),
            )
        )

    async def remove_course_token(self, course: str) -> bool:
        return await self._transaction(
            lambda db: db.execute("DELETE FROM course_tokens WHERE course=?", (course,)).rowcount
            > 0
        )
