"""``/move-home``: an existing course's homes onto its volume, checked before anything moves.

A course whose hub was installed before it had ``storage`` keeps ``/home`` on the
droplet's disk until a writer asks. Then: a droplet snapshot first; the volume found or
made and attached; the hub stopped; ``/home`` and the hub's state copied onto the volume
(``cp -a``: owners, modes, ACLs and extended attributes, hard links, times); the copy
checked against the original (every entry's type, mode, owner, group and time, each
file's link count and size, and a SHA-256 of every file; never a directory's size); only
then the volume's folders mounted over ``/home`` and ``/opt/tljh/state``, and the hub
started. The original stays untouched on the droplet's disk, under the mount. A check
that fails leaves ``/home`` as it was and starts the hub again. Every part can run
again: after a cut, the same command finishes.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from deploy.engine import (
    Engine,
    OperationError,
    course_home_volume,
    droplet_driver,
    hub_url,
    known_server,
    operation_result,
    owner_tag,
    server_target,
)
from deploy.host import tljh
from deploy.host.observe import observe_script, parse_observation
from deploy.model import CourseConfig, OperationResult, Progress, Step
from deploy.providers.droplets import DropletError
from deploy.ssh import SSHError
from deploy.volumes.homevolume import (
    BINDS,
    MOUNT_POINT,
    STEP_TIMEOUT,
    bind_lines,
    hub_lines,
    is_course_volume,
    volume_lines,
)

SNAPSHOT_SUFFIX = "-before-move-home-"

# What a copy must keep, one line per entry, sorted, so two trees compare with one cmp:
# for a directory its type, mode, owner, group and mtime; for anything else also its link
# count, its size in bytes and a symlink's target; and a SHA-256 line per file. Never a
# directory's size or link count: on ext4 a directory that once held many entries keeps
# its size, while its copy is compact (20,480 bytes against 4,096 for a folder that once
# held 400 files), and neither is something a student's work depends on.
MANIFEST_FUNCTION = (
    "manifest() (\n"
    '  cd "$1"\n'
    "  { find . -xdev -type d -printf '%y %m %U %G - - %T@ %p\\n'\n"
    "    find . -xdev ! -type d -printf '%y %m %U %G %n %s %T@ %p %l\\n'\n"
    "  } | LC_ALL=C sort\n"
    "  find . -xdev -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum\n"
    ")"
)


def reclaim_hint() -> str:
    """How to free the droplet-disk copy once the moved homes have been checked."""
    return (
        "The original homes are still on the droplet's disk, under the mount. Once you are "
        "sure the hub works, free that space over SSH with "
        "`mkdir -p /mnt/disk && mount --bind / /mnt/disk && du -sh /mnt/disk/home`, "
        "then `rm -rf /mnt/disk/home/*` and `umount /mnt/disk`."
    )


def move_script(volume_name: str, *, new_volume: bool = False) -> str:
    """The server's part of ``/move-home``; exits 0 at once when /home is on the volume.

    ``new_volume``: this operation created the volume, so it may be formatted if blank.
    """
    mnt = shlex.quote(MOUNT_POINT)
    lines = [
        *volume_lines(volume_name, new_volume=new_volume),
        MANIFEST_FUNCTION,
        f'if [ "$(stat -c %d:%i /home)" = "$(stat -c %d:%i {mnt}/home 2>/dev/null)" ]; then',
        "  echo '/home is already on the volume'",
        "  exit 0",
        "fi",
        "systemctl stop jupyterhub",
        "workdir=$(mktemp -d)",
    ]
    for folder, target in BINDS:
        source = shlex.quote(target)
        copy = shlex.quote(f"{MOUNT_POINT}/{folder}")
        moving = shlex.quote(f"{MOUNT_POINT}/{folder}.moving")
        lines += [
            # A folder the disk never had (no assignments yet) moves as an empty one.
            f"mkdir -p {source}",
            f'manifest {source} > "$workdir/source"',
            f'if [ -n "$(ls -A {copy} 2>/dev/null)" ]; then',
            # A copy already in place from a run that was cut short after the move.
            f'  manifest {copy} > "$workdir/copy"',
            '  if ! cmp -s "$workdir/source" "$workdir/copy"; then',
            f"    echo 'the volume already holds a different {folder} folder; nothing was "
            "moved and the hub runs again' >&2",
            *(f"    {line}" for line in hub_lines("start")),
            "    exit 1",
            "  fi",
            "else",
            f"  rm -rf {moving}",
            f"  mkdir -p {moving}",
            f"  cp -a {source}/. {moving}/",
            f'  manifest {moving} > "$workdir/copy"',
            '  if ! cmp -s "$workdir/source" "$workdir/copy"; then',
            f"    echo 'check failed: the copy of {target} differs from the original "
            f"(file count, bytes or checksums); {target} stays as it was and the hub runs "
            "again' >&2",
            '    diff "$workdir/source" "$workdir/copy" | head -5 >&2 || true',
            f"    rm -rf {moving}",
            *(f"    {line}" for line in hub_lines("start")),
            "    exit 1",
            "  fi",
            f"  rmdir {copy} 2>/dev/null || true",
            f"  mv {moving} {copy}",
            "fi",
        ]
    lines += [
        'echo "checked: $(grep -c \'^[^ ]* [0-9]\' "$workdir/source") entries, identical"',
        'rm -rf "$workdir"',
        *bind_lines(over_existing=True),
        *hub_lines("start"),
    ]
    return tljh.script(*lines)


async def move_home(
    engine: Engine,
    course: str,
    config: CourseConfig,
    *,
    progress: Progress,
    now: datetime | None = None,
) -> OperationResult:
    """Move the course's /home and hub state onto its volume; see the module's docstring."""
    try:
        if config.server.provider != "digitalocean" or config.storage is None:
            raise OperationError(
                "set `storage.size` in .github/classroom.yml first (provider digitalocean): "
                "/move-home moves /home onto that volume"
            )
        record = await known_server(engine, course, config)
        if record is None or not record.droplet_id:
            raise OperationError("the course has no droplet yet; push to deploy it first")
        target = await server_target(engine, course, config, record)
        _, stdout, _ = await engine.ssh.run_script(target, observe_script())
        seen = parse_observation(stdout)
        if is_course_volume(seen.home_volume, config) and seen.home_on_volume:
            return operation_result(
                "neutral", "Already moved", f"/home is on `{seen.home_volume}`."
            )
        droplets = await droplet_driver(engine, course)
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        await droplets.snapshot(
            record.droplet_id,
            f"{config.server.name}{SNAPSHOT_SUFFIX}{stamp}",
            progress,
            owner_tag(config),
        )
        volume = await course_home_volume(engine, course, config, progress)
        step = Step(
            "move-home",
            f"copy /home and the hub's state onto {volume.name}, check, then mount it",
            move_script(volume.name, new_volume=volume.created),
            timeout=STEP_TIMEOUT * 6,
        )
        result = await engine.ssh.run_step(target, step, progress)
        if not result.ok:
            raise OperationError(f"```\n{result.output_tail}\n```")
    except (OperationError, DropletError, SSHError) as exc:
        return operation_result(
            "failure",
            "/home was not moved",
            f"{exc}\n\n/home is as it was on the droplet's disk. Run `/move-home` again "
            "once the cause is fixed.",
        )
    return operation_result(
        "success",
        f"/home moved to {volume.name}",
        f"/home and the hub's accounts are on volume `{volume.name}`, copied and checked "
        f"file by file; a droplet snapshot was taken first.\n\n{reclaim_hint()}",
        url=hub_url(config, await engine.records.get_server(course) or record),
    )
