"""Slash commands in issue and pull request comments.

The handler only recognises a command and asks for a job; the job checks the person's
permission, reacts and replies. Edited comments are ignored (their command already ran).
"""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.commands import parse_command
from bot.intake import Intake
from handlers.common import course_of

router = routing.Router()


@router.register("issue_comment", action="created")
async def comment_created(event: sansio.Event, intake: Intake) -> None:
    comment = event.data.get("comment") or {}
    body = comment.get("body")
    found = course_of(event)
    if not isinstance(body, str) or found is None:
        return
    command = parse_command(body)
    if command is None:
        return
    course, installation_id = found
    issue = event.data.get("issue") or {}
    intake.enqueue(
        course,
        "command",
        {
            "name": command.name,
            "args": list(command.args),
            "raw": command.raw[:200],
            "user": (comment.get("user") or {}).get("login"),
            "comment_id": comment.get("id"),
            "comment_url": comment.get("html_url"),
            "issue_number": issue.get("number"),
            "pull_request": bool(issue.get("pull_request")),
            "source": "comment",
        },
        installation_id=installation_id,
        coalesce_key=f"command:{command.name}",
    )
