"""The rows the store keeps, as dataclasses, and the job states."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Job states. A job is "open" while queued or running.
QUEUED, RUNNING, DONE, FAILED, CANCELLED, SUPERSEDED = (
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
    "superseded",
)
FINAL_STATES = (DONE, FAILED, CANCELLED, SUPERSEDED)


@dataclass
class NewJob:
    """A job a handler asks for; it becomes a row when its delivery is recorded."""

    course: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    installation_id: int | None = None
    # A newer job with the same key replaces this one while it is still queued.
    coalesce_key: str | None = None
    # A job with the same key for the same course is asked for once: the second is dropped.
    dedupe_key: str | None = None


@dataclass
class Job:
    id: int
    course: str
    kind: str
    payload: dict[str, Any]
    state: str
    attempts: int
    not_before: float
    coalesce_key: str | None
    installation_id: int | None
    delivery_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    result: dict[str, Any] | None
    dedupe_key: str | None = None


@dataclass
class Delivery:
    id: str
    event: str
    action: str | None
    repository: str | None
    installation_id: int | None
    outcome: str
    received_at: float = field(default_factory=time.time)
    # What the delivery carries (``bot.intake.replay``): a second delivery with the same
    # key is a duplicate whatever its id. Stored as a row of its own, not a column.
    content_key: str | None = field(default=None, compare=False)


@dataclass
class CheckRunRecord:
    id: int
    course: str
    installation_id: int
    head_sha: str
    job_id: int | None
    status: str
    conclusion: str | None = None


@dataclass
class Course:
    full_name: str
    installation_id: int
    repo_id: int | None
    active: bool


@dataclass
class MonitorState:
    course: str
    state: str = "unknown"  # up | down | unknown
    failures: int = 0
    issue_number: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    checked_at: float | None = None
    changed_at: float | None = None


@dataclass
class Recorded:
    """What recording a delivery did."""

    duplicate: bool
    job_ids: list[int] = field(default_factory=list)
    superseded: list[Job] = field(default_factory=list)


def monitor_state_from_row(row: sqlite3.Row) -> MonitorState:
    data = dict(row)
    data["detail"] = json.loads(data["detail"]) if data["detail"] else {}
    return MonitorState(**data)


def job_from_row(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["payload"] = json.loads(data["payload"])
    data["result"] = json.loads(data["result"]) if data["result"] else None
    return Job(**data)


# A change to the store that a webhook handler asks for; it runs inside the transaction
# that records the delivery, so a delivery and its effects are committed together or not at all.
Change = Callable[[sqlite3.Connection], object]
