"""The one place that talks back to GitHub: check runs, deployments, replies, reactions,
issues and README commits.

Every check run the app opens is recorded in the store before anything else happens to
it, and every one is brought to a conclusion: when its job ends however it ends, when a
newer job supersedes it, and at start-up for whatever a crash left open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import gidgethub
from cachetools import TTLCache

from bot import store as st
from bot.github.checktext import fit_bytes
from bot.jobs import registry
from bot.jobs.results import JobResult
from bot.services import Services
from deploy.redact import redact

logger = logging.getLogger(__name__)

CHECK_NAME = "classroom"
DEPLOY_ENVIRONMENT = "classroom"
# What a job's deployment meta holds between asking GitHub for it and learning its id.
DEPLOYMENT_ASKED = "asked"
SUMMARY_LIMIT = 65535
PROGRESS_INTERVAL = 5.0  # seconds between progress updates of one check run
PERMISSION_TTL = 60.0  # a removed collaborator's commands stop within a minute

CONCLUSION_OF_STATE = {
    st.FAILED: "failure",
    st.CANCELLED: "cancelled",
    st.SUPERSEDED: "cancelled",
}


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
    def __init__(self, services: Services) -> None:
        self.services = services
        self._last_progress: dict[int, float] = {}
        # The job's creation and its start both make sure its run exists: one at a time.
        self._opening: dict[int, asyncio.Lock] = {}
        # Collaborator-permission answers, asked at intake and again when the job runs.
        self._permissions: TTLCache[tuple[int, str, str], dict | None] = TTLCache(
            10_000, PERMISSION_TTL
        )

    async def api(self, installation_id: int):
        return await self.services.github.installation_api(installation_id)

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
        existing = await self.services.store.check_runs(job_id=job.id)
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
        await self.services.store.record_check_run(
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
        for run in await self.services.store.check_runs(job_id=job.id, open_only=True):
            await self._update(
                run,
                {
                    "status": "in_progress",
                    "started_at": _now(),
                    "output": check_output("Running", "Started; progress follows."),
                },
            )
            run.status = "in_progress"
            await self.services.store.record_check_run(run)

    async def job_progress(self, job: st.Job, title: str, summary: str, log: str) -> None:
        """Update the running check run, at most once every few seconds."""
        now = time.monotonic()
        if now - self._last_progress.get(job.id, 0.0) < PROGRESS_INTERVAL:
            return
        self._last_progress[job.id] = now
        for run in await self.services.store.check_runs(job_id=job.id, open_only=True):
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
        buttons: bool = False,
    ) -> None:
        body: dict[str, Any] = {
            "status": "completed",
            "conclusion": conclusion,
            "completed_at": _now(),
            "output": check_output(title, summary, text),
            # The buttons come from the registry's entries (at most three, as GitHub allows),
            # only on a default branch's deploy: never on a pull request's or a branch's plan.
            "actions": registry.check_actions() if buttons else [],
        }
        if details_url:
            body["details_url"] = details_url
        await self._update(run, body)
        run.status, run.conclusion = "completed", conclusion
        await self.services.store.record_check_run(run)
        self._last_progress.pop(run.job_id or 0, None)

    async def conclude_job(
        self, job: st.Job, state: str, result: JobResult | None, error: str | None
    ) -> None:
        """Hook for the runner: whatever way a job ended, its check runs end too."""
        for run in await self.services.store.check_runs(job_id=job.id, open_only=True):
            if state == st.DONE and result is not None:
                await self.conclude(
                    run,
                    result.conclusion,
                    result.title,
                    result.summary,
                    result.log,
                    details_url=result.hub_url,
                    buttons=job.kind == "deploy",
                )
            elif state == st.DONE:
                await self.conclude(run, "success", "Done", "Finished.")
            elif state == st.SUPERSEDED:
                await self.conclude(
                    run, "cancelled", "Superseded", "A newer commit replaced this one in the queue."
                )
            else:
                await self.conclude(
                    run,
                    CONCLUSION_OF_STATE.get(state, "neutral"),
                    "Failed" if state == st.FAILED else "Cancelled",
                    f"The job ended without finishing: {error or state}.",
                )

    async def job_superseded(self, job: st.Job) -> None:
        await self.conclude_job(job, st.SUPERSEDED, None, None)

    async def recover_open_check_runs(self) -> int:
        """At start-up: conclude every check run whose job can no longer conclude it."""
        concluded = 0
        for run in await self.services.store.check_runs(open_only=True):
            job = await self.services.store.job(run.job_id) if run.job_id else None
            if job is not None and job.state in (st.QUEUED, st.RUNNING):
                continue  # the re-queued job will conclude it
            try:
                if job is None:
                    await self.conclude(
                        run, "neutral", "Interrupted", "The service stopped during this run."
                    )
                else:
                    await self.conclude_job(
                        job, job.state, JobResult.from_json(job.result), job.error
                    )
                concluded += 1
            except Exception:
                logger.exception("could not conclude check run %s", run.id)
        return concluded

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
        await self.services.store.set_meta(key, DEPLOYMENT_ASKED)
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
        await self.services.store.set_meta(key, str(deployment_id))
        await self.deployment_status(job, deployment_id, "in_progress")
        return int(deployment_id)

    async def _deployment_of(self, gh: Any, job: st.Job) -> int | None:
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
        recorded = await self.services.store.get_meta(key)
        if recorded is None:
            return None
        if recorded != DEPLOYMENT_ASKED:
            return int(recorded)
        if job.installation_id is None:
            return None
        found = await self._deployment_of(await self.api(job.installation_id), job)
        if found is not None:
            await self.services.store.set_meta(key, str(found))
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
        owner, repo = split_course(job.course)
        gh = await self.api(job.installation_id)
        body: dict[str, Any] = {"state": state, "auto_inactive": True}
        if environment_url:
            body["environment_url"] = environment_url
        runs = await self.services.store.check_runs(job_id=job.id)
        if runs:
            body["log_url"] = f"{self.services.settings.github_url}/{job.course}/runs/{runs[0].id}"
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
    ) -> dict | None:
        """``permission``, remembered for a minute: a command is checked when it arrives
        and again when its job runs, for one request to GitHub."""
        key = (installation_id, course.lower(), username.lower())
        if key not in self._permissions:
            self._permissions[key] = await self.permission(installation_id, course, username)
        return self._permissions[key]

    async def permission(self, installation_id: int, course: str, username: str) -> dict | None:
        """GitHub's answer on a person's permission, or None for a 404 (not a collaborator)."""

        owner, repo = split_course(course)
        gh = await self.api(installation_id)
        try:
            return await gh.getitem(
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                {"owner": owner, "repo": repo, "username": username},
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code.value == 404:
                return None
            raise
