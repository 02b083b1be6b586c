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

from deploy import tljh
from deploy.droplets import DropletError
from deploy.homevolume import STEP_TIMEOUT, device_path, prepare_script, unmount_script
from deploy.model import CourseConfig, OperationResult, Progress, ServerRecord, Step
from deploy.operations import (
    Engine,
    OperationError,
    droplet_driver,
    hub_url,
    known_server,
    operation_result,
    owner_tag,
    server_target,
)
from deploy.render import escape
from deploy.ssh import SSHError
from deploy.validate import Invalid, check_hub_username
from deploy.volumes import (
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


def copy_home_script(volume_name: str, student: str, stamp: str) -> str:
    """Mount the restore volume read-only; copy one home into a new ``restored-`` folder.

    The copy goes to ``restored-<stamp>.partial`` and is renamed when complete, so a cut
    copy is never taken for a whole one; a folder that already exists under that name is
    the restore already done, and nothing is copied again.
    """
    check_hub_username(student)
    home = f"{HOME_PREFIX}{student}"
    source_mount = f"{RESTORE_MOUNT_PREFIX}{stamp}"
    final = f"{home}/restored-{stamp}"
    partial = f"{final}.partial"
    dev, mnt = shlex.quote(device_path(volume_name)), shlex.quote(source_mount)
    q_home, q_final, q_partial = shlex.quote(home), shlex.quote(final), shlex.quote(partial)
    q_source = shlex.quote(f"{source_mount}/home/jupyter-{student}")
    return tljh.script(
        f"if [ -e {q_final} ]; then echo {shlex.quote(f'{final} is already there')}; exit 0; fi",
        f"if [ ! -d {q_home} ]; then echo {shlex.quote(f'no home folder {home}')} >&2; exit 1; fi",
        f"dev={dev}",
        "waited=0",
        'while [ ! -e "$dev" ]; do',
        '  if [ "$waited" -ge 120 ]; then echo "$dev did not appear" >&2; exit 1; fi',
        "  sleep 1; waited=$((waited + 1))",
        "done",
        f"mkdir -p {mnt}",
        f'if [ ! -d {q_source} ]; then mount -o ro,noload "$dev" {mnt}; fi',
        f"if [ ! -d {q_source} ]; then",
        f"  echo {shlex.quote(f'the snapshot has no home folder for {student}')} >&2",
        f"  umount {mnt}; exit 1",
        "fi",
        f"rm -rf {q_partial}",
        f"cp -a {q_source} {q_partial}",
        f"mv {q_partial} {q_final}",
        f"umount {mnt}",
        f"rmdir {mnt}",
        f"echo {shlex.quote(f'restored into {final}')}",
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
    """One student's home from ``snapshot`` into ``/home/jupyter-NAME/restored-<time>/``."""
    try:
        student = check_hub_username(student)
    except Invalid as exc:
        return operation_result("failure", "Nothing restored", str(exc))
    try:
        volumes, record, _, owner = await _course_volume(engine, course, config)
        chosen = [
            s for s in await volumes.list_snapshots(config.server.name, owner) if s.name == snapshot
        ]
        if not chosen:
            raise OperationError(
                f"no snapshot of this course is named {snapshot[:80]!r}; `/restore` lists them"
            )
        assert record.droplet_id is not None
        region = record.region or config.server.region
        stamp = snapshot_time(chosen[0])
        temporary = await volumes.create_restore_volume(
            chosen[0], config.server.name, owner, region, progress
        )
        temporary = await volumes.attach(temporary, owner, record.droplet_id, progress)
        step = Step(
            "restore-student",
            f"copy {student}'s home from {snapshot} into restored-{stamp}",
            copy_home_script(temporary.name, student, stamp),
            timeout=STEP_TIMEOUT,
        )
        target = await server_target(engine, course, config, record)
        result = await engine.ssh.run_step(target, step, progress)
        if not result.ok:
            raise OperationError(f"the copy did not finish:\n```\n{result.output_tail}\n```")
        await volumes.delete_restore_volume(
            temporary, config.server.name, owner, record.droplet_id, progress
        )
    except (OperationError, DropletError, SSHError) as exc:
        return operation_result(
            "failure",
            "Restore did not finish",
            f"{exc}\n\nNothing under /home was changed except a `restored-…` folder; "
            "run the same command again to finish it.",
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
    snapshot takes the current one's place (which is kept, detached), the hub starts."""
    if not confirm:
        return operation_result(
            "failure",
            "Nothing restored",
            f"`/restore {escape(snapshot[:80])} --all` puts every student's home back as it "
            "was in that snapshot, and the hub is down meanwhile. The current volume is kept "
            "(detached), but work since the snapshot is no longer in /home. To go ahead, "
            "add `--confirm`.",
        )
    try:
        volumes, record, current, owner = await _course_volume(engine, course, config)
        chosen = [
            s for s in await volumes.list_snapshots(config.server.name, owner) if s.name == snapshot
        ]
        if not chosen:
            raise OperationError(
                f"no snapshot of this course is named {snapshot[:80]!r}; `/restore` lists them"
            )
        assert record.droplet_id is not None
        region = record.region or config.server.region
        target = await server_target(engine, course, config, record)
        wanted = swapped_volume_name(config.server.name, snapshot_time(chosen[0]))
        if current.name != wanted:
            stop = Step("hub-stop", "stop the hub, unmount the volume", unmount_script())
            stopped = await engine.ssh.run_step(target, stop, progress)
            if not stopped.ok:
                raise OperationError(f"could not stop the hub:\n```\n{stopped.output_tail}\n```")
            swapped = await volumes.create_swap_volume(
                chosen[0], config.server.name, owner, region, current.size_gib, progress
            )
            await volumes.detach(current, record.droplet_id, progress)
            await volumes.attach(swapped, owner, record.droplet_id, progress)
        start = Step(
            "hub-start",
            f"mount {wanted}, put /home and the hub's state on it, start the hub",
            prepare_script(wanted) + "systemctl start jupyterhub\n",
            timeout=STEP_TIMEOUT,
        )
        started = await engine.ssh.run_step(target, start, progress)
        if not started.ok:
            raise OperationError(f"the hub did not start:\n```\n{started.output_tail}\n```")
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
