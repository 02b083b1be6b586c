"""Pull requests get a plan of what merging would change; nothing runs on the server.

A pull request from a fork is read from its files at that commit and never executed.
"""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.intake.delivery import Intake
from handlers.common import enqueue_for_commit

router = routing.Router()


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
async def pull_request(event: sansio.Event, intake: Intake) -> None:
    pr = event.data.get("pull_request") or {}
    head = pr.get("head") or {}
    base_repo = (pr.get("base") or {}).get("repo") or {}
    head_repo = head.get("repo") or {}
    enqueue_for_commit(
        intake,
        event,
        head_sha=head.get("sha", ""),
        branch=None,  # never the default branch: a pull request only plans
        extra={
            "pull_request": pr.get("number"),
            "fork": head_repo.get("full_name") != base_repo.get("full_name"),
        },
    )
