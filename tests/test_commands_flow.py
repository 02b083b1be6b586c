"""Slash commands through /webhook: permissions, reactions, one reply, and /resize's order of
DigitalOcean actions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.jobs import registry
from deploy.model import OperationResult
from tests.plugins.github_fake import COURSE_REPO
from tests.support.droplet_classroom import droplet_classroom, issue_payload

pytestmark = pytest.mark.sshd


async def test_resize_by_a_writer(classroom, do_fake, example):
    droplet_id, number = await droplet_classroom(classroom, do_fake, example)
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    response = await classroom.comment(
        example, "/resize s-4vcpu-8gb", user="carol", issue=issue_payload(example, number)
    )
    assert response.status == 202
    await classroom.settle()

    # A clean shutdown (the fake's completes), the resize, power back on; nothing else.
    assert do_fake.action_types(droplet_id) == ["shutdown", "resize", "power_on"]
    resize = [r for r in do_fake.requests if r.body and r.body.get("type") == "resize"]
    assert [(r.body["size"], r.body["disk"]) for r in resize] == [("s-4vcpu-8gb", False)]
    assert do_fake.droplets[droplet_id].status == "active"
    assert do_fake.droplets[droplet_id].size == "s-4vcpu-8gb"
    record = await classroom.services.store.get_server(COURSE_REPO)
    assert record is not None and record.size == "s-4vcpu-8gb"

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


async def test_resize_by_a_reader_is_refused_and_touches_nothing(classroom, do_fake, example):
    _, number = await droplet_classroom(classroom, do_fake, example)
    before = list(do_fake.actions)
    await classroom.comment(
        example, "/resize s-4vcpu-8gb", user="bob", issue=issue_payload(example, number)
    )
    await classroom.settle()
    assert do_fake.actions == before
    issue = classroom.github.issues[(COURSE_REPO, number)]
    assert len(issue.comments) == 1 and "Nothing was done" in issue.comments[0]["body"]
    assert [r["content"] for r in classroom.github.reactions] == ["eyes", "confused"]


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
