"""The service's durable state in SQLite, one module per group of tables.

SQLite runs on one dedicated thread so the event loop never blocks on disk; every public
method is a coroutine. The schema is versioned: ``MIGRATIONS`` only ever grows.
"""

from __future__ import annotations

from bot.store.course_tokens import CourseToken, CourseTokenTables
from bot.store.courses import CourseTables
from bot.store.database import MIGRATIONS, Database
from bot.store.deliveries import (
    DeliveryTables,
    add_courses,
    follow_repository,
    remove_courses,
    remove_installation,
    upsert_installation,
)
from bot.store.jobs import JobTables
from bot.store.keys import KeyTables, StoredCourseKey
from bot.store.records import (
    CANCELLED,
    DONE,
    FAILED,
    FINAL_STATES,
    QUEUED,
    RUNNING,
    SUPERSEDED,
    Change,
    CheckRunRecord,
    Course,
    Delivery,
    Job,
    MonitorState,
    NewJob,
    Recorded,
)


class Store(DeliveryTables, JobTables, CourseTables, CourseTokenTables, KeyTables):
    """Async facade over one SQLite connection owned by one thread."""


__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINAL_STATES",
    "MIGRATIONS",
    "QUEUED",
    "RUNNING",
    "SUPERSEDED",
    "Change",
    "CheckRunRecord",
    "Course",
    "CourseToken",
    "Database",
    "Delivery",
    "Job",
    "MonitorState",
    "NewJob",
    "Recorded",
    "Store",
    "StoredCourseKey",
    "add_courses",
    "follow_repository",
    "remove_courses",
    "remove_installation",
    "upsert_installation",
]
