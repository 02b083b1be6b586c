"""Slash commands in issue and pull-request comments: parse, validate, explain, authorize.

Only the first non-blank line of a comment can be a command, and only when it is
ordinary text (not in a fenced or indented code block, not in a ``>`` quote), so
quoting someone's ``/rebuild`` in a reply never runs it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAY_RUN = frozenset({"admin", "maintain", "write"})

# DigitalOcean size slugs: s-2vcpu-4gb, s-1vcpu-512mb-10gb, c-2, so1_5-2vcpu-16gb, 1gb.
SIZE_PATTERN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+){0,7}")
# Snapshot names reach DigitalOcean and the job log; letters, digits and . _ - only.
SNAPSHOT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_SLUG = 64

# A word after the slash; "/etc/hosts is broken" or "/ 2" is prose, not a command.
_COMMAND_LINE = re.compile(r"/(?P<name>[A-Za-z][A-Za-z0-9_-]*)(?=\s|$)(?P<rest>.*)")
_FENCE = re.compile(r" {0,3}(?:`{3,}|~{3,})")
_QUOTE = re.compile(r" {0,3}>")


@dataclass(frozen=True)
class CommandSpec:
    name: str
    usage: str
    summary: str
    example: str


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("status", "/status", "Report the hub's health, versions and disk use.",
                    "/status"),
        CommandSpec("plan", "/plan", "Show what a deploy would change, without changing it.",
                    "/plan"),
        CommandSpec("rebuild", "/rebuild",
                    "Re-apply TLJH and the packages in place; students' files stay.",
                    "/rebuild"),
        CommandSpec("resize", "/resize SIZE [--disk]",
                    "Change the droplet's CPU and memory; `--disk` also grows the disk "
                    "(a disk cannot shrink back).", "/resize s-4vcpu-8gb"),
        CommandSpec("restart", "/restart", "Restart JupyterHub and its proxy.", "/restart"),
        CommandSpec("snapshot", "/snapshot [NAME]", "Take a DigitalOcean snapshot of the droplet.",
                    "/snapshot before-midterm"),
        CommandSpec("help", "/help", "Show this list.", "/help"),
    )
}  # fmt: skip


class CommandError(ValueError):
    """A comment that is a command but cannot run; ``str()`` is the reply to post."""


@dataclass(frozen=True)
class Command:
    """A validated command. ``args`` are its words after the name, normalized."""

    name: str
    args: tuple[str, ...]
    raw: str

    @property
    def size(self) -> str | None:
        """For ``/resize``: the size slug."""
        return self.args[0] if self.name == "resize" else None

    @property
    def disk(self) -> bool:
        """For ``/resize``: whether the disk grows too."""
        return self.name == "resize" and "--disk" in self.args

    @property
    def snapshot_name(self) -> str | None:
        """For ``/snapshot``: the name asked for, if any."""
        return self.args[0] if self.name == "snapshot" and self.args else None


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
    words = tuple(match["rest"].split())
    spec = COMMANDS.get(name)
    if spec is None:
        raise CommandError(f"Unknown command `/{_code(name)}`. Comment `/help` for the list.")
    return Command(name, _validate(spec, words), raw)


def _code(text: str) -> str:
    # Echoed inside `…` in the reply: no backticks to break out, and bounded length.
    cleaned = text.replace("`", "'")
    return cleaned if len(cleaned) <= 40 else cleaned[:39] + "…"


def _validate(spec: CommandSpec, words: tuple[str, ...]) -> tuple[str, ...]:
    usage = f"Usage: `{spec.usage}`, e.g. `{spec.example}`."
    if spec.name == "resize":
        disk = "--disk" in words
        others = [w for w in words if w != "--disk"]
        if words.count("--disk") > 1:
            raise CommandError(f"`--disk` is given twice. {usage}")
        flags = [w for w in others if w.startswith("-")]
        if flags:
            raise CommandError(f"Unknown option `{_code(flags[0])}`; only `--disk`. {usage}")
        if not others:
            raise CommandError(f"`/resize` needs a size slug. {usage}")
        if len(others) > 1:
            raise CommandError(f"`/resize` takes one size, got {len(others)}. {usage}")
        size = others[0]
        if len(size) > _MAX_SLUG or not SIZE_PATTERN.fullmatch(size):
            raise CommandError(
                f"`{_code(size)}` is not a DigitalOcean size slug: lower-case letters, digits, "
                f"`-` and `_`, like `s-4vcpu-8gb`. {usage}"
            )
        return (size, "--disk") if disk else (size,)
    if spec.name == "snapshot":
        if len(words) > 1:
            raise CommandError(f"`/snapshot` takes at most one name. {usage}")
        if words and not SNAPSHOT_PATTERN.fullmatch(words[0]):
            raise CommandError(
                f"`{_code(words[0])}` is not a usable snapshot name: 1 to 64 letters, digits, "
                f"`.`, `_` or `-`, starting with a letter or digit. {usage}"
            )
        return words
    if words:
        raise CommandError(f"`/{spec.name}` takes no arguments. {usage}")
    return ()


def help_text() -> str:
    """The ``/help`` reply, in Markdown."""
    rows = "\n".join(
        f"| `{spec.usage}` | {spec.summary} | `{spec.example}` |" for spec in COMMANDS.values()
    )
    return (
        "Commands go on the **first line** of an issue or pull-request comment. "
        "Repository admins, maintainers and writers may use them; "
        "comments by anyone else are ignored.\n\n"
        "| Command | What it does | Example |\n"
        "|---|---|---|\n"
        f"{rows}\n"
    )


def may_run(permission_payload: dict[str, Any] | None) -> bool:
    """Whether a collaborator-permission answer allows running commands.

    ``permission_payload`` is GitHub's answer to
    ``GET /repos/{owner}/{repo}/collaborators/{username}/permission``, or None on 404.
    """
    if not permission_payload:
        return False
    role = permission_payload.get("role_name")
    if not isinstance(role, str):
        role = None
    if role in MAY_RUN:
        return True
    if role in ("triage", "read", "none"):
        return False
    # A custom role keeps a base role's powers; its user.permissions booleans say which.
    user = permission_payload.get("user")
    permissions = user.get("permissions") if isinstance(user, dict) else None
    if isinstance(permissions, dict):
        return any(permissions.get(key) is True for key in ("admin", "maintain", "push"))
    # `permission` folds maintain into write and triage into read.
    return permission_payload.get("permission") in ("admin", "write")
