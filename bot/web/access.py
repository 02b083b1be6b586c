"""Who is signed in to the console, and which courses they may open.

A session is a person's GitHub login with their user token. The token is shown to GitHub
again at most every few minutes (``GET /user``); one that expired is renewed once with
its refresh token, and one GitHub refuses ends the session. A course is open to a person
when GitHub's collaborator-permission answer (asked with the App's installation token,
cached for a minute) is admin, maintain or write, and admin-only actions need admin: both
by ``bot.jobs.registry.has_role``, the one rule slash commands, buttons and jobs use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiohttp_session
import gidgethub
from aiohttp import web
from cachetools import TTLCache

from bot.github.oauth import GitHubOAuth, OAuthError, TokenRejected, UserToken
from bot.jobs.registry import ADMIN, has_role, may_run
from bot.services import SERVICES, Services
from bot.store import Course
from bot.web import sessions

logger = logging.getLogger(__name__)

PERMISSION_TTL = 60.0  # a removed collaborator loses the console within a minute
REPOSITORIES_TTL = 60.0
USER_CHECK_TTL = 300.0  # how often a signed-in person's token is shown to GitHub again
RENEWED_TTL = 300.0


@dataclass
class SignedIn:
    login: str
    token: UserToken
    csrf: str


class AccessState:
    """What the console remembers briefly of people and their permissions."""

    def __init__(self) -> None:
        # GitHub's collaborator-permission answers (None: not a collaborator).
        self.permissions: TTLCache[tuple[str, str], dict[str, Any] | None] = TTLCache(
            10_000, PERMISSION_TTL
        )
        self.repositories: TTLCache[str, list[dict[str, Any]]] = TTLCache(1_000, REPOSITORIES_TTL)
        self.verified: TTLCache[str, str] = TTLCache(1_000, USER_CHECK_TTL)
        self.default_branches: dict[str, str] = {}
        self.oauth: GitHubOAuth | None = None
        # A refresh token works once: requests racing to renew the same token share one
        # renewal (the page's poll and a click can arrive together).
        self.renewed: TTLCache[str, UserToken] = TTLCache(1_000, RENEWED_TTL)
        self.renewing = asyncio.Lock()

    def clear(self) -> None:
        for cache in (self.permissions, self.repositories, self.verified):
            cache.clear()


ACCESS = web.AppKey("console_access", AccessState)


def services_of(request: web.Request) -> Services:
    return request.app[SERVICES]


def oauth_client(request: web.Request) -> GitHubOAuth | None:
    services = services_of(request)
    settings = services.settings
    if not (settings.client_id and settings.client_secret):
        return None
    state = request.app[ACCESS]
    if state.oauth is None or state.oauth.client_id != settings.client_id:
        state.oauth = GitHubOAuth(
            services.session,
            settings.client_id,
            settings.client_secret,
            settings.github_url,
            settings.github_api_url,
        )
    return state.oauth


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def renew(state: AccessState, oauth: GitHubOAuth, token: UserToken) -> UserToken:
    """The token after its refresh: done once, whoever asks for it at the same time."""
    key = fingerprint(token.refresh_token or token.access_token)
    async with state.renewing:
        fresh = state.renewed.get(key)
        if fresh is None:
            fresh = await oauth.refresh(token)
            state.renewed[key] = fresh
    return fresh


async def signed_in(request: web.Request) -> SignedIn | None:
    """The person this browser's session belongs to, with a token GitHub still accepts.

    An expired token is refreshed (once) with its refresh token; a token or refresh token
    GitHub refuses ends the session.
    """
    session = await aiohttp_session.get_session(request)
    login = session.get("login")
    token = UserToken.from_session(dict(session))
    if not isinstance(login, str) or token is None or sessions.idle_too_long(session):
        if not session.new and "login" in session:
            session.invalidate()
        return None
    oauth = oauth_client(request)
    if oauth is None:
        session.invalidate()
        return None
    state = request.app[ACCESS]
    try:
        if token.expired():
            token = await renew(state, oauth, token)
            session.update(token.as_session())
        if state.verified.get(fingerprint(token.access_token)) != login:
            try:
                user = await oauth.user(token)
            except TokenRejected:
                token = await renew(state, oauth, token)
                session.update(token.as_session())
                user = await oauth.user(token)
            if user.get("login") != login:
                raise TokenRejected("the token belongs to someone else")
            state.verified[fingerprint(token.access_token)] = login
    except TokenRejected as exc:
        logger.info("signed %s out: %s", login, exc)
        session.invalidate()
        return None
    except OAuthError as exc:
        raise web.HTTPBadGateway(text=f"GitHub is not answering: {exc}\n") from None
    sessions.touch(session)
    return SignedIn(login, token, sessions.csrf_token(session))


async def permission(request: web.Request, course: Course, login: str) -> dict[str, Any] | None:
    """GitHub's collaborator-permission answer for ``login`` on the course (cached)."""
    state = request.app[ACCESS]
    key = (course.full_name, login)
    if key not in state.permissions:
        services = services_of(request)
        try:
            state.permissions[key] = await services.reporter.permission(
                course.installation_id, course.full_name, login
            )
        except (gidgethub.GitHubException, aiohttp.ClientError) as exc:
            logger.warning("permission of %s on %s unknown: %s", login, course.full_name, exc)
            raise web.HTTPBadGateway(text="GitHub is not answering; try again shortly.\n") from None
    return state.permissions[key]


async def permitted(request: web.Request, course: Course, login: str) -> bool:
    """Whether GitHub says ``login`` is admin, maintain or write on the course."""
    return may_run(await permission(request, course, login))


def is_admin(payload: dict[str, Any] | None) -> bool:
    """Whether GitHub's answer makes ``login`` an admin of the repository: the registry's
    rule (``bot.jobs.registry.has_role``), the one every path asks."""
    return has_role(ADMIN, payload)


async def course_for(request: web.Request, user: SignedIn) -> Course | None:
    owner, repo = request.match_info["owner"], request.match_info["repo"]
    services = services_of(request)
    course = await services.store.course(f"{owner}/{repo}")
    if course is None or not course.active:
        return None
    if not await permitted(request, course, user.login):
        return None
    return course


async def user_repositories(request: web.Request, user: SignedIn) -> list[dict[str, Any]]:
    state = request.app[ACCESS]
    repositories = state.repositories.get(user.login)
    if repositories is None:
        oauth = oauth_client(request)
        assert oauth is not None
        repositories = await oauth.repositories(user.token, services_of(request).settings.app_id)
        state.repositories[user.login] = repositories
        for repo in repositories:
            if isinstance(repo.get("default_branch"), str):
                state.default_branches[repo["full_name"]] = repo["default_branch"]
    return repositories
