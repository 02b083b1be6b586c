"""Slash commands in issue and pull-request comments: find the command on the first line
and check its words against its entry in the registry (``bot.jobs.registry``).

Only the first non-blank line of a comment can be a command, and only when it is
ordinary text (not in a fenced or indented code block, not in a ``>`` quote), so
quoting someone's ``/rebuild`` in a reply never runs it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.jobs import registry
from bot.jobs.registry import MAY_RUN, CommandError, code, help_text, may_run

__all__ = ["MAY_RUN", "Command", "CommandError", "help_text", "may_run", "parse_command"]

# A word after the slash; "/etc/hosts is broken" or "/ 2" is prose, not a command.
_COMMAND_LINE = re.compile(r"/(?P<name>[A-Za-z][A-Za-z0-9_-]*)(?=\s|$)(?P<rest>.*)")
_FENCE = re.compile(r" {0,3}(?:`{3,}|~{3,})")
_QUOTE = re.compile(r" {0,3}>")


@dataclass(frozen=True)
class Command:
    """A validated command: its words after the name, normalized, and what they mean."""

    name: str
    args: tuple[str, ...]
    raw: str
    arguments: Any = field(default=None, compare=False)  # the entry's args dataclass


def _first_line(comment_body: str) -> str | None:
    for line in comment_body.splitlines():
        if line.strip():
            return line
    return None


def parse_command(comment_body: str) -> Command | None:
    """The command on the comment's first line, None when there is none.

    Raises ``CommandError`` when the first line is a command that cannot run as written.
    """
    line = _first_line(comment_body)
    if line is None:
        return None
    expanded = line.expandtabs(4)
    if _FENCE.match(expanded) or _QUOTE.match(expanded):
        return None
    # Four spaces of indent make an indented code block in Markdown.
    if len(expanded) - len(expanded.lstrip(" ")) >= 4:
        return None
    raw = line.strip()
    match = _COMMAND_LINE.fullmatch(raw)
    if match is None:
        return None
    name = match["name"].lower()
    op = registry.command(name)
    if op is None:
        raise CommandError(f"Unknown command `/{code(name)}`. Comment `/help` for the list.")
    arguments = op.parse(match["rest"].split())
    return Command(name, op.words(arguments), raw, arguments)
