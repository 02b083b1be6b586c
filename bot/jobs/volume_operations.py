"""The registry entries for a course's home volume: ``/backup``, ``/restore``,
``/move-home`` and ``/recover`` (see ``bot.jobs.registry``). Each decides what to run; the
engine (``deploy.volumes.backup``, ``deploy.volumes.movehome``,
``deploy.volumes.recover``) does the work."""

from __future__ import annotations

from dataclasses import dataclass

from bot.backup_schedule import report_backup
from bot.jobs.registry import (
    ADMIN,
    WRITE,
    ArgKind,
    Button,
    Flag,
    OperationContext,
    Option,
    Positional,
    operation,
    parse_hub_user,
    parse_snapshot_name,
)
from deploy.model import OperationResult
from deploy.volumes import backup as engine_backup
from deploy.volumes import movehome
from deploy.volumes import recover as droplet_recovery

parse_snapshot = ArgKind(
    "snapshot",
    "a snapshot name",
    parse_snapshot_name.check,
    pattern=parse_snapshot_name.pattern,
    help="A snapshot of the volume; leave empty to list them.",
)


@operation(
    "backup",
    summary="Snapshot the course's volume now (`storage` in the config); older snapshots "
    "this service made are deleted beyond `backup.keep`.",
    button=Button("Back up now", "Snapshot the course's volume", section="storage"),
)
async def backup(op: OperationContext, args: object) -> OperationResult:
    assert op.config is not None
    result = await engine_backup.backup(op.engine, op.course, op.config, progress=op.progress)
    if result.conclusion == "success" or result.details.get("snapshot_failed"):
        await report_backup(
            op.services, op.course, op.job.installation_id, result.conclusion, result.summary
        )
    return result


@dataclass(frozen=True)
class RestoreArgs:
    snapshot: str | None = None
    student: str | None = None
    all: bool = False
    confirm: bool = False


def restore_permission(args: RestoreArgs) -> str:
    # Bringing every home back replaces what everyone did since: admins only.
    return ADMIN if args.all else WRITE


@operation(
    "restore",
    # No "|" in the usage: /help shows it in a Markdown table.
    usage="/restore [SNAPSHOT] [--student NAME | --all --confirm]",
    summary="List the volume's snapshots; bring one student's home back into a new "
    "`restored-…` folder (writers), or every home (admins, with `--confirm`).",
    example="/restore physics101-hub-home-20250301-020000 --student alice",
    grammar=(
        Positional("snapshot", parse=parse_snapshot, required=False),
        Option("student", "--student", parse=parse_hub_user),
        Flag("all", "--all", help="Every home (admins)"),
        Flag("confirm", "--confirm", help="Yes, replace every home"),
    ),
    args=RestoreArgs,
    permission=restore_permission,
    button=Button("Restore", "List snapshots or bring homes back", section="storage"),
)
async def restore(op: OperationContext, args: RestoreArgs) -> OperationResult:
    assert op.config is not None
    usage = "`/restore SNAPSHOT --student NAME` or `/restore SNAPSHOT --all --confirm`"
    if args.snapshot is None:
        if args.student or args.all or args.confirm:
            return OperationResult("failure", "Nothing restored", f"Name a snapshot: {usage}.")
        return await engine_backup.list_snapshots(
            op.engine, op.course, op.config, progress=op.progress
        )
    if args.student and args.all:
        return OperationResult(
            "failure", "Nothing restored", f"Choose one of `--student` and `--all`: {usage}."
        )
    if args.student:
        return await engine_backup.restore_student(
            op.engine, op.course, op.config, args.snapshot, args.student, progress=op.progress
        )
    if args.all:
        return await engine_backup.restore_all(
            op.engine,
            op.course,
            op.config,
            args.snapshot,
            confirm=args.confirm,
            progress=op.progress,
        )
    return OperationResult("failure", "Nothing restored", f"Say what to restore: {usage}.")


@operation(
    "move-home",
    summary="Move /home and the hub's accounts onto the course's volume: a droplet "
    "snapshot first, a checked copy, the original kept on the droplet's disk.",
    button=Button("Move homes to volume", "Move /home onto the course's volume", section="storage"),
)
async def move_home(op: OperationContext, args: object) -> OperationResult:
    assert op.config is not None
    return await movehome.move_home(op.engine, op.course, op.config, progress=op.progress)


@operation(
    "recover",
    summary="The droplet is gone: make a new one with the course's volume, the students' "
    "accounts and UIDs, the reserved IP and the course's packages.",
    permission=WRITE,
    button=Button("Recover", "A new droplet with the volume", section="storage"),
)
async def recover(op: OperationContext, args: object) -> OperationResult:
    assert op.config is not None
    return await droplet_recovery.recover(op.engine, op.course, op.config, progress=op.progress)
