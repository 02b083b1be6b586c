"""Pushes: the default branch deploys; other branches get a plan. Deletions and tags are ignored."""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.intake.delivery import Intake
from handlers.common import enqueue_for_commit

router = routing.Router()


@router.register("push")
async def push(event: sansio.Event, intake: Intake) -> None:
    data = event.data
    ref = data.get("ref", "")
    if data.get("deleted") or not isinstance(ref, str) or not ref.startswith("refs/heads/"):
        return
    enqueue_for_commit(
        intake, event, head_sha=data.get("after", ""), branch=ref.removeprefix("refs/heads/")
    )
