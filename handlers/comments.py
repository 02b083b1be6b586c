"""Slash commands in issue and pull request comments.

The handler recognises a command and asks GitHub (cached) whether its author holds write
on the repository: anyone below gets no job, no reaction and no reply, as ``/help`` says,
so a stranger's command can neither run nor replace a writer's queued one. The job checks
the role the operation needs (some need admin), reacts and replies. Edited comments are
ignored (their command already ran).
"""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.intake.delivery import Intake
from bot.jobs import registry
from bot.jobs.commands import CommandError, parse_command
from handlers.common import course_of, default_branch, may_ask

router = routing.Router()


@router.register("issue_comment", action="created")
async def comment_created(event: sansio.Event, intake: Intake) -> None:
    comment = event.data.get("comment") or {}
    body = comment.get("body")
    found = course_of(event)
    if not isinstance(body, str) or found is None:
        return
    course, installation_id = found
    user = (comment.get("user") or {}).get("login")
    if not isinstance(user, str) or not user:
        return
    issue = event.data.get("issue") or {}
    payload = {
        "comment_id": comment.get("id"),
        "comment_url": comment.get("html_url"),
        "issue_number": issue.get("number"),
        "pull_request": bool(issue.get("pull_request")),
        "default_branch": default_branch(event),
    }
    try:
        command = parse_command(body)
        if command is None:
            return
        job = registry.operation_job(
            course,
            command.name,
            installation_id=installation_id,
            user=user,
            source="comment",
            payload={**payload, "raw": command.raw[:200]},
            arguments=command.arguments,
        )
    except CommandError as exc:
        # Still a job: the reply (a hint to /help) goes only to people who may run commands.
        raw = body.strip().splitlines()[0]
        job = registry.invalid_command_job(
            course,
            str(exc),
            installation_id=installation_id,
            user=user,
            payload={**payload, "raw": raw[:200], "source": "comment"},
        )
    allowed = await may_ask(intake, course, installation_id, user)
    if allowed is False:
        return
    if allowed is None:
        # Not known to be a writer yet: the job asks when it runs, and replaces nothing.
        job.coalesce_key = None
    intake.jobs.append(job)
