"""A course's own DigitalOcean token on the console: checked with GET /v2/account, stored
encrypted, shown by its last four characters, used for that course's DigitalOcean requests,
and never seen in clear in a page, a log, a check run or the database file."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from bot import course_tokens
from bot.course_tokens import CourseDroplets
from deploy import operations
from deploy.model import ServerRecord
from deploy.providers.droplets import DropletDriver
from tests.console_support import csrf_of, sign_in
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID

pytestmark = pytest.mark.sshd

COURSE_TOKEN = "dop_v1_" + "5a1e" * 16
WRONG_TOKEN = "dop_v1_" + "dead" * 16


async def droplet_course(classroom, do_fake, *, account: str) -> int:
    """The course, on a droplet of ``account`` (uuid; "" is the operator's) reachable by SSH."""
    droplet = do_fake.add_droplet("physics101-hub", tags=["littlest-classroom"], account=account)
    await classroom.services.store.add_courses(INSTALLATION_ID, [(COURSE_REPO, None)])
    await classroom.services.store.save_server(
        COURSE_REPO,
        ServerRecord(
            provider="digitalocean",
            address=classroom.target.host,
            port=classroom.target.port,
            droplet_id=droplet.id,
            size=droplet.size,
            region=droplet.region,
        ),
    )
    resolver: CourseDroplets = classroom.services.course_droplets
    resolver.make_driver = lambda token: DropletDriver(
        token, poll_interval=0.01, shutdown_timeout=1.0
    )
    return droplet.id


async def post_token(classroom, token: str):
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    return await classroom.client.post(
        f"/courses/{COURSE_REPO}/token",
        data={"csrf_token": csrf_of(page), "token": token},
        allow_redirects=False,
    )


async def test_a_course_token_is_saved_shown_by_last_four_and_used(classroom, do_fake, caplog):
    caplog.set_level(logging.DEBUG)
    account = do_fake.add_account(COURSE_TOKEN, "physics@example.edu")
    await droplet_course(classroom, do_fake, account=account["uuid"])
    await sign_in(classroom.client, classroom.github, "alice")
    answer = await post_token(classroom, COURSE_TOKEN)
    assert answer.status == 303, await answer.text()
    assert any(r.path == "/v2/account" and r.token == COURSE_TOKEN for r in do_fake.requests)

    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert 'id="token-last-four">5a1e<' in page
    assert COURSE_TOKEN not in page
    # The size picker and the engine ask DigitalOcean with the course's token.
    assert ">s-4vcpu-8gb: 4 vCPU, 8.0 GiB, $48.00/month<" in page
    sizes = [r for r in do_fake.requests if r.path == "/v2/sizes"]
    assert sizes and all(r.token == COURSE_TOKEN for r in sizes)
    seen = len(do_fake.requests)

    async def progress(line: str) -> None:
        return None

    result = await operations.status(
        classroom.services.engine, COURSE_REPO, None, progress=progress
    )
    assert "physics101-hub" in result.summary  # the droplet, found with the course's token
    droplet_requests = do_fake.requests[seen:]
    assert droplet_requests and all(r.token == COURSE_TOKEN for r in droplet_requests)

    # Never in clear: not in the database files, the logs or anything sent to GitHub.
    data_dir = classroom.services.settings.data_dir
    for path in data_dir.glob("classroom.sqlite3*"):
        assert COURSE_TOKEN.encode() not in path.read_bytes(), path
    assert COURSE_TOKEN not in caplog.text
    for request in classroom.github.requests:
        assert COURSE_TOKEN not in str(request.json)

    # Removed: back to the operator's account.
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    removed = await classroom.client.post(
        f"/courses/{COURSE_REPO}/token/delete",
        data={"csrf_token": csrf_of(page)},
        allow_redirects=False,
    )
    assert removed.status == 303
    assert await classroom.services.store.course_token(COURSE_REPO) is None
    assert await classroom.services.engine.droplets_for(COURSE_REPO) is (
        classroom.services.engine.droplets
    )


async def test_a_wrong_token_is_refused_with_digitaloceans_message(classroom, do_fake):
    await droplet_course(classroom, do_fake, account="")
    await sign_in(classroom.client, classroom.github, "alice")
    answer = await post_token(classroom, WRONG_TOKEN)
    assert answer.status == 400
    text = await answer.text()
    assert "Unable to authenticate you" in text
    assert WRONG_TOKEN not in text
    assert await classroom.services.store.course_token(COURSE_REPO) is None


async def test_a_token_of_another_account_than_the_droplets_is_refused(classroom, do_fake):
    do_fake.add_account(COURSE_TOKEN, "elsewhere@example.edu")
    droplet_id = await droplet_course(classroom, do_fake, account="")
    await sign_in(classroom.client, classroom.github, "alice")
    answer = await post_token(classroom, COURSE_TOKEN)
    assert answer.status == 400
    text = await answer.text()
    assert f"droplet (id {droplet_id}) lives in another DigitalOcean account" in text
    assert await classroom.services.store.course_token(COURSE_REPO) is None


@pytest.mark.parametrize(
    ("fault", "said"),
    [("500", "DigitalOcean answered 500"), ("slow", "no answer from DigitalOcean")],
)
async def test_a_token_digitalocean_cannot_check_now_is_not_saved(
    classroom, do_fake, monkeypatch, fault, said
):
    # Asked through the engine's request path: its timeout, and a 5xx is not a refusal.
    monkeypatch.setattr(course_tokens, "REQUEST_TIMEOUT", 0.2)
    account = do_fake.add_account(COURSE_TOKEN, "physics@example.edu")
    await droplet_course(classroom, do_fake, account=account["uuid"])
    await sign_in(classroom.client, classroom.github, "alice")
    if fault == "500":
        do_fake.fail("GET /v2/account", 500)
    else:
        do_fake.slow("GET /v2/account", 0.6)
    answer = await post_token(classroom, COURSE_TOKEN)
    assert answer.status == 400
    text = await answer.text()
    assert "DigitalOcean could not be asked" in text and said in text
    assert COURSE_TOKEN not in text
    assert await classroom.services.store.course_token(COURSE_REPO) is None


async def test_only_an_admin_sets_the_token(classroom, do_fake):
    do_fake.add_account(COURSE_TOKEN, "physics@example.edu")
    await droplet_course(classroom, do_fake, account="")
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    await sign_in(classroom.client, classroom.github, "carol")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert 'id="token-form"' not in page
    answer = await post_token(classroom, COURSE_TOKEN)
    assert answer.status == 403
    assert await classroom.services.store.course_token(COURSE_REPO) is None
    assert not any(r.token == COURSE_TOKEN for r in do_fake.requests)


async def test_only_an_admin_removes_the_token(classroom, do_fake):
    account = do_fake.add_account(COURSE_TOKEN, "physics@example.edu")
    await droplet_course(classroom, do_fake, account=account["uuid"])
    await sign_in(classroom.client, classroom.github, "alice")
    assert (await post_token(classroom, COURSE_TOKEN)).status == 303
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    await sign_in(classroom.client, classroom.github, "carol")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    answer = await classroom.client.post(
        f"/courses/{COURSE_REPO}/token/delete",
        data={"csrf_token": csrf_of(page)},
        allow_redirects=False,
    )
    assert answer.status == 403
    assert "Only an admin of the repository can remove the course" in await answer.text()
    saved = await classroom.services.store.course_token(COURSE_REPO)
    assert saved is not None and saved.last_four == "5a1e"


async def test_with_require_course_token_a_course_without_one_is_told_in_its_check_run(
    classroom, example
):
    services = classroom.services
    services.settings = dataclasses.replace(services.settings, require_course_token=True)
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert run["conclusion"] == "failure"
    assert "BOT_REQUIRE_COURSE_TOKEN=1" in run["output"]["summary"]
    assert f"/courses/{COURSE_REPO}" in run["output"]["summary"]
