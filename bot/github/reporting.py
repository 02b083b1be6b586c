"""The one place that talks back to GitHub: check runs, deployments, replies, reactions,
issues and README commits.

An adapter: it knows GitHub's API and the store's record of each check run, and nothing
of jobs or operations. What a run shows (its texts, its buttons as check actions) comes
as data from the jobs side (``bot.jobs.check_runs``), which calls it when a job is
queued, starts, ends or is superseded. Every check run the app opens is recorded in the
store before anything else happens to it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from datetime import UTC, datetime
from typing import Any

import gidgethub
from cachetools import TTLCache

from bot import store as st
from bot.github.checktext import fit_bytes
from bot.github.client import AppRegistration, InstallationAPI
from bot.github.commit_files import remember_blob
from bot.github.readme import README
from deploy.redact import redact

logger = logging.getLogger(__name__)

CHECK_NAME = "classroom"
DEPLOY_ENVIRONMENT = "classroom"
# What a job's deployment meta holds between asking GitHub for it and learning its id.
DEPLOYMENT_ASKED = "asked"
SUMMARY_LIMIT = 65535
PROGRESS_INTERVAL = 5.0  # seconds between progress updates of one check run
PERMISSION_TTL = 60.0  # a removed collaborator's commands stop within a minute

# GitHub's ``actions`` of a check run: label, description and identifier of each button.
CheckAction = dict[str, str]
# A collaborator-permission answer; None: not a collaborator.
Permission = dict[str, Any] | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_course(course: str) -> tuple[str, str]:
    owner, _, repo = course.partition("/")
    return owner, repo


def check_output(title: str, summary: str, text: str = "") -> dict[str, str]:
    """A check run's output, redacted and cut to GitHub's limits by bytes."""
    output = {
        "title": fit_bytes(redact(title), 1000, keep="head"),
        "summary": fit_bytes(redact(summary), SUMMARY_LIMIT, keep="head"),
    }
    if text:
        output["text"] = fit_bytes(redact(text), SUMMARY_LIMIT, keep="tail")
    return output


class Reporter:
    def __init__(self, store: st.Store, registration: AppRegistration, github_url: str) -> None:
        self.store = store
        self.registration = registration
        self.github_url = github_url
        self._last_progress: dict[int, float] = {}
        # The job's creation and its start both make sure its run exists: one at a time.
        self._opening: dict[int, asyncio.Lock] = {}
        # Collaborator-permission answers, asked at intake and again when the job runs.
        self._permissions: TTLCache[tuple[int, str, str], Permission] = TTLCache(
            10_000, PERMISSION_TTL
        )

    @property
    def registered(self) -> bool:
        """Whether the App is registered, so that there is anyone to report to."""
        return self.registration.app is not None

    async def api(self, installation_id: int) -> InstallationAPI:
        return await self.registration.require().installation_api(installation_id)

    # -- check runs ---------------------------------------------------------------

    async def open_check_run(self, job: st.Job) -> int | None:
        """Create the job's check run as queued, once; returns its id."""
        head_sha = job.payload.get("head_sha")
        if not head_sha or not job.payload.get("check_run") or job.installation_id is None:
            return None
        lock = self._opening.setdefault(job.id, asyncio.Lock())
        try:
            async with lock:
                return await self._open_check_run(job, head_sha)
        finally:
            if not lock.locked():
                self._opening.pop(job.id, None)

    async def _open_check_run(self, job: st.Job, head_sha: str) -> int:
        assert job.installation_id is not None
        existing = await self.store.check_runs(job_id=job.id)
        if existing:
            return existing[0].id
        owner, repo = split_course(job.course)
        gh = await self.api(job.installation_id)
        data = await gh.post(
            "/repos/{owner}/{repo}/check-runs",
            {"owner": owner, "repo": repo},
            data={
                "name": CHECK_NAME,
                "head_sha": head_sha,
                "status": "queued",
                "external_id": str(job.id),
                "output": check_output(
                    "Queued", f"Waiting to {job.payload.get('mode', job.kind)} this commit."
                ),
            },
        )
        await self.store.record_check_run(
            st.CheckRunRecord(
                data["id"], job.course, job.installation_id, head_sha, job.id, "queued"
            )
        )
        return int(data["id"])

    async def _update(self, run: st.CheckRunRecord, body: dict[str, Any]) -> None:
        owner, repo = split_course(run.course)
        gh = await self.api(run.installation_id)
        await gh.patch(
            "/repos/{owner}/{repo}/check-runs/{check_run_id}",
            {"owner": owner, "repo": repo, "check_run_id": run.id},
            data=body,
        )

    async def job_started(self, job: st.Job) -> None:
        await self.open_check_run(job)
        for run in await self.store.check_runs(job_id=job.id, open_only=True):
            await self._update(
                run,
                {
                    "status": "in_progress",
                    "started_at": _now(),
                    "output": check_output("Running", "Started; progress follows."),
                },
            )
            run.status = "in_progress"
            await self.store.record_check_run(run)

    async def job_progress(self, job: st.Job, title: str, summary: str, log: str) -> None:
        """Update the running check run, at most once every few seconds."""
        now = time.monotonic()
        if now - self._last_progress.get(job.id, 0.0) < PROGRESS_INTERVAL:
            return
        self._last_progress[job.id] = now
        for run in await self.store.check_runs(job_id=job.id, open_only=True):
            await self._update(run, {"output": check_output(title, summary, log)})

    async def conclude(
        self,
        run: st.CheckRunRecord,
        conclusion: str,
        title: str,
        summary: str,
        text: str = "",
        *,
        details_url: str | None = None,
        actions: list[CheckAction] | None = None,
    ) -> None:
        """Complete the run with ``actions``, its buttons (none unless given)."""
        body: dict[str, Any] = {
            "status": "completed",
            "conclusion": conclusion,
            "completed_at": _now(),
            "output": check_output(title, summary, text),
            "actions": actions or [],
        }
        if details_url:
            body["details_url"] = details_url
        await self._update(run, body)
        run.status, run.conclusion = "completed", conclusion
        await self.store.record_check_run(run)
        self._last_progress.pop(run.job_id or 0, None)

    # -- deployments ----------------------------------------------------------------

    async def start_deployment(self, job: st.Job, description: str) -> int | None:
        """The job's deployment, created once: a job re-run after a crash reuses the one its
        first attempt made, so the commit never keeps a second deployment stuck in_progress."""
        if job.installation_id is None or not job.payload.get("head_sha"):
            return None
        recorded = await self.recorded_deployment(job)
        if recorded is not None:
            return recorded
        owner, repo = split_course(job.course)
        gh = await self.api(job.installation_id)
        # Noted before asking, so a re-run after a kill in between finds the deployment.
        key = f"deployment:job:{job.id}"
        await self.store.set_meta(key, DEPLOYMENT_ASKED)
        deployment = await gh.post(
            "/repos/{owner}/{repo}/deployments",
            {"owner": owner, "repo": repo},
            data={
                "ref": job.payload["head_sha"],
                "environment": DEPLOY_ENVIRONMENT,
                "description": description[:140],
                "auto_merge": False,
                "required_contexts": [],
                "production_environment": True,
                "payload": {"classroom_job": job.id},
            },
        )
        deployment_id = deployment.get("id")
        if deployment_id is None:
            return None
        await self.store.set_meta(key, str(deployment_id))
        await self.deployment_status(job, deployment_id, "in_progress")
        return int(deployment_id)

    async def _deployment_of(self, gh: InstallationAPI, job: st.Job) -> int | None:
        owner, repo = split_course(job.course)
        found = await gh.getitem(
            "/repos/{owner}/{repo}/deployments{?sha,environment}",
            {
                "owner": owner,
                "repo": repo,
                "sha": job.payload["head_sha"],
                "environment": DEPLOY_ENVIRONMENT,
            },
        )
        for deployment in found:
            payload = deployment.get("payload")
            if isinstance(payload, dict) and payload.get("classroom_job") == job.id:
                return int(deployment["id"])
        return None

    async def recorded_deployment(self, job: st.Job) -> int | None:
        """The deployment an earlier attempt of this job created, if any.

        An attempt killed between asking GitHub for the deployment and recording its id
        left only a note that it asked; the deployment is then found by the job id it
        carries in its payload, so the commit never gets a second one.
        """
        key = f"deployment:job:{job.id}"
        recorded = await self.store.get_meta(key)
        if recorded is None:
            return None
        if recorded != DEPLOYMENT_ASKED:
            return int(recorded)
        if job.installation_id is None:
            return None
        found = await self._deployment_of(await self.api(job.installation_id), job)
        if found is not None:
            await self.store.set_meta(key, str(found))
        return found

    async def deployment_status(
        self,
        job: st.Job,
        deployment_id: int,
        state: str,
        *,
        environment_url: str | None = None,
        description: str = "",
    ) -> None:
        assert job.installation_id is not None
        owner, repo = split_course(job.course)
        gh = await self.api(job.installation_id)
        body: dict[str, Any] = {"state": state, "auto_inactive": True}
        if environment_url:
            body["environment_url"] = environment_url
        runs = await self.store.check_runs(job_id=job.id)
        if runs:
            body["log_url"] = f"{self.github_url}/{job.course}/runs/{runs[0].id}"
        if description:
            body["description"] = description[:140]
        await gh.post(
            "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
            {"owner": owner, "repo": repo, "deployment_id": deployment_id},
            data=body,
        )

    # -- comments, reactions, issues -------------------------------------------------

    async def react(self, installation_id: int, course: str, comment_id: int, content: str) -> None:
        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        await gh.post(
            "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
            {"owner": owner, "repo": repo, "comment_id": comment_id},
            data={"content": content},
        )

    async def reply(self, installation_id: int, course: str, issue_number: int, body: str) -> int:
        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        data = await gh.post(
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
            {"owner": owner, "repo": repo, "issue_number": issue_number},
            data={"body": fit_bytes(redact(body), SUMMARY_LIMIT, keep="head")},
        )
        return int(data["id"])

    async def open_issue(self, installation_id: int, course: str, title: str, body: str) -> int:
        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        data = await gh.post(
            "/repos/{owner}/{repo}/issues",
            {"owner": owner, "repo": repo},
            data={"title": title, "body": fit_bytes(redact(body), SUMMARY_LIMIT, keep="head")},
        )
        return int(data["number"])

    async def update_issue(self, installation_id: int, course: str, number: int, body: str) -> None:
        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        await gh.patch(
            "/repos/{owner}/{repo}/issues/{issue_number}",
            {"owner": owner, "repo": repo, "issue_number": number},
            data={"body": fit_bytes(redact(body), SUMMARY_LIMIT, keep="head")},
        )

    async def close_issue(
        self, installation_id: int, course: str, number: int, comment: str
    ) -> None:
        await self.reply(installation_id, course, number, comment)
        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        await gh.patch(
            "/repos/{owner}/{repo}/issues/{issue_number}",
            {"owner": owner, "repo": repo, "issue_number": number},
            data={"state": "closed", "state_reason": "completed"},
        )

    async def cached_permission(
        self, installation_id: int, course: str, username: str
    ) -> Permission:
        """``permission``, remembered for a minute: a command is checked when it arrives
        and again when its job runs, for one request to GitHub."""
        key = (installation_id, course.lower(), username.lower())
        if key not in self._permissions:
            self._permissions[key] = await self.permission(installation_id, course, username)
        return self._permissions[key]

    async def permission(self, installation_id: int, course: str, username: str) -> Permission:
        """GitHub's answer on a person's permission, or None for a 404 (not a collaborator)."""

        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        try:
            answer = await gh.getitem(
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                {"owner": owner, "repo": repo, "username": username},
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code.value == 404:
                return None
            raise
        return answer if isinstance(answer, dict) else None

    # -- the README -------------------------------------------------------------------

    async def write_readme(
        self, installation_id: int, course: str, branch: str, content: bytes, replaces: str
    ) -> bool:
        """Commit ``content`` as README.md on ``branch`` in place of the blob ``replaces``;
        False when the README moved on meanwhile (GitHub's 409 or 422): the next run writes
        into the newer one."""
        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        try:
            await gh.put(
                "/repos/{owner}/{repo}/contents/{path}",
                {"owner": owner, "repo": repo, "path": README},
                data={
                    "message": "Update the classroom badges in README.md\n\n"
                    "Written by Littlest Classroom: the hub's launch link and status badge.",
                    "content": base64.b64encode(content).decode(),
                    # The blob read is the one replaced: GitHub refuses (409) if the README
                    # moved on meanwhile.
                    "sha": replaces,
                    "branch": branch,
                },
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code.value not in (409, 422):
                raise
            return False
        # The next push reads this README: its blob is known already, so it is not fetched.
        remember_blob(self.registration.require(), content)
        return True
