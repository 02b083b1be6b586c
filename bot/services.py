"""The app's long-lived parts, built once at start-up and shared by routes, handlers and jobs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.jobs.runner import JobRegistry, JobRunner
from bot.metrics import Metrics
from bot.settings import Settings
from bot.store import Store

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    session: aiohttp.ClientSession
    runner: JobRunner
    registry: JobRegistry
    metrics: Metrics
    github: Any = None  # bot.github.GitHubApp once the App is registered
    app_slug: str | None = None
    reporter: Any = None  # bot.reporting.Reporter
    engine: Any = None  # deploy.operations.Engine
    course_droplets: Any = None  # bot.course_tokens.CourseDroplets: courses' own tokens
    course_keys: Any = None  # bot.course_keys.CourseKeys: courses' own SSH keys
    extras: dict[str, Any] = field(default_factory=dict)
    on_job_created: list[Callable[[int], Awaitable[None]]] = field(default_factory=list)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run work after the answer is sent, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
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
            from bot.github.client import GitHubApp

            assert settings.app_id is not None and settings.private_key is not None
            self.github = GitHubApp(
                self.session,
                settings.app_id,
                settings.private_key,
                settings.github_api_url,
            )
            self.metrics.github = self.github

    async def drain(self, timeout: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


SERVICES = web.AppKey("services", Services)
