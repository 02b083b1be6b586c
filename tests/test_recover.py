"""``/recover``: reading the record of users (pure), then a lost droplet brought back over
real SSH, with the fake DigitalOcean playing the account and the loopback SSH target
playing the new droplet (``replace_machine``: an empty disk; the volume's folder stays).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deploy import operations
from deploy.providers.droplets import DropletDriver
from deploy.volumes import homevolume
from deploy.volumes import recover as rec
from deploy.volumes.volume_driver import RESTORE_TAG, VolumeDriver
from tests.support.engine import OWNER, TAGS, instant, noop
from tests.support.recovery import assert_recovered, student_files
from tests.support.volume_course import COURSE, NAME, VOLUME, course

# ---- pure ----------------------------------------------------------------------------------


def test_recorded_users_are_read_with_their_numbers() -> None:
    text = (
        "jupyter-alice:x:1001:1001::/home/jupyter-alice:/bin/bash\n"
        "\n"
        "jupyter-bob.2:x:1002:1005::/home/jupyter-bob.2:/bin/bash\n"
        "jupyter-alice:x:1009:1009::/home/jupyter-alice:/bin/bash\n"  # older line: ignored
    )
    assert rec.parse_users(text) == [
        rec.LinuxUser("jupyter-alice", 1001, 1001),
        rec.LinuxUser("jupyter-bob.2", 1002, 1005),
    ]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("root:x:0:0::/root:/bin/bash", "'root' is not a user TLJH makes"),
        ("jupyter-a;reboot:x:1001:1001::/h:/bin/sh", "is not a user TLJH makes"),
        ("jupyter-alice:x:0:1001::/h:/bin/sh", "UID '0' is not a number from 1000"),
        ("jupyter-alice:x:1001:$(id):/h:/bin/sh", "is not a passwd line"),
        ("jupyter-alice:x:1001:1e3::/h:/bin/sh", "GID '1e3' is not a number"),
        ("jupyter-alice:x:1001", "is not a passwd line"),
    ],
)
def test_a_line_that_is_not_a_students_account_is_refused_with_its_number(line, said) -> None:
    text = f"jupyter-ok:x:1000:1000::/home/jupyter-ok:/bin/bash\n{line}\n"
    with pytest.raises(rec.RecoverError) as refused:
        rec.parse_users(text)
    assert f"line 2 of {homevolume.USERS_FILE}" in str(refused.value)
    assert said in str(refused.value)


def test_two_users_with_one_uid_are_refused() -> None:
    text = "jupyter-a:x:1001:1001::/h:/s\njupyter-b:x:1001:1002::/h:/s\n"
    with pytest.raises(rec.RecoverError, match="UID 1001 is also jupyter-a's"):
        rec.parse_users(text)


def test_a_home_the_record_lacks_adds_its_owner_unless_the_uid_is_taken() -> None:
    output = (
        "jupyter-alice:x:1001:1001::/home/jupyter-alice:/bin/bash\n"
        f"{rec.HOMES_SECTION}\n"
        "/mnt/classroom-home/home/jupyter-alice:1001:1001\n"
        "/mnt/classroom-home/home/jupyter-bob:1002:1002\n"
        "/mnt/classroom-home/home/jupyter-eve:1001:1001\n"  # alice's UID: not taken twice
        "/mnt/classroom-home/home/jupyter-root:0:0\n"  # not a person's account
    )
    assert rec.users_to_recreate(output) == [
        rec.LinuxUser("jupyter-alice", 1001, 1001),
        rec.LinuxUser("jupyter-bob", 1002, 1002),
    ]


def test_the_recorded_address_is_taken_only_when_it_is_one_ipv4_address() -> None:
    assert rec.recorded_address(f"x\n{rec.ADDRESS_SECTION}\n203.0.113.7\n") == "203.0.113.7"
    for bad in ("", "203.0.113.7; reboot", "::1", "203.0.113.7\n10.0.0.1"):
        assert rec.recorded_address(f"{rec.ADDRESS_SECTION}\n{bad}\n") is None
    with pytest.raises(ValueError):
        homevolume.record_users_script("$(reboot)")


def test_scripts_are_valid_shell_with_each_value_one_word() -> None:
    users = [rec.LinuxUser("jupyter-a.b_c-d", 1001, 1002)]
    scripts = [
        rec.mount_script(VOLUME),
        rec.users_script(users),
        rec.read_users_script(),
        homevolume.record_users_script(),
        homevolume.record_users_script("203.0.113.7"),
    ]
    for script in scripts:
        checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
        assert checked.returncode == 0, checked.stderr
    assert (
        "useradd -u 1001 -g 1002 -d /home/jupyter-a.b_c-d -M -s /bin/bash jupyter-a.b_c-d"
        in (scripts[1])
    )
    with pytest.raises(rec.RecoverError):
        rec.users_script([rec.LinuxUser("jupyter-x y", 1001, 1001)])


# ---- over SSH --------------------------------------------------------------------------------


async def deployed_then_lost(engine, ssh_target, do_fake) -> tuple[int, dict[Path, bytes]]:
    """A course deployed with its volume; alice has an account (recorded by the deploy),
    bob logged in after it; then the droplet is destroyed in the control panel."""
    do_fake.new_droplet_address = ssh_target.host
    do_fake.on_detach = lambda volume, _droplet: ssh_target.detach_volume(volume.name)
    ssh_target.attach_volume(VOLUME)  # turns on block storage and the account stand-ins
    ssh_target.detach_volume(VOLUME)
    ssh_target.add_account("jupyter-alice", 1001, 1001)
    first = await operations.deploy(engine, COURSE, course(), mode="apply", progress=noop)
    assert first.conclusion == "success", first.summary
    ssh_target.add_account("jupyter-bob", 1002, 1002)
    files = student_files(ssh_target)
    recorded = (ssh_target.sandbox / "volumes" / VOLUME / "classroom-users").read_text()
    assert recorded.startswith("jupyter-alice:x:1001:1001:")
    old = engine.records.records[COURSE]
    do_fake.lose_droplet(old.droplet_id)
    ssh_target.replace_machine()
    return old.droplet_id, files


@pytest.mark.sshd
async def test_a_lost_droplet_comes_back_with_accounts_uids_address_and_files(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    old_id, files = await deployed_then_lost(droplet, ssh_target, do_fake)
    lost = await rec.lost_droplet(droplet.droplets, droplet.records.records[COURSE], NAME, OWNER)
    assert lost == f"DigitalOcean answers 404 (not found) for droplet {old_id}"
    lost = await rec.lost_droplet(droplet.droplets, None, NAME, OWNER)
    assert lost == f"DigitalOcean has no droplet of this course (tagged {OWNER})"
    before = len(ssh_target.calls())

    result = await rec.recover(droplet, COURSE, course(), progress=noop)

    assert result.conclusion == "success", result.summary
    assert_recovered(droplet.records.records[COURSE], ssh_target, do_fake, old_id, files)
    calls = [c["program"] for c in ssh_target.calls()[before:]]
    assert "mkfs.ext4" not in calls
    # The accounts are there before TLJH's installer (and so before anyone is spawned).
    assert max(i for i, p in enumerate(calls) if p == "useradd") < calls.index("bootstrap")
    assert result.details["users"] == ["jupyter-alice", "jupyter-bob"]
    created = [r for r in do_fake.requests if (r.method, r.path) == ("POST", "/v2/droplets")]
    assert [(r.body["name"], r.body["region"], r.body["tags"]) for r in created] == [
        (NAME, "syd1", TAGS)
    ]
    # The new droplet's deploy recorded bob too.
    recorded = (ssh_target.sandbox / "volumes" / VOLUME / "classroom-users").read_text()
    assert "jupyter-bob:x:1002:1002:" in recorded

    again = await rec.recover(droplet, COURSE, course(), progress=noop)
    assert again.conclusion == "failure" and "nothing to recover" in again.summary


@pytest.mark.sshd
async def test_nothing_to_recover_while_the_droplet_is_there(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    ssh_target.attach_volume(VOLUME)
    ssh_target.detach_volume(VOLUME)
    first = await operations.deploy(droplet, COURSE, course(), mode="apply", progress=noop)
    assert first.conclusion == "success", first.summary
    droplets_before = dict(do_fake.droplets)

    refused = await rec.recover(droplet, COURSE, course(), progress=noop)

    assert (refused.conclusion, refused.title) == ("failure", "Nothing recovered")
    assert "is there and the hub is installed" in refused.summary
    assert do_fake.droplets == droplets_before
    no_storage = await rec.recover(droplet, COURSE, course(""), progress=noop)
    assert "needs `storage`" in no_storage.summary


@pytest.mark.sshd
@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize(
    "step",
    [
        "GET /v2/droplets/{droplet_id}",
        "POST /v2/droplets",
        "GET /v2/volumes",
        "POST /v2/volumes/{volume_id}/actions",
        "POST /v2/reserved_ips/{reserved_ip}/actions",
    ],
)
async def test_a_failing_digitalocean_step_then_recover_again_completes_it(
    droplet,
    ssh_target,
    do_fake,
    step,
    status,
) -> None:
    old_id, files = await deployed_then_lost(droplet, ssh_target, do_fake)
    do_fake.fail(step, status, times=1000)

    failed = await rec.recover(droplet, COURSE, course(), progress=noop)

    assert failed.conclusion == "failure", failed.summary
    assert "comment `/recover` again" in failed.summary
    for path, content in files.items():
        assert path.read_bytes() == content
    do_fake._faults.clear()
    done = await rec.recover(droplet, COURSE, course(), progress=noop)
    assert done.conclusion == "success", done.summary
    assert_recovered(droplet.records.records[COURSE], ssh_target, do_fake, old_id, files)


@pytest.mark.sshd
@pytest.mark.parametrize("program", ["mount", "useradd", "bootstrap"])
async def test_an_ssh_cut_during_recover_then_recover_again_completes_it(
    droplet,
    ssh_target,
    do_fake,
    program,
) -> None:
    old_id, files = await deployed_then_lost(droplet, ssh_target, do_fake)
    ssh_target.cut_next(program)
    ssh_target.fail_next("groupadd" if program == "useradd" else program)

    first = await rec.recover(droplet, COURSE, course(), progress=noop)

    assert first.conclusion == "failure", first.summary
    for path, content in files.items():
        assert path.read_bytes() == content
    done = await rec.recover(droplet, COURSE, course(), progress=noop)
    assert done.conclusion == "success", done.summary
    assert_recovered(droplet.records.records[COURSE], ssh_target, do_fake, old_id, files)


@pytest.mark.sshd
async def test_a_volume_without_a_filesystem_is_never_formatted_by_recover(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    await deployed_then_lost(droplet, ssh_target, do_fake)
    filesystems = ssh_target.sandbox / "state" / "filesystems.json"
    filesystems.write_text("{}")  # blkid finds no filesystem on it now
    before = len(ssh_target.calls())

    refused = await rec.recover(droplet, COURSE, course(), progress=noop)

    assert refused.conclusion == "failure"
    assert "holds no filesystem" in refused.summary and "nothing was formatted" in refused.summary
    calls = [c["program"] for c in ssh_target.calls()[before:]]
    assert "mkfs.ext4" not in calls and "bootstrap" not in calls


@pytest.mark.parametrize("last", [VOLUME, f"{NAME}-from-20260301-020000"])
async def test_of_the_courses_volumes_the_one_attached_last_holds_the_homes(do_fake, last) -> None:
    """After ``/restore --all`` the course has two volumes; either may be current."""
    driver = DropletDriver(do_fake.token, poll_interval=0.001, timeout=1.0, sleep=instant)
    volumes = VolumeDriver(driver)
    made = do_fake.add_droplet(NAME, tags=TAGS)
    first = do_fake.add_volume(VOLUME, tags=TAGS)
    swapped = do_fake.add_volume(f"{NAME}-from-20260301-020000", tags=TAGS)
    do_fake.add_volume(f"{NAME}-restore-20260301-020000", tags=[*TAGS, RESTORE_TAG])
    order = [first, swapped] if last == swapped.name else [swapped, first]
    for volume in order:
        info = await volumes.attach(await volumes.get_volume(volume.id), OWNER, made.id, noop)
        await volumes.detach(info, made.id, noop)
    do_fake.lose_droplet(made.id)

    chosen = await rec._course_volume(volumes, course(), "syd1", noop)

    assert chosen.name == last
    assert do_fake.deleted_volumes == []


@pytest.mark.sshd
async def test_with_the_database_lost_the_address_recorded_on_the_volume_is_kept(
    droplet,
    ssh_target,
    do_fake,
) -> None:
    old_id, files = await deployed_then_lost(droplet, ssh_target, do_fake)
    forgotten = droplet.records.records.pop(COURSE)  # the database is a cache
    assert forgotten.reserved_ip

    result = await rec.recover(droplet, COURSE, course(), progress=noop)

    assert result.conclusion == "success", result.summary
    record = droplet.records.records[COURSE]
    assert record.reserved_ip == forgotten.reserved_ip
    assert result.hub_url == f"http://{forgotten.reserved_ip}"
    assert_recovered(record, ssh_target, do_fake, old_id, files)
