"""The operation registry: /help, the parser and the check run's buttons all come from its
entries; argument kinds, permissions and GitHub's limits on buttons; the size rule shared by
commands, the course config and the droplet driver."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from bot.jobs import registry
from bot.jobs.commands import Command, CommandError, parse_command
from bot.jobs.registry import (
    ADMIN,
    WRITE,
    Button,
    Flag,
    NoArgs,
    Option,
    Positional,
    Words,
    has_role,
    operation,
    operation_job,
    parse_hub_user,
)
from bot.jobs.results import JobResult
from deploy.course.config import load_course
from deploy.course.validate import Invalid, check_size_slug
from deploy.model import ConfigErrors, OperationResult
from deploy.providers.droplets import DropletError, SizeInfo, check_size, choose_size

DO_SPEC = Path(__file__).parent / "data/digitalocean-openapi-subset.json"
COURSE = "physics-dept/physics101"
# Slugs DigitalOcean lists for droplets, of every family.
REAL_SIZES = [
    "s-1vcpu-512mb-10gb",
    "s-2vcpu-4gb",
    "s-4vcpu-8gb-amd",
    "c-2",
    "c2-4vcpu-8gb-intel",
    "g-2vcpu-8gb",
    "gd-2vcpu-8gb",
    "gd-8vcpu-32gb-intel",
    "m-2vcpu-16gb",
    "m3-2vcpu-16gb",
    "m6-2vcpu-16gb",
    "so1_5-2vcpu-16gb",
    "so1_5-48vcpu-384gb-intel",
    "1gb",
    "512mb",
]
NOT_SIZES = ["S-2VCPU-4GB", "s--4", "s-4_", "_s", "-s", "s-4vcpu;reboot", "$(id)", "a" * 65, ""]


@pytest.fixture
def scratch_registry():
    """Entries registered by a test are gone after it."""
    registry.operations()
    saved = dict(registry.OPERATIONS)
    yield
    registry.OPERATIONS.clear()
    registry.OPERATIONS.update(saved)


# ---- generated from the registry ---------------------------------------------------------


def test_help_buttons_and_parser_are_the_registrys():
    entries = registry.operations()
    commands = [op for op in entries.values() if op.command]
    assert [op.name for op in commands] == [
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
    ]
    # The table as GitHub renders it: a row per command, its usage and example as written.
    table: list[list[str]] = []
    for token in MarkdownIt("commonmark").enable("table").parse(registry.help_text()):
        if token.type == "tr_open":
            table.append([])
        elif token.type == "inline" and table:
            table[-1].append(token.content)
    assert table[0] == ["Command", "What it does", "Example"]
    rows = [[cell.strip("`").replace("\\|", "|") for cell in row[::2]] for row in table[1:]]
    assert rows == [[op.usage, op.example] for op in commands]
    assert "/restore [SNAPSHOT] [--student NAME | --all --confirm]" in [r[0] for r in rows]
    for op in commands:
        parsed = parse_command(op.example)
        assert parsed is not None and parsed.name == op.name
    # Entries that are not commands (a push deploys) are not reachable by comment.
    with pytest.raises(CommandError, match="Unknown command `/deploy`"):
        parse_command("/deploy")
    actions = registry.check_actions()
    assert actions == [
        {"label": op.button.label, "description": op.button.description, "identifier": op.name}
        for op in entries.values()
        if op.button is not None and op.check_run
    ]
    assert [a["identifier"] for a in actions] == ["rebuild", "restart", "snapshot"]
    assert registry.button_names() == {"rebuild", "restart", "snapshot"}
    # The console offers every entry with a button: more than GitHub's three.
    assert [op.name for op in registry.buttons()] == [
        op.name for op in entries.values() if op.button is not None
    ]
    assert len(registry.buttons()) > registry.MAX_CHECK_RUN_BUTTONS


def test_a_new_entry_is_one_entry_and_one_function(scratch_registry):
    @dataclass(frozen=True)
    class PromoteArgs:
        names: tuple[str, ...]

    @operation(
        "promote",
        usage="/promote NAME…",
        summary="Make students hub admins.",
        example="/promote ada grace",
        grammar=(Words("names", parse=parse_hub_user),),
        args=PromoteArgs,
        permission=ADMIN,
        needs_config=False,
    )
    async def promote(op, args: PromoteArgs) -> OperationResult:
        return OperationResult("success", "Promoted", ", ".join(args.names))

    command = parse_command("/promote Ada grace")
    assert command == Command("promote", ("ada", "grace"), "/promote Ada grace")
    assert command.arguments == PromoteArgs(("ada", "grace"))
    assert "| `/promote NAME…` | Make students hub admins. Admins only." in (registry.help_text())
    with pytest.raises(CommandError, match="needs a hub user name"):
        parse_command("/promote")
    with pytest.raises(CommandError, match="is not a hub user name"):
        parse_command("/promote ada gr/ace")
    assert registry.get("promote").required_role(command.arguments) == ADMIN
    assert registry.button_names() == {"rebuild", "restart", "snapshot"}


def test_flags_options_and_a_permission_that_depends_on_the_arguments(scratch_registry):
    # A stand-in for the real /restore, registered afresh (the fixture puts it back).
    registry.OPERATIONS.pop("restore", None)

    @dataclass(frozen=True)
    class RestoreArgs:
        snapshot: str | None = None
        student: str | None = None
        all: bool = False
        confirm: bool = False

    @operation(
        "restore",
        usage="/restore [SNAPSHOT] [--student NAME | --all --confirm]",
        summary="Restore homes from a snapshot into new folders.",
        example="/restore --student ada",
        grammar=(
            Positional("snapshot", parse=registry.parse_snapshot_name, required=False),
            Option("student", "--student", parse=parse_hub_user),
            Flag("all", "--all"),
            Flag("confirm", "--confirm"),
        ),
        args=RestoreArgs,
        permission=lambda args: ADMIN if args.all else WRITE,
    )
    async def restore(op, args: RestoreArgs) -> OperationResult:
        return OperationResult("success", "Restored", "")

    op = registry.get("restore")
    one = op.parse(["--student", "Ada", "snap-1"])
    assert one == RestoreArgs(snapshot="snap-1", student="ada")
    assert op.words(one) == ("snap-1", "--student", "ada")
    assert op.required_role(one) == WRITE
    everyone = op.parse(["--all", "--confirm"])
    assert op.required_role(everyone) == ADMIN
    assert "Some uses need the admin role." in registry.help_text()
    with pytest.raises(CommandError, match="`--student` needs a hub user name"):
        op.parse(["--student"])
    with pytest.raises(CommandError, match="Unknown option `--force`; only `--student` or"):
        op.parse(["--force"])
    with pytest.raises(CommandError, match="`--all` is given twice"):
        op.parse(["--all", "--all"])
    with pytest.raises(CommandError, match="takes at most one name, got 2"):
        op.parse(["a", "b"])


@dataclass(frozen=True)
class SizeArgs:
    size: str


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad Name"}, "operation name"),
        ({"name": "a-name-far-too-long-for-a-button"}, "operation name"),
        ({"button": Button("A label far too long here", "x")}, "too long for GitHub"),
        ({"button": Button("Fine", "d" * 41)}, "too long for GitHub"),
        ({"grammar": (Flag("missing", "--missing"),)}, "has no field 'missing'"),
        ({"name": "status"}, "registered twice"),
        (
            {"button": Button("Fourth", "A fourth button"), "check_run": True},
            "at most 3 buttons on a check run",
        ),
        ({"check_run": True}, "a check-run button needs a button"),
    ],
)
def test_entries_github_cannot_show_are_refused(scratch_registry, change, message):
    spec = {"name": "extra", "summary": "An extra operation.", **change}
    name = spec.pop("name")

    async def run(op, args) -> OperationResult:
        return OperationResult("success", "", "")

    with pytest.raises((ValueError, TypeError), match=message):
        operation(name, **spec)(run)


def test_a_check_run_button_must_run_without_words(scratch_registry):
    del registry.OPERATIONS["snapshot"]  # room for a third check-run button

    async def run(op, args) -> OperationResult:
        return OperationResult("success", "", "")

    with pytest.raises(ValueError, match="a check-run button needs no arguments"):
        operation(
            "grow",
            summary="Grow.",
            grammar=(Positional("size", parse=registry.parse_size_slug),),
            args=SizeArgs,
            button=Button("Grow", "Grow the droplet"),
            check_run=True,
        )(run)
    assert "grow" not in registry.OPERATIONS
    # On the console alone, a button takes its arguments from a form.
    operation(
        "grow",
        summary="Grow.",
        grammar=(Positional("size", parse=registry.parse_size_slug),),
        args=SizeArgs,
        button=Button("Grow", "Grow the droplet"),
    )(run)
    assert "grow" in [op.name for op in registry.buttons()]
    assert "grow" not in registry.button_names()


def test_no_argument_commands_refuse_words_and_options():
    op = registry.get("status")
    assert op.parse([]) == NoArgs()
    with pytest.raises(CommandError, match="`/status` takes no arguments"):
        op.parse(["--all"])


# ---- asking for an operation -------------------------------------------------------------


def test_operation_job_is_the_job_a_comment_asks_for():
    job = operation_job(
        COURSE,
        "resize",
        ["--disk", "so1_5-2vcpu-16gb"],
        installation_id=7,
        user="alice",
        source="console",
    )
    assert (job.course, job.kind, job.installation_id) == (COURSE, "command", 7)
    assert job.payload == {
        "name": "resize",
        "args": ["so1_5-2vcpu-16gb", "--disk"],
        "user": "alice",
        "source": "console",
    }
    # Merged only with an identical request: the same operation and the same words.
    assert job.coalesce_key == "command:resize so1_5-2vcpu-16gb --disk"
    # The monitor's own restarts coalesce with each other, never with a person's /restart.
    assert (
        operation_job(
            COURSE, "restart", installation_id=7, user=None, source="monitor"
        ).coalesce_key
        == "monitor:restart"
    )


@pytest.mark.parametrize(
    ("name", "words", "message"),
    [
        ("resize", ["s-4vcpu;reboot"], "is not a DigitalOcean size slug"),
        ("resize", [], "needs a size slug"),
        ("deploy", [], "Unknown command"),
        ("frobnicate", [], "Unknown command"),
    ],
)
def test_operation_job_refuses_what_a_comment_could_not_ask(name, words, message):
    with pytest.raises(CommandError, match=message):
        operation_job(COURSE, name, words, installation_id=7, user="alice", source="console")


def test_operation_job_knows_its_sources():
    with pytest.raises(ValueError, match="unknown source"):
        operation_job(COURSE, "status", installation_id=7, user="a", source="webhook")


# ---- permission ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "write", "admin"),
    [
        ({"role_name": "admin", "permission": "admin"}, True, True),
        ({"role_name": "maintain", "permission": "write"}, True, False),
        ({"role_name": "write", "permission": "write"}, True, False),
        ({"role_name": "triage", "permission": "read"}, False, False),
        ({"permission": "admin"}, True, True),
        ({"permission": "write"}, True, False),
        ({"role_name": "ta", "user": {"permissions": {"admin": False, "push": True}}}, True, False),
        ({"role_name": "lead", "user": {"permissions": {"admin": True}}}, True, True),
        (None, False, False),
    ],
)
def test_roles(payload, write, admin):
    assert has_role(WRITE, payload) is write
    assert has_role(ADMIN, payload) is admin


# ---- results ------------------------------------------------------------------------------


def test_job_result_round_trips_and_reads_rows_written_as_dicts():
    result = JobResult("failure", "Resize failed", "DigitalOcean said no", "log", None)
    assert JobResult.from_json(json.loads(json.dumps(result.to_json()))) == result
    assert JobResult.from_json({"conclusion": "neutral", "title": "/help", "summary": "x"}) == (
        JobResult("neutral", "/help", "x")
    )
    assert JobResult.from_json(None) is None
    assert not result.ok and JobResult("neutral", "Nothing to do").ok


# ---- one size rule --------------------------------------------------------------------------


def _spec_droplet_sizes() -> list[str]:
    """The droplet size slugs in DigitalOcean's published examples: sizes, regions' sizes
    and droplets' size_slug."""
    spec = json.loads(DO_SPEC.read_text())
    found: set[str] = set()

    def walk(node: object, key: str | None, in_sizes: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k, in_sizes or k == "sizes")
        elif isinstance(node, list):
            for v in node:
                walk(v, key, in_sizes)
        elif isinstance(node, str) and (
            key in ("size_slug", "sizes") or (in_sizes and key == "slug")
        ):
            found.add(node)

    for path in ("/v2/sizes", "/v2/regions", "/v2/droplets"):
        walk(spec["paths"][path], None, False)
    return sorted(found)


def test_the_published_spec_lists_sizes_to_check():
    sizes = _spec_droplet_sizes()
    assert "s-1vcpu-1gb" in sizes and len(sizes) >= 10, sizes


@pytest.mark.parametrize("slug", REAL_SIZES + _spec_droplet_sizes())
def test_every_real_size_passes_the_command_the_config_and_the_driver(slug):
    assert parse_command(f"/resize {slug}").arguments.size == slug
    assert check_size_slug(slug) == slug
    assert check_size(slug) == slug
    config = f"server:\n  provider: digitalocean\n  size: {slug}\n".encode()
    course = load_course({".github/classroom.yml": config}, "physics-dept", "physics101")
    assert course.server.size == slug
    info = SizeInfo(slug, 2, 4096, 80, 24.0, ("syd1",), True)
    assert choose_size(slug, [info], "syd1").chosen == info


@pytest.mark.parametrize("slug", NOT_SIZES)
def test_a_bad_size_is_refused_by_all_three(slug):
    with pytest.raises(CommandError):
        parse_command(f"/resize {slug}")
    with pytest.raises(Invalid):
        check_size_slug(slug)
    with pytest.raises(DropletError, match="is not allowed"):
        check_size(slug)
    config = f"server:\n  provider: digitalocean\n  size: '{slug}'\n".encode()
    with pytest.raises(ConfigErrors, match=r"server\.size"):
        load_course({".github/classroom.yml": config}, "physics-dept", "physics101")
