"""What the service remembers of each course's server and monitoring."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from bot.store.database import Database
from bot.store.records import (
    Course,
    MonitorState,
    monitor_state_from_row,
)
from deploy.host.observe import observation_from_record, observation_record
from deploy.model import Observed, ServerRecord


class CourseTables(Database):
    """Server records, monitor state and course facts."""

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

    async def save_observation(self, course: str, observed: Observed) -> None:
        """What the course's server last reported, for plans that may not look at it."""
        at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        record = {"at": at, "observed": observation_record(observed)}
        await self.set_meta(f"observed:{course}", json.dumps(record))

    async def last_observation(self, course: str) -> tuple[Observed | None, str | None]:
        """What ``save_observation`` kept, and when (None, None when nothing was)."""
        raw = await self.get_meta(f"observed:{course}")
        if not raw:
            return None, None
        record = json.loads(raw)
        return observation_from_record(record.get("observed") or {}), record.get("at")

    async def server_addresses(self, *, except_course: str) -> set[str]:
        """Every address remembered for the other courses' servers (their SSH address and
        reserved IP): a `provider: ssh` host among them is refused."""
        rows = await self._fetch("SELECT record FROM servers WHERE course<>?", (except_course,))
        found: set[str] = set()
        for (text,) in rows:
            record = json.loads(text)
            found.update(a for a in (record.get("address"), record.get("reserved_ip")) if a)
        return found

    # -- monitoring -------------------------------------------------------------------

    async def monitor_state(self, course: str) -> MonitorState:
        rows = await self._fetch("SELECT * FROM monitor WHERE course=?", (course,))
        return monitor_state_from_row(rows[0]) if rows else MonitorState(course)

    async def monitor_states(self) -> dict[str, MonitorState]:
        rows = await self._fetch("SELECT * FROM monitor")
        return {row["course"]: monitor_state_from_row(row) for row in rows}

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
