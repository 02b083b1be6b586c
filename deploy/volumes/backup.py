"""Operations on a course's home volume: ``/backup`` and ``/restore``.

``backup`` snapshots the volume now and applies retention; ``list_snapshots`` is what
``/restore`` alone answers (name, date, size); ``restore_student`` brings one student's
home back from a snapshot into a new ``/home/jupyter-NAME/restored-<snapshot time>/``
folder, through a temporary volume made from the snapshot, mounted read-only, then
detached and deleted. Nothing that exists under ``/home`` is changed (safety invariant
3); running a command again after a cut finishes it.
"""

from __future__ import annotations

import hashlib
import shlex
from datetime import UTC, datetime, timedelta

from deploy.course.validate import Invalid, check_hub_username
from deploy.engine import (
    UNREACHABLE,
    Engine,
    OperationError,
    droplet_driver,
    hub_url,
    known_server,
    operation_result,
    owner_tag,
    server_target,
)
from deploy.host import tljh
from deploy.model import CourseConfig, OperationResult, Progress, ServerRecord, Step
from deploy.planning.render import escape
from deploy.providers import kubernetes_course
from deploy.providers.droplets import DropletError
from deploy.ssh import SSHError, Target
from deploy.volumes.homevolume import (
    STEP_TIMEOUT,
    start_script,
    unmount_script,
    wait_for_device_lines,
)
from deploy.volumes.volume_driver import (
    SnapshotInfo,
    VolumeDriver,
    VolumeInfo,
    home_volume_name,
    snapshot_time,
    swapped_volume_name,
)

RESTORE_MOUNT_PREFIX = "/mnt/classroom-restore-"
# TLJH makes a Linux user jupyter-NAME for each hub user NAME, with that home.
HOME_PREFIX = "/home/jupyter-"
# The first UID of people's accounts on Ubuntu (UID_MIN): a home owned by less is not a
# student's, and nothing is written in it.
FIRST_STUDENT_ID = 1000


def backup_offset(course: str, every_seconds: int) -> int:
    """This course's fixed place in each backup period, in seconds.

    Derived from the course's name, so courses spread evenly over the period (thousands
    of them do not all snapshot at midnight) and a restart keeps each where it was.
    """
    digest = hashlib.sha256(course.encode()).digest()
    return int.from_bytes(digest[:8], "big") % every_seconds


def next_backup_at(
    course: str, every_seconds: int | None, last: datetime | None, now: datetime
) -> datetime | None:
    """When the course's next scheduled snapshot is due; ``None`` with ``every: off``.

    Due at the course's offset in each period; a course whose last snapshot is older than
    one period (or that has none) is due at its next offset from ``now``, never at once
    for every course together.
    """
    if every_seconds is None:
        return None
    period = timedelta(seconds=every_seconds)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    offset = timedelta(seconds=backup_offset(course, every_seconds))
    start = now if last is None else max(last + period / 2, now - period)
    periods = (start - epoch - offset) // period + 1
    due = epoch + offset + periods * period
    return due if last is None or due - last >= period / 2 else due + period


async def _course_volume(
    engine: Engine, course: str, config: CourseConfig
) -> tuple[VolumeDriver, ServerRecord, VolumeInfo, str]:
    """The course's volume driver, server record, current volume and owner tag."""
    if config.server.provider == "kubernetes":
        return await kubernetes_course.homes_volume(engine, course, config)
    if config.server.provider != "digitalocean" or config.storage is None:
        raise OperationError(
            "this course has no volume to back up: set `storage.size` in "
            ".github/classroom.yml (provider digitalocean); on your own server back /home "
            "up with restic or rsync"
        )
    record = await known_server(engine, course, config)
    if record is None or not record.droplet_id:
        raise OperationError("the course has no droplet yet; push to deploy it first")
    owner = owner_tag(config)
    volumes = VolumeDriver(await droplet_driver(engine, course))
    name = home_volume_name(config.server.name)
    volume = await volumes.current_home_volume(
        config.server.name, owner, record.region or config.server.region, record.droplet_id
    )
    if volume is None:
        raise OperationError(f"volume {name} does not exist yet; push to deploy it first")
    return volumes, record, volume, owner


async def backup(
    engine: Engine,
    course: str,
    config: CourseConfig,
    *,
    progress: Progress,
    now: datetime | None = None,
) -> OperationResult:
    """Snapshot the course's volume now, then delete own snapshots beyond ``backup.keep``."""
    try:
        volumes, _, volume, owner = await _course_volume(engine, course, config)
        taken = await volumes.take_snapshot(
            volume, config.server.name, owner, now or datetime.now(UTC), progress
        )
        pruned = await volumes.prune_snapshots(
            config.server.name, owner, config.backup.keep, progress
        )
    except OperationError as exc:
        return operation_result("failure", "Backup failed", str(exc))
    except DropletError as exc:
        return operation_result("failure", "Backup failed", str(exc), snapshot_failed=True)
    gone = f"; {len(pruned)} older snapshot(s) deleted (keeping {config.backup.keep})"
    return operation_result(
        "success",
        f"Snapshot {taken.name} taken",
        f"Snapshot `{escape(taken.name)}` of volume `{escape(volume.name)}` is done"
        f"{gone if pruned else ''}.",
        snapshot=taken.name,
        pruned=[s.name for s in pruned],
    )


def snapshot_table(snapshots: list[SnapshotInfo]) -> str:
    """The Markdown ``/restore`` answers: name, date and size of each snapshot."""
    if not snapshots:
        return "No snapshots of this course's volume yet; `/backup` takes one now."
    rows = ["| snapshot | taken (UTC) | size |", "|---|---|---|"]
    for snapshot in snapshots:
        rows.append(
            f"| `{escape(snapshot.name)}` | {snapshot.created_at:%Y-%m-%d %H:%M} "
            f"| {snapshot.size_gib:g} GB |"
        )
    rows.append("")
    rows.append(
        "Bring one student's files back with `/restore SNAPSHOT --student NAME`: they land "
        "in a new `restored-…` folder in that student's home, and nothing else changes."
    )
    return "\n".join(rows)


async def list_snapshots(
    engine: Engine, course: str, config: CourseConfig, *, progress: Progress
) -> OperationResult:
    try:
        volumes, _, _, owner = await _course_volume(engine, course, config)
        found = await volumes.list_snapshots(config.server.name, owner)
    except (OperationError, DropletError) as exc:
        return operation_result("failure", "Could not list snapshots", str(exc))
    return operation_result("success", f"{len(found)} snapshot(s)", snapshot_table(found))


def restore_mount(stamp: str) -> str:
    """Where the temporary volume made from the snapshot taken at ``stamp`` is mounted."""
    return f"{RESTORE_MOUNT_PREFIX}{stamp}"


def copy_home_script(volume_name: str, student: str, stamp: str) -> str:
    """Copy one home from the restore volume into a new ``restored-<stamp>`` folder, as the
    student.

    Root only reads: it checks the home (a real folder of a person's account, not a link),
    gives the clone a filesystem UUID of its own (so nothing can mistake it for the live
    volume) and mounts it read-only. Everything written in the home is written by the
    student's own UID (``setpriv``, a clean environment): a fresh folder from ``mktemp -d``
    (which never follows or reuses what is there), ``cp -a`` into it, and a rename to
    ``restored-<stamp>`` once complete, so a link a student plants can only lead to
    places the student may write anyway. A ``restored-<stamp>`` folder already there is
    the restore already done; nothing is removed, ever.
    """
    check_hub_username(student)
    home = f"{HOME_PREFIX}{student}"
    final = f"{home}/restored-{stamp}"
    q_home, q_final = shlex.quote(home), shlex.quote(final)
    q_partial = shlex.quote(f"{final}.partial-XXXXXX")
    mnt = shlex.quote(restore_mount(stamp))
    q_source = shlex.quote(f"{restore_mount(stamp)}/home/jupyter-{student}")
    return tljh.script(
        "cd /",
        f"if [ -L {q_final} ]; then",
        f"  echo {shlex.quote(f'{final} is a symbolic link; nothing was restored')} >&2",
        "  exit 1",
        "fi",
        f"if [ -d {q_final} ]; then echo {shlex.quote(f'{final} is already there')}; exit 0; fi",
        f"if [ -L {q_home} ] || [ ! -d {q_home} ]; then",
        f"  echo {shlex.quote(f'no home folder {home}')} >&2",
        "  exit 1",
        "fi",
        f"uid=$(stat -c %u {q_home}); gid=$(stat -c %g {q_home})",
        f'if [ "$uid" -lt {FIRST_STUDENT_ID} ]; then',
        f"  echo {shlex.quote(f'{home} does not belong to a person' + chr(39) + 's account')} >&2",
        "  exit 1",
        "fi",
        *wait_for_device_lines(volume_name),
        f"mkdir -p {mnt}",
        f"if ! mountpoint -q {mnt}; then",
        # A copy of a live filesystem: replay its journal, then give it its own UUID.
        '  checked=0; e2fsck -fy "$dev" > /dev/null || checked=$?',
        '  if [ "$checked" -ge 4 ]; then',
        '    echo "e2fsck could not check the restore volume (exit $checked)" >&2; exit 1',
        "  fi",
        '  tune2fs -U random "$dev"',
        f'  mount -o ro,noload "$dev" {mnt}',
        "fi",
        f"if [ -L {q_source} ] || [ ! -d {q_source} ]; then",
        f"  echo {shlex.quote(f'the snapshot has no home folder for {student}')} >&2",
        "  exit 1",
        "fi",
        "as_student() {",
        '  setpriv --reuid="$uid" --regid="$gid" --clear-groups --reset-env -- "$@"',
        "}",
        f"partial=$(as_student mktemp -d {q_partial})",
        f'as_student cp -a -- {q_source}/. "$partial"/',
        f'as_student mv -T -- "$partial" {q_final}',
        f"echo {shlex.quote(f'restored into {final}')}",
    )


def release_script(stamp: str) -> str:
    """Unmount the restore volume (lazily if still busy) before it is detached."""
    mnt = shlex.quote(restore_mount(stamp))
    return tljh.script(
        f"if mountpoint -q {mnt}; then umount {mnt} || umount -l {mnt}; fi",
        f"rmdir {mnt} 2>/dev/null || true",
    )


async def restore_student(
    engine: Engine,
    course: str,
    config: CourseConfig,
    snapshot: str,
    student: str,
    *,
    progress: Progress,
) -> OperationResult:
    """One student's home from ``snapshot`` into ``/home/jupyter-NAME/restored-<time>/``.

    The temporary volume is unmounted, detached and deleted whatever happens.
    """
    if config.server.provider == "kubernetes":
        return kubernetes_course.student_restore_refused()
    try:
        student = check_hub_username(student)
    except Invalid as exc:
        return operation_result("failure", "Nothing restored", str(exc))
    temporary: VolumeInfo | None = None
    cleanup = ""
    try:
        volumes, record, _, owner = await _course_volume(engine, course, config)
        chosen = await volumes.own_snapshot(config.server.name, owner, snapshot)
        assert record.droplet_id is not None
        region = record.region or config.server.region
        stamp = snapshot_time(chosen)
        target = await server_target(engine, course, config, record)
        try:
            temporary = await volumes.create_restore_volume(
                chosen, config.server.name, owner, region, progress
            )
            temporary = await volumes.attach(temporary, owner, record.droplet_id, progress)
            step = Step(
                "restore-student",
                f"copy {student}'s home from {snapshot} into restored-{stamp}, as {student}",
                copy_home_script(temporary.name, student, stamp),
                timeout=STEP_TIMEOUT,
            )
            result = await engine.ssh.run_step(target, step, progress)
            if not result.ok:
                raise OperationError(f"the copy did not finish:\n```\n{result.output_tail}\n```")
        finally:
            if temporary is not None:
                cleanup = await _remove_restore_volume(
                    engine, volumes, target, temporary, config, record.droplet_id, stamp, progress
                )
        if cleanup:
            raise OperationError(cleanup)
    except (OperationError, DropletError, SSHError) as exc:
        left = f"\n\n{cleanup}" if cleanup and cleanup not in str(exc) else ""
        return operation_result(
            "failure",
            "Restore did not finish",
            f"{exc}{left}\n\nNothing under /home was changed except a `restored-…` folder "
            "(an unfinished one is named `restored-….partial-…`); run the same command again "
            "to finish it.",
        )
    folder = f"{HOME_PREFIX}{student}/restored-{stamp}"
    return operation_result(
        "success",
        f"Restored {student}'s files",
        f"{student}'s home as it was in `{escape(snapshot)}` is in `{escape(folder)}/`. "
        "Nothing else changed.",
        url=hub_url(config, record),
        folder=folder,
    )


async def _remove_restore_volume(
    engine: Engine,
    volumes: VolumeDriver,
    target: Target,
    temporary: VolumeInfo,
    config: CourseConfig,
    droplet_id: int,
    stamp: str,
    progress: Progress,
) -> str:
    """Unmount, detach and delete the temporary volume; "" when gone, else what is left."""
    try:
        await engine.ssh.run_script(target, release_script(stamp))
    except (SSHError, *UNREACHABLE) as exc:
        await progress(f"could not unmount the restore volume ({type(exc).__name__})")
    try:
        current = await volumes.get_volume(temporary.id)
        await volumes.delete_restore_volume(
            current, config.server.name, owner_tag(config), droplet_id, progress
        )
    except DropletError as exc:
        if "not found" in str(exc):
            return ""
        return (
            f"The temporary volume `{escape(temporary.name)}` was not removed ({exc}); it is "
            "removed by the next `/restore`, or delete it in DigitalOcean's control panel."
        )
    return ""


async def restore_all(
    engine: Engine,
    course: str,
    config: CourseConfig,
    snapshot: str,
    *,
    confirm: bool,
    progress: Progress,
) -> OperationResult:
    """Every home back as it was in ``snapshot``: the hub stops, a volume made from the
    snapshot takes the current one's place (which is kept, detached), the hub starts.

    If any part fails once the hub is stopped, the previous volume is put back, mounted,
    and the hub started on it, with the accounts it had (safety invariant 14).
    """
    if not confirm:
        return operation_result(
            "failure",
            "Nothing restored",
            f"`/restore {escape(snapshot[:80])} --all` puts every student's home back as it "
            "was in that snapshot, and the hub is down meanwhile. The current volume is kept "
            "(detached), but work since the snapshot is no longer in /home. To go ahead, "
            "add `--confirm`.",
        )
    if config.server.provider == "kubernetes":
        return await kubernetes_course.restore_all(
            engine, course, config, snapshot, progress=progress
        )
    try:
        volumes, record, current, owner = await _course_volume(engine, course, config)
        chosen = await volumes.own_snapshot(config.server.name, owner, snapshot)
        assert record.droplet_id is not None
        region = record.region or config.server.region
        target = await server_target(engine, course, config, record)
        wanted = swapped_volume_name(config.server.name, snapshot_time(chosen))
        if current.name == wanted:  # swapped in by an earlier try: the hub starts on it
            await _start_hub_on(engine, target, wanted, progress)
        else:
            try:
                stop = Step("hub-stop", "stop the hub, unmount the volume", unmount_script())
                stopped = await engine.ssh.run_step(target, stop, progress)
                if not stopped.ok:
                    raise OperationError(
                        f"could not stop the hub:\n```\n{stopped.output_tail}\n```"
                    )
                swapped = await volumes.create_swap_volume(
                    chosen, config.server.name, owner, region, current.size_gib, progress
                )
                await volumes.detach(current, record.droplet_id, progress)
                await volumes.attach(swapped, owner, record.droplet_id, progress)
                await _start_hub_on(engine, target, wanted, progress)
            except (OperationError, DropletError, SSHError, *UNREACHABLE) as exc:
                back = await _put_back(
                    engine,
                    volumes,
                    target,
                    current,
                    wanted,
                    owner,
                    record.droplet_id,
                    region,
                    progress,
                )
                raise OperationError(f"{_say_failure(exc)}\n\n{back}") from exc
    except (OperationError, DropletError, SSHError) as exc:
        return operation_result(
            "failure",
            "Restore did not finish",
            f"{exc}\n\nNo volume was deleted; run the same command again to finish it.",
        )
    kept = (
        ""
        if current.name == wanted
        else f" The previous volume, `{escape(current.name)}`, is kept, detached."
    )
    return operation_result(
        "success",
        f"Restored every home from {snapshot}",
        f"Volume `{escape(wanted)}`, made from `{escape(snapshot)}`, now holds /home and "
        f"the hub's accounts, and the hub is running.{kept}",
        url=hub_url(config, record),
        volume=wanted,
    )


def _say_failure(exc: BaseException) -> str:
    return (
        str(exc)
        if isinstance(exc, (OperationError, DropletError, SSHError))
        else (f"the server did not answer over SSH ({type(exc).__name__})")
    )


async def _start_hub_on(
    engine: Engine, target: Target, volume_name: str, progress: Progress
) -> None:
    """Mount ``volume_name`` (never formatted), bind /home and the state, start the hub."""
    start = Step(
        "hub-start",
        f"mount {volume_name}, put /home and the hub's state on it, start the hub",
        start_script(volume_name),
        timeout=STEP_TIMEOUT,
    )
    started = await engine.ssh.run_step(target, start, progress)
    if not started.ok:
        raise OperationError(f"the hub did not start:\n```\n{started.output_tail}\n```")


async def _put_back(
    engine: Engine,
    volumes: VolumeDriver,
    target: Target,
    previous: VolumeInfo,
    swapped_name: str,
    owner: str,
    droplet_id: int,
    region: str,
    progress: Progress,
) -> str:
    """The previous volume attached, mounted and the hub started on it again; says how it
    went. The volume made from the snapshot is detached and kept (it is found again by
    its name when the command is run again)."""
    await progress(f"putting the previous volume {previous.name} back")
    try:
        stop = Step("hub-stop", "stop the hub, unmount the volume", unmount_script())
        stopped = await engine.ssh.run_step(target, stop, progress)
        if not stopped.ok:
            raise OperationError(f"could not unmount:\n```\n{stopped.output_tail}\n```")
        swapped = await volumes.find_volume(swapped_name, region, owner)
        if swapped is not None:
            await volumes.detach(swapped, droplet_id, progress)
        await volumes.attach(await volumes.get_volume(previous.id), owner, droplet_id, progress)
        await _start_hub_on(engine, target, previous.name, progress)
    except (OperationError, DropletError, SSHError, *UNREACHABLE) as exc:
        return (
            f"Putting the previous volume `{escape(previous.name)}` back failed too: "
            f"{_say_failure(exc)}\nThe hub stays stopped (it never starts without the "
            "volume that holds its accounts); run the same command again, or `/restart` "
            "once the volume is back."
        )
    return (
        f"The previous volume, `{escape(previous.name)}`, is attached and mounted again, and "
        "the hub runs on it with the accounts and homes it had."
    )
