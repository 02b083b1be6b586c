"""The one registry of course operations: each entry says its slash command, its arguments,
who may run it, its check-run button and the function that does it.

Adding an operation is one entry, one function and their tests, in ``bot.jobs.hub_operations``
(or in a module named in ``bot.jobs.entries``, which start-up imports to register them)::

    @dataclass(frozen=True)
    class ResizeArgs:
        size: str
        disk: bool = False

    @operation(
        "resize",
        usage="/resize SIZE [--disk]",
        summary="Change the droplet's CPU and memory; `--disk` also grows the disk.",
        example="/resize s-4vcpu-8gb",
        grammar=(Positional("size", parse=parse_size_slug), Flag("disk", "--disk")),
        args=ResizeArgs,
        permission=WRITE,  # or ADMIN, or a callable args -> role
        button=None,  # or Button(label="Resize", description="…"): offered on the console
        check_run=False,  # also a button on the classroom check run (at most 3, no arguments)
        needs_config=True,  # load .github/classroom.yml at the ref before running
    )
    async def resize(op: OperationContext, args: ResizeArgs) -> OperationResult: ...

Everything else is generated from the entries: the ``/help`` text, the command parser
(``bot.jobs.commands``), the console's operation forms (``buttons``: every entry with a
button, one form field per part of its grammar, ``bot.web.forms``), the check run's buttons
(``check_actions``: the entries chosen with ``check_run``, GitHub shows at most three) and
the identifiers the ``check_run`` handler accepts (``button_names``). Jobs of kind
``command`` run an entry (``bot.jobs.course``): permission check, configuration, then the
function.

Asking for an operation from anywhere else (the console, the monitor)::

    job_id = await enqueue_operation(
        services, "owner/repo", "resize", ["s-4vcpu-8gb"],
        installation_id=installation_id, user="login", source="console",
    )

queues the same job a ``/resize s-4vcpu-8gb`` comment asks for; ``operation_job(...)``
builds that ``NewJob`` without storing it (webhook handlers add it to their ``Intake``).
Both check the words with the entry's grammar first and raise ``CommandError``, whose text
is the reply to show. A job whose source is the service itself (``monitor``, ``schedule``)
runs without a person's permission check; every other source is checked when it arrives
(webhook intake, the console) and again when it runs. Every operation asked for by name
reads the default branch's configuration, never the commit a button's check run is on.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any

from bot.store import Job, NewJob
from deploy.course.config import NODE_COUNT_RANGE
from deploy.course.validate import Invalid, check_hub_username, check_size_slug
from deploy.model import CourseConfig, OperationResult

if TYPE_CHECKING:
    # Services holds the runner, whose jobs run these entries: a cycle for types only.
    from bot.services import Services
    from deploy.operations import Engine

# Who may run an operation: the least repository role it needs.
WRITE = "write"  # write, maintain or admin
ADMIN = "admin"
MAY_RUN = frozenset({"admin", "maintain", "write"})

SOURCES = frozenset({"comment", "button", "console", "monitor", "schedule", "commit"})
# The service asks for these itself; no person's permission is checked.
SERVICE_SOURCES = frozenset({"monitor", "schedule", "commit"})

# GitHub's limits on check-run actions (the console's buttons have no limit).
MAX_CHECK_RUN_BUTTONS = 3
MAX_BUTTON_LABEL = 20
MAX_BUTTON_DESCRIPTION = 40
_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")  # also a button identifier: at most 20
_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class CommandError(ValueError):
    """A request for an operation that cannot run as written; ``str()`` is the reply."""


def code(text: str) -> str:
    """``text`` for inside `…` in a reply: no backticks to break out, and bounded length."""
    cleaned = text.replace("`", "'")
    return cleaned if len(cleaned) <= 40 else cleaned[:39] + "…"


# ---- argument kinds: one parser per kind -----------------------------------------------


@dataclass(frozen=True)
class ArgKind:
    """How one word becomes a value; ``check`` raises ``Invalid`` saying what is allowed.

    ``pattern`` (an HTML ``pattern``: a hint for the browser, ``check`` decides), ``help``
    and ``choices`` (the name of a list the console offers, as ``sizes``) describe the
    kind's form field on the console.
    """

    noun: str  # "size", as in "takes one size"
    what: str  # "a size slug", as in "needs a size slug"
    check: Callable[[str], Any]
    pattern: str = ""
    help: str = ""
    choices: str = ""

    def __call__(self, word: str) -> Any:
        return self.check(word)


def _snapshot_name(word: str) -> str:
    if not _SNAPSHOT_NAME.fullmatch(word):
        raise Invalid(
            f"`{code(word)}` is not a usable snapshot name: 1 to 64 letters, digits, "
            "`.`, `_` or `-`, starting with a letter or digit."
        )
    return word


def _size_slug(word: str) -> str:
    try:
        return check_size_slug(word)
    except Invalid:
        raise Invalid(
            f"`{code(word)}` is not a DigitalOcean size slug: lower-case letters and digits "
            "joined by single `-` or `_`, like `s-4vcpu-8gb` or `so1_5-2vcpu-16gb`."
        ) from None


def _hub_user(word: str) -> str:
    try:
        return check_hub_username(word)
    except Invalid:
        raise Invalid(
            f"`{code(word)}` is not a hub user name: letters, digits, `.`, `_` and `-`, "
            "starting with a letter or digit, at most 39 characters."
        ) from None


def _node_range(word: str) -> tuple[int, int]:
    low, colon, high = word.partition(":")
    if not colon or not low.isdecimal() or not high.isdecimal() or len(word) > 7:
        raise Invalid(f"`{code(word)}` is not a node range: `MIN:MAX`, like `2:20`.")
    lowest, highest = NODE_COUNT_RANGE
    if not lowest <= int(low) <= int(high) <= highest:
        raise Invalid(
            f"`{code(word)}` is not a node range this takes: {lowest} <= MIN <= MAX <= {highest}."
        )
    return int(low), int(high)


parse_size_slug = ArgKind(
    "size",
    "a size slug",
    _size_slug,
    pattern=r"[a-z0-9]+([\-_][a-z0-9]+)*",
    help="A DigitalOcean size slug, like s-4vcpu-8gb.",
    choices="sizes",
)
parse_node_range = ArgKind(
    "node range",
    "a node range MIN:MAX",
    _node_range,
    pattern=r"[0-9]{1,3}:[0-9]{1,3}",
    help="How far a Kubernetes node pool autoscales, MIN:MAX, like 2:20.",
)
parse_snapshot_name = ArgKind(
    "name",
    "a snapshot name",
    _snapshot_name,
    pattern=r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}",
    help="1 to 64 letters, digits, '.', '_' or '-'.",
)
parse_hub_user = ArgKind(
    "user name",
    "a hub user name",
    _hub_user,
    pattern=r"[A-Za-z0-9][A-Za-z0-9._\-]{0,38}",
    help="A hub user name: letters, digits, '.', '_' and '-', at most 39 characters.",
)


# ---- grammar ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Positional:
    """One word in its place: ``/resize SIZE``."""

    name: str
    parse: ArgKind
    required: bool = True


@dataclass(frozen=True)
class Words:
    """The remaining words, each parsed: ``/approve NAME…``."""

    name: str
    parse: ArgKind
    minimum: int = 1


@dataclass(frozen=True)
class Flag:
    """A switch: ``--disk``, ``--all``, ``--confirm``; ``help`` labels its console checkbox."""

    name: str
    flag: str
    help: str = ""


@dataclass(frozen=True)
class Option:
    """A flag with a value: ``--student NAME``."""

    name: str
    flag: str
    parse: ArgKind


Grammar = tuple[Positional | Words | Flag | Option, ...]


@dataclass(frozen=True)
class NoArgs:
    """The arguments of an operation that takes none."""


@dataclass(frozen=True)
class Button:
    """The operation's button on the console (and, for the entries chosen with
    ``check_run``, on the check run); its identifier is the operation's name. ``section``
    is the console section it is shown in."""

    label: str
    description: str
    section: str = "operations"


# ---- the context an operation runs in ---------------------------------------------------


@dataclass
class OperationContext:
    services: Services
    job: Job
    course: str
    config: CourseConfig | None  # None unless the entry needs_config
    engine: Engine
    progress: Callable[[str], Awaitable[None]]  # a line to the check run's live log
    user: str | None
    source: str
    # The course files read at the job's commit (a bot.github.commit_files.CommitFiles).
    files: Mapping[str, bytes] = field(default_factory=dict)
    on_checkpoint: Callable[[], None] = lambda: None  # the job's; raises to stop

    def checkpoint(self) -> None:
        """Stop here if the job was cancelled or the service is stopping."""
        self.on_checkpoint()


OperationFunction = Callable[[OperationContext, Any], Awaitable[OperationResult]]
Permission = str | Callable[[Any], str]


@dataclass(frozen=True)
class Operation:
    name: str
    run: OperationFunction
    usage: str
    summary: str
    example: str
    grammar: Grammar
    args: type
    permission: Permission
    button: Button | None
    needs_config: bool
    command: bool  # a slash command; deploy is not, a push asks for it
    note: str  # added to the reply when it succeeded
    check_run: bool = False  # its button is also on the check run
    console: bool = False  # the console may ask for it by name (every command may)

    @property
    def usage_hint(self) -> str:
        return f"Usage: `{self.usage}`, e.g. `{self.example}`."

    def required_role(self, args: Any) -> str:
        return self.permission(args) if callable(self.permission) else self.permission

    def parse(self, words: Sequence[str]) -> Any:
        """The typed arguments in ``words``; a ``CommandError`` names what is allowed."""
        return parse_arguments(self, words)

    def words(self, args: Any) -> tuple[str, ...]:
        """``args`` written back as words: what is stored in the job and echoed in replies."""
        out: list[str] = []
        for part in self.grammar:
            value = getattr(args, part.name)
            if isinstance(part, Positional) and value is not None:
                out.append(str(value))
            elif isinstance(part, Words):
                out.extend(str(v) for v in value)
            elif isinstance(part, Flag) and value:
                out.append(part.flag)
            elif isinstance(part, Option) and value is not None:
                # A range (MIN, MAX) is written as typed: MIN:MAX.
                word = ":".join(map(str, value)) if isinstance(value, tuple) else str(value)
                out.extend((part.flag, word))
        return tuple(out)


def _apply(kind: ArgKind, word: str, hint: str) -> Any:
    try:
        return kind(word)
    except (Invalid, ValueError) as exc:
        raise CommandError(f"{exc} {hint}") from None


def parse_arguments(op: Operation, words: Sequence[str]) -> Any:
    hint = op.usage_hint
    if not op.grammar:
        if words:
            raise CommandError(f"`/{op.name}` takes no arguments. {hint}")
        return op.args()
    flags = {p.flag: p for p in op.grammar if isinstance(p, Flag | Option)}
    values: dict[str, Any] = {}
    loose: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        # Options are spelled with two dashes; "-x" is a (bad) value for the parser to name.
        if not word.startswith("--"):
            loose.append(word)
            continue
        spec = flags.get(word)
        if spec is None:
            known = " or ".join(f"`{f}`" for f in flags)
            allowed = f"only {known}" if known else f"`/{op.name}` takes none"
            raise CommandError(f"Unknown option `{code(word)}`; {allowed}. {hint}")
        if spec.name in values:
            raise CommandError(f"`{word}` is given twice. {hint}")
        if isinstance(spec, Flag):
            values[spec.name] = True
            continue
        if index >= len(words) or words[index].startswith("--"):
            raise CommandError(f"`{word}` needs {spec.parse.what}. {hint}")
        values[spec.name] = _apply(spec.parse, words[index], hint)
        index += 1
    given = len(loose)
    positionals = [p for p in op.grammar if isinstance(p, Positional)]
    rest = next((p for p in op.grammar if isinstance(p, Words)), None)
    for part in positionals:
        if loose:
            values[part.name] = _apply(part.parse, loose.pop(0), hint)
        elif part.required:
            raise CommandError(f"`/{op.name}` needs {part.parse.what}. {hint}")
    if rest is not None:
        if len(loose) < rest.minimum:
            raise CommandError(f"`/{op.name}` needs {rest.parse.what}. {hint}")
        values[rest.name] = tuple(_apply(rest.parse, w, hint) for w in loose)
        loose = []
    if loose:
        if len(positionals) == 1 and positionals[0].required:
            limit = f"one {positionals[0].parse.noun}"
        elif len(positionals) == 1:
            limit = f"at most one {positionals[0].parse.noun}"
        else:
            limit = f"{len(positionals)} argument(s)"
        raise CommandError(f"`/{op.name}` takes {limit}, got {given}. {hint}")
    return op.args(**values)


# ---- the registry -------------------------------------------------------------------------

OPERATIONS: dict[str, Operation] = {}


def operation(
    name: str,
    *,
    usage: str = "",
    summary: str,
    example: str = "",
    grammar: Grammar = (),
    args: type = NoArgs,
    permission: Permission = WRITE,
    button: Button | None = None,
    check_run: bool = False,
    needs_config: bool = True,
    command: bool = True,
    console: bool | None = None,
    note: str = "",
) -> Callable[[OperationFunction], OperationFunction]:
    """Register the decorated function as the operation ``name`` (see the module docstring)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"operation name {name!r}: lower-case letters, digits, '-', 1-20")
    if not is_dataclass(args):
        raise TypeError(f"operation {name!r}: args must be a dataclass")
    names = {f.name for f in fields(args)}
    for part in grammar:
        if part.name not in names:
            raise TypeError(f"operation {name!r}: {args.__name__} has no field {part.name!r}")
    if button is not None and (
        len(button.label) > MAX_BUTTON_LABEL or len(button.description) > MAX_BUTTON_DESCRIPTION
    ):
        raise ValueError(f"operation {name!r}: button label or description too long for GitHub")

    if check_run and button is None:
        raise ValueError(f"operation {name!r}: a check-run button needs a button")

    def register(function: OperationFunction) -> OperationFunction:
        if name in OPERATIONS:
            raise ValueError(f"operation {name!r} is registered twice")
        if check_run and len(check_run_buttons()) >= MAX_CHECK_RUN_BUTTONS:
            raise ValueError(
                f"operation {name!r}: GitHub shows at most {MAX_CHECK_RUN_BUTTONS} buttons "
                "on a check run"
            )
        entry = Operation(
            name=name,
            run=function,
            usage=usage or f"/{name}",
            summary=summary,
            example=example or usage or f"/{name}",
            grammar=grammar,
            args=args,
            permission=permission,
            button=button,
            needs_config=needs_config,
            command=command,
            note=note,
            check_run=check_run,
            console=command if console is None else console,
        )
        if check_run:
            # A check-run button press carries no words: the entry must run without any.
            try:
                entry.parse([])
            except CommandError:
                raise ValueError(
                    f"operation {name!r}: a check-run button needs no arguments"
                ) from None
        OPERATIONS[name] = entry
        return function

    return register


def operations() -> Mapping[str, Operation]:
    """Every registered operation, in the order registered (``bot.jobs.entries``)."""
    return OPERATIONS


def get(name: str) -> Operation | None:
    return operations().get(name)


def commands() -> list[Operation]:
    """The operations one can ask for with a slash command."""
    return [op for op in operations().values() if op.command]


def command(name: str) -> Operation | None:
    op = get(name)
    return op if op is not None and op.command else None


def runnable(name: str, source: str) -> Operation | None:
    """The entry a job from ``source`` may run by name: any slash command, and from the
    console also the console's own entries (a password is never a slash command)."""
    op = get(name)
    if op is None:
        return None
    return op if op.command or (op.console and source == "console") else None


def buttons() -> list[Operation]:
    """The entries with a button: the console offers each, however many there are."""
    return [op for op in OPERATIONS.values() if op.button is not None]


def check_run_buttons() -> list[Operation]:
    """The entries chosen for the check run's buttons (at most ``MAX_CHECK_RUN_BUTTONS``)."""
    return [op for op in OPERATIONS.values() if op.check_run and op.button is not None]


def check_actions() -> list[dict[str, str]]:
    """The check run's ``actions``, as GitHub's API takes them."""
    return [
        {"label": op.button.label, "description": op.button.description, "identifier": op.name}
        for op in check_run_buttons()
        if op.button is not None
    ]


def button_names() -> frozenset[str]:
    """The ``requested_action`` identifiers the service answers."""
    return frozenset(op.name for op in check_run_buttons())


def _who(op: Operation) -> str:
    if callable(op.permission):
        return " Some uses need the admin role."
    return " Admins only." if op.permission == ADMIN else ""


def help_text() -> str:
    """The ``/help`` reply, in Markdown."""
    rows = "\n".join(
        f"| `{_cell(op.usage)}` | {_cell(op.summary)}{_who(op)} | `{_cell(op.example)}` |"
        for op in commands()
    )
    return (
        "Commands go on the **first line** of an issue or pull-request comment. "
        "Repository admins, maintainers and writers may use them; "
        "comments by anyone else are ignored.\n\n"
        "| Command | What it does | Example |\n"
        "|---|---|---|\n"
        f"{rows}\n"
    )


def _cell(text: str) -> str:
    # GitHub ends a table cell at a bare `|`, even inside a code span.
    return text.replace("|", "\\|")


# ---- permission -------------------------------------------------------------------------


def has_role(required: str, permission_payload: dict[str, Any] | None) -> bool:
    """Whether a collaborator-permission answer grants ``required`` (WRITE or ADMIN).

    The one rule for who may do what, on every path: slash commands, buttons, the jobs
    and the console (``bot.web.access.is_admin`` and ``permitted`` ask it). ``role_name``
    decides when it is a base role; a custom role keeps its base role's powers, read from
    ``user.permissions``; failing both, ``permission`` (which folds maintain into write).

    ``permission_payload`` is GitHub's answer to
    ``GET /repos/{owner}/{repo}/collaborators/{username}/permission``, or None on 404.
    """
    if not permission_payload:
        return False
    allowed = MAY_RUN if required == WRITE else frozenset({"admin"})
    role = permission_payload.get("role_name")
    if not isinstance(role, str):
        role = None
    if role in MAY_RUN | {"triage", "read", "none"}:
        return role in allowed
    # A custom role keeps a base role's powers; its user.permissions booleans say which.
    user = permission_payload.get("user")
    permissions = user.get("permissions") if isinstance(user, dict) else None
    keys = ("admin", "maintain", "push") if required == WRITE else ("admin",)
    if isinstance(permissions, dict):
        return any(permissions.get(key) is True for key in keys)
    # `permission` folds maintain into write and triage into read.
    folded = ("admin", "write") if required == WRITE else ("admin",)
    return permission_payload.get("permission") in folded


def may_run(permission_payload: dict[str, Any] | None) -> bool:
    """Whether a collaborator-permission answer allows running WRITE operations."""
    return has_role(WRITE, permission_payload)


# ---- asking for an operation --------------------------------------------------------------


def operation_job(
    course: str,
    name: str,
    words: Sequence[str] = (),
    *,
    installation_id: int | None,
    user: str | None,
    source: str,
    payload: Mapping[str, Any] | None = None,
    arguments: Any = None,
) -> NewJob:
    """The job that runs operation ``name`` with ``words``; raises ``CommandError``.

    ``arguments``: the words already parsed by the entry's grammar (a comment's command,
    ``bot.jobs.commands.parse_command``), so they are not parsed again.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    op = runnable(name, source)
    if op is None:
        raise CommandError(f"Unknown command `/{code(name)}`. Comment `/help` for the list.")
    args = op.parse(list(words)) if arguments is None else arguments
    body = {
        **(payload or {}),
        "name": op.name,
        "args": list(op.words(args)),
        "user": user,
        "source": source,
    }
    # The service's own requests coalesce with each other, so a person's request (and the
    # reply it is owed) is never replaced by the monitor's. A person's request replaces only
    # an identical one still waiting (same operation, same words): `/approve bob` never
    # replaces `/approve ada`, nor `/restore` a `/restore SNAP --all --confirm`. Who may ask
    # is decided before a job is queued (webhook intake, the console), so nobody's request
    # is merged into a stranger's.
    key = (
        f"{source}:{op.name}"
        if source in SERVICE_SOURCES
        else "command:" + " ".join((op.name, *op.words(args)))
    )
    return NewJob(course, "command", body, installation_id, coalesce_key=key)


def invalid_command_job(
    course: str,
    problem: str,
    *,
    installation_id: int | None,
    user: str | None,
    payload: Mapping[str, Any] | None = None,
) -> NewJob:
    """A command that cannot run: still a job, so only people who may run commands get the
    reply saying why (the job checks who asked before answering)."""
    body = {**(payload or {}), "name": "invalid", "args": [], "problem": problem, "user": user}
    body.setdefault("source", "comment")
    # Each gets its own reply: never merged.
    return NewJob(course, "command", body, installation_id)


async def enqueue_operation(
    services: Services,
    course: str,
    name: str,
    words: Sequence[str] = (),
    *,
    installation_id: int | None,
    user: str | None,
    source: str,
    payload: Mapping[str, Any] | None = None,
) -> int | None:
    """Queue operation ``name`` for ``course`` now; its job id, or None if deduplicated.

    The same job a slash command asks for: serialized with the course's other jobs, and
    reported through the hooks every job has (a check run when ``payload`` has a
    ``head_sha`` and ``check_run``, a reply when it has an ``issue_number``).
    """
    job = operation_job(
        course,
        name,
        words,
        installation_id=installation_id,
        user=user,
        source=source,
        payload=payload,
    )
    recorded = await services.store.enqueue(job)
    if recorded is None:
        return None
    job_id, superseded = recorded
    services.runner.wake()
    if superseded:
        services.spawn(services.runner.superseded(superseded))
    services.spawn(services.job_created(job_id))
    return job_id
