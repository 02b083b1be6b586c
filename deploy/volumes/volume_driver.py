"""Drive a course's DigitalOcean block storage: its home volume, snapshots, restores, address.

One volume per course, ``<server.name>-home``, in the droplet's region and tagged
``littlest-classroom``, holds ``/home`` and the hub's state. This module finds or makes
it, attaches it, grows it (never shrinks it), snapshots it, lists and prunes its
snapshots, makes and removes the temporary volumes a restore reads from, and keeps the
course's reserved IP on its droplet.

The pure half (names, which snapshots retention deletes, what a size change means) has
no I/O; ``VolumeDriver`` does the calls, through the droplet driver's plumbing
(python-digitalocean in worker threads, one retry policy). Safety invariant 8: nothing
here formats anything, and the only things it ever deletes are its own tagged snapshots
beyond ``backup.keep`` and the restore volumes it made (``delete_restore_volume`` refuses
any other volume). Like the droplet driver, it never rebuilds, restores or destroys a
droplet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import digitalocean

from deploy.model import DROPLET_TAG, Progress
from deploy.ownership import MAX_BASE, owner_tags, readable_part
from deploy.providers.digitalocean_api import DELETE, GET, POST
from deploy.providers.droplets import DropletDriver, DropletError
from deploy.redact import redact

HOME_SUFFIX = "-home"
RESTORE_MARK = "-restore-"
SWAP_MARK = "-from-"  # a course volume made from a snapshot by /restore --all
# Temporary volumes made from a snapshot carry this tag too, so they can be told apart
# from every volume that ever held a course's homes.
RESTORE_TAG = "littlest-classroom-restore"
STAMP_FORMAT = "%Y%m%d-%H%M%S"
_STAMP = r"[0-9]{8}-[0-9]{6}"
# DigitalOcean's rule for volume names: lowercase letters, digits and '-', starting with a
# letter, at most 64 characters.
VOLUME_NAME_PATTERN = re.compile(r"[a-z](?:[a-z0-9-]{0,62}[a-z0-9])?")
MAX_VOLUME_NAME = 64
assert MAX_BASE + len(RESTORE_MARK) + len("20250301-020000") <= MAX_VOLUME_NAME


class VolumeError(DropletError):
    """A volume operation DigitalOcean refused, or this module refuses, said plainly."""


@dataclass(frozen=True)
class VolumeInfo:
    id: str
    name: str
    region: str
    size_gib: int
    droplet_ids: tuple[int, ...]
    tags: tuple[str, ...]
    # This operation asked DigitalOcean to create it: the only volume ever formatted. Not
    # part of what the volume is, so a volume equals itself found again.
    created: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    name: str
    created_at: datetime
    size_gib: float  # what it holds (what DigitalOcean bills)
    min_disk_size: int  # the smallest volume it can be restored to, GiB
    tags: tuple[str, ...]
    resource_id: str


# ---- pure helpers ------------------------------------------------------------------------


def volume_base(server_name: str) -> str:
    """The front of every volume name of the course: its droplet name, made a valid volume
    name start (dots become '-') and cut to ``MAX_BASE``. A course name (``deploy.ownership``)
    is never cut, so two courses never share a volume name."""
    return readable_part(server_name)[:MAX_BASE].rstrip("-")


def home_volume_name(server_name: str) -> str:
    """``<droplet name>-home``: the course's first volume."""
    return volume_base(server_name) + HOME_SUFFIX


def snapshot_stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(STAMP_FORMAT)


def snapshot_name(server_name: str, when: datetime) -> str:
    """``<droplet name>-home-<UTC time>``: the name of a snapshot this service takes."""
    return f"{home_volume_name(server_name)}-{snapshot_stamp(when)}"


def _stamped(server_name: str, mark: str, stamp: str) -> str:
    if not re.fullmatch(_STAMP, stamp):
        raise VolumeError(f"{stamp[:40]!r} is not a snapshot time like 20250301-020000")
    return volume_base(server_name) + mark + stamp


def restore_volume_name(server_name: str, stamp: str) -> str:
    """The temporary volume a restore reads from; it names the snapshot's time."""
    return _stamped(server_name, RESTORE_MARK, stamp)


def swapped_volume_name(server_name: str, stamp: str) -> str:
    """The course's volume after ``/restore --all`` from the snapshot taken at ``stamp``."""
    return _stamped(server_name, SWAP_MARK, stamp)


def is_home_volume_name(name: str, server_name: str) -> bool:
    """Whether ``name`` is the course's volume: the first one, or one swapped in since."""
    base = volume_base(server_name)
    return name == base + HOME_SUFFIX or (
        re.fullmatch(re.escape(base + SWAP_MARK) + _STAMP, name) is not None
    )


def is_own_snapshot(snapshot: SnapshotInfo, server_name: str, owner: str) -> bool:
    """Whether this service took ``snapshot`` of this course's volume: the course's tag
    and the exact name."""
    pattern = re.escape(home_volume_name(server_name)) + "-" + _STAMP
    return owner in snapshot.tags and re.fullmatch(pattern, snapshot.name) is not None


def snapshot_time(snapshot: SnapshotInfo) -> str:
    """The UTC time in an own snapshot's name (``20250301-020000``)."""
    match = re.search(_STAMP + "$", snapshot.name)
    return match.group(0) if match else snapshot_stamp(snapshot.created_at)


def snapshots_beyond_keep(
    snapshots: Iterable[SnapshotInfo], server_name: str, owner: str, keep: int
) -> list[SnapshotInfo]:
    """What retention deletes: this service's own snapshots of this course, oldest first,
    beyond the newest ``keep``. Anything without the tag or the exact name is never listed.
    """
    if keep < 1:
        raise VolumeError("backup.keep must be at least 1")
    own = sorted(
        (s for s in snapshots if is_own_snapshot(s, server_name, owner)),
        key=lambda s: (s.created_at, s.name),
        reverse=True,
    )
    return sorted(own[keep:], key=lambda s: (s.created_at, s.name))


def size_change(current_gib: int, wanted_gib: int, name: str) -> int | None:
    """The size to grow to, ``None`` when it is already that size; a shrink is refused."""
    if wanted_gib < current_gib:
        raise VolumeError(
            f"storage.size is {wanted_gib} GiB but volume {name} already holds {current_gib} "
            "GiB; a volume can only grow (DigitalOcean cannot shrink one, and it holds the "
            f"students' homes). Set storage.size to {current_gib} or more."
        )
    return wanted_gib if wanted_gib > current_gib else None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _volume_info(data: dict[str, Any]) -> VolumeInfo:
    region = data.get("region")
    return VolumeInfo(
        id=str(data["id"]),
        name=str(data["name"]),
        region=str(region.get("slug", "") if isinstance(region, dict) else region or ""),
        size_gib=int(data.get("size_gigabytes") or 0),
        droplet_ids=tuple(int(d) for d in data.get("droplet_ids") or ()),
        tags=tuple(data.get("tags") or ()),
    )


def _snapshot_info(data: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(
        id=str(data["id"]),
        name=str(data["name"]),
        created_at=_parse_time(str(data["created_at"])),
        size_gib=float(data.get("size_gigabytes") or 0),
        min_disk_size=int(data.get("min_disk_size") or 0),
        tags=tuple(data.get("tags") or ()),
        resource_id=str(data.get("resource_id") or ""),
    )


# ---- the I/O layer -----------------------------------------------------------------------


class VolumeDriver:
    """The calls this service makes about a course's volume, as async methods."""

    def __init__(self, droplets: DropletDriver) -> None:
        self._droplets = droplets

    # ---- plumbing ----

    async def _get(self, what: str, url: str, params: dict[str, Any] | None = None) -> Any:
        return await self._droplets._call(what, self._droplets.api.request, url, GET, params)

    async def _send(self, what: str, url: str, method: str, params: dict[str, Any]) -> Any:
        return await self._droplets._call(what, self._droplets.api.request, url, method, params)

    async def _wait(self, url: str, action: dict[str, Any], what: str) -> None:
        """Poll an action until it completes; VolumeError if it errors or never ends."""
        driver = self._droplets
        action_url = f"{url}/{int(action['id'])}"
        for _ in range(driver._polls(driver.timeout)):
            status = (await self._get(f"report on the {what}", action_url))["action"]["status"]
            if status == "completed":
                return
            if status == "errored":
                raise VolumeError(f"the {what} failed on DigitalOcean's side")
            await driver._sleep(driver.poll_interval)
        raise VolumeError(f"the {what} did not finish within {driver.timeout:g} s")

    async def _volume_action(self, volume: VolumeInfo, what: str, method: str, *args: Any) -> None:
        handle = self._droplets.api.new(digitalocean.Volume, id=volume.id)
        started = await self._droplets._call(f"start the {what}", getattr(handle, method), *args)
        await self._wait(f"volumes/{volume.id}/actions", started["action"], what)

    # ---- the course's volume ----

    async def find_volume(self, name: str, region: str, owner: str) -> VolumeInfo | None:
        """The volume of this name in ``region`` that carries the course's tag ``owner``."""
        data = await self._get(
            f"look for volume {name}", "volumes", {"name": name, "region": region}
        )
        found = [
            v
            for v in (_volume_info(d) for d in data.get("volumes", []))
            if v.name == name and owner in v.tags
        ]
        return found[0] if found else None

    async def _own_volumes(self, owner: str, region: str) -> list[VolumeInfo]:
        """The course's volumes in ``region`` (its tag), the temporary ones left out."""
        data = await self._get("list volumes", "volumes", {"region": region})
        return [
            v
            for v in (_volume_info(d) for d in data.get("volumes", []))
            if owner in v.tags and RESTORE_TAG not in v.tags
        ]

    async def adopt_attached(self, owner: str, region: str, droplet_id: int) -> list[VolumeInfo]:
        """Tag as the course's the volumes made before courses had tags that are attached to
        its droplet (``droplet_id`` comes from the course's own record): the service's tag,
        no course's tag, never a temporary one. Never by name."""
        data = await self._get("list volumes", "volumes", {"region": region})
        legacy = [
            v
            for v in (_volume_info(d) for d in data.get("volumes", []))
            if droplet_id in v.droplet_ids
            and DROPLET_TAG in v.tags
            and RESTORE_TAG not in v.tags
            and not owner_tags(v.tags)
        ]
        if legacy:
            await self._droplets.tag(owner, "volume", [v.id for v in legacy])
        return legacy

    async def current_home_volume(
        self, server_name: str, owner: str, region: str, droplet_id: int | None
    ) -> VolumeInfo | None:
        """The course's volume: the one of its own attached to its droplet (after
        ``/restore --all`` a newer one), else the first, ``<droplet name>-home``."""
        if droplet_id is not None:
            await self.adopt_attached(owner, region, droplet_id)
        own = await self._own_volumes(owner, region)
        attached = [v for v in own if droplet_id is not None and droplet_id in v.droplet_ids]
        if attached:
            return attached[0]
        first = home_volume_name(server_name)
        return next((v for v in own if v.name == first), None)

    async def course_volumes(self, server_name: str, owner: str, region: str) -> list[VolumeInfo]:
        """Every volume that ever held this course's homes: its tag, never a temporary
        restore volume (the first and any swapped in by ``/restore --all``)."""
        return await self._own_volumes(owner, region)

    async def last_attached(self, volume: VolumeInfo) -> tuple[str, int]:
        """When the volume was last attached to a droplet (the time DigitalOcean started
        the attach, then its action id); ``("", 0)`` if never."""
        data = await self._get(
            f"list the actions of volume {volume.name}", f"volumes/{volume.id}/actions"
        )
        attaches = [
            (str(a.get("started_at") or ""), int(a["id"]))
            for a in data.get("actions", [])
            if a.get("type") == "attach" and a.get("status") == "completed"
        ]
        return max(attaches, default=("", 0))

    async def ensure_home_volume(
        self,
        server_name: str,
        owner: str,
        region: str,
        size_gib: int,
        progress: Progress,
        droplet_id: int | None = None,
    ) -> VolumeInfo:
        """The course's home volume, created (empty, unformatted) or grown to ``size_gib``."""
        name = home_volume_name(server_name)
        volume = await self.current_home_volume(server_name, owner, region, droplet_id)
        if volume is not None:
            grow_to = size_change(volume.size_gib, size_gib, volume.name)
            if grow_to is not None:
                await _say(
                    progress,
                    f"Growing volume {volume.name} from {volume.size_gib} to {grow_to} GiB",
                )
                await self._volume_action(volume, "volume resize", "resize", grow_to, volume.region)
                volume = await self.get_volume(volume.id)
            return volume
        await _say(progress, f"Creating volume {name} ({size_gib} GiB) in {region}")
        # Volume.create sends empty optional fields as null, which the API's description
        # does not allow; the same request through the library's transport leaves them out.
        return await self._create_volume(
            name,
            region,
            owner,
            {
                "name": name,
                "region": region,
                "size_gigabytes": size_gib,
                "tags": [DROPLET_TAG, owner],
            },
        )

    async def _create_volume(
        self, name: str, region: str, owner: str, request: dict[str, Any]
    ) -> VolumeInfo:
        try:
            created = await self._send(f"create volume {name}", "volumes", POST, request)
        except DropletError:
            # A create whose answer was lost (or retried after a 5xx) may have happened:
            # the name is unique in a region, so look before saying it failed.
            found = await self.find_volume(name, region, owner)
            if found is None:
                raise
            return replace(found, created=True)
        return replace(_volume_info(created["volume"]), created=True)

    async def get_volume(self, volume_id: str) -> VolumeInfo:
        return _volume_info((await self._get("read the volume", f"volumes/{volume_id}"))["volume"])

    async def attach(
        self, volume: VolumeInfo, owner: str, droplet_id: int, progress: Progress
    ) -> VolumeInfo:
        """``volume`` attached to the droplet; refused if it is on another droplet, or is
        not the course's (``owner``, its tag)."""
        if owner not in volume.tags:
            raise VolumeError(
                f"volume {volume.name} is not this course's (no tag {owner}); it is never attached"
            )
        if droplet_id in volume.droplet_ids:
            return volume
        if volume.droplet_ids:
            raise VolumeError(
                f"volume {volume.name} is attached to droplet {volume.droplet_ids[0]}, not "
                f"{droplet_id}; it is left there rather than taken from a running server"
            )
        await _say(progress, f"Attaching volume {volume.name}")
        await self._volume_action(volume, "volume attach", "attach", droplet_id, volume.region)
        return await self.get_volume(volume.id)

    async def detach(self, volume: VolumeInfo, droplet_id: int, progress: Progress) -> VolumeInfo:
        if droplet_id not in volume.droplet_ids:
            return volume
        await _say(progress, f"Detaching volume {volume.name}")
        await self._volume_action(volume, "volume detach", "detach", droplet_id, volume.region)
        return await self.get_volume(volume.id)

    # ---- snapshots ----

    async def take_snapshot(
        self, volume: VolumeInfo, server_name: str, owner: str, when: datetime, progress: Progress
    ) -> SnapshotInfo:
        """Snapshot the course's volume as ``<droplet name>-home-<UTC time>``, tagged."""
        if owner not in volume.tags:
            raise VolumeError(f"volume {volume.name} is not this course's; it is not snapshotted")
        name = snapshot_name(server_name, when)
        for existing in await self.list_snapshots(server_name, owner):
            if existing.name == name:
                # A snapshot whose answer was lost (or a second request in the same second).
                return existing
        await _say(progress, f"Taking snapshot {name}")
        try:
            created = await self._send(
                f"snapshot volume {volume.name}",
                f"volumes/{volume.id}/snapshots",
                POST,
                {"name": name, "tags": [DROPLET_TAG, owner]},
            )
            snapshot = _snapshot_info(created["snapshot"])
        except DropletError:
            taken = [s for s in await self.list_snapshots(server_name, owner) if s.name == name]
            if not taken:
                raise
            snapshot = taken[0]
        await _say(progress, f"Snapshot {name} is done ({snapshot.size_gib:g} GB)")
        return snapshot

    async def list_snapshots(self, server_name: str, owner: str) -> list[SnapshotInfo]:
        """This course's own volume snapshots, newest first."""
        data = await self._get("list volume snapshots", "snapshots", {"resource_type": "volume"})
        own = [
            s
            for s in (_snapshot_info(d) for d in data.get("snapshots", []))
            if is_own_snapshot(s, server_name, owner)
        ]
        return sorted(own, key=lambda s: (s.created_at, s.name), reverse=True)

    async def own_snapshot(self, server_name: str, owner: str, name: str) -> SnapshotInfo:
        """This course's own snapshot called ``name``; ``VolumeError`` if it has none."""
        for snapshot in await self.list_snapshots(server_name, owner):
            if snapshot.name == name:
                return snapshot
        raise VolumeError(
            f"no snapshot of this course is named {name[:80]!r}; `/restore` lists them"
        )

    async def prune_snapshots(
        self, server_name: str, owner: str, keep: int, progress: Progress
    ) -> list[SnapshotInfo]:
        """Delete this course's own snapshots beyond the newest ``keep``; returns them."""
        doomed = snapshots_beyond_keep(
            await self.list_snapshots(server_name, owner), server_name, owner, keep
        )
        for snapshot in doomed:
            await _say(progress, f"Deleting snapshot {snapshot.name} (keeping the newest {keep})")
            try:
                await self._send(
                    f"delete snapshot {snapshot.name}", f"snapshots/{snapshot.id}", DELETE, {}
                )
            except DropletError as exc:
                if "not found" not in str(exc):  # already gone: what retention wanted
                    raise
        return doomed

    async def create_swap_volume(
        self,
        snapshot: SnapshotInfo,
        server_name: str,
        owner: str,
        region: str,
        size_gib: int,
        progress: Progress,
    ) -> VolumeInfo:
        """The course's next volume, made from ``snapshot`` for ``/restore --all``.

        Tagged like the first one and never deleted: from now on it holds the homes.
        """
        return await self._volume_from_snapshot(
            snapshot,
            server_name,
            owner,
            swapped_volume_name,
            region,
            max(size_gib, snapshot.min_disk_size),
            [DROPLET_TAG, owner],
            progress,
        )

    # ---- restore volumes ----

    async def create_restore_volume(
        self, snapshot: SnapshotInfo, server_name: str, owner: str, region: str, progress: Progress
    ) -> VolumeInfo:
        """A temporary volume made from ``snapshot`` (found again if a try was cut short)."""
        return await self._volume_from_snapshot(
            snapshot,
            server_name,
            owner,
            restore_volume_name,
            region,
            snapshot.min_disk_size,
            [DROPLET_TAG, RESTORE_TAG, owner],
            progress,
        )

    async def _volume_from_snapshot(
        self,
        snapshot: SnapshotInfo,
        server_name: str,
        owner: str,
        volume_name: Callable[[str, str], str],
        region: str,
        size_gib: int,
        tags: list[str],
        progress: Progress,
    ) -> VolumeInfo:
        """A volume made from one of the course's own snapshots, found again by its name
        if an earlier try made it before being cut short."""
        if not is_own_snapshot(snapshot, server_name, owner):
            raise VolumeError(f"{snapshot.name} is not a snapshot of this course's volume")
        name = volume_name(server_name, snapshot_time(snapshot))
        existing = await self.find_volume(name, region, owner)
        if existing is not None:
            return existing
        await _say(progress, f"Making volume {name} from snapshot {snapshot.name}")
        return await self._create_volume(
            name,
            region,
            owner,
            {
                "name": name,
                "region": region,
                "size_gigabytes": size_gib,
                "snapshot_id": snapshot.id,
                "tags": tags,
            },
        )

    async def delete_restore_volume(
        self,
        volume: VolumeInfo,
        server_name: str,
        owner: str,
        droplet_id: int,
        progress: Progress,
    ) -> None:
        """Detach and delete a temporary restore volume of this course; any other volume
        is refused."""
        prefix = volume_base(server_name)
        if (
            RESTORE_TAG not in volume.tags
            or owner not in volume.tags
            or not re.fullmatch(re.escape(prefix + RESTORE_MARK) + _STAMP, volume.name)
        ):
            raise VolumeError(
                f"volume {volume.name} is not a temporary restore volume; it is never deleted"
            )
        volume = await self.detach(volume, droplet_id, progress)
        await _say(progress, f"Deleting the temporary volume {volume.name}")
        try:
            await self._send(f"delete volume {volume.name}", f"volumes/{volume.id}", DELETE, {})
        except DropletError as exc:
            if "not found" not in str(exc):
                raise

    # ---- reserved IP ----

    async def ensure_reserved_ip(self, droplet_id: int, region: str, progress: Progress) -> str:
        """The reserved IP assigned to the droplet, reserving and assigning one if none is."""
        data = await self._get("list reserved IPs", "reserved_ips")
        for reserved in data.get("reserved_ips", []):
            if (reserved.get("droplet") or {}).get("id") == droplet_id:
                return str(reserved["ip"])
        await _say(progress, f"Reserving an IP address in {region} for the droplet")
        created = await self._send(
            "reserve an IP address", "reserved_ips", POST, {"droplet_id": int(droplet_id)}
        )
        return str(created["reserved_ip"]["ip"])

    async def reserved_ip_holder(self, ip: str) -> tuple[bool, int | None]:
        """Whether the account has reserved IP ``ip``, and the droplet it is assigned to."""
        try:
            current = (await self._get(f"read reserved IP {ip}", f"reserved_ips/{ip}"))[
                "reserved_ip"
            ]
        except DropletError as exc:
            if "not found" in str(exc):
                return False, None
            raise
        return True, (current.get("droplet") or {}).get("id")

    async def assign_reserved_ip(self, ip: str, droplet_id: int, progress: Progress) -> None:
        """Move an existing reserved IP to ``droplet_id`` (a new droplet keeps the address)."""
        current = (await self._get(f"read reserved IP {ip}", f"reserved_ips/{ip}"))["reserved_ip"]
        if (current.get("droplet") or {}).get("id") == droplet_id:
            return
        await _say(progress, f"Assigning {ip} to droplet {droplet_id}")
        started = await self._send(
            f"assign {ip}",
            f"reserved_ips/{ip}/actions",
            POST,
            {"type": "assign", "droplet_id": int(droplet_id)},
        )
        await self._wait(f"reserved_ips/{ip}/actions", started["action"], "IP assignment")


async def _say(progress: Progress, line: str) -> None:
    await progress(redact(line))
