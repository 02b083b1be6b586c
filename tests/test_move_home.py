"""``/move-home`` over real SSH: a droplet snapshot first, a checked copy, then the mount.

The course starts as every course did before ``storage``: TLJH installed with /home on
the droplet's disk, holding canary homes (owners, modes, times, a hard link, a symlink).
"""

from __future__ import annotations

import pytest

from deploy import operations
from deploy.volumes import movehome
from tests.support.engine import noop
from tests.support.move_home_course import manifest, observed, plant_homes
from tests.support.volume_course import COURSE, VOLUME, course

pytestmark = pytest.mark.sshd


async def existing_course(droplet, ssh_target, do_fake):
    """A hub deployed without storage, with homes on the droplet's disk."""
    do_fake.on_attach = lambda volume, _droplet: ssh_target.attach_volume(volume.name)
    ssh_target.attach_volume("unused")  # turn the target's block storage on
    deployed = await operations.deploy(droplet, COURSE, course(""), mode="apply", progress=noop)
    assert deployed.conclusion == "success", deployed.summary
    plant_homes(ssh_target.sandbox / "home")
    return manifest(ssh_target.sandbox / "home")


async def test_move_home_snapshots_first_copies_exactly_and_keeps_the_original(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    original = await existing_course(droplet, ssh_target, do_fake)

    result = await movehome.move_home(droplet, COURSE, course(), progress=noop)

    assert result.conclusion == "success", result.summary
    assert "mount --bind / /mnt/disk" in result.summary  # how to reclaim the space
    kinds = [(a.type, a.volume_id is not None) for a in do_fake.actions]
    assert kinds.index(("snapshot", False)) < kinds.index(("attach", True))
    on_volume = ssh_target.sandbox / "volumes" / VOLUME / "home"
    assert manifest(on_volume) == original
    assert manifest(ssh_target.sandbox / "home") == original  # untouched, under the mount
    seen = await observed(droplet)
    assert (seen.home_volume, seen.home_on_volume) == (VOLUME, True)
    assert ssh_target.state("services")["jupyterhub"] == "active"

    again = await movehome.move_home(droplet, COURSE, course(), progress=noop)
    assert again.conclusion == "neutral" and again.title == "Already moved"


async def test_a_copy_that_fails_its_check_leaves_everything_as_it_was(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    original = await existing_course(droplet, ssh_target, do_fake)
    ssh_target.corrupt_next_copy()

    failed = await movehome.move_home(droplet, COURSE, course(), progress=noop)

    assert failed.conclusion == "failure"
    assert "check failed" in failed.summary and "as it was" in failed.summary
    assert manifest(ssh_target.sandbox / "home") == original
    assert not (await observed(droplet)).home_on_volume
    assert ssh_target.state("services")["jupyterhub"] == "active"
    volume_root = ssh_target.sandbox / "volumes" / VOLUME
    assert not (volume_root / "home.moving").exists()

    fixed = await movehome.move_home(droplet, COURSE, course(), progress=noop)
    assert fixed.conclusion == "success", fixed.summary
    assert (await observed(droplet)).home_on_volume


async def test_a_cut_connection_during_the_copy_is_finished_by_the_retry(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    original = await existing_course(droplet, ssh_target, do_fake)
    ssh_target.cut_next("cp")

    result = await movehome.move_home(droplet, COURSE, course(), progress=noop)
    if result.conclusion != "success":
        result = await movehome.move_home(droplet, COURSE, course(), progress=noop)

    assert result.conclusion == "success", result.summary
    assert not (ssh_target.sandbox / "control" / "cp.cut").exists(), "the cut happened"
    assert manifest(ssh_target.sandbox / "home") == original
    assert (await observed(droplet)).home_on_volume
    assert len(do_fake.volumes) == 1
