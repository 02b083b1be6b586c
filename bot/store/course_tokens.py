"""Courses' own DigitalOcean tokens (table ``course_tokens``), which the console keeps.

A course's token is stored only encrypted (Fernet, with a key in ``BOT_DATA_DIR``), beside
its last four characters for display and the DigitalOcean account it belongs to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.store.database import Database


@dataclass(frozen=True)
class CourseToken:
    course: str
    ciphertext: bytes
    last_four: str
    account: str  # the DigitalOcean account's uuid
    email: str


class CourseTokenTables(Database):
    """Per-course DigitalOcean tokens, encrypted."""

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
