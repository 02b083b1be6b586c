"""The console's hub accounts: waiting sign-ups with Approve and Discard, students with a
password reset for repository admins, and a hub admin's own password (POST + CSRF). Each
is a job in the course's queue, after what was queued before; a password typed on the
console is stored nowhere."""

from __future__ import annotations

import itertools
import logging
import re
import sqlite3

import bcrypt
import pytest

from bot.jobs import registry
from tests.console_support import csrf_of, sign_in
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID

pytestmark = pytest.mark.sshd

XSS = "<img src=x onerror=alert(1)>"
ADMIN_PASSWORD = "pale-otter-87-lantern"
NEW_PASSWORD = re.compile(r'<code id="new-password">([^<]+)</code>')


def database(classroom):
    return classroom.target.sandbox / "opt" / "tljh" / "state" / "jupyterhub.sqlite"


def rows(classroom) -> dict[str, tuple[int, bytes]]:
    with sqlite3.connect(database(classroom)) as db:
        return {n: (a, p) for n, a, p in db.execute(
            "SELECT username, is_authorized, password FROM users_info")}  # fmt: skip


def sign_up(classroom, *names: str, approved: bool = False) -> None:
    with sqlite3.connect(database(classroom)) as db:
        db.executemany(
            "INSERT INTO users_info (username, password, is_authorized, email) VALUES (?,?,?,?)",
            [
                (n, bcrypt.hashpw(b"student-pass-4471", bcrypt.gensalt(4)), int(approved), "")
                for n in names
            ],
        )


async def deployed(classroom, example) -> None:
    sha = classroom.commit(ssh_course_files(classroom.target))  # hub.admins: [alice]
    await classroom.push(example, sha)
    await classroom.settle()


async def post(classroom, path: str, **data: str):
    return await classroom.client.post(
        f"/courses/{COURSE_REPO}/accounts/{path}", data=data, allow_redirects=False
    )


def written_anywhere(classroom, secret: str, logs: str) -> list[str]:
    """Where ``secret`` is: the service's data directory (database, WAL), its log, or
    what the server was asked to run."""
    places = []
    needle = secret.encode()
    for path in sorted(classroom.services.settings.data_dir.rglob("*")):
        if path.is_file() and needle in path.read_bytes():
            places.append(str(path))
    if secret in logs:
        places.append("the log")
    commands = classroom.target.sandbox / "log" / "commands.log"
    if commands.exists() and needle in commands.read_bytes():
        places.append(str(commands))
    return places


async def test_each_account_action_is_a_job_queued_after_the_courses_earlier_ones(
    classroom, example
):
    await deployed(classroom, example)
    sign_up(classroom, "erin", "frank", XSS)
    services = classroom.services
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"

    # A writer who is not a hub admin: sees the waiting list, shown inert; no password form.
    await sign_in(classroom.client, classroom.github, "carol")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'class="approve"' in page and 'id="own-password"' not in page
    assert 'class="reset"' not in page  # a writer cannot reset a student's password
    csrf = csrf_of(page)

    services.runner.pause()
    try:
        earlier = await registry.enqueue_operation(
            services, COURSE_REPO, "status", [], installation_id=INSTALLATION_ID,
            user="carol", source="console",
        )  # fmt: skip
        approved = await post(classroom, "approve", csrf_token=csrf, name="erin")
        discarded = await post(classroom, "discard", csrf_token=csrf, name="frank")
        kept = await post(classroom, "discard", csrf_token=csrf, name="Erin")
        for answer in (approved, discarded, kept):
            assert answer.status == 303
            assert answer.headers["Location"] == f"/courses/{COURSE_REPO}#jobs"
        # Queued, not run: the hub is as it was.
        assert rows(classroom)["erin"][0] == 0 and "frank" in rows(classroom)
        queued = await services.store.jobs(course=COURSE_REPO, states=("queued",))
        assert [(j.payload["name"], j.payload["args"]) for j in queued] == [
            ("status", []), ("approve", ["erin"]), ("discard", ["frank"]), ("discard", ["erin"]),
        ]  # fmt: skip
        assert queued[0].id == earlier
        assert all(j.kind == "command" and j.payload["source"] == "console" for j in queued)
    finally:
        services.runner.resume()
    await classroom.settle()

    done = {j.id: j for j in await services.store.jobs(course=COURSE_REPO)}
    ran = [done[j.id] for j in queued]
    assert all(j.state == "done" for j in ran)
    for before, after in itertools.pairwise(ran):
        assert before.finished_at <= after.started_at, (before.payload, after.payload)
    assert rows(classroom)["erin"][0] == 1 and "frank" not in rows(classroom)
    assert [j.result["title"] for j in ran[1:]] == [
        "Approved 1 student", "Discarded frank", "erin is approved",
    ]  # fmt: skip
    # The results are on the page, and in the jobs it polls.
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert "Approved 1 student" in page and "Discarded frank" in page
    polled = await (await classroom.client.get(f"/courses/{COURSE_REPO}/jobs.json")).json()
    assert polled["jobs"][0]["title"] == "erin is approved"

    # Refused requests queue nothing: a writer's reset, no CSRF token, a bad name.
    before = len(await services.store.jobs())
    assert (await post(classroom, "reset", csrf_token=csrf, name="erin")).status == 403
    assert (await post(classroom, "approve", name="erin")).status == 403
    bad = await post(classroom, "approve", csrf_token=csrf, name="gr/ace")
    assert bad.status == 400 and "is not a hub user name" in await bad.text()
    assert len(await services.store.jobs()) == before


async def test_a_typed_password_reaches_its_job_and_is_stored_nowhere(classroom, example, caplog):
    caplog.set_level(logging.DEBUG)
    await deployed(classroom, example)
    sign_up(classroom, "erin", approved=True)
    await sign_in(classroom.client, classroom.github, "alice")  # admin, in hub.admins
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert 'id="own-password"' in page and 'class="reset"' in page
    csrf = csrf_of(page)
    before = len(await classroom.services.store.jobs())
    for password, again, problem in (
        ("short", "short", "shorter than 10 characters"),
        (ADMIN_PASSWORD, ADMIN_PASSWORD + "x", "the two passwords differ"),
    ):
        refused = await post(classroom, "password", csrf_token=csrf, password=password, again=again)
        text = await refused.text()
        assert refused.status == 400 and "Password: " in text and problem in text
    assert len(await classroom.services.store.jobs()) == before

    answer = await post(
        classroom, "password", csrf_token=csrf, password=ADMIN_PASSWORD, again=ADMIN_PASSWORD
    )
    assert answer.status == 303
    await classroom.settle()
    job = (await classroom.services.store.jobs())[-1]
    assert job.payload["name"] == "hub-password" and job.state == "done"
    assert job.result["conclusion"] == "success", job.result
    [handle] = job.payload["args"]
    # Erased when the job ended.
    assert classroom.services.secret_handles.get(handle, COURSE_REPO) is None
    stored = rows(classroom)["alice"][1]
    assert bcrypt.hashpw(ADMIN_PASSWORD.encode(), stored) == stored

    # A student's new password: made by the job, shown once to the admin who asked.
    assert (await post(classroom, "reset", csrf_token=csrf, name="erin")).status == 303
    await classroom.settle()
    polled = await (await classroom.client.get(f"/courses/{COURSE_REPO}/jobs.json")).json()
    assert polled["reveals"] == 1 and polled["jobs"][0]["title"] == "New hub password for erin"
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    [fresh] = NEW_PASSWORD.findall(page)
    stored = rows(classroom)["erin"][1]
    assert bcrypt.hashpw(fresh.encode(), stored) == stored

    pages = [
        await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text(),
        await (await classroom.client.get(f"/courses/{COURSE_REPO}/jobs.json")).text(),
    ]
    assert not NEW_PASSWORD.search(pages[0])  # shown once only
    for secret in (ADMIN_PASSWORD, fresh):
        assert not any(secret in text for text in pages)
        assert written_anywhere(classroom, secret, caplog.text) == []
