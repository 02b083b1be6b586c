"""The registry entries for /backup, /restore and /move-home: words, who may run them."""

from __future__ import annotations

import pytest

from bot.jobs import registry
from bot.jobs.commands import parse_command
from bot.jobs.registry import ADMIN, WRITE, CommandError, OperationContext
from deploy.course.config import load_course

SNAPSHOT = "physics101-hub-home-20250301-020000"
# Through the registry, so its own modules load in their order.
RESTORE = registry.command("restore")
assert RESTORE is not None
RestoreArgs = RESTORE.args


def entry(name: str) -> registry.Operation:
    found = registry.command(name)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("words", "expected", "role"),
    [
        ((), RestoreArgs(), WRITE),
        ((SNAPSHOT, "--student", "Alice"), RestoreArgs(SNAPSHOT, "alice"), WRITE),
        ((SNAPSHOT, "--all", "--confirm"), RestoreArgs(SNAPSHOT, all=True, confirm=True), ADMIN),
        (("--all", SNAPSHOT), RestoreArgs(SNAPSHOT, all=True), ADMIN),
    ],
)
def test_restore_words_and_who_may_run_them(words, expected, role) -> None:
    args = entry("restore").parse(list(words))
    assert args == expected
    assert entry("restore").required_role(args) == role


@pytest.mark.parametrize(
    "words",
    [
        (SNAPSHOT, "--student"),
        (SNAPSHOT, "--student", "../root"),
        ("$(reboot)",),
        (SNAPSHOT, "--everyone"),
        (SNAPSHOT, "another", "--all"),
    ],
)
def test_bad_restore_words_are_refused_with_the_usage(words) -> None:
    with pytest.raises(CommandError) as refused:
        entry("restore").parse(list(words))
    assert "/restore [SNAPSHOT] [--student NAME | --all --confirm]" in str(refused.value)


@pytest.mark.parametrize("name", ["backup", "move-home"])
def test_backup_and_move_home_are_writers_commands_without_arguments(name) -> None:
    assert parse_command(f"/{name}").name == name
    assert entry(name).required_role(entry(name).parse([])) == WRITE
    with pytest.raises(CommandError):
        entry(name).parse(["now"])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (RestoreArgs(SNAPSHOT, "alice", all=True, confirm=True), "Choose one"),
        (RestoreArgs(SNAPSHOT), "Say what to restore"),
        (RestoreArgs(None, "alice"), "Name a snapshot"),
    ],
)
async def test_unclear_restores_do_nothing_and_say_what_to_write(args, says) -> None:
    config = load_course({".github/classroom.yml": b"storage: {size: 20}\n"}, "o", "r")

    async def progress(_line: str) -> None:
        return None

    op = OperationContext(
        services=None,
        job=None,  # type: ignore[arg-type]
        course="o/r",
        config=config,
        engine=None,  # nothing may reach the engine
        progress=progress,
        user="alice",
        source="comment",
    )
    result = await RESTORE.run(op, args)
    assert result.conclusion == "failure" and says in result.summary
