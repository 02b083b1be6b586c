"""Installations: which repositories are courses, kept in step with GitHub's installation events."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from bot.intake import Intake

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
    await intake.store.upsert_installation(installation_id, account, suspended=False)
    repositories = _repositories(event.data.get("repositories"))
    if repositories:
        await intake.store.add_courses(installation_id, repositories)
    intake.notes.append(f"installation {installation_id} active, {len(repositories)} course(s)")


@router.register("installation", action="suspend")
async def installation_suspended(event: sansio.Event, intake: Intake) -> None:
    installation_id, account = _installation(event)
    await intake.store.upsert_installation(installation_id, account, suspended=True)
    intake.notes.append(f"installation {installation_id} suspended")


@router.register("installation", action="deleted")
async def installation_deleted(event: sansio.Event, intake: Intake) -> None:
    installation_id, _ = _installation(event)
    await intake.store.remove_installation(installation_id)
    intake.notes.append(f"installation {installation_id} removed")


@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def repositories_changed(event: sansio.Event, intake: Intake) -> None:
    installation_id, account = _installation(event)
    await intake.store.upsert_installation(installation_id, account, suspended=False)
    added = _repositories(event.data.get("repositories_added"))
    removed = [name for name, _ in _repositories(event.data.get("repositories_removed"))]
    if added:
        await intake.store.add_courses(installation_id, added)
    if removed:
        await intake.store.remove_courses(removed)
    intake.notes.append(f"{len(added)} course(s) added, {len(removed)} removed")
