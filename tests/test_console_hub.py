"""The console's hub accounts: waiting sign-ups with Approve and Discard, students with a
password reset for repository admins, and a hub admin's own password (POST + CSRF)."""

from __future__ import annotations

import sqlite3

import bcrypt
import pytest

from tests.console_support import csrf_of, sign_in
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO

pytestmark = pytest.mark.sshd

XSS = "<img src=x onerror=alert(1)>"
ADMIN_PASSWORD = "pale-otter-87-lantern"


def database(classroom):
    return classroom.target.sandbox / "opt" / "tljh" / "state" / "jupyterhub.sqlite"


def rows(classroom) -> dict[str, tuple[int, bytes]]:
    with sqlite3.connect(database(classroom)) as db:
        return {n: (a, p) for n, a, p in db.execute(
            "SELECT username, is_authorized, password FROM users_info")}  # fmt: skip


def sign_up(classroom, *names: str) -> None:
    with sqlite3.connect(database(classroom)) as db:
        db.executemany(
            "INSERT INTO users_info (username, password, is_authorized, email) VALUES (?,?,0,?)",
            [(n, bcrypt.hashpw(b"student-pass-4471", bcrypt.gensalt(4)), "") for n in names],
        )


async def test_the_course_page_approves_discards_and_sets_passwords(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))  # hub.admins: [alice]
    await classroom.push(example, sha)
    await classroom.settle()
    sign_up(classroom, "erin", "frank", XSS)
    client = classroom.client
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"

    # A writer who is not a hub admin: sees the waiting list, shown inert; no password form.
    await sign_in(client, classroom.github, "carol")
    page = await (await client.get(f"/courses/{COURSE_REPO}")).text()
    assert XSS not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'class="approve"' in page and 'id="own-password"' not in page
    csrf = csrf_of(page)

    answer = await client.post(
        f"/courses/{COURSE_REPO}/accounts/approve",
        data={"csrf_token": csrf, "name": "erin"},
        allow_redirects=False,
    )
    assert answer.status == 303 and rows(classroom)["erin"][0] == 1
    answer = await client.post(
        f"/courses/{COURSE_REPO}/accounts/discard",
        data={"csrf_token": csrf, "name": "frank"},
        allow_redirects=False,
    )
    assert answer.status == 303 and "frank" not in rows(classroom)
    kept = await client.post(
        f"/courses/{COURSE_REPO}/accounts/discard", data={"csrf_token": csrf, "name": "erin"}
    )
    assert "erin is approved: the account is kept." in await kept.text()
    assert "erin" in rows(classroom)
    page = await (await client.get(f"/courses/{COURSE_REPO}")).text()
    assert 'class="reset"' not in page  # a writer cannot reset a student's password
    refused = await client.post(
        f"/courses/{COURSE_REPO}/accounts/reset", data={"csrf_token": csrf, "name": "erin"}
    )
    assert refused.status == 403
    no_csrf = await client.post(f"/courses/{COURSE_REPO}/accounts/approve", data={"name": XSS})
    assert no_csrf.status == 403 and rows(classroom)[XSS][0] == 0

    # alice: admin of the repository and in hub.admins.
    await sign_in(client, classroom.github, "alice")
    page = await (await client.get(f"/courses/{COURSE_REPO}")).text()
    assert 'id="own-password"' in page and 'class="reset"' in page
    csrf = csrf_of(page)
    short = await client.post(
        f"/courses/{COURSE_REPO}/accounts/password",
        data={"csrf_token": csrf, "password": "short", "again": "short"},
    )
    assert "shorter than 10 characters" in await short.text()
    await client.post(
        f"/courses/{COURSE_REPO}/accounts/password",
        data={"csrf_token": csrf, "password": ADMIN_PASSWORD, "again": ADMIN_PASSWORD},
    )
    stored = rows(classroom)["alice"][1]
    assert bcrypt.hashpw(ADMIN_PASSWORD.encode(), stored) == stored

    reset = await client.post(
        f"/courses/{COURSE_REPO}/accounts/reset", data={"csrf_token": csrf, "name": "erin"}
    )
    text = await reset.text()
    fresh = text.split('<code id="new-password">')[1].split("</code>")[0]
    stored = rows(classroom)["erin"][1]
    assert bcrypt.hashpw(fresh.encode(), stored) == stored
    page = await (await client.get(f"/courses/{COURSE_REPO}")).text()
    assert fresh not in page and ADMIN_PASSWORD not in page  # shown once only
