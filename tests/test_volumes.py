"""Tests of the volume driver: pure names and retention, then end to end on the fake API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.course.validate import DROPLET_NAME
from deploy.model import DROPLET_TAG
from deploy.ownership import course_tag
from deploy.providers.droplets import DropletDriver, DropletError
from deploy.volumes.volume_driver import (
    RESTORE_TAG,
    VOLUME_NAME_PATTERN,
    SnapshotInfo,
    VolumeDriver,
    VolumeError,
    home_volume_name,
    is_own_snapshot,
    restore_volume_name,
    size_change,
    snapshot_name,
    snapshots_beyond_keep,
    swapped_volume_name,
)
from tests.fakes.digitalocean import DigitalOceanFake

SERVER = "physics101-hub"
POLL = 0.001
T0 = datetime(2026, 3, 1, 2, 0, 0, tzinfo=UTC)


# ---- pure ------------------------------------------------------------------------------------
OWNER = course_tag(1001)  # the course these tests act for
OTHER = course_tag(2002)  # another course of the same service


def test_names_follow_the_server_name() -> None:
    assert home_volume_name(SERVER) == "physics101-hub-home"
    assert snapshot_name(SERVER, T0) == "physics101-hub-home-20260301-020000"
    assert restore_volume_name(SERVER, "20260301-020000") == (
        "physics101-hub-restore-20260301-020000"
    )
    assert swapped_volume_name(SERVER, "20260301-020000") == "physics101-hub-from-20260301-020000"


@given(st.from_regex(DROPLET_NAME, fullmatch=True).filter(lambda n: len(n) <= 253))
def test_every_droplet_name_gives_a_valid_volume_name(name: str) -> None:
    volume = home_volume_name(name)
    assert VOLUME_NAME_PATTERN.fullmatch(volume) and len(volume) <= 64
    restore = restore_volume_name(name, "20260301-020000")
    assert VOLUME_NAME_PATTERN.fullmatch(restore) and len(restore) <= 64
    swapped = swapped_volume_name(name, "20260301-020000")
    assert VOLUME_NAME_PATTERN.fullmatch(swapped) and len(swapped) <= 64


def test_a_restore_time_that_is_not_a_time_is_refused() -> None:
    with pytest.raises(VolumeError, match="not a snapshot time"):
        restore_volume_name(SERVER, "x; rm -rf /")


def snap(name: str, age_hours: int, tags: tuple[str, ...] = (DROPLET_TAG, OWNER)) -> SnapshotInfo:
    return SnapshotInfo(
        id=f"id-{name}-{age_hours}",
        name=name,
        created_at=T0 - timedelta(hours=age_hours),
        size_gib=1.5,
        min_disk_size=20,
        tags=tags,
        resource_id="vol",
    )


def twenty_snapshots() -> tuple[list[SnapshotInfo], list[SnapshotInfo]]:
    """Twenty snapshots: twelve this service took of this course, eight foreign ones."""
    own = [snap(snapshot_name(SERVER, T0 - timedelta(hours=h)), h) for h in range(12)]
    foreign = [
        snap(snapshot_name(SERVER, T0 - timedelta(hours=100)), 100, tags=()),  # untagged
        snap(snapshot_name(SERVER, T0 - timedelta(hours=101)), 101, tags=("mine",)),
        snap(snapshot_name("chem200-hub", T0 - timedelta(hours=102)), 102),  # another course
        snap("physics101-hub-home-before-exam", 103),  # a person's own name
        snap("physics101-hub-homework-20260101-000000", 104),
        snap("physics101-hub-home-20260101-000000-copy", 105),
        snap("x-physics101-hub-home-20260101-000000", 106),
        snap("physics101-hub-home-2026", 107),
    ]
    return own, foreign


def test_retention_deletes_only_own_snapshots_beyond_keep_oldest_first() -> None:
    own, foreign = twenty_snapshots()
    doomed = snapshots_beyond_keep([*foreign, *own], SERVER, OWNER, keep=5)
    assert doomed == sorted(own[5:], key=lambda s: s.created_at)
    assert not set(doomed) & set(foreign)


def test_retention_with_fewer_than_keep_deletes_nothing() -> None:
    own, foreign = twenty_snapshots()
    assert snapshots_beyond_keep([*own, *foreign], SERVER, OWNER, keep=14) == []


def test_only_tagged_snapshots_with_the_exact_name_are_own() -> None:
    own, foreign = twenty_snapshots()
    assert all(is_own_snapshot(s, SERVER, OWNER) for s in own)
    assert not any(is_own_snapshot(s, SERVER, OWNER) for s in foreign)


def test_growing_is_allowed_and_shrinking_refused_with_what_to_do() -> None:
    assert size_change(20, 30, "v") == 30
    assert size_change(20, 20, "v") is None
    with pytest.raises(VolumeError) as refused:
        size_change(40, 20, "physics101-hub-home")
    message = str(refused.value)
    assert "storage.size is 20 GiB" in message and "already holds 40" in message
    assert "40 or more" in message


# ---- end to end against the fake -------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def progress(self, line: str) -> None:
        self.lines.append(line)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def volumes(fake: DigitalOceanFake, rec: Recorder) -> VolumeDriver:
    droplets = DropletDriver(fake.token, poll_interval=POLL, timeout=1.0, sleep=rec.sleep)
    return VolumeDriver(droplets)


async def test_new_course_volume_is_created_tagged_in_the_region_and_found_again(
    do_fake, rec
) -> None:
    driver = volumes(do_fake, rec)
    made = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)
    again = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)

    assert again == made
    assert (made.name, made.region, made.size_gib) == ("physics101-hub-home", "syd1", 20)
    [create] = do_fake.calls("POST", "/v2/volumes")
    assert create.body == {
        "name": "physics101-hub-home",
        "region": "syd1",
        "size_gigabytes": 20,
        "tags": [DROPLET_TAG, OWNER],
    }
    # Nothing asks DigitalOcean to format it: the server decides, from what blkid sees.
    assert "filesystem_type" not in create.body


async def test_raising_the_size_grows_the_volume_and_shrinking_is_refused(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    do_fake.add_volume("physics101-hub-home", size_gigabytes=20, tags=[DROPLET_TAG, OWNER])

    grown = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 30, rec.progress)
    assert grown.size_gib == 30
    assert do_fake.volume_action_types() == ["resize"]

    with pytest.raises(VolumeError, match="can only grow"):
        await driver.ensure_home_volume(SERVER, OWNER, "syd1", 25, rec.progress)
    assert do_fake.volume_action_types() == ["resize"]
    assert [v.size_gigabytes for v in do_fake.volumes.values()] == [30]


@pytest.mark.parametrize("tags", [["someone-else"], [DROPLET_TAG], [DROPLET_TAG, OTHER]])
async def test_a_same_named_volume_not_the_courses_is_left_alone(do_fake, rec, tags) -> None:
    stranger = do_fake.add_volume("physics101-hub-home", tags=tags)
    with pytest.raises(DropletError, match="already exists"):
        await volumes(do_fake, rec).ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)
    assert do_fake.volumes[stranger.id].tags == tags
    assert do_fake.volume_action_types() == []


async def test_another_courses_volume_on_no_droplet_is_never_found(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    do_fake.add_volume("physics101-hub-home", tags=[DROPLET_TAG, OTHER])
    assert await driver.current_home_volume(SERVER, OWNER, "syd1", None) is None
    assert await driver.course_volumes(SERVER, OWNER, "syd1") == []
    assert await driver.find_volume("physics101-hub-home", "syd1", OWNER) is None


async def test_a_volume_made_before_tags_is_adopted_only_on_the_courses_droplet(
    do_fake, rec
) -> None:
    driver = volumes(do_fake, rec)
    droplet = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    elsewhere = do_fake.add_volume("physics101-hub-home", tags=[DROPLET_TAG])
    assert await driver.current_home_volume("physics101-hub", OWNER, "syd1", droplet.id) is None
    assert do_fake.volumes[elsewhere.id].tags == [DROPLET_TAG]  # by name alone: not taken

    old = do_fake.add_volume("old-name-home", tags=[DROPLET_TAG], droplet_id=droplet.id)
    found = await driver.current_home_volume("physics101-hub-lp", OWNER, "syd1", droplet.id)
    assert found is not None and found.id == old.id
    assert do_fake.volumes[old.id].tags == [DROPLET_TAG, OWNER]


async def test_another_courses_volume_is_never_attached_or_snapshotted(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    droplet = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    theirs = await driver.ensure_home_volume("chem200-hub", OTHER, "syd1", 20, rec.progress)
    with pytest.raises(VolumeError, match="not this course's"):
        await driver.attach(theirs, OWNER, droplet.id, rec.progress)
    with pytest.raises(VolumeError, match="not this course's"):
        await driver.take_snapshot(theirs, "chem200-hub", OWNER, T0, rec.progress)
    assert do_fake.volume_action_types() == []
    assert do_fake.calls("POST", "/v2/volumes/") == []


async def test_attach_once_and_never_take_a_volume_from_another_droplet(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    droplet = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    other = do_fake.add_droplet("chem200-hub", tags=[DROPLET_TAG, OWNER])
    volume = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)

    attached = await driver.attach(volume, OWNER, droplet.id, rec.progress)
    assert attached.droplet_ids == (droplet.id,)
    assert await driver.attach(attached, OWNER, droplet.id, rec.progress) == attached
    assert do_fake.volume_action_types() == ["attach"]
    assert droplet.to_json()["volume_ids"] == [volume.id]

    with pytest.raises(VolumeError, match="left there"):
        await driver.attach(attached, OWNER, other.id, rec.progress)
    assert do_fake.volume_action_types() == ["attach"]


async def test_an_errored_attach_is_reported(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    droplet = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    volume = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)
    do_fake.error_action("attach")
    with pytest.raises(VolumeError, match="volume attach failed"):
        await driver.attach(volume, OWNER, droplet.id, rec.progress)
    # Trying again completes it.
    assert (await driver.attach(volume, OWNER, droplet.id, rec.progress)).droplet_ids == (
        droplet.id,
    )


async def test_snapshot_is_named_and_tagged_and_listed(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    volume = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)

    taken = await driver.take_snapshot(volume, SERVER, OWNER, T0, rec.progress)

    assert taken.name == "physics101-hub-home-20260301-020000"
    assert taken.tags == (DROPLET_TAG, OWNER)
    [request] = do_fake.calls("POST", f"/v2/volumes/{volume.id}/snapshots")
    assert request.body == {"name": taken.name, "tags": [DROPLET_TAG, OWNER]}
    assert await driver.list_snapshots(SERVER, OWNER) == [taken]
    # The same time again finds the snapshot rather than asking for a second one.
    assert await driver.take_snapshot(volume, SERVER, OWNER, T0, rec.progress) == taken
    assert len(do_fake.calls("POST", f"/v2/volumes/{volume.id}/snapshots")) == 1


async def test_retention_in_the_account_deletes_only_own_snapshots_beyond_keep(
    do_fake, rec
) -> None:
    driver = volumes(do_fake, rec)
    home = do_fake.add_volume("physics101-hub-home", tags=[DROPLET_TAG, OWNER])
    other = do_fake.add_volume("chem200-hub-home", tags=[DROPLET_TAG, OWNER])
    own = [
        do_fake.add_volume_snapshot(
            home,
            snapshot_name(SERVER, T0 - timedelta(days=d)),
            tags=[DROPLET_TAG, OWNER],
            created_at=(T0 - timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for d in range(14)
    ]
    foreign = [
        do_fake.add_volume_snapshot(home, snapshot_name(SERVER, T0 - timedelta(days=30))),
        do_fake.add_volume_snapshot(
            home, "physics101-hub-home-before-exam", tags=[DROPLET_TAG, OWNER]
        ),
        do_fake.add_volume_snapshot(home, "manual-backup", tags=[DROPLET_TAG, OWNER]),
        do_fake.add_volume_snapshot(
            other, snapshot_name("chem200-hub", T0 - timedelta(days=40)), tags=[DROPLET_TAG, OWNER]
        ),
        do_fake.add_volume_snapshot(
            home, snapshot_name(SERVER, T0 - timedelta(days=50)), tags=["other-tool"]
        ),
        do_fake.add_volume_snapshot(home, "physics101-hub-homework-20250101-000000"),
    ]
    assert len(do_fake.snapshots) == 20

    deleted = await driver.prune_snapshots(SERVER, OWNER, 5, rec.progress)

    assert sorted(s.id for s in deleted) == sorted(s["id"] for s in own[5:])
    assert sorted(s["id"] for s in do_fake.deleted_snapshots) == sorted(s["id"] for s in own[5:])
    left = {s["id"] for s in do_fake.snapshots}
    assert left == {s["id"] for s in own[:5] + foreign}
    assert not do_fake.calls("DELETE", "/v2/volumes")
    # Run again: nothing more to delete.
    assert await driver.prune_snapshots(SERVER, OWNER, 5, rec.progress) == []


async def test_restore_volume_is_made_attached_then_detached_and_deleted(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    droplet = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    home = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)
    home = await driver.attach(home, OWNER, droplet.id, rec.progress)
    snapshot = await driver.take_snapshot(home, SERVER, OWNER, T0, rec.progress)

    temporary = await driver.create_restore_volume(snapshot, SERVER, OWNER, "syd1", rec.progress)
    assert temporary.name == "physics101-hub-restore-20260301-020000"
    assert set(temporary.tags) == {DROPLET_TAG, RESTORE_TAG, OWNER}
    assert do_fake.volumes[temporary.id].snapshot_id == snapshot.id
    temporary = await driver.attach(temporary, OWNER, droplet.id, rec.progress)

    await driver.delete_restore_volume(temporary, SERVER, OWNER, droplet.id, rec.progress)

    assert [v.id for v in do_fake.deleted_volumes] == [temporary.id]
    assert home.id in do_fake.volumes and do_fake.volumes[home.id].droplet_ids == [droplet.id]


async def test_the_home_volume_is_never_deleted_even_if_asked(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    home = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)
    # Even a volume tagged like a restore volume is refused unless its name is one.
    disguised = home.__class__(**{**home.__dict__, "tags": (DROPLET_TAG, RESTORE_TAG, OWNER)})
    for volume in (home, disguised):
        with pytest.raises(VolumeError, match="never deleted"):
            await driver.delete_restore_volume(volume, SERVER, OWNER, 1, rec.progress)
    assert not do_fake.calls("DELETE", "/v2/volumes")
    assert not do_fake.deleted_volumes


async def test_reserved_ip_is_reserved_once_and_moves_to_a_new_droplet(do_fake, rec) -> None:
    driver = volumes(do_fake, rec)
    first = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    ip = await driver.ensure_reserved_ip(first.id, "syd1", rec.progress)
    assert await driver.ensure_reserved_ip(first.id, "syd1", rec.progress) == ip
    assert len(do_fake.calls("POST", "/v2/reserved_ips")) == 1

    second = do_fake.add_droplet(SERVER + "-2", tags=[DROPLET_TAG, OWNER])
    await driver.assign_reserved_ip(ip, second.id, rec.progress)
    assert do_fake.reserved_ips[ip].droplet_id == second.id
    await driver.assign_reserved_ip(ip, second.id, rec.progress)
    assert [a.type for a in do_fake.actions if a.reserved_ip] == ["assign"]


STEPS = [
    "GET /v2/volumes",
    "POST /v2/volumes",
    "GET /v2/volumes/{volume_id}",
    "POST /v2/volumes/{volume_id}/actions",
    "GET /v2/volumes/{volume_id}/actions/{action_id}",
    "GET /v2/snapshots",
    "POST /v2/volumes/{volume_id}/snapshots",
    "DELETE /v2/snapshots/{snapshot_id}",
    "DELETE /v2/volumes/{volume_id}",
    "GET /v2/reserved_ips",
    "POST /v2/reserved_ips",
]


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("step", STEPS)
async def test_a_transient_fault_at_each_step_is_retried_and_nothing_is_doubled(
    do_fake, rec, step, status
) -> None:
    driver = volumes(do_fake, rec)
    droplet = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    home = do_fake.add_volume("physics101-hub-home", tags=[DROPLET_TAG, OWNER])
    for d in range(3):
        do_fake.add_volume_snapshot(
            home,
            snapshot_name(SERVER, T0 - timedelta(days=d + 1)),
            tags=[DROPLET_TAG, OWNER],
            created_at=(T0 - timedelta(days=d + 1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    del do_fake.volumes[home.id]  # the snapshots outlive their volume; the course starts anew
    do_fake.fail(step, status, times=2, retry_after=0 if status == 429 else None)

    volume = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)
    volume = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 30, rec.progress)
    volume = await driver.attach(volume, OWNER, droplet.id, rec.progress)
    taken = await driver.take_snapshot(volume, SERVER, OWNER, T0, rec.progress)
    await driver.prune_snapshots(SERVER, OWNER, 2, rec.progress)
    temporary = await driver.create_restore_volume(taken, SERVER, OWNER, "syd1", rec.progress)
    temporary = await driver.attach(temporary, OWNER, droplet.id, rec.progress)
    await driver.delete_restore_volume(temporary, SERVER, OWNER, droplet.id, rec.progress)
    await driver.ensure_reserved_ip(droplet.id, "syd1", rec.progress)

    assert [v.name for v in do_fake.volumes.values()] == ["physics101-hub-home"]
    assert do_fake.volumes[volume.id].size_gigabytes == 30
    assert do_fake.volumes[volume.id].droplet_ids == [droplet.id]
    assert [v.id for v in do_fake.deleted_volumes] == [temporary.id]
    names = sorted(s["name"] for s in do_fake.snapshots)
    assert names == [snapshot_name(SERVER, T0 - timedelta(days=1)), taken.name]
    assert len(do_fake.reserved_ips) == 1
    assert any(r.status == status for r in do_fake.requests)


@pytest.mark.parametrize("step", ["POST /v2/volumes", "POST /v2/volumes/{volume_id}/snapshots"])
async def test_a_create_whose_answer_is_lost_is_found_not_made_twice(do_fake, rec, step) -> None:
    driver = volumes(do_fake, rec)
    droplet = do_fake.add_droplet(SERVER, tags=[DROPLET_TAG, OWNER])
    do_fake.lose_answer(step, times=1)

    volume = await driver.ensure_home_volume(SERVER, OWNER, "syd1", 20, rec.progress)
    volume = await driver.attach(volume, OWNER, droplet.id, rec.progress)
    taken = await driver.take_snapshot(volume, SERVER, OWNER, T0, rec.progress)
    do_fake.lose_answer(step, times=1)
    temporary = await driver.create_restore_volume(taken, SERVER, OWNER, "syd1", rec.progress)

    assert sorted(v.name for v in do_fake.volumes.values()) == [volume.name, temporary.name]
    assert [s["name"] for s in do_fake.snapshots] == [taken.name]
    assert any(r.status == 500 for r in do_fake.requests)
