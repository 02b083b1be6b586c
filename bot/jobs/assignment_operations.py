"""The registry entries for assignments: ``/release NAME``, ``/collect NAME`` and
``/return NAME`` (see ``bot.jobs.registry``). Each decides what to run; the engine
(``deploy.operations.coursework``) does the work. Replies carry counts only: no student's name,
file or score goes to GitHub (safety invariant 13)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.github.commit_files import read_commit_files
from bot.github.reporting import split_course
from bot.jobs.course import config_ref
from bot.jobs.registry import ArgKind, Button, OperationContext, Positional, code, operation
from deploy.course.validate import Invalid, check_assignment_name
from deploy.host.assignments import MAX_ASSIGNMENT_BYTES
from deploy.model import OperationResult
from deploy.operations import coursework


def _assignment(word: str) -> str:
    try:
        return check_assignment_name(word)
    except Invalid:
        raise Invalid(
            f"`{code(word)}` is not an assignment name: letters, digits, `_` and `-`, "
            "starting with a letter or digit, at most 64 characters (its folder under "
            "`assignments.source`)."
        ) from None


parse_assignment = ArgKind(
    "assignment",
    "an assignment name",
    _assignment,
    pattern=r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}",
    help="Its folder under assignments.source, like hw1.",
    choices="assignments",
)
ASSIGNMENT_COMMANDS = ("release", "collect", "return")


@dataclass(frozen=True)
class AssignmentArgs:
    name: str


async def assignment_folder(op: OperationContext, source: str, name: str) -> dict[str, bytes]:
    """The files of ``source/name/`` at the job's commit (the default branch's)."""
    owner, repo = split_course(op.course)
    assert op.job.installation_id is not None
    prefix = f"{source}/{name}/"
    return dict(
        await read_commit_files(
            op.services.require_github(),
            op.job.installation_id,
            owner,
            repo,
            config_ref(op.job),
            wanted=lambda path: path.startswith(prefix),
            folders=(source, f"{source}/{name}"),
            max_file_bytes=MAX_ASSIGNMENT_BYTES,
        )
    )


@operation(
    "release",
    usage="/release NAME",
    summary="Generate the assignment in `assignments/NAME` (nbgrader) at the default "
    "branch's commit and release it to the students.",
    example="/release hw1",
    grammar=(Positional("name", parse=parse_assignment),),
    args=AssignmentArgs,
    button=Button("Release", "Release it to the students", section="assignments"),
)
async def release(op: OperationContext, args: AssignmentArgs) -> OperationResult:
    assert op.config is not None
    spec = op.config.assignments
    files = await assignment_folder(op, spec.source, args.name) if spec is not None else {}
    return await coursework.release(
        op.engine, op.course, op.config, args.name, files, progress=op.progress
    )


@operation(
    "collect",
    usage="/collect NAME",
    summary="Collect the students' submissions of NAME and autograde them; the reply "
    "gives counts only, the scores are on the console.",
    example="/collect hw1",
    grammar=(Positional("name", parse=parse_assignment),),
    args=AssignmentArgs,
    button=Button("Collect and grade", "Collect and autograde", section="assignments"),
)
async def collect(op: OperationContext, args: AssignmentArgs) -> OperationResult:
    assert op.config is not None
    return await coursework.collect(
        op.engine, op.course, op.config, args.name, progress=op.progress
    )


@operation(
    "return",
    usage="/return NAME",
    summary="Generate feedback on the graded submissions of NAME and release it to "
    "the students who submitted.",
    example="/return hw1",
    grammar=(Positional("name", parse=parse_assignment),),
    args=AssignmentArgs,
    button=Button("Return feedback", "Release the feedback", section="assignments"),
)
async def return_(op: OperationContext, args: AssignmentArgs) -> OperationResult:
    assert op.config is not None
    return await coursework.return_feedback(
        op.engine, op.course, op.config, args.name, progress=op.progress
    )
