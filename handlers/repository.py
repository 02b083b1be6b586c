"""Repository renamed or transferred: the course follows its repository to the new name.

Intake does the same for every delivery it acts on (``handlers.common.identity_changes``);
these two events are where GitHub says so first.
"""

from __future__ import annotations

from gidgethub import routing, sansio

from bot.intake.delivery import Intake
from handlers.common import identity_changes

router = routing.Router()


@router.register("repository", action="renamed")
@router.register("repository", action="transferred")
async def repository_moved(event: sansio.Event, intake: Intake) -> None:
    name = (event.data.get("repository") or {}).get("full_name")
    for change in identity_changes(event):
        intake.change(change, f"course follows its repository to {name}")
