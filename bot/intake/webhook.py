"""``POST /webhook``: verify, record and route GitHub's deliveries, answering in milliseconds.

Status codes are a contract (DESIGN): 202 accepted; 200 for ping, ignored events and
duplicate deliveries; 401 for a missing or wrong signature; 400 for missing headers or bad
JSON; 415 for a wrong content type or an unknown charset; 413 for a body over 25 MiB.
Nothing a client sends gets a 5xx.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from aiohttp import web
from gidgethub import sansio

from bot.intake import payload
from bot.intake.delivery import Intake
from bot.services import SERVICES, Services
from bot.store import Delivery
from handlers import router

logger = logging.getLogger(__name__)

MAX_BODY = 25 * 1024 * 1024
REQUIRED_HEADERS = ("x-github-event", "x-github-delivery")
# GitHub's event names and delivery ids are visible ASCII; anything else (obs-text bytes
# arrive as lone surrogates) could not even be stored or rendered in the metrics.
HEADER_VALUE = re.compile(r"[!-~]{1,200}")


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def ignore_reason(event: sansio.Event, app_slug: str | None, app_id: int | None) -> str | None:
    """Why the service ignores an event it caused itself or a comment by another bot."""
    data = event.data
    sender = data.get("sender") or {}
    login = sender.get("login") if isinstance(sender, dict) else None
    if app_slug and login == f"{app_slug}[bot]":
        return "caused by this app"
    if event.event == "issue_comment":
        comment = data.get("comment") or {}
        via = comment.get("performed_via_github_app") or {}
        if app_id is not None and isinstance(via, dict) and via.get("id") == app_id:
            return "comment made by this app"
        if isinstance(sender, dict) and sender.get("type") == "Bot":
            return "comment by a bot"
    return None


def _storable(value: Any) -> str | None:
    """``value`` if it is text UTF-8 can hold; JSON's lone surrogates (``"\\udcdd"``) escaped."""
    if not isinstance(value, str):
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


def _context(data: dict[str, Any]) -> tuple[str | None, str | None, int | None]:
    action = _storable(data.get("action"))
    repository = data.get("repository")
    full_name = _storable(repository.get("full_name")) if isinstance(repository, dict) else None
    installation = data.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    if not isinstance(installation_id, int):
        installation_id = None
    return action, full_name if isinstance(full_name, str) else None, installation_id


async def receive(request: web.Request) -> web.Response:
    started = time.perf_counter()
    services: Services = request.app[SERVICES]
    event_name = request.headers.get("X-GitHub-Event", "unknown")[:64]
    response = await _receive(request, services)
    if response.status not in (200, 202) or not HEADER_VALUE.fullmatch(event_name):
        # Only a verified delivery names its event: otherwise every client could add
        # label values to the metrics without bound.
        event_name = "unverified"
    services.metrics.deliveries.labels(event=event_name, outcome=str(response.status)).inc()
    services.metrics.intake_seconds.observe(time.perf_counter() - started)
    return response


async def _receive(request: web.Request, services: Services) -> web.Response:
    settings = services.settings
    if not settings.webhook_secret:
        # Without a secret nobody can be told apart from GitHub: serve nothing.
        return _answer(404, "this service is not registered as a GitHub App yet")
    if request.content_length is not None and request.content_length > MAX_BODY:
        return _answer(413, "body over 25 MiB")
    if request.content_type != "application/json":
        return _answer(415, "expected content-type application/json")
    headers = request.headers  # case-insensitive
    missing = [h for h in REQUIRED_HEADERS if not headers.get(h)]
    if missing:
        return _answer(400, f"missing header(s): {', '.join(missing)}")
    malformed = [h for h in REQUIRED_HEADERS if not HEADER_VALUE.fullmatch(headers[h])]
    if malformed:
        return _answer(400, f"header(s) not visible ASCII: {', '.join(malformed)}")
    # Only the SHA-256 signature is trusted; X-Hub-Signature (SHA-1) is never read.
    signature = headers.get("x-hub-signature-256")
    if signature is None:
        return _answer(401, "missing X-Hub-Signature-256")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _answer(413, "body over 25 MiB")
    if not payload.signature_matches(settings.webhook_secret.encode(), body, signature):
        return _answer(401, "signature does not match")
    try:
        data = payload.decode_json(body, request.charset)
    except LookupError:
        return _answer(415, "expected content-type application/json in a known charset")
    except (ValueError, RecursionError):
        # RecursionError: nested deeper than json can read.
        return _answer(400, "body is not valid JSON")
    if not isinstance(data, dict):
        return _answer(400, "body is not a JSON object")
    event = sansio.Event(
        data, event=headers["x-github-event"], delivery_id=headers["x-github-delivery"]
    )
    delivery_id = event.delivery_id[:200]
    action, repository, installation_id = _context(event.data)
    log_extra = {"delivery": delivery_id, "event": event.event, "repository": repository}

    intake = Intake(settings)
    if event.event == "ping":
        outcome, status = "ping", 200
    elif reason := ignore_reason(event, services.app_slug, settings.app_id):
        outcome, status = f"ignored: {reason}", 200
    elif not isinstance(event.data.get("action", ""), str):
        # gidgethub's router looks the action up in a dict: a list there would raise.
        outcome, status = "ignored: action is not text", 200
    elif not router.fetch(event):
        outcome, status = "ignored: no handler", 200
    else:
        try:
            await router.dispatch(event, intake)
        except Exception:
            # A payload that surprises a handler is the client's, not a 5xx: record and move on.
            logger.exception("handler failed on delivery %s", delivery_id, extra=log_extra)
            services.metrics.handler_errors.inc()
            outcome, status = "ignored: handler error", 200
        else:
            outcome, status = ("accepted", 202) if intake.jobs or intake.notes else ("ignored", 200)

    delivery = Delivery(delivery_id, event.event, action, repository, installation_id, outcome)
    # Deduplication happens here, in the transaction: a redelivery (same id, also after a
    # restart) records nothing, changes nothing and asks for no job.
    recorded = await services.store.record_delivery(delivery, intake.jobs, intake.changes)
    if recorded.duplicate:
        logger.debug("duplicate delivery", extra=log_extra)
        return _answer(200, "duplicate delivery")
    if recorded.job_ids:
        services.runner.wake()
        log_extra["job"] = ",".join(map(str, recorded.job_ids))
    if recorded.superseded:
        services.spawn(services.runner.superseded(recorded.superseded))
    for job_id in recorded.job_ids:
        services.spawn(services.job_created(job_id))
    # Deliveries the service acts on get an INFO line; the many it ignores only DEBUG, so
    # the log (and intake's time) goes to what matters.
    logger.log(
        logging.INFO if status == 202 else logging.DEBUG,
        "%s %s: %s",
        event.event,
        action or "",
        outcome,
        extra=log_extra,
    )
    return web.Response(
        status=status,
        body=orjson.dumps({"message": outcome, "jobs": recorded.job_ids}),
        content_type="application/json",
    )
