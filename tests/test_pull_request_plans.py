"""Plans from configuration alone, the key a delivery's request is known by, and capped
reading: the pure pieces behind invariant 12 and the bounded reads, without any server."""

from __future__ import annotations

import asyncio
import json

import pytest
from gidgethub import sansio

from bot.intake.replay import content_key
from deploy import operations
from deploy.course.config import load_course
from deploy.host.observe import observation_from_record, observation_record
from deploy.model import HubAccount, HubAccounts, Observed, ServerRecord
from deploy.ssh import OutputTooLarge, capped_lines, read_capped
from tests.support.engine import MemoryRecords

COURSE = "octo-org/physics101"


def config(host: str = "hub.example.edu", port: int = 22, apt: str = "graphviz\n"):
    text = f"server:\n  provider: ssh\n  host: {host}\n  port: {port}\nhub:\n  admins: [alice]\n"
    return load_course(
        {".github/classroom.yml": text.encode(), "apt.txt": apt.encode()}, "octo-org", "p"
    )


class NoSSH:
    """An SSH pool that fails the test if anything asks it for a connection."""

    def __getattr__(self, name: str):
        raise AssertionError(f"a plan from config alone used SSH ({name})")


class WatchedRecords(MemoryRecords):
    def __init__(self) -> None:
        super().__init__()
        self.saves = 0

    async def save_server(self, course: str, record: ServerRecord) -> None:
        self.saves += 1
        await super().save_server(course, record)


def engine_with(record: ServerRecord | None) -> tuple[operations.Engine, WatchedRecords]:
    records = WatchedRecords()
    if record is not None:
        records.records[COURSE] = record
    engine = operations.Engine(records=records, ssh=NoSSH(), service_key=None)  # type: ignore[arg-type]
    return engine, records


SEEN = Observed(
    os_id="ubuntu",
    tljh_installed=True,
    tljh_version="2.0.0",
    apt={"graphviz": "2.42"},
    accounts=HubAccounts(True, (HubAccount("alice", True, "a@x"),), frozenset({"alice"})),
)


async def test_a_plan_from_config_uses_no_ssh_and_saves_nothing() -> None:
    record = ServerRecord(provider="ssh", address="hub.example.edu", port=22)
    engine, records = engine_with(record)
    result = await operations.plan_from_config(
        engine, COURSE, config(apt="graphviz\njq\n"), SEEN, seen_at="2026-12-06 01:00 UTC"
    )
    assert records.saves == 0 and records.records[COURSE] == record
    assert "jq" in result.summary and "tljh-install" not in result.summary
    assert "No server was contacted" in result.summary
    assert "as last observed (2026-12-06 01:00 UTC)" in result.summary
    assert result.hub_url == "http://hub.example.edu"


async def test_a_config_naming_another_server_is_planned_as_new_and_said_so() -> None:
    engine, records = engine_with(ServerRecord(provider="ssh", address="hub.example.edu"))
    result = await operations.plan_from_config(
        engine, COURSE, config(host="attacker.example.org", port=2222), SEEN
    )
    assert records.saves == 0
    assert "`attacker.example.org:2222`" in result.summary
    assert "names another server" in result.summary
    assert "tljh-install" in result.summary  # nothing of the course's server is assumed
    assert result.hub_url is None


async def test_a_course_never_observed_is_planned_as_a_new_server() -> None:
    engine, _ = engine_with(None)
    result = await operations.plan_from_config(engine, COURSE, config(), None)
    assert "has not been observed yet" in result.summary
    assert "tljh-install" in result.summary


def test_an_observation_keeps_what_plans_compare_and_no_email() -> None:
    record = json.loads(json.dumps(observation_record(SEEN)))
    assert "a@x" not in json.dumps(record)
    back = observation_from_record(record)
    assert back is not None
    assert back.apt == SEEN.apt and back.tljh_version == "2.0.0"
    assert back.accounts.names() == {"alice"} and back.accounts.seeded == {"alice"}
    assert observation_from_record({"accounts": "garbled"}) is None


# -- the request a delivery carries -----------------------------------------------------------


def event(name: str, data: dict, delivery: str = "d1") -> sansio.Event:
    return sansio.Event(data, event=name, delivery_id=delivery)


def test_the_same_request_under_another_delivery_id_has_the_same_key() -> None:
    comment = {"action": "created", "comment": {"id": 5}, "repository": {"id": 1}}
    assert content_key(event("issue_comment", comment, "a")) == content_key(
        event("issue_comment", comment, "b")
    )
    assert content_key(event("issue_comment", comment)) != content_key(
        event("issue_comment", {**comment, "comment": {"id": 6}})
    )
    assert content_key(event("issue_comment", comment)) != content_key(
        event("issue_comment", {**comment, "action": "edited"})
    )


def test_button_presses_are_known_by_run_and_button() -> None:
    press = {"action": "requested_action", "check_run": {"id": 9}}
    rebuild = content_key(event("check_run", {**press, "requested_action": {"identifier": "r"}}))
    restart = content_key(event("check_run", {**press, "requested_action": {"identifier": "s"}}))
    assert rebuild and restart and rebuild != restart


def test_a_branch_moved_back_to_an_earlier_commit_is_a_new_push() -> None:
    push = {
        "ref": "refs/heads/main",
        "before": "a" * 40,
        "after": "b" * 40,
        "repository": {"id": 1},
    }
    moved_back = {**push, "before": "c" * 40}
    assert content_key(event("push", push)) != content_key(event("push", moved_back))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("installation", {"action": "created", "installation": {"id": 1}}),
        ("ping", {"zen": "x"}),
        ("issue_comment", {"action": "created", "comment": {"id": [1]}}),
        ("issue_comment", {"action": "created"}),
    ],
)
def test_kinds_without_a_key_are_left_to_the_delivery_id(name: str, data: dict) -> None:
    assert content_key(event(name, data)) is None


# -- capped reading ---------------------------------------------------------------------------


def reader(*chunks: bytes | str) -> asyncio.StreamReader:
    stream = asyncio.StreamReader()
    for chunk in chunks:
        stream.feed_data(chunk if isinstance(chunk, bytes) else chunk.encode())
    stream.feed_eof()
    return stream


class TextReader:
    """A stream of text chunks, as asyncssh hands them with an encoding."""

    def __init__(self, *chunks: str) -> None:
        self.chunks = list(chunks)

    async def read(self, _n: int) -> str:
        return self.chunks.pop(0) if self.chunks else ""


async def test_read_capped_stops_past_the_limit() -> None:
    assert (
        await read_capped(reader(b"a" * 10, b"b" * 10), 20, "h", "stdout") == b"a" * 10 + b"b" * 10
    )  # type: ignore[arg-type]
    with pytest.raises(OutputTooLarge, match="on stderr"):
        await read_capped(reader(b"a" * (2 * 1024 * 1024)), 1024 * 1024, "h", "stderr")  # type: ignore[arg-type]


async def test_capped_lines_cuts_one_long_line_and_keeps_the_rest() -> None:
    stream = TextReader("one\r\ntw", "o\n" + "x" * 50, "x" * 50, "x\nthree", "\nlast")
    lines = [line async for line in capped_lines(stream, limit=60)]  # type: ignore[arg-type]
    assert lines[:2] == ["one", "two"]
    assert lines[2].startswith("x" * 60) and "line cut at" in lines[2]
    assert lines[3:] == ["three", "last"]
