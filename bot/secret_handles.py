"""Secrets a console request hands to its job, kept in this process's memory only.

A password typed on the console must reach its job without being written anywhere: the
job's arguments in the jobs table carry only a random handle, and the secret stays here
until the job takes it, at most ``TTL`` seconds. A job that runs after a restart finds no
secret and says so; nothing is left on disk either way.

It also carries a secret the other way: a job that makes a new password for a student
``fill``s the slot the console opened, and the course page shows it once to the person who
asked (``reveal``), then forgets it.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

TTL = 3600.0  # a job waiting behind a long deploy still finds its secret
HANDLE = re.compile(r"[A-Za-z0-9_-]{32}")


@dataclass
class _Slot:
    course: str
    login: str
    label: str
    value: str
    filled: bool
    expires: float


class SecretHandles:
    """Handles to secrets, each for one course and one person."""

    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._slots: dict[str, _Slot] = {}

    def _prune(self) -> None:
        now = time.monotonic()
        for handle in [h for h, slot in self._slots.items() if slot.expires <= now]:
            del self._slots[handle]

    def put(self, course: str, login: str, value: str = "", *, label: str = "") -> str:
        """Keep ``value`` (or an empty slot a job fills) for a job of ``course``."""
        self._prune()
        handle = secrets.token_urlsafe(24)
        self._slots[handle] = _Slot(
            course, login, label, value, bool(value), time.monotonic() + self.ttl
        )
        return handle

    def get(self, handle: str, course: str) -> str | None:
        """The secret behind ``handle`` for a job of ``course``; None if it is gone."""
        self._prune()
        slot = self._slots.get(handle)
        return slot.value if slot is not None and slot.course == course else None

    def open(self, handle: str, course: str) -> bool:
        """Whether the slot ``handle`` is still there for a job of ``course`` to fill."""
        self._prune()
        slot = self._slots.get(handle)
        return slot is not None and slot.course == course

    def fill(self, handle: str, course: str, value: str) -> bool:
        """Leave ``value`` in the slot for the person who asked; False if it is gone."""
        slot = self._slots.get(handle)
        if slot is None or slot.course != course:
            return False
        slot.value, slot.filled = value, True
        return True

    def reveal(self, course: str, login: str) -> list[tuple[str, str]]:
        """The filled slots of ``login`` on ``course`` as (label, value), forgotten now."""
        self._prune()
        mine = [
            h
            for h, slot in self._slots.items()
            if slot.course == course and slot.login == login and slot.filled and slot.label
        ]
        return [(slot.label, slot.value) for slot in map(self._slots.pop, mine)]

    def waiting(self, course: str, login: str) -> int:
        """How many filled slots ``login`` has on ``course`` (the page reloads to show them)."""
        return sum(
            1
            for slot in self._slots.values()
            if slot.course == course and slot.login == login and slot.filled and slot.label
        )

    def erase(self, handle: str) -> None:
        self._slots.pop(handle, None)

    def __len__(self) -> int:
        self._prune()
        return len(self._slots)
