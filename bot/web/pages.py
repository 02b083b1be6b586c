"""The service's pages other than the webhook: landing or setup, health, metrics, keys, badges;
the console's routes are added from ``bot.web.console``."""

from __future__ import annotations

from aiohttp import web

from bot.metrics import CONTENT_TYPE
from bot.monitor import badge_state
from bot.services import SERVICES, Services
from bot.web import badges, console, setup


async def index(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    if not services.settings.registered:
        return await setup.setup_page(request)
    return await console.landing(request)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    problems = []
    if not services.store.is_open:
        problems.append("store closed")
    if not services.settings.registered:
        problems.append("no GitHub App credentials (open / to register)")
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    services.metrics.set_job_counts(await services.store.job_counts())
    response = web.Response(body=services.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def status_badge(request: web.Request) -> web.Response:
    """The live status badge: no-cache, with an ETag so a refresh costs nothing."""
    services: Services = request.app[SERVICES]
    owner, repo = request.match_info["owner"], request.match_info["repo"]
    course = f"{owner}/{repo}"
    known = await services.store.course(course)
    state = await badge_state(services, course) if known and known.active else "unknown"
    svg = badges.status_badge(state)  # type: ignore[arg-type]
    etag = badges.etag_for(svg)
    headers = {"Cache-Control": "no-cache", "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(text=svg, content_type="image/svg+xml", headers=headers)


async def ssh_public_key(request: web.Request) -> web.Response:
    """The service's own SSH key: what servers set up before per-course keys trust until
    their next deploy moves them to their course's key. A new server trusts its course's
    key instead, shown on the console's course page and in the check run."""
    services: Services = request.app[SERVICES]
    return web.Response(text=services.engine.service_key.public_line + "\n")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/badges/{owner}/{repo}/status.svg", status_badge)
    app.router.add_get("/ssh-key.pub", ssh_public_key)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    setup.add_routes(app)
    console.add_routes(app)
