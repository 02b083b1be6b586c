"""A deployed volume course with a snapshot of alice's work, and reading the server: shared
by the backup and volume-safety tests."""

from __future__ import annotations

import os
import shutil

from deploy import operations
from deploy.volumes import backup
from tests.support.engine import noop
from tests.support.volume_course import COURSE, T0, VOLUME, course

ALICE_UID = 1001


async def course_with_a_snapshot(droplet, ssh_target, do_fake, before_snapshot=None):
    """A deployed course whose volume was snapshotted holding alice's hw1, which she
    then deleted; volumes made from the snapshot hold what it held. ``before_snapshot``
    (a coroutine function) runs on the server just before the snapshot."""
    saved: dict[str, tuple[object, str]] = {}

    def attached(volume, _droplet) -> None:
        folder = ssh_target.attach_volume(volume.name)
        if volume.snapshot_id:
            copy, uuid = saved[volume.snapshot_id]
            shutil.rmtree(folder)
            shutil.copytree(copy, folder, symlinks=True)
            ssh_target.give_filesystem(volume.name, uuid)

    do_fake.on_attach = attached
    do_fake.on_detach = lambda volume, _droplet: ssh_target.detach_volume(volume.name)
    assert (
        await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    ).conclusion == "success"
    alice = ssh_target.sandbox / "volumes" / VOLUME / "home" / "jupyter-alice"
    alice.mkdir(parents=True)
    (alice / "hw1.ipynb").write_bytes(b"before")
    for path in (alice, alice / "hw1.ipynb"):
        os.chown(path, ALICE_UID, ALICE_UID)  # TLJH's user for alice owns her home
    if before_snapshot is not None:
        await before_snapshot()
    await backup.backup(droplet, COURSE, course(), progress=noop, now=T0)
    [snapshot] = do_fake.snapshots
    copy = ssh_target.base / "snapshot-copy"
    shutil.copytree(ssh_target.sandbox / "volumes" / VOLUME, copy, symlinks=True)
    saved[snapshot["id"]] = (copy, ssh_target.state("filesystems")[VOLUME]["uuid"])
    (alice / "hw1.ipynb").unlink()
    return alice, snapshot["name"]


async def home_listing(droplet, folder: str) -> list[str]:
    return (await on_server(droplet, f"ls {folder}\n")).split()


async def on_server(droplet, script: str) -> str:
    record = droplet.records.records[COURSE]
    target = await operations.server_target(droplet, COURSE, course(), record)
    _, out, _ = await droplet.ssh.run_script(target, script)
    return out
