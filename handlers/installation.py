"""Installations: which repositories are courses, kept in step with GitHub's installation events."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from bot import store
from bot.intake.delivery import Intake

router = routing.Router()


def _repositories(items: Any) -> list[tuple[str, int | None]]:
    found = []
    for repo in items or []:
        if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
            found.append((repo["full_name"], repo.get("id")))
    return found


def _installation(event: sansio.Event) -> tuple[int, str]:
    installation = event.data["installation"]
    account = installation.get("account") or {}
    return int(installation["id"]), str(account.get("login", ""))


@router.register("installation", action="created")
@router.register("installation", action="new_permissions_accepted")
@router.register("installation", action="unsuspend")
async def installation_active(event: sansio.Event, intake: Intake) -> None:
    installation_id, account = _installation(event)
    repositories = _repositories(event.data.get("repositories"))
    intake.change(
        store.upsert_installation(installation_id, account, suspended=False),
        f"installation {installation_id} active",
    )
    intake.change(
        store.add_courses(installation_id, repositories), f"{len(repositories)} course(s) added"
    )


@router.register("installation", action="suspend")
async def installation_suspended(event: sansio.Event, intake: Intake) -> None:
    installation_id, account = _installation(event)
    intake.change(
        store.upsert_installation(installation_id, account, suspended=True),
        f"installation {installation_id} suspended",
    )


@router.register("installation", action="deleted")
async def installation_deleted(event: sansio.Event, intake: Intake) -> None:
    installation_id, _ = _installation(event)
    intake.change(
        store.remove_installation(installation_id), f"installation {installation_id} removed"
    )


@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def repositories_changed(event: sansio.Event, intake: Intake) -> None:
    installation_id, account = _installation(event)
    added = _repositories(event.data.get("repositories_added"))
    removed = [name for name, _ in _repositories(event.data.get("repositories_removed"))]
    intake.change(
        store.upsert_installation(installation_id, account, suspended=False),
        f"installation {installation_id} active",
    )
    intake.change(store.add_courses(installation_id, added), f"{len(added)} course(s) added")
    intake.change(store.remove_courses(removed), f"{len(removed)} course(s) removed")
