"""The monitor's "Students waiting for approval" issue: the number waiting and a link to
the console, never a name; updated when the number changes, closed at 0."""

from __future__ import annotations

import sqlite3

import pytest
from aiohttp import web

from bot.monitor import SIGNUPS_TITLE, Monitor
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support.hub_api import fake_hub

pytestmark = pytest.mark.sshd

NAMES = ["erin-unique-name", "frank-unique-name", "grace-unique-name"]


def hub_database(classroom):
    return sqlite3.connect(
        classroom.target.sandbox / "opt" / "tljh" / "state" / "jupyterhub.sqlite"
    )


def sign_up(classroom, name: str) -> None:
    with hub_database(classroom) as db:
        db.execute(
            "INSERT INTO users_info (username, password, is_authorized) VALUES (?, ?, 0)",
            (name, b"$2b$12$notarealhashnotarealhashnotarealhashnotarealhashnot"),
        )


def approve(classroom, name: str) -> None:
    with hub_database(classroom) as db:
        db.execute("UPDATE users_info SET is_authorized=1 WHERE username=?", (name,))


async def test_waiting_students_issue_follows_the_number_and_closes_at_zero(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()

    async def up(request: web.Request) -> web.Response:
        return web.json_response({"version": "5.5.4"})

    async with fake_hub(up) as hub_url:
        store = classroom.services.store
        facts = await store.course_facts(COURSE_REPO)
        assert facts["monitor_signups"] is True  # the default, as the deploy recorded it
        await store.save_course_facts(COURSE_REPO, {**facts, "hub_url": hub_url})
        monitor = Monitor(classroom.services, http_timeout=2)

        def issues():
            return [i for i in classroom.github.issues.values() if i.title == SIGNUPS_TITLE]

        await monitor.run_round(force=True)
        assert issues() == []  # nobody waits: no issue

        sign_up(classroom, NAMES[0])
        sign_up(classroom, NAMES[1])
        await monitor.run_round(force=True)
        [issue] = issues()
        assert issue.state == "open"
        assert issue.body.startswith("2 students are waiting for approval")
        console = f"{classroom.services.settings.public_url}/courses/{COURSE_REPO}"
        assert console in issue.body

        await monitor.run_round(force=True)  # same number: nothing written
        updates = len(classroom.github.requests)
        await monitor.run_round(force=True)
        assert [
            r for r in classroom.github.requests[updates:] if r.operation_id.startswith("issues/")
        ] == []

        # A restarted service remembers the issue: no second one.
        monitor = Monitor(classroom.services, http_timeout=2)
        await monitor.run_round(force=True)
        assert len(issues()) == 1

        sign_up(classroom, NAMES[2])
        await monitor.run_round(force=True)
        assert issue.body.startswith("3 students are waiting")
        for name in NAMES:
            approve(classroom, name)
        await monitor.run_round(force=True)
        assert issue.state == "closed"
        assert len(issues()) == 1

        texts = [issue.title, issue.body or ""] + [c["body"] for c in issue.comments]
        for name in NAMES:
            assert not any(name in text for text in texts)
        assert classroom.github.validation_errors == []
