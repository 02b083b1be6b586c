"""The course's volume on the server: formatted only when new and blank, mounted by its
stable device path, /home and the hub's state on it, and the hub held to it.

Pure: the steps a plan needs for ``storage`` and the shell scripts they run, built only
from the volume's validated name (each value one quoted word). The scripts decide on the
server, at the moment they run:

- A volume is formatted only when the engine says this same operation created it, blkid
  finds no signature, and its first MiB reads back as zeros. Any doubt (blkid could not
  read it, a non-zero byte, a volume found rather than made) stops the script with
  nothing formatted (safety invariant 8).
- /etc/fstab mounts the volume by DigitalOcean's stable path
  (``/dev/disk/by-id/scsi-0DO_Volume_<name>``), never by filesystem UUID, which a volume
  made from a snapshot shares with its original.
- Nothing is mounted over a ``/home`` or ``/opt/tljh/state`` that already holds files on
  the droplet's disk: those move to the volume only with ``/move-home`` (invariant 3).
- Once the hub's state is on the volume, a systemd drop-in for ``jupyterhub.service``
  stops systemd from starting the hub without it (at boot, after a crash, on any
  restart), and every start the engine asks for checks the same first (invariant 14).

Layout of the volume, mounted at ``/mnt/classroom-home``: ``home/`` (bound on ``/home``),
``tljh-state/`` (bound on ``/opt/tljh/state``: the hub's accounts and approvals, and a
marker naming the volume), ``nbgrader/`` (bound on ``/srv/nbgrader``: nbgrader's
exchange and gradebooks), a marker file naming the volume at its top, which is how the
observer knows it is mounted, and ``classroom-users``, the Linux users TLJH made with
their UIDs, which ``/recover`` makes again on a new droplet (``deploy.volumes.recover``), and
``classroom-address``, the course's reserved IP, which it gives the new droplet.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import replace

from deploy.host import tljh
from deploy.model import CourseConfig, Observed, Step
from deploy.ownership import without_code
from deploy.volumes.volume_driver import VOLUME_NAME_PATTERN, home_volume_name, is_home_volume_name

MOUNT_POINT = "/mnt/classroom-home"
MARKER = f"{MOUNT_POINT}/.littlest-classroom-volume"
DEVICE_DIR = "/dev/disk/by-id"  # where DigitalOcean's volumes appear, by name
FILESYSTEM_LABEL = "classroom-home"
USERS_FILE = f"{MOUNT_POINT}/classroom-users"
# The course's reserved IP, so /recover keeps the address even with the database lost.
ADDRESS_FILE = f"{MOUNT_POINT}/classroom-address"
HOME_ON_VOLUME = "home-on-volume"
# Printed by the observer when a volume was set up the old way (fstab by UUID, no hub
# drop-in): the next deploy brings it up to date.
SETUP_OUTDATED = "home-volume-outdated"
STORAGE_STATE_KEY = "storage_gib"
# Where each folder of the volume is bound, in mount order.
BINDS = (("home", "/home"), ("tljh-state", tljh.STATE_DIR), ("nbgrader", "/srv/nbgrader"))
# In the hub's state folder, so on the volume's ``tljh-state/``: the volume's name.
STATE_MARKER = f"{tljh.STATE_DIR}/.littlest-classroom-volume"
HUB_DROP_IN_DIR = "/etc/systemd/system/jupyterhub.service.d"
HUB_DROP_IN = f"{HUB_DROP_IN_DIR}/littlest-classroom-state.conf"
# What systemd honours: RequiresMountsFor= orders the hub after the state's mounts and
# fails it when they fail; the Assert lines fail any start (a boot's, a crash restart's,
# systemctl's, TLJH's) while /opt/tljh/state is not a mount holding the state marker.
HUB_DROP_IN_TEXT = (
    "# Littlest Classroom: the hub starts only with its state on the course's volume.\n"
    "[Unit]\n"
    f"RequiresMountsFor={tljh.STATE_DIR}\n"
    f"AssertPathIsMountPoint={tljh.STATE_DIR}\n"
    f"AssertPathExists={STATE_MARKER}\n"
)
# How much of a new volume must read back as zeros before it is formatted.
BLANK_CHECK_BYTES = 1024 * 1024
ATTACH_WAIT_SECONDS = 120
STEP_TIMEOUT = 600.0
ENGINE_TIMEOUT = 900.0

OBSERVE_COMMAND = (
    f"cat {MARKER}; echo; "
    f'if [ "$(stat -c %d:%i /home)" = "$(stat -c %d:%i {MOUNT_POINT}/home)" ]; '
    f"then echo {HOME_ON_VOLUME}; "
    f"if [ ! -f {HUB_DROP_IN} ] || grep -qs '^UUID=[^ ]* {MOUNT_POINT} ' /etc/fstab; "
    f"then echo {SETUP_OUTDATED}; fi; fi"
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
    names = [line for line in lines if line not in (HOME_ON_VOLUME, SETUP_OUTDATED)]
    name = names[0] if names and VOLUME_NAME_PATTERN.fullmatch(names[0]) else ""
    return name, on_volume and bool(name)


def setup_outdated(text: str) -> bool:
    """Whether the observer saw a volume set up the old way (fstab by UUID, no drop-in)."""
    return SETUP_OUTDATED in (line.strip() for line in text.splitlines())


def prepare_script(volume_name: str, *, new_volume: bool = False) -> str:
    """Mount the volume (formatted only if ``new_volume`` and blank), bind /home and the
    hub's state on it, and hold the hub to it."""
    return tljh.script(
        *volume_lines(volume_name, new_volume=new_volume), *bind_lines(over_existing=False)
    )


def start_script(volume_name: str) -> str:
    """Mount the volume (never formatted), bind /home and the hub's state, start the hub."""
    return tljh.script(
        *volume_lines(volume_name), *bind_lines(over_existing=False), *hub_lines("start")
    )


def for_new_volume(step: Step, volume_name: str) -> Step:
    """``step`` as it runs right after this operation created ``volume_name``: the one
    case where the volume step may format (and still only a blank volume)."""
    if step.name != "home-volume":
        return step
    return replace(step, script=prepare_script(volume_name, new_volume=True))


def format_lines(volume_name: str, *, new_volume: bool) -> list[str]:
    """Keep a filesystem blkid finds; format only a new volume whose first MiB is zeros.

    blkid exits 2 both when it finds no signature and when it could not read the device,
    so exit 2 alone never leads to a format. mke2fs has no option that refuses to write
    over a filesystem when it runs without a terminal (its check and question are for
    terminals only), so the checks just before it are the guard; it is never given
    ``-F``, so it still refuses a device that is mounted.
    """
    name = volume_name
    not_made_here = (
        f'  echo "volume {name} shows no filesystem to blkid (exit 2: none found, or it could '
        "not be read), and this operation did not create it: nothing was formatted. A volume "
        "that ever held homes is never formatted; if this one is new and empty, delete it in "
        "DigitalOcean's control panel and push again\" >&2"
    )
    if new_volume:
        blank = [
            "  zeros=0",
            f'  cmp -s -n {BLANK_CHECK_BYTES} "$dev" /dev/zero || zeros=$?',
            '  if [ "$zeros" -ne 0 ]; then',
            f'    echo "volume {name} was just created, but its first MiB is not all zeros '
            '(or could not be read: cmp exit $zeros); nothing was formatted" >&2',
            "    exit 1",
            "  fi",
            f'  echo "volume {name} is new and blank: formatting it ext4"',
            f'  mkfs.ext4 -q -L {FILESYSTEM_LABEL} "$dev"',
        ]
    else:
        blank = [not_made_here, "  exit 1"]
    return [
        "probe=0",
        'fstype=$(blkid -p -o value -s TYPE "$dev") || probe=$?',
        'if [ "$probe" -eq 0 ] && [ -n "$fstype" ]; then',
        f'  echo "volume {name} already holds a $fstype filesystem: it is kept as it is"',
        'elif [ "$probe" -eq 2 ]; then',
        *blank,
        "else",
        f'  echo "blkid could not tell what volume {name} holds (exit $probe, type '
        "'$fstype'); nothing was formatted\" >&2",
        "  exit 1",
        "fi",
    ]


def fstab_lines(volume_name: str) -> list[str]:
    """/etc/fstab mounts the volume at the mount point by its stable device path.

    Any other line for the mount point (one by UUID from an older set-up, or another
    volume's) is replaced: a volume made from a snapshot has its original's UUID, so by
    UUID a reboot could mount either.
    """
    entry = f"{device_path(volume_name)} {MOUNT_POINT} auto defaults,nofail,discard 0 2"
    return [
        f"if ! grep -qxF {shlex.quote(entry)} /etc/fstab; then",
        "  fstab=$(mktemp)",
        f"  awk -v mnt={shlex.quote(MOUNT_POINT)} '$2 != mnt' /etc/fstab > \"$fstab\"",
        f"  printf '%s\\n' {shlex.quote(entry)} >> \"$fstab\"",
        '  cat "$fstab" > /etc/fstab',
        '  rm -f "$fstab"',
        "fi",
    ]


def wait_for_device_lines(volume_name: str) -> list[str]:
    """``dev`` set to the volume's device path, once it exists (or a clear error)."""
    return [
        f"dev={shlex.quote(device_path(volume_name))}",
        "waited=0",
        'while [ ! -e "$dev" ]; do',
        f'  if [ "$waited" -ge {ATTACH_WAIT_SECONDS} ]; then',
        f'    echo "volume {volume_name} is not attached: $dev does not exist" >&2',
        "    exit 1",
        "  fi",
        "  sleep 1; waited=$((waited + 1))",
        "done",
    ]


def volume_lines(volume_name: str, *, new_volume: bool = False) -> list[str]:
    """Wait for the volume; keep its filesystem (or, new and blank only, make one); mount
    it at the mount point from /etc/fstab, by its device path."""
    name = shlex.quote(volume_name)
    marker = shlex.quote(MARKER)
    return [
        *wait_for_device_lines(volume_name),
        f"mnt={shlex.quote(MOUNT_POINT)}",
        *format_lines(volume_name, new_volume=new_volume),
        'mkdir -p "$mnt"',
        *fstab_lines(volume_name),
        'if mountpoint -q "$mnt"; then',
        f'  if [ "$(cat {marker} 2>/dev/null)" != {name} ]; then',
        f'    echo "another volume ($(cat {marker} 2>/dev/null)) is mounted at $mnt, not '
        f'{volume_name}" >&2',
        "    exit 1",
        "  fi",
        "else",
        '  mount "$mnt"',
        "fi",
        f"printf '%s\\n' {name} > {marker}",
    ]


def hold_hub_lines() -> list[str]:
    """The state marker through the bound /opt/tljh/state, and the hub's systemd drop-in
    (written only when it differs, then systemd reloads its units)."""
    drop_in = shlex.quote(HUB_DROP_IN)
    text = shlex.quote(HUB_DROP_IN_TEXT)
    return [
        f"if ! mountpoint -q {shlex.quote(tljh.STATE_DIR)}; then",
        f"  echo '{tljh.STATE_DIR} is not mounted from the volume' >&2",
        "  exit 1",
        "fi",
        f"cat {shlex.quote(MARKER)} > {shlex.quote(STATE_MARKER)}",
        f"mkdir -p {shlex.quote(HUB_DROP_IN_DIR)}",
        f'if [ "$(cat {drop_in} 2>/dev/null)" != "$(printf \'%s\' {text})" ]; then',
        f"  printf '%s' {text} > {drop_in}",
        "  systemctl daemon-reload",
        "fi",
    ]


def hub_lines(command: str) -> list[str]:
    """``systemctl <command> jupyterhub``, refused while a server that keeps the hub's
    state on a volume does not have it mounted (what the drop-in asks of systemd, checked
    first so the error says why)."""
    if command not in ("start", "restart"):
        raise ValueError(f"{command!r} does not start the hub")
    state, marker = shlex.quote(tljh.STATE_DIR), shlex.quote(STATE_MARKER)
    return [
        f"if [ -f {shlex.quote(HUB_DROP_IN)} ] || grep -qs ' {tljh.STATE_DIR} ' /etc/fstab; then",
        f"  if ! mountpoint -q {state} || [ ! -f {marker} ]; then",
        f"    echo 'the hub was not started: its accounts ({tljh.STATE_DIR}) are kept on the "
        "course'\"'\"'s volume, and that is not mounted there' >&2",
        "    exit 1",
        "  fi",
        "fi",
        f"systemctl {command} jupyterhub",
    ]


def bind_lines(*, over_existing: bool) -> list[str]:
    """Bind the volume's folders on /home and /opt/tljh/state, from /etc/fstab, then hold
    the hub to its state there.

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
    return lines + hold_hub_lines()


def update_script(volume_name: str) -> str:
    """Bring a volume set up the old way up to date: fstab by device path, the state
    marker and the hub's drop-in. Changes no data and mounts nothing new."""
    return tljh.script(
        *fstab_lines(volume_name),
        *hold_hub_lines(),
    )


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
        steps = []
        if seen.home_volume_outdated:
            steps.append(
                Step(
                    "home-volume-update",
                    f"mount {name} by its device path in /etc/fstab (not by UUID) and hold "
                    "the hub to its state on it (systemd drop-in)",
                    update_script(name),
                    timeout=STEP_TIMEOUT,
                )
            )
        if recorded == size:
            return steps
        return [
            *steps,
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
            f"put /home and the hub's accounts on {name}: formatted only if this deploy "
            "created it and it reads blank, mounted by device path from /etc/fstab with "
            "nofail, the hub held to it",
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
