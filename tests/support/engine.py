"""What engine tests and benchmarks hand ``deploy.operations.Engine`` in place of the
service: server records kept in a dict, a sleep that returns at once, a silent log."""

from __future__ import annotations

from deploy.model import DROPLET_TAG, ServerRecord
from deploy.ownership import course_name, course_tag


class MemoryRecords:
    """The service's server records, kept in a dict."""

    def __init__(self) -> None:
        self.records: dict[str, ServerRecord] = {}

    async def get_server(self, course: str) -> ServerRecord | None:
        return self.records.get(course)

    async def save_server(self, course: str, record: ServerRecord) -> None:
        self.records[course] = record


async def instant(_seconds: float) -> None:
    return None


async def noop(_line: str) -> None:
    return None


# The course the engine tests act for: its repository id (the fake GitHub's id of its
# first repository, the flow tests' course), owner tag and resource tags.
REPO_ID = 1000
OWNER = course_tag(REPO_ID)
TAGS = [DROPLET_TAG, OWNER]


def coded(readable: str) -> str:
    """The droplet name the service gives the course whose ``server.name`` is ``readable``."""
    return course_name(readable, REPO_ID)
