"""``/approve NAME…`` through ``/webhook``: a writer approves waiting students on the hub;
the reply sorts the names asked for, and says nothing about anyone else."""

from __future__ import annotations

import sqlite3

import pytest

from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO

pytestmark = pytest.mark.sshd


def hub_rows(classroom) -> dict[str, int]:
    database = classroom.target.sandbox / "opt" / "tljh" / "state" / "jupyterhub.sqlite"
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT username, is_authorized FROM users_info"))


def sign_up(classroom, *names: str) -> None:
    database = classroom.target.sandbox / "opt" / "tljh" / "state" / "jupyterhub.sqlite"
    with sqlite3.connect(database) as db:
        db.executemany(
            "INSERT INTO users_info (username, password, is_authorized) VALUES (?, ?, 0)",
            [(name, b"$2b$12$" + b"x" * 53) for name in names],
        )


def issue_payload(example, number: int) -> dict:
    issue = example("issue_comment", "created")["issue"]
    return {**issue, "number": number, "pull_request": None}


async def test_a_writer_approves_waiting_students_and_a_reader_cannot(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    sign_up(classroom, "erin", "frank", "quiet-student")
    repository = classroom.github.repositories[COURSE_REPO]
    repository.collaborators["carol"] = "write"
    repository.collaborators["rita"] = "read"
    number = classroom.github.add_issue(COURSE_REPO, "Sign-ups").number
    issue = issue_payload(example, number)

    await classroom.comment(example, "/approve frank", user="rita", issue=issue)
    await classroom.settle()
    assert hub_rows(classroom)["frank"] == 0

    await classroom.comment(example, "/approve Erin frank nobody", user="carol", issue=issue)
    await classroom.settle()
    rows = hub_rows(classroom)
    assert rows["erin"] == 1 and rows["frank"] == 1 and rows["quiet-student"] == 0
    # A reader's command is ignored, as /help says: no reply, no job.
    [reply] = [c["body"] for c in classroom.github.issues[(COURSE_REPO, number)].comments]
    assert reply.startswith("@carol `/approve erin frank nobody` done: **Approved 2 students**")
    assert "Approved; they can log in now: erin, frank" in reply
    assert "Unknown: nobody signed up under these names: nobody" in reply
    assert "quiet-student" not in reply  # nothing else about students is posted
    assert classroom.github.validation_errors == []
