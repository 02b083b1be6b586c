"""The engine's assignment operations: ``/release``, ``/collect``, ``/return`` and the
console's gradebook, each one SSH round trip to the course's server (``deploy.host.assignments``
holds the program it runs and the parsers).

What these return for GitHub (titles, summaries, progress lines) holds counts and the
assignment's name only, never a student's name, file or score (safety invariant 13).
"""

from __future__ import annotations

from deploy.engine import (
    Engine,
    OperationError,
    known_server,
    operation_result,
    remembered_target,
    server_target,
)
from deploy.host import assignments
from deploy.host.assignments import AssignmentError, Submission
from deploy.model import CourseConfig, OperationResult, Progress
from deploy.planning.render import escape
from deploy.ssh import SSHError, Target, stamp

NOT_CONFIGURED = (
    "this course has no `assignments:` in .github/classroom.yml; add it (see "
    "docs/instructors.md), push, then try again"
)


async def _course_target(engine: Engine, course: str, config: CourseConfig) -> Target:
    record = await known_server(engine, course, config)
    if record is None or not record.address:
        raise OperationError("there is no server yet: push to the default branch first")
    return await server_target(engine, course, config, record)


async def release(
    engine: Engine,
    course: str,
    config: CourseConfig,
    name: str,
    files: dict[str, bytes],
    *,
    progress: Progress,
) -> OperationResult:
    """Put ``assignments/NAME`` in the course's source folder, generate it, release it."""
    spec = config.assignments
    if spec is None:
        return operation_result("failure", "Not released", NOT_CONFIGURED)
    try:
        wanted = assignments.assignment_files(files, spec.source, name)
        target = await _course_target(engine, course, config)
        await progress(stamp(f"sending {len(wanted)} file(s) of {spec.source}/{name}/"))
        answer = await assignments.run(
            engine.ssh, target, "release", assignments.release_request(spec, name, wanted)
        )
    except (AssignmentError, OperationError, SSHError) as exc:
        return operation_result("failure", f"{name} was not released", str(exc))
    if not answer.get("changed") and not answer.get("released") and not answer.get("generated"):
        return operation_result(
            "neutral",
            f"{name} is already released",
            f"`{escape(name)}` is released as it is at this commit: nothing to do.",
        )
    return operation_result(
        "success",
        f"Released {name}",
        f"`{escape(name)}` ({answer.get('notebooks', 0)} notebook(s)) is generated and "
        f"released in course `{escape(spec.course_id)}`: students see it under Assignments.",
    )


async def collect(
    engine: Engine, course: str, config: CourseConfig, name: str, *, progress: Progress
) -> OperationResult:
    """Collect the submissions, then autograde them; counts only."""
    spec = config.assignments
    if spec is None:
        return operation_result("failure", "Not collected", NOT_CONFIGURED)
    try:
        target = await _course_target(engine, course, config)
        await progress(stamp(f"collecting and autograding {name}"))
        answer = await assignments.run(
            engine.ssh, target, "collect", assignments.assignment_request(spec.course_id, name)
        )
    except (AssignmentError, OperationError, SSHError) as exc:
        return operation_result("failure", f"{name} was not collected", str(exc))
    counts = {key: int(answer.get(key) or 0) for key in ("submitted", "graded", "failed")}
    await progress(stamp(", ".join(f"{key}: {value}" for key, value in counts.items())))
    return operation_result(
        "failure" if counts["failed"] else "success",
        f"Collected {name}: {counts['submitted']} submitted",
        f"`{escape(name)}`: {counts['submitted']} submitted, {counts['graded']} graded, "
        f"{counts['failed']} failed to grade. Names and scores are on the course's console "
        "page, never here.",
        submitted=counts["submitted"],
        graded=counts["graded"],
        failed=counts["failed"],
    )


async def return_feedback(
    engine: Engine, course: str, config: CourseConfig, name: str, *, progress: Progress
) -> OperationResult:
    """Generate feedback for the graded submissions and release it to their students."""
    spec = config.assignments
    if spec is None:
        return operation_result("failure", "Not returned", NOT_CONFIGURED)
    try:
        target = await _course_target(engine, course, config)
        await progress(stamp(f"generating and releasing feedback for {name}"))
        answer = await assignments.run(
            engine.ssh, target, "return", assignments.assignment_request(spec.course_id, name)
        )
    except (AssignmentError, OperationError, SSHError) as exc:
        return operation_result("failure", f"{name} was not returned", str(exc))
    feedback = int(answer.get("feedback") or 0)
    if not answer.get("graded"):
        return operation_result(
            "neutral",
            f"Nothing to return for {name}",
            f"No graded submission of `{escape(name)}` yet: `/collect {escape(name)}` first.",
        )
    return operation_result(
        "success",
        f"Returned {name}: {feedback} feedback",
        f"Feedback on `{escape(name)}` is released for {feedback} submission(s); students "
        "fetch it under Assignments.",
        feedback=feedback,
    )


async def gradebook(
    engine: Engine, course: str, course_id: str, due: dict[str, str] | None = None
) -> list[Submission]:
    """The course's submissions and scores, from the remembered server, for the console."""
    try:
        record = await engine.records.get_server(course)
        if record is None or not record.address:
            raise OperationError("there is no server yet: push to the default branch first")
        target = await remembered_target(engine, course, record)
        return await assignments.read_gradebook(engine.ssh, target, course_id, due)
    except (OperationError, AssignmentError, SSHError) as exc:
        raise AssignmentError(str(exc)) from None
