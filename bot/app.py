"""Builds the aiohttp application: routes, and the start-up and shutdown of every service part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from bot.course_keys import CourseKeys
from bot.course_tokens import CourseDroplets, TokenVault
from bot.github.client import AppRegistration
from bot.github.reporting import Reporter
from bot.intake import webhook
from bot.intake.relay import WebhookRelay
from bot.jobs import entries  # noqa: F401  (registers the operation registry's entries)
from bot.jobs.check_runs import JobReports
from bot.jobs.course import JOB_KINDS
from bot.jobs.runner import JobKinds
from bot.metrics import Metrics
from bot.monitor import Monitor
from bot.services import SERVICES, Services
from bot.settings import Settings
from bot.store import Store
from bot.web import pages, sessions
from deploy.keys import ensure_service_key
from deploy.operations import Engine
from deploy.providers.droplets import DropletDriver
from deploy.ssh import SSHPool

logger = logging.getLogger(__name__)

DAY = 86400.0
# GitHub redelivers only recent deliveries; a finished job's check run is long concluded.
DELIVERY_RETENTION = 30 * DAY
JOB_RETENTION = 90 * DAY
PRUNE_EVERY = 3600.0


# The parts made at start-up that only tests and shutdown reach besides the services.
MONITOR = web.AppKey("monitor", Monitor)
RELAY = web.AppKey("relay", WebhookRelay)


def wire_reporting(services: Services) -> JobReports:
    """Connect the job runner's hooks to the reporting of jobs on GitHub."""
    reports = JobReports(services.reporter, services.store)
    services.on_job_created.append(reports.created)
    services.runner.on_started.append(reports.started)
    services.runner.on_finished.append(reports.finished)
    services.runner.on_superseded.append(reports.superseded)
    return reports


async def prune_store(store: Store) -> None:
    """Drop deliveries and finished jobs past their retention, so the database stays bounded."""
    deliveries = await store.prune_deliveries(DELIVERY_RETENTION)
    jobs = await store.prune_jobs(JOB_RETENTION)
    if deliveries or jobs:
        logger.info(
            "pruned %d deliveries over 30 days old and %d jobs finished over 90 days ago",
            deliveries,
            jobs,
        )


async def prune_periodically(store: Store, every: float) -> None:
    """``prune_store`` at start-up (after downtime too) and then every ``every`` seconds."""
    while True:
        try:
            await prune_store(store)
        except Exception:
            logger.exception("pruning the store failed; it is tried again at the next interval")
        await asyncio.sleep(every)


async def build_engine(
    settings: Settings, store: Store, resolver: CourseDroplets, keys: CourseKeys
) -> Engine:
    """The deploy engine with the SSH keys and, if configured, DigitalOcean.

    A course that brought its own DigitalOcean token uses it (``resolver``); the others
    use the operator's. Each course logs in with its own key (``keys``); the service's
    key is offered only to servers from before per-course keys, until their next deploy.
    """
    key = await asyncio.to_thread(ensure_service_key, settings.data_dir)
    droplets = DropletDriver(settings.do_token) if settings.do_token else None

    async def other_addresses(full_name: str) -> set[str]:
        return await store.server_addresses(except_course=full_name)

    async def course_id(full_name: str) -> int | None:
        known = await store.course(full_name)
        return known.repo_id if known is not None else None

    return Engine(
        records=store,
        ssh=SSHPool(),
        service_key=key,
        droplets=droplets,
        droplet_resolver=resolver,
        key_resolver=keys,
        other_addresses=other_addresses,
        hub_domains=settings.hub_domains,
        service_host=urlsplit(settings.public_url).hostname,
        course_ids=course_id,
    )


def make_app(
    settings: Settings,
    *,
    job_kinds: JobKinds[Services] | None = None,
    job_concurrency: int = 4,
    monitoring: bool = True,
    prune_every: float = PRUNE_EVERY,
) -> web.Application:
    app = web.Application(client_max_size=webhook.MAX_BODY)
    sessions.setup_sessions(app, settings.data_dir, settings.public_url)
    app.middlewares.append(sessions.csrf_middleware)
    app.router.add_post("/webhook", webhook.receive)
    pages.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = await Store.open(settings.data_dir)
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60),
            headers={"User-Agent": "littlest-classroom"},
        )
        registration = AppRegistration(session)
        course_droplets = CourseDroplets(store, TokenVault(settings.data_dir))
        course_keys = CourseKeys(store, settings.data_dir)
        services = Services(
            settings=settings,
            store=store,
            session=session,
            job_kinds=job_kinds or JOB_KINDS,
            metrics=Metrics(),
            app_registration=registration,
            reporter=Reporter(store, registration, settings.github_url),
            engine=await build_engine(settings, store, course_droplets, course_keys),
            course_droplets=course_droplets,
            course_keys=course_keys,
            app_slug=await store.get_meta("app_slug"),
            job_concurrency=job_concurrency,
        )
        await services.use_settings(settings)
        app[SERVICES] = services
        reports = wire_reporting(services)
        monitor = Monitor(services)
        services.runner.on_hub_up.append(monitor.note_up)
        app[MONITOR] = monitor
        await services.runner.start()
        if monitoring:
            monitor.start()
        relay = None
        if settings.webhook_proxy_url:
            relay = WebhookRelay(
                settings.webhook_proxy_url,
                WebhookRelay.local_target(settings.host, settings.port),
                session,
            )
            app[RELAY] = relay
            relay.start()
        pruner = asyncio.create_task(prune_periodically(store, prune_every), name="prune-store")
        if settings.registered:
            services.spawn(reports.recover_open_check_runs())
        logger.info("serving; GitHub App %s", "registered" if settings.registered else "not set up")
        try:
            yield
        finally:
            logger.info("stopping: letting running jobs reach a checkpoint")
            if relay is not None:
                await relay.stop()
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            await monitor.stop()
            await services.runner.stop()
            await services.drain()
            await services.engine.close()
            await session.close()
            await store.close()
            logger.info("stopped")

    app.cleanup_ctx.append(lifecycle)
    return app
