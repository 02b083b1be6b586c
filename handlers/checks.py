"""Check suites and check runs: GitHub's requests to (re)run, and the run's buttons.

A button runs its operation with the configuration of the default branch, whatever
commit its check run is on; only a writer's press is queued (GitHub shows buttons to
writers, and a press by anyone else is dropped here all the same).
"""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from bot.github.reporting import CHECK_NAME
from bot.intake.delivery import Intake
from bot.jobs import registry
from handlers.common import course_of, default_branch, enqueue_for_commit, may_ask

router = routing.Router()


@router.register("check_suite", action="requested")
@router.register("check_suite", action="rerequested")
async def check_suite(event: sansio.Event, intake: Intake) -> None:
    suite = event.data.get("check_suite") or {}
    enqueue_for_commit(
        intake,
        event,
        head_sha=suite.get("head_sha", ""),
        branch=suite.get("head_branch"),
        again=event.data.get("action") == "rerequested",
    )


def _ours(event: sansio.Event, intake: Intake) -> dict[str, Any] | None:
    run = event.data.get("check_run") or {}
    app = run.get("app") or {}
    if run.get("name") != CHECK_NAME:
        return None
    if intake.settings.app_id is not None and app.get("id") not in (None, intake.settings.app_id):
        return None
    return run


@router.register("check_run", action="rerequested")
async def check_run_rerequested(event: sansio.Event, intake: Intake) -> None:
    run = _ours(event, intake)
    if run is None:
        return
    suite = run.get("check_suite") or {}
    enqueue_for_commit(
        intake, event, head_sha=run.get("head_sha", ""), branch=suite.get("head_branch"), again=True
    )


@router.register("check_run", action="requested_action")
async def requested_action(event: sansio.Event, intake: Intake) -> None:
    run = _ours(event, intake)
    identifier = (event.data.get("requested_action") or {}).get("identifier")
    found = course_of(event)
    # Only the buttons the registry's entries put on check runs are answered.
    if run is None or identifier not in registry.button_names() or found is None:
        return
    course, installation_id = found
    sender = (event.data.get("sender") or {}).get("login")
    if not isinstance(sender, str) or not sender:
        return
    allowed = await may_ask(intake, course, installation_id, sender)
    if allowed is False:
        return
    job = registry.operation_job(
        course,
        identifier,
        installation_id=installation_id,
        user=sender,
        source="button",
        payload={
            # The new check run goes on the run's commit; the config is the default branch's.
            "head_sha": run.get("head_sha"),
            "check_run": True,
            "default_branch": default_branch(event),
        },
    )
    if allowed is None:
        job.coalesce_key = None
    intake.jobs.append(job)
