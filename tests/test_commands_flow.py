"""Slash commands through /webhook: permissions, reactions, one reply, and /resize's order of
DigitalOcean actions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.jobs import registry
from deploy.droplets import DropletDriver
from deploy.model import OperationResult, ServerRecord
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO

pytestmark = pytest.mark.sshd


def do_config(port: int) -> str:
    # The droplet's SSH is the loopback server's port: server.port applies to droplets too.
    return (
        "server:\n  provider: digitalocean\n  name: physics101-hub\n  region: syd1\n"
        f"  size: s-2vcpu-4gb\n  port: {port}\nhub:\n  admins: [alice]\n"
    )


async def droplet_classroom(classroom, do_fake, example) -> tuple[int, str]:
    """A course on a DigitalOcean droplet, deployed once; the droplet answers SSH on loopback."""
    droplet = do_fake.add_droplet("physics101-hub", tags=["littlest-classroom"])
    classroom.services.engine.droplets = DropletDriver(
        do_fake.token, poll_interval=0.01, shutdown_timeout=1.0
    )
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
    files = ssh_course_files(classroom.target)
    files[".github/classroom.yml"] = do_config(classroom.target.port).encode()
    sha = classroom.commit(files)
    await classroom.push(example, sha)
    await classroom.settle()
    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert run["conclusion"] == "success", run["output"]
    issue = classroom.github.add_issue(COURSE_REPO, "Running the course hub")
    return droplet.id, issue.number


def issue_payload(example, number: int) -> dict:
    issue = example("issue_comment", "created")["issue"]
    return {**issue, "number": number, "pull_request": None}


async def test_resize_by_a_writer(classroom, do_fake, example):
    droplet_id, number = await droplet_classroom(classroom, do_fake, example)
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    response = await classroom.comment(
        example, "/resize s-4vcpu-8gb", user="carol", issue=issue_payload(example, number)
    )
    assert response.status == 202
    await classroom.settle()

    actions = do_fake.action_types(droplet_id)
    assert actions[-3:] == ["shutdown", "resize", "power_on"] or actions[-4:] == [
        "shutdown",
        "power_off",
        "resize",
        "power_on",
    ]
    resize = [r for r in do_fake.requests if r.body and r.body.get("type") == "resize"]
    assert len(resize) == 1 and resize[0].body["disk"] is False
    assert do_fake.droplets[droplet_id].status == "active"

    issue = classroom.github.issues[(COURSE_REPO, number)]
    assert len(issue.comments) == 1
    assert issue.comments[0]["body"].startswith("@carol ")
    assert "s-4vcpu-8gb" in issue.comments[0]["body"]
    contents = [r["content"] for r in classroom.github.reactions]
    assert contents == ["eyes", "rocket"]


async def test_resize_to_a_slug_with_an_underscore_reaches_digitalocean_as_written(
    classroom, do_fake, example
):
    droplet_id, number = await droplet_classroom(classroom, do_fake, example)
    await classroom.comment(
        example, "/resize so1_5-2vcpu-16gb", user="alice", issue=issue_payload(example, number)
    )
    await classroom.settle()
    resize = [r for r in do_fake.requests if r.body and r.body.get("type") == "resize"]
    assert [(r.body["size"], r.body["disk"]) for r in resize] == [("so1_5-2vcpu-16gb", False)]
    assert do_fake.droplets[droplet_id].size == "so1_5-2vcpu-16gb"
    [reply] = classroom.github.issues[(COURSE_REPO, number)].comments
    assert reply["body"].startswith("@alice `/resize so1_5-2vcpu-16gb` done")


async def test_resize_by_a_reader_is_ignored_and_touches_nothing(classroom, do_fake, example):
    _, number = await droplet_classroom(classroom, do_fake, example)
    before = list(do_fake.actions)
    jobs = len(await classroom.services.store.jobs())
    response = await classroom.comment(
        example, "/resize s-4vcpu-8gb", user="bob", issue=issue_payload(example, number)
    )
    await classroom.settle()
    # As /help says: anyone below write is ignored; no job, no reaction, no reply.
    assert response.status == 200
    assert len(await classroom.services.store.jobs()) == jobs
    assert do_fake.actions == before
    assert classroom.github.issues[(COURSE_REPO, number)].comments == []
    assert classroom.github.reactions == []


async def test_a_comment_by_the_app_itself_does_nothing(classroom, do_fake, example):
    _, number = await droplet_classroom(classroom, do_fake, example)
    before = list(do_fake.actions)
    payload_user = f"{classroom.github.app.slug}[bot]"
    response = await classroom.comment(
        example, "/resize s-4vcpu-8gb", user=payload_user, issue=issue_payload(example, number)
    )
    assert response.status == 200
    await classroom.settle()
    assert do_fake.actions == before
    assert classroom.github.issues[(COURSE_REPO, number)].comments == []
    assert classroom.github.reactions == []


@pytest.fixture
def admin_only_entry():
    """An entry only repository admins may run, registered for one test."""
    registry.operations()
    saved = dict(registry.OPERATIONS)

    @dataclass(frozen=True)
    class PromoteArgs:
        names: tuple[str, ...]

    ran: list[tuple[str, ...]] = []

    @registry.operation(
        "promote",
        usage="/promote NAME…",
        summary="Give hub users a role (an example entry for admins only).",
        grammar=(registry.Words("names", parse=registry.parse_hub_user),),
        args=PromoteArgs,
        permission=registry.ADMIN,
        needs_config=False,
    )
    async def promote(op, args: PromoteArgs) -> OperationResult:
        ran.append(args.names)
        return OperationResult("success", "Approved", ", ".join(args.names))

    yield ran
    registry.OPERATIONS.clear()
    registry.OPERATIONS.update(saved)


async def test_an_admin_only_entry_refuses_a_writer_and_runs_for_an_admin(
    classroom, example, admin_only_entry
):
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    number = classroom.github.add_issue(COURSE_REPO, "Roles").number
    issue = issue_payload(example, number)
    await classroom.comment(example, "/promote ada", user="carol", issue=issue)
    await classroom.settle()
    assert admin_only_entry == []
    await classroom.comment(example, "/promote Ada grace", user="alice", issue=issue)
    await classroom.settle()
    assert admin_only_entry == [("ada", "grace")]
    refused, done = [c["body"] for c in classroom.github.issues[(COURSE_REPO, number)].comments]
    assert refused.startswith("@carol sorry, this command needs the admin role")
    assert "Nothing was done" in refused
    assert done.startswith("@alice `/promote ada grace` done: **Approved**")
