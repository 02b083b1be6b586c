"""The app's long-lived parts, built once at start-up (``bot.app``) and shared by routes,
handlers and jobs. Every part is given to the constructor; the job runner is made here,
with these services for its jobs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.course_keys import CourseKeys
from bot.course_tokens import CourseDroplets
from bot.github.client import AppRegistration, GitHubApp
from bot.github.reporting import Reporter
from bot.jobs.runner import JobKinds, JobRunner
from bot.metrics import Metrics
from bot.secret_handles import SecretHandles
from bot.settings import Settings
from bot.store import Store
from deploy.operations import Engine

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    session: aiohttp.ClientSession
    job_kinds: JobKinds[Services]
    metrics: Metrics
    app_registration: AppRegistration  # the App's client once it is registered
    reporter: Reporter
    engine: Engine
    course_droplets: CourseDroplets  # courses' own DigitalOcean tokens
    course_keys: CourseKeys  # courses' own SSH keys
    # Secrets a console request hands its job, in this process's memory only.
    secret_handles: SecretHandles = field(default_factory=SecretHandles)
    app_slug: str | None = None
    job_concurrency: int = 4
    runner: JobRunner[Services] = field(init=False)
    on_job_created: list[Callable[[int], Awaitable[None]]] = field(default_factory=list)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.runner = JobRunner(self.store, self.job_kinds, self, concurrency=self.job_concurrency)

    @property
    def github(self) -> GitHubApp | None:
        """The registered App's client; None until the App is registered."""
        return self.app_registration.app

    def require_github(self) -> GitHubApp:
        """The registered App's client; ``AppNotRegistered`` before registration."""
        return self.app_registration.require()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run work after the answer is sent, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())

    async def job_created(self, job_id: int) -> None:
        for hook in self.on_job_created:
            await hook(job_id)

    async def use_settings(self, settings: Settings, *, app_slug: str | None = None) -> None:
        """Start using (new) App credentials without a restart."""
        self.settings = settings
        if app_slug:
            self.app_slug = app_slug
            await self.store.set_meta("app_slug", app_slug)
        if settings.registered:
            assert settings.app_id is not None and settings.private_key is not None
            app = self.app_registration.register(
                settings.app_id, settings.private_key, settings.github_api_url
            )
            self.metrics.github = app

    async def drain(self, timeout: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


SERVICES = web.AppKey("services", Services)
