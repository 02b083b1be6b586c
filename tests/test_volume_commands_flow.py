"""/backup and /restore through /webhook: one reply each, and who may restore every home."""

from __future__ import annotations

import pytest

from deploy.model import DROPLET_TAG
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support.droplet_classroom import do_config, droplet_classroom, issue_payload

pytestmark = pytest.mark.sshd


async def test_backup_then_restore_lists_it_and_a_writer_may_not_restore_everything(
    classroom, do_fake, example
) -> None:
    _, number = await droplet_classroom(classroom, do_fake, example)
    files = ssh_course_files(classroom.target)
    config = do_config(classroom.target.port) + "storage: {size: 20}\n"
    files[".github/classroom.yml"] = config.encode()
    classroom.commit(files)
    do_fake.add_volume("physics101-hub-home", tags=[DROPLET_TAG])
    issue = issue_payload(example, number)

    await classroom.comment(example, "/backup", user="alice", issue=issue)
    await classroom.settle()
    [snapshot] = [s for s in do_fake.snapshots if s["resource_type"] == "volume"]
    assert snapshot["name"].startswith("physics101-hub-home-")
    assert snapshot["tags"] == [DROPLET_TAG]

    await classroom.comment(example, "/restore", user="alice", issue=issue)
    await classroom.settle()

    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    volumes_before = dict(do_fake.volumes)
    await classroom.comment(
        example, f"/restore {snapshot['name']} --all --confirm", user="carol", issue=issue
    )
    await classroom.settle()

    backup_reply, list_reply, refusal = (
        c["body"] for c in classroom.github.issues[(COURSE_REPO, number)].comments
    )
    assert backup_reply.startswith("@alice ") and snapshot["name"] in backup_reply
    assert snapshot["name"] in list_reply and "20" in list_reply
    assert refusal.startswith("@carol sorry") and "Nothing was done" in refusal
    assert do_fake.volumes == volumes_before and not do_fake.deleted_volumes


async def test_a_failed_snapshot_opens_an_issue_and_the_next_success_closes_it(
    classroom, do_fake, example
) -> None:
    _, number = await droplet_classroom(classroom, do_fake, example)
    files = ssh_course_files(classroom.target)
    config = do_config(classroom.target.port) + "storage: {size: 20}\n"
    files[".github/classroom.yml"] = config.encode()
    classroom.commit(files)
    do_fake.add_volume("physics101-hub-home", tags=[DROPLET_TAG])
    issue = issue_payload(example, number)
    do_fake.fail("POST /v2/volumes/{volume_id}/snapshots", 500, times=20)

    for _ in range(2):  # two failures: one issue, updated
        await classroom.comment(example, "/backup", user="alice", issue=issue)
        await classroom.settle()
    opened = [
        i
        for (repo, _), i in classroom.github.issues.items()
        if repo == COURSE_REPO and i.title == "Students' work is not being backed up"
    ]
    assert len(opened) == 1 and opened[0].state == "open"
    assert "did not snapshot" in (opened[0].body or "")
    assert len(opened[0].comments) == 1  # the second failure
    assert not [s for s in do_fake.snapshots if s["resource_type"] == "volume"]

    do_fake._faults.clear()
    await classroom.comment(example, "/backup", user="alice", issue=issue)
    await classroom.settle()
    assert opened[0].state == "closed"
    assert [s for s in do_fake.snapshots if s["resource_type"] == "volume"]
