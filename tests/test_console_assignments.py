"""The console's Assignments section without a server: who may see the gradebook, and
the picker's buttons queueing the same jobs as the slash commands."""

from __future__ import annotations

import html

from tests.console_support import csrf_of, sign_in
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID

FACTS = {"assignments": {"course_id": "physics101", "names": ["hw1", "hw2"], "due": {}}}


async def known_course(classroom) -> None:
    store = classroom.services.store
    await store.add_courses(INSTALLATION_ID, [(COURSE_REPO, None)])
    await store.save_course_facts(COURSE_REPO, FACTS)


async def test_a_reader_gets_no_gradebook(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github, "bob")  # read only
    answer = await classroom.client.get(f"/courses/{COURSE_REPO}/gradebook.csv")
    assert answer.status == 404 and "text/csv" not in answer.headers["Content-Type"]


async def test_the_picker_runs_the_assignment_commands_as_jobs(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github, "alice")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert '<option value="hw1">' in page and '<option value="hw2">' in page
    assert 'id="assignments-problem"' in page  # no hub yet: said, not a 500
    csrf = csrf_of(page)
    refused = await classroom.client.post(
        f"/courses/{COURSE_REPO}/run/collect",
        data={"csrf_token": csrf, "name": "hw1;reboot"},
    )
    assert refused.status == 400 and await classroom.services.store.jobs() == []
    assert "Collect and grade: Assignment: `hw1;reboot` is not an assignment name" in (
        html.unescape(await refused.text())
    )
    answer = await classroom.client.post(
        f"/courses/{COURSE_REPO}/run/collect",
        data={"csrf_token": csrf, "name": "hw2"},
        allow_redirects=False,
    )
    assert answer.status == 303
    [job] = await classroom.services.store.jobs()
    assert job.payload["name"] == "collect" and job.payload["args"] == ["hw2"]
