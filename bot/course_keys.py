"""Each course's own SSH key pair: made on first need, kept encrypted, found by repository id.

The engine asks for a course's key through ``CourseKeys`` (its ``key_resolver``). A key is
derived from the secret in ``BOT_DATA_DIR/course-keys.key`` (mode 0600) and the
repository's id (``deploy.keys.derive_course_key``), so a lost database gives every course
the same key again; it is kept in the database encrypted with that same file's Fernet key.
Only public lines ever leave the service: on the console's course page and in the check
run of a server that refuses the key.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from bot.secret_keys import secret_key_file
from bot.store import Store, StoredCourseKey
from deploy.keys import CourseKey, course_key_of, derive_course_key

KEY_FILE = "course-keys.key"


def course_key_secret(data_dir: Path) -> bytes:
    """The secret courses' keys come from (made once, mode 0600)."""
    return secret_key_file(data_dir, KEY_FILE)


class CourseKeys:
    """The engine's per-course key resolver, backed by the store."""

    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self._secret = course_key_secret(data_dir)
        self._fernet = Fernet(self._secret)
        self._keys: dict[int, CourseKey] = {}
        self._lock = asyncio.Lock()

    async def __call__(self, course: str) -> CourseKey | None:
        """The key of the repository now named ``course``; None if its id is not known."""
        known = await self.store.course(course)
        if known is None or known.repo_id is None:
            return None
        return await self.for_repository(known.repo_id)

    async def for_repository(self, repo_id: int) -> CourseKey:
        """The repository's key, made and kept (encrypted) on first need."""
        if (key := self._keys.get(repo_id)) is not None:
            return key
        async with self._lock:
            stored = await self.store.course_key(repo_id)
            if stored is None:
                made = derive_course_key(self._secret, repo_id)
                private = made.private.export_private_key("openssh")
                stored = await self.store.add_course_key(
                    StoredCourseKey(repo_id, self._fernet.encrypt(private), made.public_line)
                )
            try:
                private = self._fernet.decrypt(stored.ciphertext)
            except InvalidToken:
                raise RuntimeError(
                    f"the SSH key of repository {repo_id} cannot be decrypted: was "
                    f"{KEY_FILE} in the data directory replaced? Put the original back"
                ) from None
            key = self._keys[repo_id] = course_key_of(private, repo_id)
            return key
