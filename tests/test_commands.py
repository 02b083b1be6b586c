"""Slash commands: only a plain first line counts, arguments are validated, access is checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jobs import registry
from bot.jobs.commands import (
    MAY_RUN,
    Command,
    CommandError,
    help_text,
    may_run,
    parse_command,
)

COMMANDS = {op.name: op for op in registry.commands()}
OPENAPI = Path(__file__).parent / "data/npm/node_modules/@octokit/openapi/generated"


@pytest.mark.parametrize("name", ["status", "plan", "rebuild", "restart", "help"])
def test_plain_commands(name: str) -> None:
    assert parse_command(f"/{name}") == Command(name, (), f"/{name}")


def test_command_is_case_insensitive_and_trimmed() -> None:
    assert parse_command("  /Status  ") == Command("status", (), "/Status")


def test_leading_blank_lines_ignored_and_rest_of_comment_ignored() -> None:
    body = "\r\n\r\n   \r\n/rebuild\r\nbecause the kernel died\r\n/resize nonsense"
    assert parse_command(body) == Command("rebuild", (), "/rebuild")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   \n\n",
        "Looks good to me",
        "Please run\n/rebuild",
        "> /rebuild",
        "   > /rebuild",
        ">/rebuild",
        "```\n/rebuild\n```",
        "~~~sh\n/rebuild\n~~~",
        "    /rebuild",
        "\t/rebuild",
        "/etc/hosts is wrong on the hub",
        "/ rebuild",
        "/123",
        "`/rebuild`",
        "- /rebuild",
    ],
)
def test_not_a_command(body: str) -> None:
    assert parse_command(body) is None


def test_up_to_three_spaces_of_indent_is_still_a_command() -> None:
    assert parse_command("   /status") == Command("status", (), "/status")


def test_unknown_command_points_to_help() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/deploy now")
    assert str(caught.value) == "Unknown command `/deploy`. Comment `/help` for the list."


def test_unknown_command_echo_cannot_break_out_of_code() -> None:
    with pytest.raises(CommandError) as caught:
        parse_command("/x" + "y" * 100)
    assert len(str(caught.value)) < 120


def test_resize() -> None:
    command = parse_command("/resize s-4vcpu-8gb")
    assert command == Command("resize", ("s-4vcpu-8gb",), "/resize s-4vcpu-8gb")
    assert command.arguments.size == "s-4vcpu-8gb"
    assert command.arguments.disk is False


@pytest.mark.parametrize("body", ["/resize s-4vcpu-8gb --disk", "/resize --disk s-4vcpu-8gb"])
def test_resize_with_disk_in_either_place(body: str) -> None:
    command = parse_command(body)
    assert command is not None
    assert command.args == ("s-4vcpu-8gb", "--disk")
    assert command.arguments.size == "s-4vcpu-8gb"
    assert command.arguments.disk is True


@pytest.mark.parametrize(
    "slug", ["s-1vcpu-512mb-10gb", "c-2", "so1_5-2vcpu-16gb", "1gb", "gd-8vcpu-32gb-intel"]
)
def test_resize_accepts_real_slugs(slug: str) -> None:
    command = parse_command(f"/resize {slug}")
    assert command is not None and command.arguments.size == slug


def test_resize_without_size() -> None:
    with pytest.raises(CommandError, match=r"needs a size slug.*e\.g\. `/resize s-4vcpu-8gb`"):
        parse_command("/resize")
    with pytest.raises(CommandError, match="needs a size slug"):
        parse_command("/resize --disk")


@pytest.mark.parametrize(
    "slug", ["S-4VCPU-8GB", "s-4vcpu;reboot", "$(id)", "s--4", "-s", "a" * 65, "s-4vcpu-8gb'"]
)
def test_resize_bad_slug(slug: str) -> None:
    with pytest.raises(CommandError):
        parse_command(f"/resize {slug}")


def test_resize_bad_slug_message() -> None:
    with pytest.raises(CommandError, match="is not a DigitalOcean size slug"):
        parse_command("/resize s-4vcpu;reboot")


def test_resize_extra_args_and_flags() -> None:
    with pytest.raises(CommandError, match="takes at most one size, got 2"):
        parse_command("/resize s-2vcpu-4gb s-4vcpu-8gb")
    with pytest.raises(CommandError, match="Unknown option `--force`"):
        parse_command("/resize s-4vcpu-8gb --force")
    with pytest.raises(CommandError, match="twice"):
        parse_command("/resize s-4vcpu-8gb --disk --disk")


def test_snapshot_with_and_without_name() -> None:
    assert parse_command("/snapshot") == Command("snapshot", (), "/snapshot")
    named = parse_command("/snapshot before-midterm_2024.1")
    assert named is not None
    assert named.arguments.name == "before-midterm_2024.1"
    assert parse_command("/snapshot") is not None
    assert parse_command("/snapshot").arguments.name is None  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["-x", ".hidden", "a;b", "a/b", "é", "a" * 65, "$(id)"])
def test_snapshot_bad_name(name: str) -> None:
    with pytest.raises(CommandError, match="not a usable snapshot name"):
        parse_command(f"/snapshot {name}")


def test_snapshot_two_names() -> None:
    with pytest.raises(CommandError, match="at most one name"):
        parse_command("/snapshot a b")


@pytest.mark.parametrize("name", ["status", "plan", "rebuild", "restart", "help"])
def test_no_arg_commands_refuse_extra_args(name: str) -> None:
    with pytest.raises(CommandError, match=f"`/{name}` takes no arguments"):
        parse_command(f"/{name} please")


def test_commands_without_arguments_parse_to_no_args() -> None:
    command = parse_command("/status")
    assert command is not None
    assert command.arguments == registry.NoArgs()


# Comments as people write them: any text, or a command (known or not, any case) on the
# first line after blank lines, followed by anything.
COMMENT_BODIES = st.one_of(
    st.text(),
    st.builds(
        lambda before, name, rest: f"{before}/{name}{rest}",
        st.sampled_from(["", "\n", "  ", "\r\n\r\n"]),
        st.sampled_from([*COMMANDS, "Status", "RESIZE", "nosuch"]),
        st.text(),
    ),
)
# Argument text: the characters of real arguments mixed with the shell's own.
ARGUMENT_TEXT = st.text(alphabet=st.sampled_from(list("as4-_.09 -;$`'\"|&()*\\\té")), min_size=1)


@given(COMMENT_BODIES)
def test_parse_never_fails_unexpectedly(body: str) -> None:
    try:
        command = parse_command(body)
    except CommandError as error:
        assert "`/help`" in str(error) or "Usage:" in str(error)
    else:
        first = next((line.strip() for line in body.splitlines() if line.strip()), "")
        if command is not None:
            # The command is the one the first line names, never another.
            assert first.split()[0].lower() == f"/{command.name}"
            assert command.name in COMMANDS


@given(st.sampled_from(sorted(COMMANDS)), ARGUMENT_TEXT)
def test_validated_args_are_shell_safe(verb: str, arg: str) -> None:
    try:
        command = parse_command(f"/{verb} {arg}")
    except CommandError:
        return
    assert command is not None
    for word in command.args:
        assert word.startswith("--") or word[:1].isalnum(), word
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in word), word


def test_help_lists_every_command_with_who_and_example() -> None:
    text = help_text()
    for spec in COMMANDS.values():
        escaped = spec.usage.replace("|", "\\|")  # a bare | would end the table cell
        assert f"`{escaped}`" in text
        assert f"`{spec.example}`" in text
    assert "admins, maintainers and writers" in text
    assert set(COMMANDS) == {
        "status",
        "plan",
        "rebuild",
        "resize",
        "restart",
        "snapshot",
        "approve",
        "help",
        "backup",
        "restore",
        "move-home",
        "recover",
        "release",
        "collect",
        "return",
    }


def test_help_examples_parse() -> None:
    for spec in COMMANDS.values():
        command = parse_command(spec.example)
        assert command is not None and command.name == spec.name


# ---- who may run commands


def test_may_run_set() -> None:
    assert {"admin", "maintain", "write"} == MAY_RUN


def test_may_run_github_example_answer() -> None:
    # GitHub's own example answer for the collaborator-permission endpoint.
    spec = json.loads((OPENAPI / "api.github.com.json").read_text())
    example = spec["components"]["examples"][
        "repository-collaborator-permission-response-if-user-has-admin-permissions"
    ]["value"]
    assert may_run(example)
    assert not may_run({**example, "role_name": "read", "permission": "read"})


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        ("admin", "admin", True),
        ("maintain", "write", True),
        ("write", "write", True),
        ("triage", "read", False),
        ("read", "read", False),
        ("none", "none", False),
    ],
)
def test_may_run_by_role(role: str, permission: str, allowed: bool) -> None:
    assert may_run({"role_name": role, "permission": permission, "user": {"login": "a"}}) is allowed


def test_may_run_none_is_false() -> None:
    assert may_run(None) is False
    assert may_run({}) is False


def test_may_run_without_role_name_uses_permission() -> None:
    assert may_run({"permission": "write", "user": None})
    assert may_run({"permission": "admin"})
    assert not may_run({"permission": "read"})
    assert not may_run({"permission": "none"})


@pytest.mark.parametrize(
    ("permissions", "allowed"),
    [
        ({"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}, True),
        ({"admin": False, "maintain": True, "push": True, "pull": True}, True),
        ({"admin": True, "push": True, "pull": True}, True),
        ({"admin": False, "maintain": False, "push": False, "triage": True, "pull": True}, False),
        ({"admin": False, "push": "yes", "pull": True}, False),
    ],
)
def test_may_run_custom_role_uses_user_permissions(permissions: dict, allowed: bool) -> None:
    payload = {
        "role_name": "ta-custom",
        "permission": "read",
        "user": {"login": "ta", "permissions": permissions},
    }
    assert may_run(payload) is allowed


def test_may_run_custom_role_without_user_permissions_falls_back() -> None:
    assert may_run({"role_name": "ci-bot", "permission": "write", "user": {"login": "b"}})
    assert not may_run({"role_name": "ci-bot", "permission": "read", "user": {"login": "b"}})


def test_may_run_odd_role_type() -> None:
    assert not may_run({"role_name": ["admin"], "permission": "read"})


@pytest.mark.parametrize("word", ["hw1;rm", "../hw1", "-hw1", "hw 1", "hw+1", "", "x" * 65])
def test_an_assignment_command_refuses_a_name_no_folder_may_have(word) -> None:
    with pytest.raises(CommandError, match=r"not an assignment name|needs an assignment"):
        registry.get("release").parse([word] if word else [])
    assert registry.get("collect").parse(["hw1"]).name == "hw1"


@pytest.mark.parametrize(
    ("words", "parsed"),
    [(["s-8vcpu-16gb"], ("s-8vcpu-16gb", None)), (["--nodes", "2:20"], (None, (2, 20)))],
)
def test_resize_takes_a_size_or_a_node_range(words, parsed) -> None:
    args = registry.command("resize").parse(words)
    assert (args.size, args.nodes) == parsed
    assert registry.command("resize").words(args) == tuple(words)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["s-8vcpu-16gb", "--nodes", "2:20"], "both a size and `--nodes`"),
        (["--nodes", "20:2"], "1 <= MIN <= MAX <= 100"),
        (["--nodes", "0:3"], "1 <= MIN <= MAX <= 100"),
        (["--nodes", "two"], "is not a node range"),
    ],
)
def test_resize_refuses_a_bad_node_range(words, message) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        registry.command("resize").parse(words)


async def test_a_comments_words_are_parsed_once_at_intake(make_settings, monkeypatch) -> None:
    """The handler parses ``/resize``'s words with the entry's grammar once and queues the
    job with what it parsed; the registry does not parse them a second time."""
    from gidgethub import sansio

    from bot.intake.delivery import Intake
    from handlers.comments import comment_created

    parsed: list[list[str]] = []
    parse = registry.parse_arguments

    def counting(op: registry.Operation, words: list[str]) -> object:
        parsed.append(list(words))
        return parse(op, words)

    monkeypatch.setattr(registry, "parse_arguments", counting)
    event = sansio.Event(
        {
            "comment": {"id": 7, "body": "/resize s-4vcpu-8gb --disk", "user": {"login": "ada"}},
            "issue": {"number": 3},
            "repository": {"full_name": "octo/course", "default_branch": "main"},
            "installation": {"id": 1},
        },
        event="issue_comment",
        delivery_id="1",
    )
    intake = Intake(make_settings())
    await comment_created(event, intake)
    [job] = intake.jobs
    assert parsed == [["s-4vcpu-8gb", "--disk"]]
    assert job.payload["args"] == ["s-4vcpu-8gb", "--disk"]
