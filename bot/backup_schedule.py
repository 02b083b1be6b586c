"""Scheduled snapshots: a ``backup`` job for each course whose time has come.

Each course with ``storage`` has a fixed time in every ``backup.every`` period
(``deploy.volumes.backup.next_backup_at``: courses spread over the period instead of all at
midnight). When it passes, the same job ``/backup`` asks for is queued, with source
``schedule``. The next due time is kept in the store (meta ``backup:due:<course>``), so
a restart neither skips a snapshot nor takes an extra one. The monitor's loop calls
``BackupSchedule.run`` each round with the courses it has just read.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from bot.store import Course
from deploy.volumes.backup import next_backup_at

logger = logging.getLogger(__name__)

Ask = Callable[[Course, dict[str, Any]], Awaitable[Any]]


def due_key(course: str) -> str:
    """The store's meta key holding the course's next snapshot time (ISO 8601)."""
    return f"backup:due:{course}"


class BackupSchedule:
    """When each course's next snapshot is due, and asking for it when it is."""

    def __init__(self, store: Any, ask: Ask) -> None:
        self._store = store
        self._ask = ask
        self._due: dict[str, datetime | None] = {}

    async def _load(self, course: str) -> datetime | None:
        if course not in self._due:
            raw = await self._store.get_meta(due_key(course))
            self._due[course] = datetime.fromisoformat(raw) if raw else None
        return self._due[course]

    async def _save(self, course: str, due: datetime) -> None:
        self._due[course] = due
        await self._store.set_meta(due_key(course), due.isoformat())

    async def run(self, courses: Sequence[tuple[Course, dict[str, Any]]], now: datetime) -> int:
        """Ask for every snapshot that is due; returns how many were asked for."""
        asked = 0
        for course, facts in courses:
            every = facts.get("backup_every")
            if not every:
                continue
            name = course.full_name
            due = await self._load(name)
            if due is None:
                first = next_backup_at(name, int(every), None, now)
                assert first is not None
                await self._save(name, first)
                continue
            if due > now:
                continue
            try:
                await self._ask(course, facts)
            except Exception:
                logger.exception("could not ask for a scheduled backup", extra={"course": name})
                continue
            asked += 1
            following = next_backup_at(name, int(every), due, now)
            assert following is not None
            await self._save(name, following)
        return asked


BACKUP_ISSUE_TITLE = "Students' work is not being backed up"


async def report_backup(
    services: Any, course: str, installation_id: int | None, conclusion: str, summary: str
) -> None:
    """A failed snapshot goes on the course's outage issue: the monitor's open one if
    there is one, else one of its own (opened once, then updated); a later snapshot that
    succeeds closes that one."""
    if installation_id is None:
        return
    key = f"backup:issue:{course}"
    own = await services.store.get_meta(key)
    if conclusion == "success":
        if own:
            await services.reporter.close_issue(
                installation_id, course, int(own), "A snapshot succeeded again."
            )
            await services.store.set_meta(key, "")
        return
    body = f"A snapshot of the course's volume failed:\n\n{summary}"
    monitor_issue = (await services.store.monitor_state(course)).issue_number
    if own:
        await services.reporter.reply(installation_id, course, int(own), body)
    elif monitor_issue is not None:
        await services.reporter.reply(installation_id, course, monitor_issue, body)
    else:
        number = await services.reporter.open_issue(
            installation_id, course, BACKUP_ISSUE_TITLE, body
        )
        await services.store.set_meta(key, str(number))
