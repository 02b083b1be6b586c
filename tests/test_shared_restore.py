"""With ``storage``, the admins' writable shared folder lives on the course's volume:
snapshotted with the homes and brought back by ``/restore --all`` (engine level, over
the real loopback sshd, the fake DigitalOcean's volumes as folders)."""

from __future__ import annotations

import pytest

from deploy import operations
from deploy.volumes import backup
from tests.support.engine import noop
from tests.support.snapshot_course import SnapshotCopies
from tests.support.volume_course import COURSE, STORAGE, T0, VOLUME, course

pytestmark = pytest.mark.sshd

SHARED = STORAGE + "shared:\n  - writable: notes\n"


async def read_on_server(droplet, path: str) -> tuple[int, str]:
    record = droplet.records.records[COURSE]
    target = await operations.server_target(droplet, COURSE, course(SHARED), record)
    status, out, _ = await droplet.ssh.run_script(target, f"cat {path}\n")
    return status, out


async def test_restore_all_brings_back_the_writable_shared_folder(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    ssh_target.keep_accounts()
    copies = SnapshotCopies(ssh_target, do_fake)
    deployed = await operations.deploy(droplet, COURSE, course(SHARED), mode="apply", progress=noop)
    assert deployed.conclusion == "success", deployed.summary

    notes = ssh_target.sandbox / "volumes" / VOLUME / "shared" / "notes"
    assert notes.is_dir() and (notes.stat().st_mode & 0o7777) == 0o2775
    # What an admin writes in ~/shared/notes is on the volume.
    (notes / "solutions.md").write_text("week 1\n")
    assert await read_on_server(droplet, "/srv/shared/notes/solutions.md") == (0, "week 1\n")

    await backup.backup(droplet, COURSE, course(SHARED), progress=noop, now=T0)
    [snapshot] = do_fake.snapshots
    copies.take(snapshot["id"])
    (notes / "solutions.md").unlink()  # lost
    assert (await read_on_server(droplet, "/srv/shared/notes/solutions.md"))[0] != 0

    result = await backup.restore_all(
        droplet, COURSE, course(SHARED), snapshot["name"], confirm=True, progress=noop
    )
    assert result.conclusion == "success", result.summary
    assert await read_on_server(droplet, "/srv/shared/notes/solutions.md") == (0, "week 1\n")
    again = await operations.deploy(droplet, COURSE, course(SHARED), mode="apply", progress=noop)
    assert again.title == "Nothing to do", again.summary
