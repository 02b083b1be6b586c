"""Courses' own SSH keys, kept encrypted and keyed by the repository's id.

Keyed by the id, not the name, so a renamed or transferred repository keeps its key and a
new repository that takes an old name gets a key of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.store.database import Database


@dataclass(frozen=True)
class StoredCourseKey:
    repo_id: int
    ciphertext: bytes  # the OpenSSH private key, Fernet-encrypted
    public_line: str


class KeyTables(Database):
    """The ``course_keys`` table."""

    async def course_key(self, repo_id: int) -> StoredCourseKey | None:
        rows = await self._fetch(
            "SELECT repo_id, ciphertext, public_line FROM course_keys WHERE repo_id=?",
            (repo_id,),
        )
        return StoredCourseKey(*rows[0]) if rows else None

    async def add_course_key(self, key: StoredCourseKey) -> StoredCourseKey:
        """Keep ``key`` unless the repository has one already; the one kept is returned."""
        await self._transaction(
            lambda db: db.execute(
                "INSERT OR IGNORE INTO course_keys VALUES (?,?,?,?)",
                (key.repo_id, key.ciphertext, key.public_line, time.time()),
            )
        )
        kept = await self.course_key(key.repo_id)
        assert kept is not None
        return kept
