"""Slash commands in issue and pull request comments.

The handler only recognises a command and asks for a job; the job checks the person's
permission, reacts and replies. Edited comments are ignored (their command already ran).
"""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.intake.delivery import Intake
from bot.jobs.commands import CommandError, parse_command
from handlers.common import course_of, default_branch

router = routing.Router()


@router.register("issue_comment", action="created")
async def comment_created(event: sansio.Event, intake: Intake) -> None:
    comment = event.data.get("comment") or {}
    body = comment.get("body")
    found = course_of(event)
    if not isinstance(body, str) or found is None:
        return
    try:
        command = parse_command(body)
    except CommandError as exc:
        # Still a job: the reply (a hint to /help) goes only to people who may run commands.
        name, args, raw, problem = "invalid", [], body.strip().splitlines()[0], str(exc)
    else:
        if command is None:
            return
        name, args, raw, problem = command.name, list(command.args), command.raw, None
    course, installation_id = found
    issue = event.data.get("issue") or {}
    intake.enqueue(
        course,
        "command",
        {
            "name": name,
            "args": args,
            "raw": raw[:200],
            "problem": problem,
            "user": (comment.get("user") or {}).get("login"),
            "comment_id": comment.get("id"),
            "comment_url": comment.get("html_url"),
            "issue_number": issue.get("number"),
            "pull_request": bool(issue.get("pull_request")),
            "source": "comment",
            "default_branch": default_branch(event),
        },
        installation_id=installation_id,
        coalesce_key=f"command:{name}",
    )
