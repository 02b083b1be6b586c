"""Texts people read about operations: replies to commands, refusals, config errors."""

from __future__ import annotations

from typing import Any

from bot.jobs.registry import ADMIN, MAY_RUN, code
from bot.jobs.results import JobResult
from deploy.model import ConfigErrors


def config_failure(errors: ConfigErrors) -> JobResult:
    lines = "\n".join(
        f"- `{e.file}`{f' line {e.line}' if e.line else ''}: "
        f"{e.key + ': ' if e.key else ''}{e.message}"
        for e in errors.errors
    )
    return JobResult(
        "failure",
        f"The course configuration has {len(errors.errors)} error(s)",
        "Nothing ran on the server. Fix these and push again:\n\n" + lines,
    )


def hub_lines(hub_url: str, launch: str) -> str:
    return f"**Hub:** {hub_url}\n\n**Launch link:** {launch}"


def paste_block(block: str, reason: str) -> str:
    return (
        f"README badges were not written ({reason}). To show them, paste this into "
        "README.md:\n\n````markdown\n<!-- classroom-badges:start -->\n"
        f"{block}\n<!-- classroom-badges:end -->\n````"
    )


def refusal(user: str, permission: dict[str, Any] | None, required: str = "write") -> str:
    role = (
        "not a collaborator"
        if permission is None
        else (permission.get("role_name") or permission.get("permission") or "none")
    )
    allowed = "admin" if required == ADMIN else ", ".join(sorted(MAY_RUN))
    what = "this command needs" if required == ADMIN else "commands need"
    return (
        f"sorry, {what} the {allowed} role on this repository; "
        f"GitHub says @{user} has: {role}. Nothing was done."
    )


def command_reply(name: str, args: list[str], result: JobResult, note: str = "") -> str:
    """The reply to a command: what ran, how it ended, and the entry's note on success."""
    outcome = {"success": "done", "neutral": "done", "failure": "failed", "cancelled": "cancelled"}
    parts = [
        f"`/{' '.join([name, *args])}` {outcome.get(result.conclusion, result.conclusion)}: "
        f"**{result.title}**",
        "",
        result.summary,
    ]
    if note and result.conclusion == "success":
        parts += ["", note]
    return "\n".join(parts)


def coalesced(name: str, words: list[str] | tuple[str, ...] = ()) -> str:
    command = code(" ".join((name, *words)))
    return (
        f"the same `/{command}` arrived again while this one was still queued, so they run "
        "once, together; the reply to the newer comment has the result."
    )


def refusal_without_token(console_url: str) -> JobResult:
    """The job result when the service serves only courses with their own token."""
    summary = (
        "This service serves only courses that bring their own DigitalOcean token "
        "(`BOT_REQUIRE_COURSE_TOKEN=1`), and this course has none. An admin of this "
        f"repository sets one on the console: {console_url}"
    )
    return JobResult("failure", "No DigitalOcean token", summary)
