"""Assignments through the running service, with the REAL nbgrader (``.venv-grader``) in
the SSH target's user environment: ``/release`` an assignment with one autograded cell,
two students fetch and submit with nbgrader's own commands (one right, one wrong),
``/collect`` and ``/return``; the console's gradebook shows both scores, each student
fetches their feedback, and nothing GitHub received names a student or a score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.console_support import sign_in
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support import grader
from tests.support.grader import Student

pytestmark = pytest.mark.sshd

HW1 = (
    Path(__file__).resolve().parents[1]
    / "examples"
    / "course"
    / "assignments"
    / "hw1"
    / "hw1.ipynb"
).read_bytes()
RIGHT = Student("quillonmarsh", 2101)
WRONG = Student("zephyrinebold", 2102)
ASSIGNMENTS = (
    "assignments:\n  tool: nbgrader\n  course_id: physics101\n  due: {hw1: 2027-02-01T17:00Z}\n"
)


def course_files(target) -> dict[str, bytes]:
    files = ssh_course_files(target, extra=ASSIGNMENTS)
    files["assignments/hw1/hw1.ipynb"] = HW1
    return files


class Issue:
    """An issue of the course where the instructor comments the commands."""

    def __init__(self, classroom, example) -> None:
        self.classroom = classroom
        self.example = example
        self.number = classroom.github.add_issue(COURSE_REPO, "Homework").number

    async def command(self, text: str) -> str:
        """Comment ``text``; the service's reply."""
        issue = {
            **self.example("issue_comment", "created")["issue"],
            "number": self.number,
            "pull_request": None,
        }
        await self.classroom.comment(self.example, text, issue=issue)
        await self.classroom.settle()
        return self.classroom.github.issues[(COURSE_REPO, self.number)].comments[-1]["body"]


def written_to_github(classroom) -> list[str]:
    """Every text the service sent GitHub: bodies of every write, and check-run texts."""
    texts = [json.dumps(r.json) for r in classroom.github.requests if r.method != "GET" and r.json]
    texts += [json.dumps(run) for run in classroom.runs()]
    return texts


def nbgrader_log(course: Path) -> str:
    """The end of nbgrader's own log on the server, to explain a failure."""
    log = course / "littlest-classroom.log"
    return log.read_text()[-3000:] if log.exists() else "(no log)"


async def test_release_submit_collect_return_with_a_real_nbgrader(classroom, example):
    target = classroom.target
    grader.install_user_environment(target.sandbox)
    grader.add_students(target.sandbox, [RIGHT, WRONG])
    sha = classroom.commit(course_files(target))
    await classroom.push(example, sha)
    await classroom.settle()
    assert [r["conclusion"] for r in classroom.runs()] == ["success"]
    # The deploy installed nbgrader (pinned) and laid out the exchange and the course.
    assert target.state("pip-user")["nbgrader"] == "0.9.6"
    exchange = target.sandbox / "nbgrader" / "exchange"
    assert exchange.stat().st_mode & 0o7777 == 0o1777
    course = target.sandbox / "nbgrader" / "physics101"
    assert course.stat().st_mode & 0o777 == 0o770  # no student reads the gradebook
    config = target.sandbox / "opt/tljh/user/etc/jupyter/nbgrader_config.py"
    assert "'physics101'" in config.read_text()

    issue = Issue(classroom, example)
    reply = await issue.command("/release hw1")
    assert "Released hw1" in reply, reply
    assert (exchange / "physics101" / "outbound" / "hw1" / "hw1.ipynb").exists()
    assert "already released" in await issue.command("/release hw1")  # again: found done

    for student, body in ((RIGHT, "def square(x):\n    return x * x\n"),
                          (WRONG, "def square(x):\n    return x + x\n")):  # fmt: skip
        status, output = await grader.run_as(target, student, "nbgrader", "fetch_assignment", "hw1")
        assert status == 0 and "Fetched as: physics101 hw1" in output, output
        await grader.answer(target, student, "hw1", "hw1.ipynb", body)
        status, output = await grader.run_as(target, student, "nbgrader", "submit", "hw1")
        assert status == 0 and "Submitted as: physics101 hw1" in output, output
    submitted = list((exchange / "physics101" / "inbound").iterdir())
    assert sorted(p.stat().st_uid for p in submitted) == [RIGHT.uid, WRONG.uid]

    reply = await issue.command("/collect hw1")
    assert "2 submitted, 2 graded, 0 failed to grade" in reply, (reply, nbgrader_log(course))
    # Again: the same counts, nothing new.
    assert "2 submitted, 2 graded, 0 failed to grade" in await issue.command("/collect hw1")

    reply = await issue.command("/return hw1")
    assert "Returned hw1: 2 feedback" in reply, (reply, nbgrader_log(course))
    for student, score in ((RIGHT, "1.0 / 1.0"), (WRONG, "0.0 / 1.0")):
        status, output = await grader.run_as(target, student, "nbgrader", "fetch_feedback", "hw1")
        assert status == 0, output
        feedback = list(
            (target.sandbox / "home" / student.linux / "hw1" / "feedback").rglob("hw1.html")
        )
        assert len(feedback) == 1 and score in feedback[0].read_text(), student  # fmt: skip

    # The console: both scores, who and when, and the CSV (writers only).
    client = classroom.client
    await sign_in(client, classroom.github, "alice")
    page = await (await client.get(f"/courses/{COURSE_REPO}")).text()
    assert 'id="release-name"' in page and '<option value="hw1">' in page
    section = page[page.index('id="assignments"') : page.index('id="jobs"')]
    right_row = section[section.index(RIGHT.name) :][:400]
    wrong_row = section[section.index(WRONG.name) :][:400]
    assert '<td class="score">1 / 1</td>' in right_row
    assert '<td class="score">0 / 1</td>' in wrong_row
    assert '<td class="late"></td>' in right_row  # due in 2027
    csv = await (await client.get(f"/courses/{COURSE_REPO}/gradebook.csv")).text()
    lines = sorted(csv.splitlines()[1:])
    assert [line.split(",")[:2] + line.split(",")[4:] for line in lines] == [
        ["hw1", RIGHT.name, "1", "1"],
        ["hw1", WRONG.name, "0", "1"],
    ]

    # Privacy: nothing GitHub received names a student, holds a score or a file of theirs.
    for text in written_to_github(classroom):
        for secret in (RIGHT.name, WRONG.name, "1 / 1", "0 / 1", "x + x", "1.0 / 1.0"):
            assert secret not in text, (secret, text[:300])
