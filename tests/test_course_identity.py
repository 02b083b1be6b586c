"""Courses are known by their repository's id: a rename or a transfer takes the course along
(server record, facts, monitor state, token, jobs, key), and a new repository that takes
an old name starts empty, through GitHub's own ``repository`` webhook examples."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.store import MIGRATIONS, CourseToken, MonitorState, NewJob, Store, follow_repository
from bot.store.database import connect
from deploy.model import ServerRecord
from tests.console_support import sign_in
from tests.plugins.classroom import COURSE_REPO_ID, ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.plugins.service import deliver

OLD, NEW = "math-dept/algebra", "math-dept/algebra-2027"
RECORD = ServerRecord("ssh", address="203.0.113.7", host_key="ssh-ed25519 AAAA")


@pytest.fixture
async def store(tmp_path: Path):
    opened = await Store.open(tmp_path / "data")
    yield opened
    await opened.close()


async def a_course_with_everything(store: Store, name: str, repo_id: int) -> int:
    await store.add_courses(1, [(name, repo_id)])
    await store.save_server(name, RECORD)
    await store.save_course_facts(name, {"hub_url": "http://203.0.113.7"})
    await store.save_monitor_state(MonitorState(name, state="up", issue_number=12))
    await store.save_course_token(CourseToken(name, b"sealed", "abcd", "uuid", "a@b.c"))
    await store.set_meta(f"backup:due:{name}", "2027-01-01T00:00:00+00:00")
    queued = await store.enqueue(NewJob(name, "command", {"name": "backup"}, 1))
    assert queued is not None
    return queued[0]


async def follow(store: Store, repo_id: int, name: str) -> None:
    await store._transaction(follow_repository(repo_id, name, 1))


async def test_a_renamed_repository_takes_its_course_along(store) -> None:
    job_id = await a_course_with_everything(store, OLD, 5)
    await follow(store, 5, NEW)

    assert await store.get_server(NEW) == RECORD
    assert await store.course_facts(NEW) == {"hub_url": "http://203.0.113.7"}
    assert (await store.monitor_state(NEW)).issue_number == 12
    assert (await store.course_token(NEW)).last_four == "abcd"
    assert await store.get_meta(f"backup:due:{NEW}") is not None
    assert (await store.job(job_id)).course == NEW
    assert (await store.course(NEW)).repo_id == 5
    for gone in (
        await store.get_server(OLD),
        await store.course_token(OLD),
        await store.course(OLD),
        await store.get_meta(f"backup:due:{OLD}"),
    ):
        assert gone is None
    assert await store.course_facts(OLD) == {}


async def test_a_new_repository_under_an_old_name_starts_empty(store) -> None:
    job_id = await a_course_with_everything(store, OLD, 5)
    await follow(store, 6, OLD)

    assert await store.get_server(OLD) is None
    assert await store.course_facts(OLD) == {}
    assert (await store.monitor_state(OLD)).issue_number is None
    assert await store.course_token(OLD) is None
    assert (await store.course(OLD)).repo_id == 6
    assert await store.monitored_courses() == []
    # The old repository's queued job never runs under the new one's name.
    assert (await store.job(job_id)).state == "cancelled"

    # The old repository shows up again under its new name: its course comes back.
    await follow(store, 5, NEW)
    assert await store.get_server(NEW) == RECORD
    assert (await store.course_token(NEW)).last_four == "abcd"
    assert (await store.course(OLD)).repo_id == 6
    assert await store.get_server(OLD) is None


async def test_an_installation_adding_a_new_repository_under_an_old_name_starts_empty(store):
    await a_course_with_everything(store, OLD, 5)
    await store.add_courses(1, [(OLD, 6)])
    assert await store.get_server(OLD) is None
    assert (await store.course(OLD)).repo_id == 6


async def test_a_job_remembering_its_course_keeps_the_repository_id(store) -> None:
    await store.add_courses(1, [(OLD, 5)])
    await store.add_courses(1, [(OLD, None)])  # what a deploy job does
    assert (await store.course(OLD)).repo_id == 5


def test_the_store_migration_keeps_existing_courses(tmp_path: Path) -> None:
    path = tmp_path / "data" / "classroom.sqlite3"
    path.parent.mkdir()
    conn = connect(path)
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
    conn.execute("INSERT INTO courses VALUES (?,?,?,1,0)", (OLD, 1, 5))
    conn.execute("INSERT INTO servers VALUES (?,?,0)", (OLD, '{"provider": "ssh"}'))
    conn.close()

    async def reopen() -> tuple[ServerRecord | None, int | None]:
        store = await Store.open(path.parent)
        try:
            return await store.get_server(OLD), (await store.course(OLD)).repo_id
        finally:
            await store.close()

    record, repo_id = asyncio.run(reopen())
    assert record == ServerRecord("ssh") and record.trusts_service_key
    assert repo_id == 5
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert check.execute("SELECT count(*) FROM course_keys").fetchone()[0] == 0
    check.close()


# --- through the service's /webhook, with GitHub's published examples ------------------


def moved(example, action: str, full_name: str) -> dict:
    """GitHub's ``repository`` example for ``action``, about the course's repository."""
    payload = example("repository", action)
    owner, name = full_name.split("/")
    payload["repository"] = {
        **payload["repository"],
        "id": COURSE_REPO_ID,
        "full_name": full_name,
        "name": name,
        "owner": {**payload["repository"]["owner"], "login": owner},
    }
    payload["installation"] = {"id": INSTALLATION_ID, "node_id": "x"}
    return payload


async def deployed(classroom, example) -> ServerRecord:
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    record = await classroom.services.store.get_server(COURSE_REPO)
    assert record is not None and record.address == classroom.target.host
    return record


@pytest.mark.sshd
@pytest.mark.parametrize(
    ("action", "new_name"),
    [("renamed", "octo-org/physics-101"), ("transferred", "physics-dept/physics101")],
)
async def test_a_renamed_or_transferred_repository_keeps_its_course(
    classroom, example, action: str, new_name: str
) -> None:
    store = classroom.services.store
    record = await deployed(classroom, example)
    key = await classroom.services.course_keys(COURSE_REPO)
    facts = await store.course_facts(COURSE_REPO)

    response = await deliver(classroom.client, "repository", moved(example, action, new_name))

    assert response.status == 202
    assert await store.get_server(new_name) == record
    assert await store.course_facts(new_name) == facts
    assert (await classroom.services.course_keys(new_name)).public_line == key.public_line
    assert await store.get_server(COURSE_REPO) is None
    assert await store.course(COURSE_REPO) is None


@pytest.mark.sshd
async def test_a_new_repository_reusing_the_name_sees_nothing_of_the_old_course(
    classroom, example
) -> None:
    store = classroom.services.store
    await deployed(classroom, example)
    old_key = await classroom.services.course_keys(COURSE_REPO)
    number = classroom.github.add_issue(COURSE_REPO, "Where is the hub?").number

    # A different repository now has the name (the old one was renamed, or deleted, and
    # GitHub's event about it never came), with no course config yet: its deliveries
    # carry its own id, and /status can only tell what the service remembers of it.
    classroom.commit({"README.md": b"# Someone else's repository\n"})
    issue = example("issue_comment", "created")["issue"]
    comment = example("issue_comment", "created")
    repository = {**classroom.repository_payload(comment), "id": COURSE_REPO_ID + 1}
    response = await classroom.comment(
        example,
        "/status",
        issue={**issue, "number": number, "pull_request": None},
        repository=repository,
    )
    assert response.status == 202
    await classroom.settle()

    reply = classroom.github.issues[(COURSE_REPO, number)].comments[-1]["body"]
    assert "No server yet" in reply, reply
    assert classroom.target.host not in reply
    assert await store.get_server(COURSE_REPO) is None

    await sign_in(classroom.client, classroom.github, "alice")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert classroom.target.host not in page
    assert "TLJH 2.0.0" not in page
    assert old_key.public_line not in page
    new_key = await classroom.services.course_keys.for_repository(COURSE_REPO_ID + 1)
    assert new_key.public_line in page
