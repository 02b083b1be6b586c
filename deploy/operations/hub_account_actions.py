"""The hub's accounts: ``/approve``, and the console's list, discard, set and reset
password. Each works from the remembered server, without reading the repository.
"""

from __future__ import annotations

import secrets

from deploy.engine import (
    Engine,
    OperationError,
    operation_result,
    remembered_target,
)
from deploy.host import accounts
from deploy.model import (
    HubAccounts,
    OperationResult,
    Progress,
)
from deploy.planning.render import escape
from deploy.providers import kubernetes_course
from deploy.ssh import (
    SSHError,
    Target,
    stamp,
)

APPROVE_LIMIT = 100


# A password the console makes for a locked-out student: shown once, never stored.
RESET_PASSWORD_BYTES = 12


async def _on_kubernetes(engine: Engine, course: str) -> bool:
    record = await engine.records.get_server(course)
    return record is not None and record.provider == "kubernetes"


async def _quiet(_line: str) -> None:
    """Progress nobody reads (the console waits for the answer)."""


async def _hub_target(engine: Engine, course: str) -> Target:
    """The course's server as remembered: account work needs no repository read."""
    record = await engine.records.get_server(course)
    if record is not None and record.provider == "kubernetes":
        raise OperationError(
            "on a `provider: kubernetes` course only `/approve` and the admins' passwords "
            "reach the hub's accounts yet; manage the others on the hub's admin page"
        )
    if record is None or not record.address:
        raise OperationError("there is no server yet: push to the default branch first")
    return await remembered_target(engine, course, record)


async def hub_accounts(engine: Engine, course: str) -> HubAccounts:
    """Waiting sign-ups and students with their last activity, in one round trip."""
    try:
        return await accounts.list_accounts(engine.ssh, await _hub_target(engine, course))
    except SSHError as exc:
        raise OperationError(str(exc)) from None


async def discard_students(engine: Engine, course: str, names: list[str]) -> accounts.NamesOutcome:
    """Delete waiting sign-ups; approved accounts are kept (reported as ``already``)."""
    try:
        wanted = accounts.hub_names(names)
        return await accounts.discard(engine.ssh, await _hub_target(engine, course), wanted)
    except (accounts.AccountError, SSHError) as exc:
        raise OperationError(str(exc)) from None


async def set_hub_password(
    engine: Engine, course: str, name: str, password: str, again: str
) -> None:
    """An admin sets their own hub password (typed twice, the hub's own rules)."""
    try:
        accounts.check_new_password(password, again)
        if await _on_kubernetes(engine, course):
            answer = await kubernetes_course.accounts_action(
                engine, course, "set-password", accounts.password_request(name, password), _quiet
            )
            changed = bool(answer.get("updated"))
        else:
            changed = await accounts.set_password(
                engine.ssh, await _hub_target(engine, course), name, password
            )
    except (accounts.AccountError, SSHError, *kubernetes_course.ERRORS) as exc:
        raise OperationError(str(exc)) from None
    if not changed:
        raise OperationError(f"the hub has no account {name!r}: deploy first")


async def reset_student_password(engine: Engine, course: str, name: str) -> str:
    """A new password for a locked-out student, to show once; admins set their own."""
    try:
        target = await _hub_target(engine, course)
        wanted = accounts.hub_name(name)
        listed = await accounts.list_accounts(engine.ssh, target)
        if wanted in listed.seeded:
            raise OperationError(f"{wanted} is a hub admin: admins set their own password")
        if wanted not in {r.name for r in listed.approved}:
            raise OperationError(f"{wanted} is not an approved student on the hub")
        password = secrets.token_urlsafe(RESET_PASSWORD_BYTES)
        await accounts.set_password(engine.ssh, target, wanted, password)
    except (accounts.AccountError, SSHError) as exc:
        raise OperationError(str(exc)) from None
    return password


async def approve_students(
    engine: Engine, course: str, names: list[str], *, progress: Progress
) -> OperationResult:
    """``/approve NAME…``: authorise those waiting sign-ups, in one SSH round trip.

    Works from the remembered server (no repository read). The summary names only the
    names asked for, sorted into approved, already approved and unknown: nothing else
    about the hub's students is posted, as the repository may be public.
    """
    try:
        if not names:
            raise OperationError("name at least one student to approve: `/approve NAME…`")
        if len(names) > APPROVE_LIMIT:
            raise OperationError(
                f"at most {APPROVE_LIMIT} names at once ({len(names)} given); "
                "approve the rest on the console"
            )
        try:
            wanted = accounts.hub_names(names)
        except accounts.AccountError as exc:
            raise OperationError(str(exc)) from None
        if await _on_kubernetes(engine, course):
            answer = await kubernetes_course.accounts_action(
                engine, course, "approve", accounts.names_request(wanted), progress
            )
            outcome = accounts.NamesOutcome(*accounts.name_lists(answer, *accounts.APPROVED))
        else:
            target = await _hub_target(engine, course)
            outcome = await accounts.approve(engine.ssh, target, wanted)
    except (OperationError, SSHError, *kubernetes_course.ERRORS) as exc:
        return operation_result("failure", "Could not approve", str(exc))
    await progress(stamp(f"approved {len(outcome.done)}, already {len(outcome.already)}"))
    lines = []
    for label, group in (
        ("Approved; they can log in now", outcome.done),
        ("Already approved", outcome.already),
        ("Unknown: nobody signed up under these names", outcome.unknown),
    ):
        if group:
            lines.append(f"- {label}: {', '.join(escape(n) for n in group)}")
    title = (
        f"Approved {len(outcome.done)} student{'s' if len(outcome.done) != 1 else ''}"
        if outcome.done
        else "Nobody new approved"
    )
    return operation_result(
        "success" if outcome.done or not outcome.unknown else "neutral",
        title,
        "\n".join(lines),
        approved=list(outcome.done),
        already=list(outcome.already),
        unknown=list(outcome.unknown),
    )
