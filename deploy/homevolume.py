"""The course's volume on the server: format only if blank, mount by UUID, /home on it.

Pure: the steps a plan needs for ``storage`` and the shell scripts they run, built only
from the volume's validated name (each value one quoted word). The scripts decide on the
server, at the moment they run, from what ``blkid`` sees, so a volume that holds any
filesystem is never formatted (safety invariant 8), and they refuse to mount anything
over a ``/home`` or ``/opt/tljh/state`` that already holds files on the droplet's disk:
those move to the volume only with ``/move-home`` (safety invariant 3).

Layout of the volume, mounted at ``/mnt/classroom-home``: ``home/`` (bound on ``/home``),
``tljh-state/`` (bound on ``/opt/tljh/state``: the hub's accounts and approvals),
``nbgrader/`` (bound on ``/srv/nbgrader``: nbgrader's exchange and gradebooks), a
marker file naming the volume, which is how the observer knows it is mounted, and
``classroom-users``, the Linux users TLJH made with their UIDs, which ``/recover`` makes
again on a new droplet (``deploy.recover``), and ``classroom-address``, the course's
reserved IP, which it gives the new droplet.
"""

from __future__ import annotations

import ipaddress
import shlex

from deploy import tljh
from deploy.model import CourseConfig, Observed, Step
from deploy.ownership import without_code
from deploy.volumes import VOLUME_NAME_PATTERN, home_volume_name, is_home_volume_name

MOUNT_POINT = "/mnt/classroom-home"
MARKER = f"{MOUNT_POINT}/.littlest-classroom-volume"
DEVICE_DIR = "/dev/disk/by-id"  # where DigitalOcean's volumes appear, by name
FILESYSTEM_LABEL = "classroom-home"
USERS_FILE = f"{MOUNT_POINT}/classroom-users"
# The course's reserved IP, so /recover keeps the address even with the database lost.
ADDRESS_FILE = f"{MOUNT_POINT}/classroom-address"
HOME_ON_VOLUME = "home-on-volume"
STORAGE_STATE_KEY = "storage_gib"
# Where each folder of the volume is bound, in mount order.
BINDS = (("home", "/home"), ("tljh-state", tljh.STATE_DIR), ("nbgrader", "/srv/nbgrader"))
ATTACH_WAIT_SECONDS = 120
STEP_TIMEOUT = 600.0
ENGINE_TIMEOUT = 900.0

OBSERVE_COMMAND = (
    f"cat {MARKER}; echo; "
    f'if [ "$(stat -c %d:%i /home)" = "$(stat -c %d:%i {MOUNT_POINT}/home)" ]; '
    f"then echo {HOME_ON_VOLUME}; fi"
)


def is_course_volume(name: str, desired: CourseConfig) -> bool:
    """Whether the volume mounted as the course's on its own server is the course's: named
    for the course, or (made before names carried the repository id) for its readable part.
    Only ever asked of what the course's own server reports, never of the account."""
    return is_home_volume_name(name, desired.server.name) or is_home_volume_name(
        name, without_code(desired.server.name, desired.repo_id)
    )


def device_path(volume_name: str) -> str:
    """Where DigitalOcean attaches a volume on the droplet."""
    if not VOLUME_NAME_PATTERN.fullmatch(volume_name):
        raise ValueError(f"{volume_name[:70]!r} is not a volume name")
    return f"{DEVICE_DIR}/scsi-0DO_Volume_{volume_name}"


def parse_observed(text: str) -> tuple[str, bool]:
    """(name of the volume mounted at the mount point or "", whether /home is on it)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    on_volume = HOME_ON_VOLUME in lines
    names = [line for line in lines if line != HOME_ON_VOLUME]
    name = names[0] if names and VOLUME_NAME_PATTERN.fullmatch(names[0]) else ""
    return name, on_volume and bool(name)


def prepare_script(volume_name: str) -> str:
    """Format the volume only if blkid finds no filesystem; mount it; bind /home and state."""
    return tljh.script(*volume_lines(volume_name), *bind_lines(over_existing=False))


def volume_lines(volume_name: str) -> list[str]:
    """Wait for the volume, format it only if blkid finds no filesystem, mount it by UUID."""
    dev = shlex.quote(device_path(volume_name))
    mnt = shlex.quote(MOUNT_POINT)
    name = shlex.quote(volume_name)
    lines = [
        f"dev={dev}",
        f"mnt={mnt}",
        "waited=0",
        'while [ ! -e "$dev" ]; do',
        f'  if [ "$waited" -ge {ATTACH_WAIT_SECONDS} ]; then',
        f'    echo "volume {volume_name} is not attached: $dev does not exist" >&2',
        "    exit 1",
        "  fi",
        "  sleep 1; waited=$((waited + 1))",
        "done",
        # blkid exits 2 when it finds no filesystem signature at all; anything else it
        # cannot read stops the script, and nothing is formatted.
        "probe=0",
        'fstype=$(blkid -p -o value -s TYPE "$dev") || probe=$?',
        'if [ "$probe" -eq 2 ] && [ -z "$fstype" ]; then',
        f'  echo "volume {volume_name} holds no filesystem: formatting it ext4"',
        f'  mkfs.ext4 -q -L {FILESYSTEM_LABEL} "$dev"',
        'elif [ "$probe" -ne 0 ]; then',
        '  echo "blkid could not read $dev (exit $probe); nothing was formatted" >&2',
        "  exit 1",
        "else",
        f'  echo "volume {volume_name} already holds a $fstype filesystem: it is kept as it is"',
        "fi",
        'uuid=$(blkid -p -o value -s UUID "$dev")',
        'if [ -z "$uuid" ]; then echo "blkid found no UUID on $dev" >&2; exit 1; fi',
        'mkdir -p "$mnt"',
        'if ! grep -qs "^UUID=$uuid $mnt " /etc/fstab; then',
        '  printf \'UUID=%s %s auto defaults,nofail,discard 0 2\\n\' "$uuid" "$mnt" >> /etc/fstab',
        "fi",
        f'if [ ! -f {shlex.quote(MARKER)} ]; then mount "$mnt"; fi',
        f"printf '%s\\n' {name} > {shlex.quote(MARKER)}",
    ]
    return lines


def bind_lines(*, over_existing: bool) -> list[str]:
    """Bind the volume's folders on /home and /opt/tljh/state, from /etc/fstab.

    Never over a folder that holds files, unless ``over_existing`` (``/move-home``, after
    a verified copy): then what the droplet's disk holds stays there, under the mount.
    """
    mnt = shlex.quote(MOUNT_POINT)
    lines = [f"mnt={mnt}"]
    for folder, target in BINDS:
        source = shlex.quote(f"{MOUNT_POINT}/{folder}")
        where = shlex.quote(target)
        lines += [
            f"mkdir -p {source} {where}",
            f'if [ "$(stat -c %d:%i {where})" != "$(stat -c %d:%i {source})" ]; then',
            # Never hide what the droplet's disk holds there: that is /move-home's job.
            *(
                []
                if over_existing
                else [
                    f'  if [ -n "$(ls -A {where})" ]; then',
                    f"    echo '{target} on the droplet'\"'\"'s disk is not empty; nothing was "
                    "mounted over it (comment /move-home to move it to the volume)' >&2",
                    "    exit 1",
                    "  fi",
                ]
            ),
            f'  if ! grep -qs "^{MOUNT_POINT}/{folder} {target} " /etc/fstab; then',
            f"    printf '%s %s none bind,nofail,x-systemd.requires-mounts-for=%s 0 0\\n' "
            f'{source} {where} "$mnt" >> /etc/fstab',
            "  fi",
            f"  mount {where}",
            "fi",
        ]
    return lines


def grow_script(volume_name: str) -> str:
    """Grow the mounted ext4 filesystem to the volume's new size, online."""
    dev = shlex.quote(device_path(volume_name))
    return tljh.script(f"resize2fs {dev}")


def plan_steps(desired: CourseConfig, seen: Observed) -> list[Step]:
    """The volume's steps, which come before TLJH's installer; none when all is in place.

    A course whose hub is already installed with /home on the droplet's disk gets none:
    its homes move only when a writer comments ``/move-home``.
    """
    storage = desired.storage
    if storage is None or desired.server.provider != "digitalocean":
        return []
    name = home_volume_name(desired.server.name)
    size = storage.size_gib
    recorded = seen.state.get(STORAGE_STATE_KEY)
    if is_course_volume(seen.home_volume, desired) and seen.home_on_volume:
        name = seen.home_volume
        if recorded == size:
            return []
        return [
            Step(
                "volume",
                f"storage.size is {size} GiB (was {recorded}): grow volume {name}",
                "",
                timeout=ENGINE_TIMEOUT,
            ),
            Step(
                "home-volume-grow",
                f"grow the filesystem on {name} online to {size} GiB (resize2fs)",
                grow_script(name),
                timeout=STEP_TIMEOUT,
            ),
        ]
    if seen.tljh_installed:
        return []
    return [
        Step(
            "volume",
            f"storage.size is {size} GiB: find or create volume {name} and attach it",
            "",
            timeout=ENGINE_TIMEOUT,
        ),
        Step(
            "home-volume",
            f"put /home and the hub's accounts on {name}: formatted only if blkid finds no "
            "filesystem, mounted by UUID from /etc/fstab with nofail",
            prepare_script(name),
            timeout=STEP_TIMEOUT,
        ),
    ]


def snapshot_before_change(desired: CourseConfig, seen: Observed, why: str) -> list[Step]:
    """A snapshot of the course's volume before TLJH changes (a version change, /rebuild)."""
    if desired.storage is None or desired.server.provider != "digitalocean":
        return []
    name = seen.home_volume
    if not (is_course_volume(name, desired) and seen.home_on_volume):
        return []
    return [
        Step(
            "volume-snapshot",
            f"snapshot volume {name} before {why}",
            "",
            timeout=ENGINE_TIMEOUT,
        )
    ]


def unmount_script() -> str:
    """Stop the hub and unmount the course's volume (for ``/restore --all``); idempotent."""
    mnt = shlex.quote(MOUNT_POINT)
    lines = ["systemctl stop jupyterhub"]
    for folder, target in reversed(BINDS):
        where, source = shlex.quote(target), shlex.quote(f"{MOUNT_POINT}/{folder}")
        lines.append(
            f'if [ "$(stat -c %d:%i {where})" = "$(stat -c %d:%i {source} 2>/dev/null)" ]; '
            f"then umount {where}; fi"
        )
    lines.append(f"if [ -f {shlex.quote(MARKER)} ]; then umount {mnt}; fi")
    return tljh.script(*lines)


def record_users_lines() -> list[str]:
    """Add the server's ``jupyter-*`` users to the record on the volume, when it is mounted.

    A user once recorded stays recorded (the file is a union, the newest line for a name
    first), so a deploy on a half-recovered droplet that has no users yet forgets nobody.
    """
    users, partial = shlex.quote(USERS_FILE), shlex.quote(f"{USERS_FILE}.partial")
    return [
        f"if [ -f {shlex.quote(MARKER)} ]; then",
        f"  {{ getent passwd | grep '^jupyter-' || true; cat {users} 2>/dev/null || true; }} "
        f"| awk -F: '!seen[$1]++' > {partial}",
        f"  mv {partial} {users}",
        "fi",
    ]


def record_users_script(reserved_ip: str | None = None) -> str:
    """The users' record, and the course's reserved IP beside it when there is one."""
    lines = record_users_lines()
    if reserved_ip is not None:
        address = shlex.quote(str(ipaddress.IPv4Address(reserved_ip)))
        lines += [
            f"if [ -f {shlex.quote(MARKER)} ]; then "
            f"printf '%s\\n' {address} > {shlex.quote(ADDRESS_FILE)}; fi"
        ]
    return tljh.script(*lines)
