"""The setup page: registers the service as a GitHub App through GitHub's manifest flow.

While no App credentials are configured, ``GET /`` explains what will be created and
posts the manifest (from ``app.yml``) to GitHub with a random ``state``, bound to the
browser that asked by a cookie. GitHub sends the person back to
``/setup/callback?code&state``; a callback from another browser (no cookie, or not the
one the ``state`` was given to) is refused and registers nothing. Else the code is
exchanged for the App's
credentials, which are merged into ``.env`` (mode 0600) and used at once. Once
credentials exist, both routes answer 404: nobody can re-register the app.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import ipaddress
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import gidgethub
import yaml
from aiohttp import web
from cachetools import TTLCache

from bot.github.client import MANIFEST_CODE_PATTERN, GitHubError, convert_manifest
from bot.services import SERVICES, Services
from bot.settings import SettingsError, write_env

logger = logging.getLogger(__name__)

APP_MANIFEST = Path(__file__).resolve().parents[2] / "app.yml"
ORG_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
STATE_LIFETIME = 3600
# The cookie that binds a setup's ``state`` to the browser it was given to.
SETUP_COOKIE = "classroom_setup"
_BROWSER_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")

PENDING_STATES = web.AppKey("setup_states", TTLCache)
SETUP_LOCK = web.AppKey("setup_lock", asyncio.Lock)


def build_manifest(
    public_url: str, manifest_path: Path = APP_MANIFEST, *, webhook_proxy_url: str | None = None
) -> dict[str, Any]:
    """The manifest GitHub receives: ``app.yml`` plus this service's own URLs.

    With a webhook relay channel, GitHub sends its deliveries to the channel instead.
    """
    manifest: dict[str, Any] = yaml.safe_load(manifest_path.read_text())
    manifest["url"] = public_url
    hook = webhook_proxy_url or f"{public_url}/webhook"
    manifest["hook_attributes"] = {"url": hook, "active": True}
    manifest["redirect_url"] = f"{public_url}/setup/callback"
    # Signing in to the console (the OAuth web flow) returns here; no OAuth during install.
    manifest["callback_urls"] = [f"{public_url}/login/callback"]
    manifest["request_oauth_on_install"] = False
    return manifest


def unreachable_by_github(url: str) -> bool:
    """Whether ``url`` names this machine or a private network, which GitHub cannot reach."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def relay_notice(public_url: str, proxy_url: str | None) -> str:
    """What the setup page says when GitHub cannot reach the webhook (a laptop trial)."""
    if proxy_url:
        return (
            "<p class=notice id=relay>GitHub's deliveries go to the relay channel "
            f"<code>{html.escape(proxy_url)}</code>; this service reads it "
            "(<code>WEBHOOK_PROXY_URL</code>) and checks every signature as usual.</p>"
        )
    if not unreachable_by_github(public_url):
        return ""
    return (
        "<p class=notice id=unreachable><b>GitHub cannot reach "
        f"<code>{html.escape(public_url)}</code></b>: it is this machine or a private "
        "network. For a trial on a laptop, open a webhook relay channel at "
        "<a href='https://smee.io/new'>smee.io/new</a>, set "
        "<code>WEBHOOK_PROXY_URL</code> to its address in <code>.env</code>, restart the "
        "service and come back here. Otherwise set <code>BOT_PUBLIC_URL</code> to an "
        "address GitHub can reach.</p>"
    )


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;"
        "padding:0 1rem;line-height:1.5}code{background:#f3f3f3;padding:0 .2em}"
        "button{font-size:1.1rem;padding:.5rem 1.2rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=text, content_type="text/html", status=status)


def _permissions_list(manifest: dict[str, Any]) -> str:
    items = "".join(
        f"<li><code>{html.escape(name)}</code>: {html.escape(level)}</li>"
        for name, level in manifest.get("default_permissions", {}).items()
    )
    events = ", ".join(html.escape(e) for e in manifest.get("default_events", []))
    return f"<ul>{items}</ul><p>Events: {events}.</p>"


async def setup_page(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    settings = services.settings
    org = request.query.get("org", "")
    if org and not ORG_PATTERN.fullmatch(org):
        return _page("Unknown organization", "<p>That is not a GitHub organization name.</p>", 400)
    manifest = build_manifest(settings.public_url, webhook_proxy_url=settings.webhook_proxy_url)
    state = secrets.token_urlsafe(24)
    browser = request.cookies.get(SETUP_COOKIE, "")
    if not _BROWSER_TOKEN.fullmatch(browser):
        browser = secrets.token_urlsafe(24)
    request.app[PENDING_STATES][state] = browser
    target = (
        f"{settings.github_url}/organizations/{org}/settings/apps/new"
        if org
        else f"{settings.github_url}/settings/apps/new"
    )
    owner = f"the organization <b>{html.escape(org)}</b>" if org else "your GitHub account"
    body = (
        "<p>This service is not registered yet. The button below asks GitHub to create a "
        f"GitHub App named <b>{html.escape(manifest['name'])}</b> owned by {owner}, "
        "that sends its webhooks to "
        f"<code>{html.escape(manifest['hook_attributes']['url'])}</code>.</p>"
        f"{relay_notice(settings.public_url, settings.webhook_proxy_url)}"
        f"<p>It asks for these permissions:</p>{_permissions_list(manifest)}"
        "<p>GitHub then sends you back here; the App's credentials are saved to this "
        "service's <code>.env</code> (readable by its owner only) and used at once. "
        "To register it under an organization instead, open this page with "
        "<code>?org=NAME</code>.</p>"
        f'<form method="post" action="{html.escape(target)}?state={state}">'
        f'<input type="hidden" name="manifest" value="{html.escape(json.dumps(manifest))}">'
        '<button type="submit" id="register">Register the GitHub App</button></form>'
    )
    response = _page("Set up Littlest Classroom", body)
    # Lax: sent on GitHub's redirect back (a top-level GET), never on another site's POST.
    response.set_cookie(
        SETUP_COOKIE,
        browser,
        max_age=STATE_LIFETIME,
        path="/setup",
        httponly=True,
        samesite="Lax",
        secure=settings.public_url.startswith("https://"),
    )
    return response


def _started_here(request: web.Request, state: str) -> bool:
    """Whether ``state`` was given to this browser (its cookie), compared in constant time;
    a match spends it."""
    pending = request.app[PENDING_STATES]
    browser = pending.get(state) if state else None
    cookie = request.cookies.get(SETUP_COOKIE, "")
    if not isinstance(browser, str) or not hmac.compare_digest(browser.encode(), cookie.encode()):
        return False
    pending.pop(state, None)
    return True


async def setup_callback(request: web.Request) -> web.Response:
    services: Services = request.app[SERVICES]
    code = request.query.get("code", "")
    state = request.query.get("state", "")
    async with request.app[SETUP_LOCK]:
        if services.settings.registered:
            raise web.HTTPNotFound()
        if not _started_here(request, state):
            return _page(
                "Setup link expired",
                "<p>This link does not match a setup started in this browser (wrong, used "
                "or another browser's <code>state</code>). Nothing was saved. "
                "<a href='/'>Start again</a>.</p>",
                400,
            )
        if not MANIFEST_CODE_PATTERN.fullmatch(code):
            return _page("Setup failed", "<p>GitHub sent no usable code.</p>", 400)
        try:
            app_data = await convert_manifest(
                services.session, services.settings.github_api_url, code
            )
        except gidgethub.HTTPException as exc:
            status = exc.status_code.value
            logger.warning("manifest conversion answered %s", status)
            return _page(
                "Setup failed",
                f"<p>GitHub refused the code (HTTP {status}); it may be used or "
                "expired. Nothing was saved. <a href='/'>Start again</a>.</p>",
                502 if status >= 500 else 400,
            )
        except (GitHubError, aiohttp.ClientError) as exc:
            # GitHubError: an answer without the App's credentials; ClientError: no answer.
            logger.warning("manifest conversion failed: %s", type(exc).__name__)
            return _page(
                "Setup failed",
                "<p>GitHub did not send the new App's credentials. Nothing was saved. "
                "<a href='/'>Start again</a>.</p>",
                502,
            )
        values = {
            "GITHUB_APP_ID": str(app_data["id"]),
            "GITHUB_PRIVATE_KEY": app_data["pem"],
            "GITHUB_WEBHOOK_SECRET": app_data["webhook_secret"],
            "GITHUB_CLIENT_ID": app_data.get("client_id") or "",
            "GITHUB_CLIENT_SECRET": app_data.get("client_secret") or "",
        }
        try:
            fresh = services.settings.with_credentials(values)
        except SettingsError as exc:
            return _page("Setup failed", f"<p>{html.escape(str(exc))}</p>", 400)
        await asyncio.to_thread(write_env, services.settings.env_file, values)
        await services.use_settings(fresh, app_slug=app_data.get("slug"))
    install_url = f"{app_data.get('html_url', '').rstrip('/')}/installations/new"
    logger.info("registered as GitHub App %s", app_data.get("slug"))
    raise web.HTTPFound(install_url)


def add_routes(app: web.Application) -> None:
    app[PENDING_STATES] = TTLCache(maxsize=1000, ttl=STATE_LIFETIME)
    app[SETUP_LOCK] = asyncio.Lock()
    app.router.add_get("/setup/callback", setup_callback)
