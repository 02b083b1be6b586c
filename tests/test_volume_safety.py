"""Volume safety over real SSH: what is never formatted, the hub never started without its
state volume, restore volumes always removed, and a student's restore written as the
student (safety invariants 3, 8 and 14).

The loopback SSH target plays the droplet with its block storage on (a volume's device
reads as zeros until formatted), the fake DigitalOcean API the account; the stand-in
systemctl honours the hub's systemd drop-in and records every start of the hub with
whether ``/opt/tljh/state`` was a mount and which volume its marker named.
"""

from __future__ import annotations

import os
import secrets
import shutil

import pytest

from deploy import operations
from deploy.volumes import backup, homevolume
from deploy.volumes.volume_driver import swapped_volume_name
from tests.faults.dofaults import EXHAUSTED, Armed, requests_to
from tests.support.engine import TAGS, noop
from tests.support.snapshot_course import ALICE_UID, course_with_a_snapshot, home_listing
from tests.support.volume_course import COURSE, NAME, T0, VOLUME, course

pytestmark = pytest.mark.sshd

STAMP = T0.strftime("%Y%m%d-%H%M%S")
VOLUME_ACTIONS = "POST /v2/volumes/{volume_id}/actions"


def programs(target) -> list[str]:
    return [c["program"] for c in target.calls()]


async def run(droplet, script: str) -> tuple[int, str, str]:
    target = await operations.server_target(
        droplet, COURSE, course(), droplet.records.records[COURSE]
    )
    return await droplet.ssh.run_script(target, script)


def assert_no_hub_start_without_its_volume(target) -> None:
    """Every start the server made ran with /opt/tljh/state mounted from a course volume."""
    for start in target.hub_starts():
        if start["started"]:
            assert start["state_is_mount"] and start["state_volume"], start


# ---- what is never formatted ---------------------------------------------------------------


async def test_blkid_unable_to_read_a_volume_holding_ext4_formats_nothing(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    existing = do_fake.add_volume(VOLUME, tags=TAGS)
    folder = ssh_target.attach_volume(existing.name)
    ssh_target.give_filesystem(existing.name)
    notebook = folder / "home" / "jupyter-alice" / "notes.ipynb"
    notebook.parent.mkdir(parents=True)
    original = secrets.token_bytes(2048)
    notebook.write_bytes(original)
    # blkid's exit 2 means "no signature found" and also "could not read the device".
    ssh_target.fail_next("blkid", "blkid: error: cannot read the device", status=2)

    result = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)

    assert result.conclusion == "failure"
    assert "nothing was formatted" in result.summary
    assert "did not create it" in result.summary
    assert "mkfs.ext4" not in programs(ssh_target)
    assert notebook.read_bytes() == original
    assert "bootstrap" not in programs(ssh_target)


async def test_a_blank_volume_this_deploy_did_not_create_is_not_formatted(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    do_fake.add_volume(VOLUME, tags=TAGS)  # found, not made: it may have held homes

    result = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)

    assert result.conclusion == "failure"
    assert "did not create it: nothing was formatted" in result.summary
    assert "mkfs.ext4" not in programs(ssh_target)


async def test_a_volume_this_deploy_created_is_formatted_only_if_its_first_mib_is_zeros(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    def attached_with_data(volume, _droplet) -> None:
        ssh_target.attach_volume(volume.name)
        with open(ssh_target.device(volume.name), "r+b") as device:
            device.seek(300_000)
            device.write(b"not zeros")

    do_fake.on_attach = attached_with_data

    result = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)

    assert result.conclusion == "failure"
    assert "first MiB is not all zeros" in result.summary
    assert "mkfs.ext4" not in programs(ssh_target)


# ---- the hub never starts without its state volume -----------------------------------------


async def test_a_restore_all_failing_at_attach_puts_the_old_volume_back_and_the_hub_on_it(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    _, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    # An account made since the snapshot: only the current volume has it.
    state = ssh_target.sandbox / "volumes" / VOLUME / "tljh-state"
    (state / "account-since-snapshot").write_text("ada")
    swapped = swapped_volume_name(NAME, STAMP)
    armed = Armed()
    armed.inject(f"Attaching volume {swapped}", EXHAUSTED, do_fake, VOLUME_ACTIONS)

    result = await backup.restore_all(
        droplet, COURSE, course(), snapshot, confirm=True, progress=armed.progress
    )

    assert result.conclusion == "failure"
    assert [r.status for r in armed.met(do_fake, VOLUME_ACTIONS)][:5] == [500] * 5
    assert f"The previous volume, `{VOLUME}`, is attached and mounted again" in result.summary
    volumes = {v.name: v for v in do_fake.volumes.values()}
    assert volumes[VOLUME].droplet_ids == list(do_fake.droplets)
    assert volumes[swapped].droplet_ids == []  # kept, detached: the next try finds it
    assert not do_fake.deleted_volumes
    # The hub runs on the old accounts, from the old volume.
    assert ssh_target.state("services")["jupyterhub"] == "active"
    status, out, _ = await run(
        droplet, f"cat {homevolume.STATE_MARKER} /opt/tljh/state/account-since-snapshot\n"
    )
    assert (status, out.split()) == (0, [VOLUME, "ada"])
    starts = ssh_target.hub_starts()
    assert starts[-1]["started"] and starts[-1]["state_volume"] == VOLUME
    assert_no_hub_start_without_its_volume(ssh_target)

    # Run again once DigitalOcean attaches: the restore finishes on the snapshot's volume.
    again = await backup.restore_all(
        droplet, COURSE, course(), snapshot, confirm=True, progress=noop
    )
    assert again.conclusion == "success", again.summary
    assert await home_listing(droplet, "/home/jupyter-alice") == ["hw1.ipynb"]
    assert ssh_target.hub_starts()[-1]["state_volume"] == swapped
    assert_no_hub_start_without_its_volume(ssh_target)
    fstab = (ssh_target.sandbox / "etc" / "fstab").read_text()
    assert f"{homevolume.device_path(swapped)} /mnt/classroom-home " in fstab
    assert f"{homevolume.device_path(VOLUME)} " not in fstab


async def test_no_restart_starts_the_hub_while_its_state_volume_is_not_mounted(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    first = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    assert first.conclusion == "success", first.summary
    # What a restore cut short used to leave: the hub stopped, its state unmounted.
    status, _, err = await run(droplet, homevolume.unmount_script())
    assert status == 0, err
    before = len(ssh_target.hub_starts())

    # The monitor's restart and /restart are the same operation.
    restarted = await operations.restart(droplet, COURSE, course(), progress=noop)

    assert restarted.conclusion == "failure"
    assert "not mounted" in restarted.summary
    assert ssh_target.state("services")["jupyterhub"] == "inactive"
    # systemd itself refuses too, whoever asks (TLJH reloads the hub with tljh-config).
    status, _, err = await run(droplet, "/opt/tljh/hub/bin/tljh-config reload hub\n")
    assert status != 0 and "Assertion failed" in err
    assert not [s for s in ssh_target.hub_starts()[before:] if s["started"]]
    assert_no_hub_start_without_its_volume(ssh_target)

    # Once the volume is mounted again, the restart goes ahead.
    status, _, err = await run(droplet, homevolume.start_script(VOLUME))
    assert status == 0, err
    assert ssh_target.hub_starts()[-1]["started"]
    assert_no_hub_start_without_its_volume(ssh_target)


async def test_a_volume_mounted_by_uuid_moves_to_its_device_path_on_the_next_deploy(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    assert (
        await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    ).conclusion == "success"
    # The set-up as earlier versions left it: by UUID, and no drop-in for the hub.
    fstab = ssh_target.sandbox / "etc" / "fstab"
    uuid = ssh_target.state("filesystems")[VOLUME]["uuid"]
    device_line = f"{homevolume.device_path(VOLUME)} /mnt/classroom-home"
    fstab.write_text(fstab.read_text().replace(device_line, f"UUID={uuid} /mnt/classroom-home", 1))
    drop_in = ssh_target.sandbox / "etc" / "systemd-system" / "jupyterhub.service.d"
    shutil.rmtree(drop_in, ignore_errors=True)
    before = len(ssh_target.calls())

    result = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)

    assert result.conclusion == "success", result.summary
    done = [s.step.name for s in result.steps]
    assert done[0] == "home-volume-update", done
    assert not {"volume", "home-volume", "tljh-install", "tljh-upgrade"} & set(done), done
    text = fstab.read_text()
    assert "UUID=" not in text and text.count(" /mnt/classroom-home ") == 1
    assert f"{device_line} auto defaults,nofail" in text
    assert (drop_in / "littlest-classroom-state.conf").read_text() == homevolume.HUB_DROP_IN_TEXT
    assert not {"mkfs.ext4", "mount", "umount"} & set(programs(ssh_target)[before:])
    again = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    assert again.title == "Nothing to do", again.summary


# ---- restore volumes --------------------------------------------------------------------------


async def test_a_failed_student_restore_still_removes_its_volume_which_had_its_own_uuid(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    _, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    # bob has a home now but had none in the snapshot: the copy fails once mounted.
    bob = ssh_target.sandbox / "volumes" / VOLUME / "home" / "jupyter-bob"
    bob.mkdir()
    os.chown(bob, 1002, 1002)
    live_uuid = ssh_target.state("filesystems")[VOLUME]["uuid"]

    result = await backup.restore_student(droplet, COURSE, course(), snapshot, "bob", progress=noop)

    assert result.conclusion == "failure"
    assert "no home folder for bob" in result.summary
    assert [v.name for v in do_fake.volumes.values()] == [VOLUME]
    [deleted] = do_fake.deleted_volumes
    assert "-restore-" in deleted.name and deleted.droplet_ids == []
    detaches = [
        r
        for r in requests_to(do_fake, VOLUME_ACTIONS)
        if isinstance(r.body, dict) and r.body.get("type") == "detach"
    ]
    assert len(detaches) == 1
    assert "classroom-restore" not in (ssh_target.sandbox / "state" / "mounts.list").read_text()
    # The clone got a UUID of its own before it was mounted; fstab knows no UUID at all.
    calls = programs(ssh_target)
    restore_mount = next(
        i
        for i, c in enumerate(ssh_target.calls())
        if c["program"] == "mount" and any("classroom-restore" in a for a in c["argv"])
    )
    assert calls.index("tune2fs") < restore_mount
    assert ssh_target.state("filesystems")[deleted.name]["uuid"] != live_uuid
    assert "UUID=" not in (ssh_target.sandbox / "etc" / "fstab").read_text()
    assert sorted(p.name for p in bob.iterdir()) == []


# ---- a student's restore is written as the student ------------------------------------------


async def test_a_students_link_raced_into_the_restore_cannot_make_root_write_elsewhere(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    alice, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    elsewhere = ssh_target.sandbox / "opt" / "elsewhere"
    elsewhere.mkdir()
    # The student wins the race against any copy root makes into her home.
    ssh_target.race_next_copy("/opt/elsewhere")

    result = await backup.restore_student(
        droplet, COURSE, course(), snapshot, "alice", progress=noop
    )

    assert list(elsewhere.iterdir()) == []
    assert result.conclusion == "success", result.summary
    restored = alice / f"restored-{STAMP}"
    assert (restored / "hw1.ipynb").read_bytes() == b"before"
    # Written by alice's own UID, not by root.
    for path in (restored, restored / "hw1.ipynb"):
        assert path.lstat().st_uid == ALICE_UID, path
    assert sorted(p.name for p in alice.iterdir()) == [f"restored-{STAMP}"]


async def test_a_link_planted_at_the_restore_folder_is_refused(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    alice, snapshot = await course_with_a_snapshot(droplet, ssh_target, do_fake)
    elsewhere = ssh_target.sandbox / "opt" / "elsewhere"
    elsewhere.mkdir()
    (alice / f"restored-{STAMP}").symlink_to("/opt/elsewhere")

    result = await backup.restore_student(
        droplet, COURSE, course(), snapshot, "alice", progress=noop
    )

    assert result.conclusion == "failure"
    assert "is a symbolic link; nothing was restored" in result.summary
    assert list(elsewhere.iterdir()) == []
    assert [v.name for v in do_fake.volumes.values()] == [VOLUME]
