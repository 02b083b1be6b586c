"""Builds the aiohttp application: routes, and the start-up and shutdown of every service part."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bot import web as pages
from bot import webhook
from bot.jobs import JobRegistry, JobRunner
from bot.metrics import Metrics
from bot.services import SERVICES, Services
from bot.settings import Settings
from bot.store import Store

logger = logging.getLogger(__name__)

REGISTRY = JobRegistry()  # job kinds of the product; feature modules register here


def make_app(
    settings: Settings, *, registry: JobRegistry | None = None, job_concurrency: int = 4
) -> web.Application:
    app = web.Application(client_max_size=webhook.MAX_BODY)
    app.router.add_post("/webhook", webhook.receive)
    pages.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = await Store.open(settings.data_dir)
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60),
            headers={"User-Agent": "littlest-classroom"},
        )
        jobs = registry or REGISTRY
        metrics = Metrics()
        services = Services(
            settings=settings,
            store=store,
            session=session,
            runner=JobRunner(store, jobs, concurrency=job_concurrency),
            registry=jobs,
            metrics=metrics,
            app_slug=await store.get_meta("app_slug"),
        )
        services.runner.services = services
        await services.use_settings(settings)
        app[SERVICES] = services
        await services.runner.start()
        logger.info("serving; GitHub App %s", "registered" if settings.registered else "not set up")
        try:
            yield
        finally:
            logger.info("stopping: letting running jobs reach a checkpoint")
            await services.runner.stop()
            await services.drain()
            await session.close()
            await store.close()
            logger.info("stopped")

    app.cleanup_ctx.append(lifecycle)
    return app
