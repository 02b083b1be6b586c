"""``/recover``: a course whose droplet is gone comes back from its volume.

The volume holds ``/home`` and the hub's state (accounts and approvals); what it does not
hold is the droplet's ``/etc/passwd``, so each deploy records the Linux users TLJH made
(``jupyter-*``, with their UIDs and GIDs) in a file on the volume. Recovery then:

1. makes a new droplet as a deploy does (same name, region, size and tag; never a
   rebuild, restore or destroy of any droplet);
2. attaches the course's volume, and mounts it only if it holds a filesystem (it is
   never formatted: safety invariant 8);
3. recreates each recorded user with its old UID and GID before TLJH runs, so every
   file in every home still belongs to its student;
4. puts the course's reserved IP on the new droplet;
5. runs the normal deploy, whose TLJH install finds the hub's state on the volume.

Every step finds what an earlier, interrupted try did, so running ``/recover`` again
finishes it. The pure half (the scripts, reading the users file) has no I/O.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, replace

from deploy.engine import (
    UNREACHABLE,
    Engine,
    OperationError,
    droplet_driver,
    hub_url,
    known_server,
    observe_server,
    operation_result,
    owner_tag,
    provision,
    server_target,
    wait_for_ssh,
)
from deploy.host import tljh
from deploy.model import CourseConfig, OperationResult, Progress, ServerRecord, Step
from deploy.operations.deploy_course import deploy
from deploy.planning.render import escape
from deploy.providers.droplets import DropletDriver, DropletError
from deploy.ssh import SSHError
from deploy.volumes.homevolume import (
    ADDRESS_FILE,
    MOUNT_POINT,
    STEP_TIMEOUT,
    USERS_FILE,
    bind_lines,
    volume_lines,
    wait_for_device_lines,
)
from deploy.volumes.volume_driver import VolumeDriver, VolumeInfo, home_volume_name

# TLJH's Linux name for hub user NAME: jupyter-NAME, cut to 32 characters in all.
LINUX_USER = re.compile(r"jupyter-[a-z0-9][a-z0-9._-]{0,23}")
# Ubuntu's range for people's accounts (UID_MIN..UID_MAX in /etc/login.defs).
FIRST_ID, LAST_ID = 1000, 59999
HOMES_SECTION = "--- homes ---"
ADDRESS_SECTION = "--- address ---"


class RecoverError(ValueError):
    """The record of users on the volume cannot be trusted; says which line and why."""


@dataclass(frozen=True, order=True)
class LinuxUser:
    name: str
    uid: int
    gid: int


# ---- pure: recording and reading the users ------------------------------------------------


def read_users_script() -> str:
    """The recorded users, the owner of every ``jupyter-*`` home on the volume, and the
    course's reserved IP as the last deploy recorded it."""
    homes = shlex.quote(f"{MOUNT_POINT}/home")
    return tljh.script(
        f"cat {shlex.quote(USERS_FILE)} 2>/dev/null || true",
        f"echo {shlex.quote(HOMES_SECTION)}",
        f"for home in {homes}/jupyter-*; do",
        '  if [ -d "$home" ]; then stat -c "%n:%u:%g" "$home"; fi',
        "done",
        f"echo {shlex.quote(ADDRESS_SECTION)}",
        f"cat {shlex.quote(ADDRESS_FILE)} 2>/dev/null || true",
    )


def _number(text: str, what: str, where: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text) or not FIRST_ID <= int(text) <= LAST_ID:
        raise RecoverError(
            f"{where}: {what} {text[:12]!r} is not a number from {FIRST_ID} to {LAST_ID}"
        )
    return int(text)


def parse_users(text: str) -> list[LinuxUser]:
    """Read ``getent passwd`` lines of ``jupyter-*`` users, each name and number checked.

    Any line that is not one is refused with its number: nothing from it reaches a shell.
    """
    users: dict[str, LinuxUser] = {}
    uids: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number} of {USERS_FILE}"
        fields = line.split(":")
        if len(fields) != 7:
            raise RecoverError(f"{where} is not a passwd line (name:x:uid:gid:gecos:home:shell)")
        name = fields[0]
        if not LINUX_USER.fullmatch(name):
            raise RecoverError(
                f"{where}: {name[:40]!r} is not a user TLJH makes (jupyter- then at most 24 "
                "lower-case letters, digits, '.', '_' or '-')"
            )
        user = LinuxUser(name, _number(fields[2], "UID", where), _number(fields[3], "GID", where))
        if name in users:
            continue  # the newest line for a name comes first
        if user.uid in uids:
            raise RecoverError(f"{where}: UID {user.uid} is also {uids[user.uid]}'s")
        users[name] = user
        uids[user.uid] = name
    return sorted(users.values())


def parse_homes(text: str) -> list[LinuxUser]:
    """Owners of the homes on the volume (``/mnt/…/home/jupyter-NAME:UID:GID``); homes
    owned by anything but a person's account are left out."""
    found = []
    for line in text.splitlines():
        name, _, numbers = line.rpartition("/")[2].partition(":")
        uid, _, gid = numbers.partition(":")
        if not LINUX_USER.fullmatch(name) or not (uid.isdigit() and gid.isdigit()):
            continue
        if FIRST_ID <= int(uid) <= LAST_ID and FIRST_ID <= int(gid) <= LAST_ID:
            found.append(LinuxUser(name, int(uid), int(gid)))
    return found


def users_to_recreate(output: str) -> list[LinuxUser]:
    """The record first; a home whose owner the record lacks (a student who first logged
    in after the last deploy) adds its owner, unless that UID is someone else's."""
    recorded, _, homes = output.partition(HOMES_SECTION)
    homes = homes.partition(ADDRESS_SECTION)[0]
    users = {u.name: u for u in parse_users(recorded)}
    taken = {u.uid for u in users.values()}
    for owner in parse_homes(homes):
        if owner.name not in users and owner.uid not in taken:
            users[owner.name] = owner
            taken.add(owner.uid)
    return sorted(users.values())


def recorded_address(output: str) -> str | None:
    """The reserved IP recorded on the volume, if it is one IPv4 address."""
    text = output.partition(ADDRESS_SECTION)[2].strip()
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def users_script(users: list[LinuxUser]) -> str:
    """Recreate each user with its old UID and GID (own group); one that exists with the
    same numbers is left as it is, one with other numbers stops the script."""
    lines: list[str] = []
    for user in users:
        if not LINUX_USER.fullmatch(user.name):
            raise RecoverError(f"{user.name[:40]!r} is not a user TLJH makes")
        for value in (user.uid, user.gid):
            _number(str(value), "ID", user.name)
        name, home = shlex.quote(user.name), shlex.quote(f"/home/{user.name}")
        want = shlex.quote(f"{user.name}:x:{user.uid}:{user.gid}:")
        lines += [
            f"if ! getent group {name} > /dev/null; then groupadd -g {user.gid} {name}; fi",
            f"if ! getent passwd {name} > /dev/null; then",
            f"  useradd -u {user.uid} -g {user.gid} -d {home} -M -s /bin/bash {name}",
            "fi",
            f'case "$(getent passwd {name})" in {want}*) ;; *)',
            f"  echo {shlex.quote(f'{user.name} exists, not as {user.uid}:{user.gid}')} >&2",
            "  exit 1;;",
            "esac",
        ]
    lines.append(f"echo {len(users)} user\\(s\\) in place with their old UIDs")
    return tljh.script(*lines)


def mount_script(volume_name: str) -> str:
    """Mount the course's volume and bind /home and the hub's state on it; a volume with
    no filesystem stops the script (recovery reads a volume, it never formats one)."""
    return tljh.script(
        *wait_for_device_lines(volume_name),
        'if [ -z "$(blkid -p -o value -s TYPE "$dev")" ]; then',
        f'  echo "volume {volume_name} holds no filesystem, so no homes to recover; '
        'nothing was formatted" >&2',
        "  exit 1",
        "fi",
        *volume_lines(volume_name),
        *bind_lines(over_existing=False),
    )


# ---- whether the droplet is gone ------------------------------------------------------------


async def lost_droplet(
    droplets: DropletDriver,
    record: ServerRecord | None,
    server_name: str | None,
    owner: str | None = None,
) -> str | None:
    """Why the course's droplet counts as gone, or ``None`` while it is there.

    Gone: DigitalOcean answers 404 for the droplet remembered (a droplet with the course's
    name in its place is one a recovery cut short made), or (nothing remembered) the
    course has no droplet with its tag ``owner``. Without ``owner`` only the remembered
    droplet is asked about. Only reads.
    """
    if record is not None and record.provider != "digitalocean":
        return None
    if record is not None and record.droplet_id:
        try:
            await droplets.get(record.droplet_id)
            return None
        except DropletError as exc:
            if "not found" not in str(exc):
                raise
        gone = f"DigitalOcean answers 404 (not found) for droplet {record.droplet_id}"
        found = await droplets.find(server_name, owner) if server_name and owner else None
        if found is not None:
            # A recovery cut short made it: it has no hub yet, and /recover finishes it.
            return f"{gone}; droplet {found.id}, named {server_name}, is there in its place"
        return gone
    if server_name and owner and await droplets.find(server_name, owner) is None:
        return f"DigitalOcean has no droplet of this course (tagged {owner})"
    return None


# ---- the operation ---------------------------------------------------------------------------


def _refuse(why: str) -> OperationResult:
    return operation_result("failure", "Nothing recovered", why)


async def _course_volume(
    volumes: VolumeDriver, config: CourseConfig, region: str, progress: Progress
) -> VolumeInfo:
    """The volume that held the homes last: after ``/restore --all`` the course has more
    than one (the previous ones are kept), and the one last attached is current."""
    owner = owner_tag(config)
    found = await volumes.course_volumes(config.server.name, owner, region)
    if not found:
        raise OperationError(
            f"there is no volume {home_volume_name(config.server.name)} tagged {owner} "
            f"in {region}, so nothing of the students' to recover from; push to deploy "
            "a new server instead"
        )
    if len(found) == 1:
        return found[0]
    attached = [(await volumes.last_attached(v), v.name, v) for v in found]
    latest = max(attached, key=lambda entry: entry[:2])[2]
    others = ", ".join(v.name for v in found if v is not latest)
    await progress(f"{latest.name} was attached last, so it holds the homes; kept: {others}")
    return latest


async def _adopt_recorded_address(
    engine: Engine,
    course: str,
    volumes: VolumeDriver,
    record: ServerRecord,
    output: str,
    progress: Progress,
) -> ServerRecord:
    """With the database lost, the course's reserved IP as the volume remembers it: taken
    only if the account has it and it is on no droplet (or on this one already)."""
    address = recorded_address(output)
    if address is None:
        return record
    exists, holder = await volumes.reserved_ip_holder(address)
    if not exists or holder not in (None, record.droplet_id):
        where = "is not in the account" if not exists else f"is on droplet {holder}"
        await progress(f"the recorded address {address} {where}; a new one will be reserved")
        return record
    await progress(f"the course's address, recorded on the volume, is {address}")
    record = replace(record, reserved_ip=address)
    await engine.records.save_server(course, record)
    return record


async def recover(
    engine: Engine, course: str, config: CourseConfig, *, progress: Progress
) -> OperationResult:
    """Bring the course back on a new droplet from its volume; see the module's docstring."""
    if config.server.provider != "digitalocean" or config.storage is None:
        return _refuse(
            "`/recover` brings a lost droplet back from the course's volume, and this course "
            "has none: it needs `storage` in .github/classroom.yml (provider digitalocean). "
            "A server of your own is recovered from your own backups (see the instructors' "
            "guide)."
        )
    try:
        return await _recover(engine, course, config, progress)
    except (OperationError, DropletError, SSHError, RecoverError) as exc:
        return operation_result(
            "failure",
            "Recovery did not finish",
            f"{exc}\n\nNothing on the volume was changed or deleted; comment `/recover` again "
            "to finish it.",
        )


async def _recover(
    engine: Engine, course: str, config: CourseConfig, progress: Progress
) -> OperationResult:
    droplets = await droplet_driver(engine, course)
    volumes = VolumeDriver(droplets)
    record = await engine.records.get_server(course)
    region = (record.region if record else None) or config.server.region
    lost = await lost_droplet(droplets, record, config.server.name, owner_tag(config))
    if lost is None:
        record = await known_server(engine, course, config, progress)
    if lost is None and record is not None and record.droplet_id:
        # A droplet is there: a try cut short left it half set up, or nothing was lost.
        try:
            seen = await observe_server(engine, course, config, record, progress)
        except UNREACHABLE as exc:
            return _refuse(
                f"droplet {record.droplet_id} is there but does not answer over SSH "
                f"({type(exc).__name__}); it is not gone, so there is nothing to recover. "
                "Try `/status` or `/restart`."
            )
        if seen.tljh_installed:
            return _refuse(
                f"droplet {record.droplet_id} is there and the hub is installed on it: "
                "nothing to recover. `/status` says how it is."
            )
        await progress("the course's droplet is there without its hub: finishing the recovery")
    elif lost is not None:
        await progress(f"the course's droplet is gone: {lost}")
    volume = await _course_volume(volumes, config, region, progress)
    await progress(f"the course's volume is {volume.name}")

    record = await provision(engine, course, config, progress)
    assert record.droplet_id is not None
    volume = await volumes.attach(volume, owner_tag(config), record.droplet_id, progress)
    await wait_for_ssh(engine, course, config, record, progress)
    target = await server_target(engine, course, config, record)

    mounted = await engine.ssh.run_step(
        target,
        Step(
            "recover-volume",
            f"mount {volume.name} (never formatted) and put /home and the hub's state on it",
            mount_script(volume.name),
            timeout=STEP_TIMEOUT,
        ),
        progress,
    )
    if not mounted.ok:
        raise OperationError(f"the volume was not mounted:\n```\n{mounted.output_tail}\n```")
    status, out, err = await engine.ssh.run_script(target, read_users_script())
    if status != 0:
        raise OperationError(f"could not read the users recorded on the volume: {err[-300:]}")
    users = users_to_recreate(out)
    made = await engine.ssh.run_step(
        target,
        Step(
            "recover-users",
            f"recreate {len(users)} student account(s) with the UIDs they had",
            users_script(users),
            timeout=STEP_TIMEOUT,
        ),
        progress,
    )
    if not made.ok:
        raise OperationError(f"the accounts were not recreated:\n```\n{made.output_tail}\n```")

    if not record.reserved_ip:
        record = await _adopt_recorded_address(engine, course, volumes, record, out, progress)
    if record.reserved_ip:
        assert record.droplet_id is not None  # provisioned above: a droplet has its id
        await volumes.assign_reserved_ip(record.reserved_ip, record.droplet_id, progress)
    deployed = await deploy(engine, course, config, mode="apply", progress=progress)
    if deployed.conclusion == "failure":
        raise OperationError(f"{deployed.title}:\n\n{deployed.summary}")
    record = await engine.records.get_server(course) or record
    url = hub_url(config, record)
    return operation_result(
        "success",
        "Recovered on a new droplet",
        f"Droplet `{escape(config.server.name)}` (id {record.droplet_id}) runs the hub again "
        f"at {url}, with volume `{escape(volume.name)}`: /home and the hub's accounts are "
        f"as they were, and {len(users)} student account(s) have their old UIDs. Students "
        "log in with their old passwords and find their files.\n\n" + deployed.summary,
        url=url,
        steps=deployed.steps,
        users=[u.name for u in users],
        volume=volume.name,
    )
