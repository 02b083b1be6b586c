"""What a webhook handler gets: the facts it may read and the one thing it may do, ask for jobs.

Handlers only decide. The jobs they ask for are committed together with the delivery,
before GitHub gets its answer, so nothing accepted is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.settings import Settings
from bot.store import NewJob, Store


@dataclass
class Intake:
    store: Store
    settings: Settings
    app_slug: str | None = None
    jobs: list[NewJob] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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
