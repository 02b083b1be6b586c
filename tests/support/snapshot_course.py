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


class SnapshotCopies:
    """Volumes the fake DigitalOcean makes from a snapshot hold what the volume held when
    the snapshot was taken: ``take`` copies the volume's folder, and attaching a volume made
    from that snapshot lays the copy (and its filesystem's UUID) down again."""

    def __init__(self, ssh_target, do_fake) -> None:
        self.ssh_target = ssh_target
        self.saved: dict[str, tuple[object, str]] = {}
        do_fake.on_attach = self.attached
        do_fake.on_detach = lambda volume, _droplet: ssh_target.detach_volume(volume.name)

    def attached(self, volume, _droplet) -> None:
        folder = self.ssh_target.attach_volume(volume.name)
        if volume.snapshot_id:
            copy, uuid = self.saved[volume.snapshot_id]
            shutil.rmtree(folder)
            shutil.copytree(copy, folder, symlinks=True)
            self.ssh_target.give_filesystem(volume.name, uuid)

    def take(self, snapshot_id: str) -> None:
        copy = self.ssh_target.base / "snapshot-copy"
        shutil.copytree(self.ssh_target.sandbox / "volumes" / VOLUME, copy, symlinks=True)
        self.saved[snapshot_id] = (copy, self.ssh_target.state("filesystems")[VOLUME]["uuid"])


async def course_with_a_snapshot(droplet, ssh_target, do_fake, before_snapshot=None):
    """A deployed course whose volume was snapshotted holding alice's hw1, which she
    then deleted; volumes made from the snapshot hold what it held. ``before_snapshot``
    (a coroutine function) runs on the server just before the snapshot."""
    copies = SnapshotCopies(ssh_target, do_fake)
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
    copies.take(snapshot["id"])
    (alice / "hw1.ipynb").unlink()
    return alice, snapshot["name"]


async def home_listing(droplet, folder: str) -> list[str]:
    return (await on_server(droplet, f"ls {folder}\n")).split()


async def on_server(droplet, script: str) -> str:
    record = droplet.records.records[COURSE]
    target = await operations.server_target(droplet, COURSE, course(), record)
    _, out, _ = await droplet.ssh.run_script(target, script)
    return out
