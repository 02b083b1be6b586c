"""Who may run slash commands: every role against every command, through ``/webhook``.

Only admin, maintain and write change anything (an SSH stand-in call, a DigitalOcean
request, a check run); triage, read, ``none`` and people GitHub does not know get one
refusal reply and nothing else; bots and the app itself get nothing at all. One deployed
course per role keeps the matrix fast: each role's test runs all seven commands on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.plugins.github_fake import COURSE_REPO
from tests.support.droplet_classroom import droplet_classroom, issue_payload

pytestmark = pytest.mark.sshd

COMMANDS = ("/status", "/plan", "/rebuild", "/resize s-4vcpu-8gb", "/restart", "/snapshot", "/help")
WRITERS = ("admin", "maintain", "write")
REFUSED = ("triage", "read", "none")
APP_LOGIN = "littlest-classroom[bot]"


@dataclass
class Effects:
    """What one comment caused, counted from the fakes."""

    status: int
    ssh_calls: list[dict]
    do_writes: list[str]
    do_actions: list[str]
    check_runs: int
    replies: list[str]
    reactions: list[str]


async def run_commands(classroom, do_fake, example, user: str, **sender) -> dict[str, Effects]:
    """Deploy a droplet course once, then have ``user`` comment each command in turn."""
    _, number = await droplet_classroom(classroom, do_fake, example)
    issue = classroom.github.issues[(COURSE_REPO, number)]
    found: dict[str, Effects] = {}
    for command in COMMANDS:
        calls = len(classroom.target.calls())
        requests = len(do_fake.requests)
        actions = len(do_fake.actions)
        runs = len(classroom.github.check_runs)
        comments = len(issue.comments)
        reactions = len(classroom.github.reactions)
        changes = {"sender": {**example("issue_comment", "created")["sender"], **sender}}
        if not sender:
            changes = {}
        response = await classroom.comment(
            example, command, user=user, issue=issue_payload(example, number), **changes
        )
        await classroom.settle()
        found[command] = Effects(
            status=response.status,
            ssh_calls=classroom.target.calls()[calls:],
            do_writes=[
                f"{r.method} {r.path}" for r in do_fake.requests[requests:] if r.method != "GET"
            ],
            do_actions=[a.type for a in do_fake.actions[actions:]],
            check_runs=len(classroom.github.check_runs) - runs,
            replies=[c["body"] for c in issue.comments[comments:]],
            reactions=[r["content"] for r in classroom.github.reactions[reactions:]],
        )
    assert classroom.target.canary.intact()
    return found


def assert_nothing_changed(effects: Effects, command: str) -> None:
    assert effects.ssh_calls == [], (command, effects.ssh_calls)
    assert effects.do_writes == [] and effects.do_actions == [], (command, effects.do_writes)
    assert effects.check_runs == 0, command


@pytest.mark.parametrize("role", WRITERS)
async def test_writers_maintainers_and_admins_run_every_command(
    classroom, do_fake, example, role: str
) -> None:
    user = f"user-{role}"
    classroom.github.repositories[COURSE_REPO].collaborators[user] = role
    effects = await run_commands(classroom, do_fake, example, user)

    for command, seen in effects.items():
        assert seen.status == 202, command
        assert len(seen.replies) == 1, (command, seen.replies)
        assert seen.replies[0].startswith(f"@{user} "), command
        assert "Nothing was done" not in seen.replies[0], (command, seen.replies[0])
        assert seen.reactions == ["eyes", "rocket"], (command, seen.replies[0])
    # Each command that acts on the server did act, by its own means.
    assert effects["/rebuild"].ssh_calls, "a rebuild re-applies the software over SSH"
    assert effects["/restart"].ssh_calls, "a restart restarts the hub over SSH"
    assert "resize" in effects["/resize s-4vcpu-8gb"].do_actions
    assert "snapshot" in effects["/snapshot"].do_actions
    assert "/resize" in effects["/help"].replies[0]
    # Reading commands change nothing on DigitalOcean.
    for command in ("/status", "/plan", "/help"):
        assert effects[command].do_actions == [], command


@pytest.mark.parametrize("role", [*REFUSED, "not a collaborator"])
async def test_everyone_else_is_refused_and_changes_nothing(
    classroom, do_fake, example, role: str
) -> None:
    user = "user-" + role.replace(" ", "-")
    if role != "not a collaborator":
        classroom.github.repositories[COURSE_REPO].collaborators[user] = role
    effects = await run_commands(classroom, do_fake, example, user)

    for command, seen in effects.items():
        assert_nothing_changed(seen, command)
        assert len(seen.replies) == 1, (command, seen.replies)
        assert seen.replies[0].startswith(f"@{user} sorry"), (command, seen.replies[0])
        assert "Nothing was done" in seen.replies[0]
        assert f"has: {role}" in seen.replies[0], seen.replies[0]
        assert seen.reactions == ["eyes", "confused"], command


@pytest.mark.parametrize(
    ("user", "sender_type"),
    [("helper-ci[bot]", "Bot"), (APP_LOGIN, "Bot"), (APP_LOGIN, "User")],
    ids=["a-bot", "the-app", "the-app-typed-as-user"],
)
async def test_bots_and_the_app_itself_get_nothing_at_all(
    classroom, do_fake, example, user: str, sender_type: str
) -> None:
    # Even a bot GitHub would call an admin gets nothing: bots never run commands.
    classroom.github.repositories[COURSE_REPO].collaborators[user] = "admin"
    before = len(classroom.github.requests)
    effects = await run_commands(classroom, do_fake, example, user, login=user, type=sender_type)

    for command, seen in effects.items():
        assert seen.status == 200, command
        assert_nothing_changed(seen, command)
        assert seen.replies == [] and seen.reactions == [], command
    asked = [r for r in classroom.github.requests[before:] if "permission" in r.path]
    assert asked == [], "a bot's comment is dropped before anyone asks GitHub about it"
