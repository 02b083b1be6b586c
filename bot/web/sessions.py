"""Browser sessions for the console: an encrypted cookie, CSRF tokens, and strict page headers.

The session lives in a cookie encrypted and signed with Fernet (aiohttp-session's
``EncryptedCookieStorage``). Its key is a file in ``BOT_DATA_DIR`` created on first start
with mode 0600. Fernet stamps the time of every save and the storage refuses a cookie
older than the idle limit, so a session left alone for 8 hours, or one whose cookie was
changed, loads as a new, signed-out session.

Every POST to the console carries the session's CSRF token (a form field or the
``X-CSRF-Token`` header); one without it is refused with 403 before any handler runs.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.secret_keys import secret_key_file

SESSION_COOKIE = "classroom_session"
SESSION_KEY_FILE = "session.key"
IDLE_SECONDS = 8 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
# The webhook proves itself with its signature; everything else that is POSTed needs CSRF.
CSRF_EXEMPT = ("/webhook",)


def content_security_policy(github_url: str) -> str:
    # Scripts and styles only from this service's own files: nothing inline can run.
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; form-action 'self' {github_url}; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def setup_sessions(app: web.Application, data_dir: Path, public_url: str) -> None:
    storage = EncryptedCookieStorage(
        # A str is taken as the Fernet key itself (bytes would be encoded once more).
        secret_key_file(data_dir, SESSION_KEY_FILE).decode(),
        cookie_name=SESSION_COOKIE,
        max_age=IDLE_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=public_url.startswith("https://"),
        path="/",
    )
    aiohttp_session.setup(app, storage)


def csrf_token(session: aiohttp_session.Session) -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def touch(session: aiohttp_session.Session) -> None:
    """Mark the session used now: saving it restarts the idle clock."""
    session["seen"] = int(time.time())


def idle_too_long(session: aiohttp_session.Session, now: float | None = None) -> bool:
    seen = session.get("seen")
    if not isinstance(seen, int):
        return False
    return (now if now is not None else time.time()) - seen > IDLE_SECONDS


@web.middleware
async def csrf_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method == "POST" and not request.path.startswith(CSRF_EXEMPT):
        session = await aiohttp_session.get_session(request)
        expected = session.get("csrf")
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not isinstance(expected, str) or not sent or not hmac.compare_digest(expected, sent):
            raise web.HTTPForbidden(
                text="This form is stale or did not come from this site (no valid CSRF token). "
                "Reload the page and try again.\n"
            )
    return await handler(request)
