"""Durable jobs: the job kinds (``JobKinds``) and the runner that executes them.

The runner runs at most one job per course at a time (different courses in parallel, up to
a bound), retries transient failures with backoff up to a bound, supports cancel, and on
start re-queues what a crash left running. Handlers are registered by the modules that
own the job kind; hooks, registered at start-up, let the reporting conclude check runs
whatever happens and let the monitor hear that a job saw a hub answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import aiohttp
import gidgethub

from bot import store as st
from bot.jobs.results import JobResult

# What the runner hands each job: the app's services (``bot.services.Services``), which
# hold this runner; a type parameter, so the runner need not know them.
S = TypeVar("S")

logger = logging.getLogger(__name__)


class TransientError(Exception):
    """A failure worth trying again later (the network, a 5xx, a rate limit)."""


class JobCancelled(Exception):
    """Raised at a checkpoint when the job was cancelled or the service is stopping."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | aiohttp.ClientConnectionError | ConnectionError):
        return True
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return True
    if isinstance(exc, gidgethub.GitHubBroken):
        return True
    status = getattr(exc, "status_code", None)
    return bool(isinstance(exc, gidgethub.HTTPException) and status in (429, 502, 503, 504))


class NoServices(RuntimeError):
    """A job asked for the app's services from a runner made without them."""


@dataclass
class JobContext(Generic[S]):
    """What a job handler gets: its job, the store, the app's services and a checkpoint."""

    job: st.Job
    store: st.Store
    app_services: S | None
    _cancel: asyncio.Event

    @property
    def services(self) -> S:
        """The app's services; ``NoServices`` from a runner made without them (a test's)."""
        if self.app_services is None:
            raise NoServices(f"job {self.job.id} ran on a runner without the app's services")
        return self.app_services

    def checkpoint(self) -> None:
        """Stop here if the job was cancelled or the service is stopping."""
        if self._cancel.is_set():
            raise JobCancelled(f"job {self.job.id} cancelled")


JobHandler = Callable[[JobContext[S]], Awaitable[JobResult | None]]
JobHook = Callable[[st.Job, str, JobResult | None, str | None], Awaitable[None]]


@dataclass
class JobKind(Generic[S]):
    name: str
    handler: JobHandler[S]
    max_attempts: int = 5


@dataclass
class JobKinds(Generic[S]):
    """Job kinds by name; each feature module registers its own."""

    kinds: dict[str, JobKind[S]] = field(default_factory=dict)

    def kind(self, name: str, *, max_attempts: int = 5) -> Callable[[JobHandler[S]], JobHandler[S]]:
        def register(handler: JobHandler[S]) -> JobHandler[S]:
            if name in self.kinds:
                raise ValueError(f"job kind {name!r} is registered twice")
            self.kinds[name] = JobKind(name, handler, max_attempts)
            return handler

        return register


@dataclass
class _Running:
    job: st.Job
    task: asyncio.Task[None]
    cancel: asyncio.Event


class JobRunner(Generic[S]):
    def __init__(
        self,
        store: st.Store,
        kinds: JobKinds[S],
        services: S | None = None,
        *,
        concurrency: int = 4,
        base_backoff: float = 2.0,
        max_backoff: float = 120.0,
    ) -> None:
        self.store = store
        self.kinds = kinds
        self.services = services
        self.concurrency = concurrency
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.on_started: list[Callable[[st.Job], Awaitable[None]]] = []
        self.on_finished: list[JobHook] = []
        self.on_superseded: list[Callable[[st.Job], Awaitable[None]]] = []
        # (course, what showed it): a job saw the course's hub answer.
        self.on_hub_up: list[Callable[[str, str], Awaitable[None]]] = []
        self._running: dict[int, _Running] = {}
        # Per course, how many times one of its jobs started or ended: a watcher (the
        # monitor) compares it before and after a probe to see whether a job overlapped.
        self._activity: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = False

    async def start(self) -> list[int]:
        """Re-queue what a crash left running, then start taking jobs."""
        requeued = await self.store.requeue_running()
        if requeued:
            logger.info("re-queued %d job(s) left running: %s", len(requeued), requeued)
        self._loop_task = asyncio.create_task(self._loop(), name="job-runner")
        return requeued

    def wake(self) -> None:
        self._wake.set()

    def pause(self) -> None:
        """Take no new jobs (running ones go on) until ``resume``; queued jobs wait."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    @property
    def busy_courses(self) -> set[str]:
        return {r.job.course for r in self._running.values()}

    def activity(self, course: str) -> int:
        """Changes whenever a job of ``course`` starts or ends."""
        return self._activity.get(course, 0)

    def _touch(self, course: str) -> None:
        self._activity[course] = self._activity.get(course, 0) + 1

    async def hub_up(self, course: str, detail: str) -> None:
        """A job saw the course's hub answer (a deploy's own check): tell the hooks (the
        monitor, so the badge says up at once instead of at the next probe)."""
        for hook in self.on_hub_up:
            await self._safe(hook(course, detail))

    async def superseded(self, jobs: list[st.Job]) -> None:
        """Tell the hooks about jobs a newer one replaced while they were queued."""
        for job in jobs:
            for hook in self.on_superseded:
                await self._safe(hook(job))

    async def cancel(self, job_id: int) -> bool:
        if await self.store.cancel_queued(job_id):
            job = await self.store.job(job_id)
            if job is not None:
                for hook in self.on_finished:
                    await self._safe(hook(job, st.CANCELLED, None, "cancelled"))
            return True
        running = self._running.get(job_id)
        if running is None:
            return False
        running.cancel.set()
        return True

    async def _loop(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._running)
            if free > 0 and not self._paused:
                for job in await self.store.claim_runnable(self.busy_courses, free):
                    self._launch(job)
            due = await self.store.next_due_at()
            timeout = 30.0 if due is None else max(0.05, min(30.0, due - time.time()))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _launch(self, job: st.Job) -> None:
        cancel = asyncio.Event()
        task = asyncio.create_task(self._run(job, cancel), name=f"job-{job.id}")
        self._running[job.id] = _Running(job, task, cancel)
        self._touch(job.course)

    async def _run(self, job: st.Job, cancel: asyncio.Event) -> None:
        extra = {"job": str(job.id), "course": job.course}
        kind = self.kinds.kinds.get(job.kind)
        try:
            if kind is None:
                await self._finish(job, st.FAILED, None, f"unknown job kind {job.kind!r}")
                return
            for hook in self.on_started:
                await self._safe(hook(job))
            logger.info(
                "job %s (%s) started, attempt %d", job.id, job.kind, job.attempts, extra=extra
            )
            context = JobContext(job, self.store, self.services, cancel)
            try:
                result = await kind.handler(context)
            except JobCancelled:
                if self._stopping:
                    # Not a cancel by anyone: the job goes back to the queue for the next start.
                    await self.store.retry_job(job.id, 0, "service stopped")
                    logger.info("job %s paused for shutdown", job.id, extra=extra)
                else:
                    await self._finish(job, st.CANCELLED, None, "cancelled")
                return
            except asyncio.CancelledError:
                await asyncio.shield(self.store.retry_job(job.id, 0, "service stopped"))
                raise
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                if is_transient(exc) and job.attempts < kind.max_attempts:
                    delay = min(self.max_backoff, self.base_backoff * 2 ** (job.attempts - 1))
                    await self.store.retry_job(job.id, time.time() + delay, message)
                    logger.warning(
                        "job %s failed (%s); retry %d in %.0fs",
                        job.id,
                        message,
                        job.attempts,
                        delay,
                        extra=extra,
                    )
                else:
                    logger.exception("job %s failed: %s", job.id, message, extra=extra)
                    await self._finish(job, st.FAILED, None, message)
                return
            await self._finish(job, st.DONE, result, None)
        finally:
            self._running.pop(job.id, None)
            self._touch(job.course)
            self._wake.set()

    async def _finish(
        self, job: st.Job, state: str, result: JobResult | None, error: str | None
    ) -> None:
        stored = result.to_json() if result is not None else None
        await self.store.finish_job(job.id, state, result=stored, error=error)
        logger.info("job %s %s", job.id, state, extra={"job": str(job.id), "course": job.course})
        for hook in self.on_finished:
            await self._safe(hook(job, state, result, error))

    @staticmethod
    async def _safe(awaitable: Awaitable[None]) -> None:
        # A hook failing (GitHub down) must not stop the runner; the crash recovery
        # concludes any check run a failed hook left open.
        try:
            await awaitable
        except Exception:
            logger.exception("job hook failed")

    async def idle(self) -> None:
        """Wait until no job is running and none is due (for tests and shutdown)."""
        while True:
            if not self._running:
                due = await self.store.next_due_at()
                if due is None or due > time.time() + 0.5:
                    return
            await asyncio.sleep(0.02)

    async def stop(self, grace: float = 20.0) -> None:
        """Stop taking jobs; let running ones reach a checkpoint, then cancel the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for running in self._running.values():
            running.cancel.set()
        tasks = [r.task for r in self._running.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
