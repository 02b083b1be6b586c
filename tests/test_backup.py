"""``/backup`` and ``/restore`` at the engine level: on the fake API, then over real SSH."""

from __future__ import annotations

from datetime import timedelta

import pytest

from deploy import operations
from deploy.model import DROPLET_TAG
from deploy.volumes import backup
from deploy.volumes.volume_driver import snapshot_name
from tests.support.engine import TAGS, noop
from tests.support.snapshot_course import (
    course_with_a_snapshot,
    home_listing,
    on_server,
)
from tests.support.volume_course import COURSE, NAME, T0, VOLUME, course

KEEP_TWO = "storage: {size: 20}\nbackup: {every: 1d, keep: 2}\n"


def test_restore_alone_lists_name_date_and_size() -> None:
    from deploy.volumes.volume_driver import SnapshotInfo

    snapshot = SnapshotInfo("id", snapshot_name(NAME, T0), T0, 1.5, 20, (DROPLET_TAG,), "v")
    table = backup.snapshot_table([snapshot])
    assert f"| `{VOLUME}-20260301-020000` | 2026-03-01 02:00 | 1.5 GB |" in table
    assert "/backup" in backup.snapshot_table([])


@pytest.mark.parametrize("student", ["../root", "a b", "$(reboot)", "-rf", ""])
def test_a_bad_student_name_never_reaches_a_script(student) -> None:
    with pytest.raises(ValueError):
        backup.copy_home_script(VOLUME + "-restore-20260301-020000", student, "20260301-020000")


async def test_backup_takes_a_tagged_snapshot_and_keeps_only_keep(
    droplet,
    do_fake,
) -> None:
    home = do_fake.add_volume(VOLUME, tags=TAGS)
    foreign = do_fake.add_volume_snapshot(home, "before-the-exam", tags=TAGS)
    config = course(KEEP_TWO)
    for day in range(3):
        result = await backup.backup(
            droplet, COURSE, config, progress=noop, now=T0 + timedelta(days=day)
        )
        assert result.conclusion == "success", result.summary
    names = sorted(s["name"] for s in do_fake.snapshots)
    assert names == sorted(
        [foreign["name"], *(snapshot_name(NAME, T0 + timedelta(days=d)) for d in (1, 2))]
    )
    assert [s["name"] for s in do_fake.deleted_snapshots] == [snapshot_name(NAME, T0)]
    assert result.details["pruned"] == [snapshot_name(NAME, T0)]


async def test_a_failed_snapshot_is_a_failure_for_the_outage_issue(
    droplet,
    do_fake,
) -> None:
    do_fake.add_volume(VOLUME, tags=TAGS)
    do_fake.fail("POST /v2/volumes/{volume_id}/snapshots", 500, times=10)
    result = await backup.backup(droplet, COURSE, course(), progress=noop, now=T0)
    assert result.conclusion == "failure"
    assert result.details["snapshot_failed"] is True
    assert "did not snapshot" in result.summary
    assert not do_fake.snapshots


async def test_backup_of_a_course_without_storage_says_what_to_set(droplet) -> None:
    result = await backup.backup(droplet, COURSE, course(""), progress=noop)
    assert result.conclusion == "failure" and "storage.size" in result.summary


@pytest.mark.sshd
async def test_restore_student_brings_a_deleted_notebook_back_and_changes_nothing(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    on_volume, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    (on_volume / "hw2.ipynb").write_bytes(b"newer work")

    listed = await backup.list_snapshots(droplet, COURSE, course(), progress=noop)
    assert snapshot in listed.summary

    for _ in range(2):  # the second run finds it done and changes nothing
        result = await backup.restore_student(
            droplet, COURSE, course(), snapshot, "alice", progress=noop
        )
        assert result.conclusion == "success", result.summary
        restored = on_volume / "restored-20260301-020000"
        assert (restored / "hw1.ipynb").read_bytes() == b"before"
        assert sorted(p.name for p in on_volume.iterdir()) == [
            "hw2.ipynb",
            "restored-20260301-020000",
        ]
        assert (on_volume / "hw2.ipynb").read_bytes() == b"newer work"
        assert [p.name for p in restored.iterdir()] == ["hw1.ipynb"]
    # The temporary volumes went; the course's volume stays, attached.
    assert [v.name for v in do_fake.volumes.values()] == [VOLUME]
    assert len(do_fake.deleted_volumes) == 2
    assert all("-restore-" in v.name for v in do_fake.deleted_volumes)
    mounts = (ssh_target.sandbox / "state" / "mounts.list").read_text()
    assert "classroom-restore" not in mounts


@pytest.mark.sshd
async def test_restore_of_an_unknown_snapshot_changes_nothing(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    do_fake.on_attach = lambda volume, _droplet: ssh_target.attach_volume(volume.name)
    assert (
        await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    ).conclusion == "success"
    result = await backup.restore_student(
        droplet, COURSE, course(), f"{VOLUME}-20200101-000000", "alice", progress=noop
    )
    assert result.conclusion == "failure" and "/restore" in result.summary
    assert len(do_fake.volumes) == 1 and not do_fake.deleted_volumes


def test_scheduled_snapshots_are_spread_over_the_day_and_regular() -> None:
    day = 86400
    now = T0
    dues = [backup.next_backup_at(f"org/course{i}", day, None, now) for i in range(2000)]
    assert all(now < due <= now + timedelta(days=1) for due in dues)
    per_hour = [0] * 24
    for due in dues:
        per_hour[int((due - now).total_seconds() // 3600)] += 1
    assert max(per_hour) < 2000 / 24 * 1.5  # no hour takes much more than its share
    # Once taken, the next is one period later; after an outage, never a burst.
    course = "org/course7"
    first = dues[7]
    assert backup.next_backup_at(course, day, first, first) == first + timedelta(days=1)
    late = backup.next_backup_at(course, day, first, first + timedelta(days=5, hours=1))
    assert late is not None and late - (first + timedelta(days=5, hours=1)) < timedelta(days=1)
    assert (late - first) % timedelta(days=1) == timedelta(0)
    assert backup.next_backup_at(course, None, first, first) is None


@pytest.mark.sshd
async def test_restore_all_needs_confirm_then_swaps_the_volume_and_keeps_the_old_one(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    alice, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    (alice / "wrecked.ipynb").write_bytes(b"after")

    before = len(ssh_target.calls())
    refused = await backup.restore_all(
        droplet, COURSE, course(), snapshot, confirm=False, progress=noop
    )
    assert refused.conclusion == "failure" and "--confirm" in refused.summary
    assert len(ssh_target.calls()) == before and len(do_fake.volumes) == 1

    for _ in range(2):  # again: finds it done
        result = await backup.restore_all(
            droplet, COURSE, course(), snapshot, confirm=True, progress=noop
        )
        assert result.conclusion == "success", result.summary
        old, new = sorted(do_fake.volumes.values(), key=lambda v: v.created_at + v.name)
        assert (old.name, old.droplet_ids) == (VOLUME, [])
        assert new.name == f"{NAME}-from-20260301-020000"
        assert new.droplet_ids == list(do_fake.droplets)
        assert not do_fake.deleted_volumes
        assert await home_listing(droplet, "/home/jupyter-alice") == ["hw1.ipynb"]
        assert ssh_target.state("services")["jupyterhub"] == "active"
    # The old volume still holds what was there: nothing of anyone's is lost.
    assert sorted(p.name for p in alice.iterdir()) == ["wrecked.ipynb"]
    # The next deploy finds the swapped-in volume in place and has nothing to do.
    again = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    assert again.title == "Nothing to do", again.summary


@pytest.mark.sshd
async def test_restore_all_brings_the_nbgrader_exchange_back(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    inbound = "/srv/nbgrader/exchange/physics101/inbound"

    async def submitted() -> None:
        await on_server(droplet, f"mkdir -p {inbound}/jupyter-ada+hw1+t1+x\n")

    _, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake, submitted)
    await on_server(droplet, f"rm -r {inbound}/jupyter-ada+hw1+t1+x\n")
    await on_server(droplet, f"mkdir -p {inbound}/jupyter-bo+hw1+t2+y\n")
    assert await home_listing(droplet, inbound) == ["jupyter-bo+hw1+t2+y"]
    result = await backup.restore_all(
        droplet, COURSE, course(), snapshot, confirm=True, progress=noop
    )
    assert result.conclusion == "success", result.summary
    # The exchange is the snapshot's, as the homes are.
    assert await home_listing(droplet, inbound) == ["jupyter-ada+hw1+t1+x"]


@pytest.mark.sshd
async def test_a_cut_connection_during_a_student_restore_is_finished_by_the_retry(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    alice, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    ssh_target.cut_next("mount")
    result = await backup.restore_student(
        droplet, COURSE, course(), snapshot, "alice", progress=noop
    )
    assert result.conclusion == "success", result.summary
    assert sorted(p.name for p in alice.iterdir()) == ["restored-20260301-020000"]
    assert (alice / "restored-20260301-020000" / "hw1.ipynb").read_bytes() == b"before"
    assert not (ssh_target.sandbox / "control" / "mount.cut").exists(), "the cut happened"


@pytest.mark.sshd
@pytest.mark.parametrize("program", ["umount", "mount", "systemctl"])
async def test_a_cut_connection_during_a_full_restore_loses_nothing(
    droplet,
    ssh_target,
    do_fake,
    program,
) -> None:
    alice, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    (alice / "since.ipynb").write_bytes(b"work since the snapshot")
    ssh_target.cut_next(program)
    result = await backup.restore_all(
        droplet, COURSE, course(), snapshot, confirm=True, progress=noop
    )
    if result.conclusion != "success":  # the step's own retry did not cover it: run again
        result = await backup.restore_all(
            droplet, COURSE, course(), snapshot, confirm=True, progress=noop
        )
    assert result.conclusion == "success", result.summary
    assert await home_listing(droplet, "/home/jupyter-alice") == ["hw1.ipynb"]
    assert (alice / "since.ipynb").read_bytes() == b"work since the snapshot"
    assert not do_fake.deleted_volumes and len(do_fake.volumes) == 2
    assert ssh_target.state("services")["jupyterhub"] == "active"
    assert not (ssh_target.sandbox / "control" / f"{program}.cut").exists(), "the cut happened"
