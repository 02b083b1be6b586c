"""What engine tests and benchmarks hand ``deploy.operations.Engine`` in place of the
service: server records kept in a dict, a sleep that returns at once, a silent log."""

from __future__ import annotations

from deploy.model import ServerRecord


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
