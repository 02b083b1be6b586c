"""The console's registry entries for the hub's accounts (see ``bot.jobs.registry``):
discard a waiting sign-up, a hub admin's own password, a student's new password. Approving
is ``/approve``'s entry. None of these is a slash command: a password never goes through
GitHub. The console queues them in the course's queue like any operation; the engine
(``deploy.operations``) does the work.

A password never enters the job's arguments: they hold a handle to it
(``bot.secret_handles``), and the secret is erased when the job ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.jobs.registry import (
    ADMIN,
    WRITE,
    ArgKind,
    OperationContext,
    Positional,
    operation,
    parse_hub_user,
)
from bot.secret_handles import HANDLE
from deploy import operations as engine
from deploy.course.validate import Invalid
from deploy.model import OperationResult

NOT_KEPT = (
    "The service restarted (or an hour went by) before this job ran, and a password is "
    "never kept on disk: set it again on the console."
)


def _handle(word: str) -> str:
    if not HANDLE.fullmatch(word):
        raise Invalid("not a handle the console made")
    return word


parse_handle = ArgKind("handle", "the console's handle", _handle)


@dataclass(frozen=True)
class NameArgs:
    name: str


@operation(
    "discard",
    usage="discard NAME",
    summary="Delete a waiting sign-up; an approved account is kept.",
    grammar=(Positional("name", parse=parse_hub_user),),
    args=NameArgs,
    permission=WRITE,
    needs_config=False,
    command=False,
    console=True,
)
async def discard(op: OperationContext, args: NameArgs) -> OperationResult:
    try:
        outcome = await engine.discard_students(op.engine, op.course, [args.name])
    except engine.OperationError as exc:
        return OperationResult("failure", "Not discarded", str(exc))
    if outcome.done:
        return OperationResult("success", f"Discarded {args.name}", "The sign-up is deleted.")
    if outcome.already:
        return OperationResult(
            "neutral", f"{args.name} is approved", "An approved account is kept."
        )
    return OperationResult("neutral", "Nobody to discard", f"Nobody called {args.name} is waiting.")


@dataclass(frozen=True)
class OwnPasswordArgs:
    handle: str


@operation(
    "hub-password",
    usage="hub-password",
    summary="A person in hub.admins sets their own hub password (typed on the console).",
    grammar=(Positional("handle", parse=parse_handle),),
    args=OwnPasswordArgs,
    permission=WRITE,
    needs_config=False,
    command=False,
    console=True,
)
async def hub_password(op: OperationContext, args: OwnPasswordArgs) -> OperationResult:
    try:
        password = op.services.secret_handles.get(args.handle, op.course)
        if password is None:
            return OperationResult("failure", "Password not set", NOT_KEPT)
        name = (op.user or "").lower()
        facts = await op.services.store.course_facts(op.course)
        if not name or name not in facts.get("hub_admins", []):
            return OperationResult(
                "failure", "Password not set", "Only the people in hub.admins set a password here."
            )
        try:
            await engine.set_hub_password(op.engine, op.course, name, password, password)
        except engine.OperationError as exc:
            return OperationResult("failure", "Password not set", str(exc))
        return OperationResult(
            "success", f"Hub password set for {name}", "Log in on the hub as its admin."
        )
    finally:
        op.services.secret_handles.erase(args.handle)


@dataclass(frozen=True)
class ResetArgs:
    name: str
    handle: str


@operation(
    "reset-password",
    usage="reset-password NAME",
    summary="Give a locked-out student a new hub password, shown once on the console.",
    grammar=(Positional("name", parse=parse_hub_user), Positional("handle", parse=parse_handle)),
    args=ResetArgs,
    permission=ADMIN,
    needs_config=False,
    command=False,
    console=True,
)
async def reset_password(op: OperationContext, args: ResetArgs) -> OperationResult:
    if not op.services.secret_handles.open(args.handle, op.course):
        return OperationResult("failure", "Password not reset", NOT_KEPT)
    try:
        password = await engine.reset_student_password(op.engine, op.course, args.name)
    except engine.OperationError as exc:
        op.services.secret_handles.erase(args.handle)
        return OperationResult("failure", "Password not reset", str(exc))
    op.services.secret_handles.fill(args.handle, op.course, password)
    return OperationResult(
        "success",
        f"New hub password for {args.name}",
        f"Shown once, on the course page, to {op.user}; it is kept nowhere.",
    )
