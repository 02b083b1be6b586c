"""/backup and /restore through /webhook: one reply each, and who may restore every home."""

from __future__ import annotations

import pytest

from deploy.model import DROPLET_TAG
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.test_commands_flow import DO_CONFIG, droplet_classroom, issue_payload

pytestmark = pytest.mark.sshd


async def test_backup_then_restore_lists_it_and_a_writer_may_not_restore_everything(
    classroom, do_fake, example
) -> None:
    _, number = await droplet_classroom(classroom, do_fake, example)
    files = ssh_course_files(classroom.target)
    files[".github/classroom.yml"] = (DO_CONFIG + "storage: {size: 20}\n").encode()
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
