"""How a job shows on GitHub: the runner's hooks that turn a job's life (queued, started,
ended, superseded) into check runs, reactions and replies, through the reporter.

The reporter (``bot.github.reporting``) only talks to GitHub; what a run shows is decided
here: the result's texts, and the registry's buttons on a default branch's deploy (never on
a pull request's or a branch's plan). Every check run is brought to a conclusion: when its
job ends however it ends, when a newer job supersedes it, and at start-up for whatever a
crash left open.
"""

from __future__ import annotations

import logging

from bot import store as st
from bot.github.reporting import Reporter
from bot.jobs import registry
from bot.jobs.results import JobResult
from bot.jobs.texts import coalesced

logger = logging.getLogger(__name__)

CONCLUSION_OF_STATE = {
    st.FAILED: "failure",
    st.CANCELLED: "cancelled",
    st.SUPERSEDED: "cancelled",
}


class JobReports:
    """The reporting hooks of the job runner, for one reporter and store."""

    def __init__(self, reporter: Reporter, store: st.Store) -> None:
        self.reporter = reporter
        self.store = store

    async def created(self, job_id: int) -> None:
        """Show at once that work was accepted: a queued check run, or 👀 on the comment."""
        job = await self.store.job(job_id)
        if job is None or job.installation_id is None or not self.reporter.registered:
            return
        await self.reporter.open_check_run(job)
        comment_id = job.payload.get("comment_id")
        if job.kind == "command" and comment_id is not None:
            await self.reporter.react(job.installation_id, job.course, comment_id, "eyes")

    async def started(self, job: st.Job) -> None:
        await self.reporter.job_started(job)

    async def finished(
        self, job: st.Job, state: str, result: JobResult | None, error: str | None
    ) -> None:
        """Whatever way a job ended, its check runs end too."""
        for run in await self.store.check_runs(job_id=job.id, open_only=True):
            if state == st.DONE and result is not None:
                await self.reporter.conclude(
                    run,
                    result.conclusion,
                    result.title,
                    result.summary,
                    result.log,
                    details_url=result.hub_url,
                    actions=registry.check_actions() if job.kind == "deploy" else None,
                )
            elif state == st.DONE:
                await self.reporter.conclude(run, "success", "Done", "Finished.")
            elif state == st.SUPERSEDED:
                await self.reporter.conclude(
                    run, "cancelled", "Superseded", "A newer commit replaced this one in the queue."
                )
            else:
                await self.reporter.conclude(
                    run,
                    CONCLUSION_OF_STATE.get(state, "neutral"),
                    "Failed" if state == st.FAILED else "Cancelled",
                    f"The job ended without finishing: {error or state}.",
                )

    async def superseded(self, job: st.Job) -> None:
        """A newer job replaced this queued one: its run ends, and a command's author is
        told that the newer comment gets the result."""
        await self.finished(job, st.SUPERSEDED, None, None)
        payload = job.payload
        if job.kind == "command" and payload.get("issue_number") and job.installation_id:
            words = [str(w) for w in payload.get("args") or []]
            await self.reporter.reply(
                job.installation_id,
                job.course,
                payload["issue_number"],
                f"@{payload.get('user', '')} " + coalesced(str(payload.get("name", "")), words),
            )

    async def recover_open_check_runs(self) -> int:
        """At start-up: conclude every check run whose job can no longer conclude it."""
        concluded = 0
        for run in await self.store.check_runs(open_only=True):
            job = await self.store.job(run.job_id) if run.job_id else None
            if job is not None and job.state in (st.QUEUED, st.RUNNING):
                continue  # the re-queued job will conclude it
            try:
                if job is None:
                    await self.reporter.conclude(
                        run, "neutral", "Interrupted", "The service stopped during this run."
                    )
                else:
                    await self.finished(job, job.state, JobResult.from_json(job.result), job.error)
                concluded += 1
            except Exception:
                logger.exception("could not conclude check run %s", run.id)
        return concluded
