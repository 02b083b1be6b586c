"""Facts every handler reads off a delivery, and the decisions they share: which job a
commit gets (deploy on the default branch, plan everywhere else), and whether a person may
ask for an operation at all."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import gidgethub
from gidgethub import sansio

from bot.github.client import GitHubError
from bot.intake.delivery import Intake
from bot.jobs.registry import may_run
from bot.store import Change, follow_repository

logger = logging.getLogger(__name__)

ZERO_SHA = "0" * 40
# What GitHub allows in an owner and a repository name; a course name becomes API paths,
# database keys and log fields, so nothing else is taken for one.
FULL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/(?!\.\.?$)[A-Za-z0-9_.-]{1,100}")


def course_of(event: sansio.Event) -> tuple[str, int] | None:
    """The course (``owner/repo``) and installation a delivery is about, if any."""
    repository = event.data.get("repository") or {}
    installation = event.data.get("installation") or {}
    name = repository.get("full_name")
    installation_id = installation.get("id")
    if not isinstance(name, str) or not isinstance(installation_id, int):
        return None
    if not FULL_NAME.fullmatch(name):
        return None
    return name, installation_id


def identity_changes(event: sansio.Event) -> list[Change]:
    """The store brought in step with the delivery's repository, known by its id.

    A course is its repository, whose id never changes while its name may (a rename, a
    transfer): the course moves to the current name, and a course another repository
    left under that name is put aside, out of sight (``bot.store.follow_repository``).
    """
    repository = event.data.get("repository") or {}
    found = course_of(event)
    repo_id = repository.get("id") if isinstance(repository, dict) else None
    if found is None or not isinstance(repo_id, int) or isinstance(repo_id, bool):
        return []
    name, installation_id = found
    return [follow_repository(repo_id, name, installation_id)]


def default_branch(event: sansio.Event) -> str | None:
    repository = event.data.get("repository") or {}
    branch = repository.get("default_branch") or repository.get("master_branch")
    return branch if isinstance(branch, str) else None


async def may_ask(intake: Intake, course: str, installation_id: int, login: str) -> bool | None:
    """Whether ``login`` holds write (or more) on the course: True, False, or None when
    GitHub could not say (then the job asks again before it runs, and is merged with none)."""
    if intake.permission is None:
        return None
    try:
        answer = await intake.permission(installation_id, course, login)
    except (gidgethub.GitHubException, GitHubError, aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("permission of %s on %s unknown at intake: %s", login, course, exc)
        return None
    return may_run(answer)


def enqueue_for_commit(
    intake: Intake,
    event: sansio.Event,
    *,
    head_sha: str,
    branch: str | None,
    again: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Ask for the commit's ``classroom`` run: deploy on the default branch, else plan.

    A commit gets one run however many events announce it (a push, its check suite, a pull
    request) unless ``again`` (a re-run someone asked for).
    """
    found = course_of(event)
    if found is None or not head_sha or head_sha == ZERO_SHA:
        return
    course, installation_id = found
    deploys = branch is not None and branch == default_branch(event)
    mode = "apply" if deploys else "plan"
    pull_request = (extra or {}).get("pull_request")
    payload: dict[str, Any] = {
        "head_sha": head_sha,
        "branch": branch,
        "mode": mode,
        "check_run": True,
        "default_branch": default_branch(event),
        **(extra or {}),
    }
    intake.enqueue(
        course,
        "deploy" if deploys else "plan",
        payload,
        installation_id=installation_id,
        # A newer push to the branch, or a newer commit of the pull request, replaces a
        # queued older one: one pending plan per branch and per pull request.
        coalesce_key=(
            f"plan:pull:{pull_request}"
            if isinstance(pull_request, int) and not deploys
            else f"{mode}:{branch or head_sha}"
        ),
    )
    if not again:
        intake.jobs[-1].dedupe_key = f"{mode}:{head_sha}"
