"""What a webhook handler gets: the facts it may read, and the two things it may ask for —
jobs, and changes to what the store knows of installations and courses.

Handlers only decide. What they ask for is committed together with the delivery, before
GitHub gets its answer, so nothing accepted is lost and a redelivery changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.settings import Settings
from bot.store import Change, NewJob


@dataclass
class Intake:
    settings: Settings
    jobs: list[NewJob] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def change(self, change: Change, note: str) -> None:
        """Ask for a change to the store, committed with the delivery (or not at all)."""
        self.changes.append(change)
        self.notes.append(note)

    def enqueue(
        self,
        course: str,
        kind: str,
        payload: dict[str, Any],
        *,
        installation_id: int | None,
        coalesce_key: str | None = None,
    ) -> None:
        self.jobs.append(NewJob(course, kind, payload, installation_id, coalesce_key))
