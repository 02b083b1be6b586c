"""A course's home volume on the server: the planned steps, then deploys over real SSH.

The loopback SSH target plays the droplet (its block storage turned on: volumes are
folders, with stand-ins for blkid, mkfs.ext4, mount and resize2fs that keep state) and
the fake DigitalOcean API plays the account; attaching a volume in the fake makes it
appear on the target.
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy import operations
from deploy.course.validate import DROPLET_NAME
from deploy.model import Observed
from deploy.planning import planner
from deploy.volumes import backup, homevolume, movehome
from deploy.volumes import volume_driver as volumes
from deploy.volumes.volume_driver import VolumeDriver
from tests.support.engine import TAGS, noop
from tests.support.volume_course import COURSE, VOLUME, course

# ---- the plan (pure) -------------------------------------------------------------------------


def names(plan) -> list[str]:
    return [s.name for s in plan.steps]


def test_a_new_course_puts_the_volume_in_place_before_tljh_is_installed() -> None:
    steps = names(planner.plan(course(), Observed()))
    assert steps.index("volume") < steps.index("home-volume") < steps.index("tljh-install")


def test_no_storage_no_volume_steps() -> None:
    assert "volume" not in names(planner.plan(course(""), Observed()))


def test_an_installed_hub_with_homes_on_the_droplet_disk_keeps_them_there() -> None:
    seen = Observed(tljh_installed=True, tljh_version="2.0.0")
    steps = names(planner.plan(course(), seen))
    assert "volume" not in steps and "home-volume" not in steps


def test_raising_the_size_grows_volume_then_filesystem_and_nothing_else() -> None:
    seen = Observed(
        tljh_installed=True,
        tljh_version="2.0.0",
        home_volume=VOLUME,
        home_on_volume=True,
        state={homevolume.STORAGE_STATE_KEY: 10},
    )
    steps = names(planner.plan(course(), seen))
    assert steps[:2] == ["volume", "home-volume-grow"]
    assert "mkfs.ext4" not in planner.plan(course(), seen).steps[1].script


def test_only_a_volume_this_operation_created_can_be_formatted() -> None:
    found = homevolume.prepare_script(VOLUME)
    assert "mkfs.ext4" not in found and "did not create it" in found
    made = homevolume.prepare_script(VOLUME, new_volume=True)
    assert made.count("mkfs.ext4") == 1
    blank = made.index(f"cmp -s -n {homevolume.BLANK_CHECK_BYTES}")
    assert made.index('elif [ "$probe" -eq 2 ]; then') < blank < made.index("mkfs.ext4")
    assert "-F" not in made.split("mkfs.ext4", 1)[1].split("\n", 1)[0]
    for script in (found, made):
        assert "nofail" in script and "UUID=" not in script
        assert f"{homevolume.device_path(VOLUME)} /mnt/classroom-home auto" in script


def test_observation_reads_the_marker_and_the_home_check() -> None:
    assert homevolume.parse_observed(f"{VOLUME}\nhome-on-volume\n") == (VOLUME, True)
    assert homevolume.parse_observed(f"{VOLUME}\n") == (VOLUME, False)
    assert homevolume.parse_observed("home-on-volume\n") == ("", False)
    assert homevolume.parse_observed("$(reboot)\nhome-on-volume\n") == ("", False)


# ---- deploys over SSH ------------------------------------------------------------------------


def programs(target, since: int = 0) -> list[str]:
    return [c["program"] for c in target.calls()[since:]]


@pytest.mark.sshd
async def test_new_course_volume_formatted_once_and_mounted_before_tljh(
    droplet, ssh_target, do_fake
) -> None:
    first = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    assert first.conclusion == "success", first.summary

    [volume] = do_fake.volumes.values()
    assert (volume.name, volume.size_gigabytes, volume.tags) == (VOLUME, 20, TAGS)
    assert volume.droplet_ids == [do_fake.droplets[volume.droplet_ids[0]].id]
    called = programs(ssh_target)
    assert called.count("mkfs.ext4") == 1
    assert called.index("mkfs.ext4") < called.index("mount") < called.index("bootstrap")
    fstab = (ssh_target.sandbox / "etc" / "fstab").read_text()
    device = homevolume.device_path(VOLUME)
    assert f"{device} /mnt/classroom-home auto defaults,nofail" in fstab
    assert "UUID=" not in fstab
    # The hub is held to its state on the volume, and never started without it.
    drop_in = ssh_target.sandbox / "etc" / "systemd-system" / "jupyterhub.service.d"
    assert (drop_in / "littlest-classroom-state.conf").read_text() == homevolume.HUB_DROP_IN_TEXT
    starts = ssh_target.hub_starts()
    assert starts and all(s["state_is_mount"] and s["state_volume"] == VOLUME for s in starts)
    assert "/mnt/classroom-home/home /home none bind,nofail" in fstab
    # The hub's state is on the volume, not on the droplet's disk.
    on_volume = ssh_target.sandbox / "volumes" / VOLUME
    state = json.loads((on_volume / "tljh-state" / "classroom.json").read_text())
    assert state[homevolume.STORAGE_STATE_KEY] == 20
    assert not any((ssh_target.sandbox / "opt" / "tljh" / "state").iterdir())

    # The course's reserved IP is on its droplet, and is the hub's address.
    [reserved] = do_fake.reserved_ips.values()
    assert reserved.droplet_id == volume.droplet_ids[0]
    assert first.hub_url == f"http://{reserved.ip}"
    assert droplet.records.records[COURSE].reserved_ip == reserved.ip

    before = len(ssh_target.calls())
    again = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    assert (again.conclusion, again.title) == ("neutral", "Nothing to do"), again.summary
    assert again.hub_url == f"http://{reserved.ip}"
    assert "mkfs.ext4" not in programs(ssh_target, before)
    assert len(do_fake.volumes) == 1 and do_fake.volume_action_types() == ["attach"]


@pytest.mark.sshd
async def test_a_volume_with_a_filesystem_and_a_students_file_is_mounted_never_formatted(
    droplet, ssh_target, do_fake
) -> None:
    existing = do_fake.add_volume(VOLUME, tags=TAGS)
    folder = ssh_target.attach_volume(existing.name)
    ssh_target.give_filesystem(existing.name)
    notebook = folder / "home" / "jupyter-alice" / "notes.ipynb"
    notebook.parent.mkdir(parents=True)
    original = secrets.token_bytes(2048)
    notebook.write_bytes(original)

    result = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)

    assert result.conclusion == "success", result.summary
    assert "mkfs.ext4" not in programs(ssh_target)
    assert notebook.read_bytes() == original
    assert len(do_fake.volumes) == 1
    assert not [r for r in do_fake.calls("POST", "/v2/volumes") if r.path == "/v2/volumes"]
    # Seen from the server, the student's file is in /home.
    target = await operations.server_target(
        droplet, COURSE, course(), droplet.records.records[COURSE]
    )
    _, out, _ = await droplet.ssh.run_script(target, "ls /home/jupyter-alice\n")
    assert out.split() == ["notes.ipynb"]


@pytest.mark.sshd
async def test_raising_the_size_grows_the_volume_and_its_filesystem_online(
    droplet, ssh_target, do_fake
) -> None:
    assert (
        await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    ).conclusion == "success"
    bigger = course("storage: {size: 50}\n")
    grown = await operations.deploy(droplet, COURSE, bigger, mode="apply", progress=noop)
    assert grown.conclusion == "success", grown.summary
    [volume] = do_fake.volumes.values()
    assert volume.size_gigabytes == 50
    assert ssh_target.state("filesystems")[VOLUME]["grown"] == 1
    assert programs(ssh_target).count("mkfs.ext4") == 1

    smaller = course("storage: {size: 30}\n")
    refused = await operations.deploy(droplet, COURSE, smaller, mode="apply", progress=noop)
    assert refused.conclusion == "failure"
    assert "can only grow" in refused.summary and "50 or more" in refused.summary
    assert volume.size_gigabytes == 50


@pytest.mark.sshd
async def test_homes_already_on_the_droplet_disk_are_never_hidden(
    droplet, ssh_target, do_fake
) -> None:
    (ssh_target.sandbox / "home" / "jupyter-bob").mkdir()
    canary = ssh_target.sandbox / "home" / "jupyter-bob" / "work.ipynb"
    canary.write_bytes(b"bob's work")

    result = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)

    assert result.conclusion == "failure"
    assert "/move-home" in result.summary
    assert canary.read_bytes() == b"bob's work"
    assert "bootstrap" not in programs(ssh_target)


@pytest.mark.parametrize(("version", "rebuild"), [("1.0.0", False), ("2.0.0", True)])
def test_a_snapshot_comes_before_every_tljh_change(version, rebuild) -> None:
    seen = Observed(
        tljh_installed=True,
        tljh_version=version,
        home_volume=VOLUME,
        home_on_volume=True,
        state={homevolume.STORAGE_STATE_KEY: 20},
    )
    steps = names(planner.plan(course(), seen, rebuild=rebuild))
    assert steps.index("volume-snapshot") == steps.index("tljh-upgrade") - 1
    assert "volume-snapshot" not in names(planner.plan(course(""), seen, rebuild=rebuild))


@pytest.mark.sshd
async def test_rebuild_snapshots_first_and_waits_when_the_snapshot_fails(
    droplet, ssh_target, do_fake
) -> None:
    assert (
        await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    ).conclusion == "success"
    do_fake.fail("POST /v2/volumes/{volume_id}/snapshots", 500, times=10)
    before = len(ssh_target.calls())
    failed = await operations.deploy(
        droplet, COURSE, course(), mode="apply", rebuild=True, progress=noop
    )
    assert failed.conclusion == "failure" and "snapshot" in failed.summary
    assert "bootstrap" not in programs(ssh_target, before)

    do_fake._faults.clear()
    rebuilt = await operations.deploy(
        droplet, COURSE, course(), mode="apply", rebuild=True, progress=noop
    )
    assert rebuilt.conclusion == "success", rebuilt.summary
    assert [s["name"].startswith(VOLUME + "-") for s in do_fake.snapshots] == [True]
    assert "bootstrap" in programs(ssh_target, before)


@given(st.from_regex(DROPLET_NAME, fullmatch=True).filter(lambda n: len(n) <= 253))
@settings(max_examples=40, deadline=None)
def test_every_volume_script_is_valid_bash_with_the_name_as_one_word(name: str) -> None:
    volume = volumes.home_volume_name(name)
    swapped = volumes.swapped_volume_name(name, "20260301-020000")
    restore = volumes.restore_volume_name(name, "20260301-020000")
    scripts = [
        homevolume.prepare_script(volume),
        homevolume.grow_script(volume),
        homevolume.unmount_script(),
        homevolume.prepare_script(swapped),
        movehome.move_script(volume),
        backup.copy_home_script(restore, "alice", "20260301-020000"),
    ]
    for script in scripts:
        checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert checked.returncode == 0, checked.stderr
    device = shlex.quote(homevolume.device_path(volume))
    assert f"dev={device}\n" in scripts[0]


async def test_a_new_droplet_for_the_course_takes_its_reserved_ip(droplet, do_fake) -> None:
    """What /recover relies on: the droplet is gone, a new one gets the same address."""
    gone = droplet.records.records[COURSE]
    reserved = await VolumeDriver(droplet.droplets).ensure_reserved_ip(
        gone.droplet_id, "syd1", noop
    )
    droplet.records.records[COURSE] = replace(gone, reserved_ip=reserved)
    del do_fake.droplets[gone.droplet_id]  # destroyed in the control panel
    do_fake.reserved_ips[reserved].droplet_id = None

    record = await operations.provision(droplet, COURSE, course(), noop)

    assert record.droplet_id != gone.droplet_id
    assert record.reserved_ip == reserved
    assert do_fake.reserved_ips[reserved].droplet_id == record.droplet_id
    assert operations.hub_url(course(), record) == f"http://{reserved}"
    assert len(do_fake.reserved_ips) == 1
