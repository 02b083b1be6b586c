"""The service's GitHub client: App and installation authentication, retries, caches.

``GitHubApp`` hands out gidgethub clients authenticated as the App (a JWT) or as one
installation (a token, cached until shortly before it expires). The installation
clients refresh a token GitHub refuses (401) once and repeat the call, keep an ETag
cache per installation so repeated reads cost a 304, and wait out secondary rate limits
within a bound. Git blobs are content-addressed, so their bytes are cached once for all
installations (``GitHubApp.blobs``): a blob is never fetched twice. Tokens are never
logged: log lines name installations, not credentials.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import cachetools
import gidgethub
from gidgethub import aiohttp as gh_aiohttp
from gidgethub import sansio

from bot.bounded import BodyTooLarge, read_capped

logger = logging.getLogger(__name__)

REQUESTER = "littlest-classroom"
# Refresh a token this long before GitHub says it expires, so no call races its expiry.
TOKEN_MARGIN_SECONDS = 5 * 60
MAX_RATE_LIMIT_ATTEMPTS = 3
MAX_RATE_LIMIT_WAIT_SECONDS = 60.0
# GitHub asks for "at least one minute" after a secondary limit that names no wait.
SECONDARY_LIMIT_DEFAULT_WAIT = 60.0
ETAG_CACHE_SIZE = 256
# Course files are at most 1 MiB each (``bot.github.commit_files``); this holds the course
# files of a few hundred courses, so a push that changes none of them reads no blob.
BLOB_CACHE_BYTES = 64 * 1024 * 1024
INSTALLATION_CACHE_SIZE = 1024
# The most of one answer the service reads: GitHub's largest it asks for (a recursive tree,
# which GitHub itself cuts at 7 MB; a blob of at most 1 MiB, base64) fits many times over.
RESPONSE_LIMIT = 32 * 1024 * 1024

_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_REF = re.compile(r"^(?!.*\.\.)(?!/)[A-Za-z0-9._/-]{1,255}(?<!/)$")
# The one-time code GitHub's manifest flow hands back; anything else is refused unsent.
MANIFEST_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
ResponseObserver = Callable[[int, int | None], None]


class GitHubError(Exception):
    """A GitHub answer the client cannot use; the message says which call and why."""


def check_repository_names(what: str, owner: str, repo: str, ref: str | None = None) -> None:
    """Raise ``GitHubError`` unless owner, repo (and ref) are names GitHub could have given."""
    for name, value, pattern in (("owner", owner, _OWNER), ("repo", repo, _REPO)):
        if not pattern.match(value):
            raise GitHubError(f"{what}: {name} {value!r} is not a GitHub name")
    if ref is not None and not _REF.match(ref):
        raise GitHubError(f"{what}: ref {ref!r} is not a branch name or sha")


def retry_delay(
    status: int,
    headers: Mapping[str, str],
    message: str,
    attempt: int,
    *,
    now: float,
    max_attempts: int = MAX_RATE_LIMIT_ATTEMPTS,
    max_wait: float = MAX_RATE_LIMIT_WAIT_SECONDS,
) -> float | None:
    """Seconds to wait before repeating a refused request, or None to give up.

    GitHub signals a rate limit as 403 or 429 with ``retry-after`` (secondary limits), or
    with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` (the primary limit). A
    wait longer than ``max_wait``, or a request already tried ``max_attempts`` times, is
    not worth holding a job for: the caller sees the error.
    """
    if status not in (403, 429) or attempt >= max_attempts:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    wait: float | None = None
    if "retry-after" in lowered:
        try:
            wait = max(0.0, float(lowered["retry-after"]))
        except ValueError:
            return None
    elif lowered.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lowered:
        try:
            wait = max(0.0, float(lowered["x-ratelimit-reset"]) - now) + 1.0
        except ValueError:
            return None
    elif "secondary rate limit" in message.lower() or status == 429:
        wait = SECONDARY_LIMIT_DEFAULT_WAIT
    if wait is None or wait > max_wait:
        return None
    return wait


def token_refresh_at(expires_at: str, margin: float = TOKEN_MARGIN_SECONDS) -> float:
    """Epoch seconds after which a token GitHub says expires at ``expires_at`` is renewed."""
    moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    return moment.timestamp() - margin


@dataclass
class _CallState:
    """What one logical call has already spent, across gidgethub's retries."""

    token_refreshed: bool = False


_call_state: contextvars.ContextVar[_CallState | None] = contextvars.ContextVar(
    "github_call_state", default=None
)


@dataclass
class _Token:
    value: str
    refresh_at: float


@dataclass
class RequestCounters:
    """What the metrics endpoint reports about calls to GitHub."""

    by_status: Counter[int] = field(default_factory=Counter)
    rate_limit_remaining: int | None = None
    token_requests: int = 0

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        self.by_status[status] += 1
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            self.rate_limit_remaining = int(remaining)


class ResponseTooLarge(GitHubError):
    """An answer longer than the service reads; it was not read further."""


class CappedGitHubAPI(gh_aiohttp.GitHubAPI):
    """gidgethub's aiohttp client reading each answer up to ``RESPONSE_LIMIT`` bytes."""

    response_limit = RESPONSE_LIMIT

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with self._session.request(method, url, headers=headers, data=body) as response:
            what = f"GitHub's answer to {method} {_without_query(url)}"
            try:
                data = await read_capped(response, self.response_limit, what)
            except BodyTooLarge as exc:
                raise ResponseTooLarge(str(exc)) from None
            return response.status, response.headers, data


class _ObservedAPI(CappedGitHubAPI):
    """gidgethub's aiohttp client that counts answers and waits out rate limits.

    Every client of one App shares its session, counters, sleeper and clock; ``auth`` is
    what differs (the App's JWT, or an installation's token and ETag cache).
    """

    def __init__(self, app: GitHubApp, **auth: Any) -> None:
        super().__init__(app.session, app.requester, base_url=app.api_url, **auth)
        self._counters = app.counters
        self._sleeper = app.sleeper
        self._clock = app.clock

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        status, response_headers, data = await super()._request(method, url, headers, body)
        self._counters.observe(status, response_headers)
        return status, response_headers, data

    async def sleep(self, seconds: float) -> None:
        await self._sleeper(seconds)

    async def handle_rate_limit_error(
        self,
        *,
        method: str,
        url: str,
        exception: gidgethub.HTTPException,
        attempt: int,
    ) -> bool:
        delay = retry_delay(
            int(exception.status_code),
            exception.headers,
            str(exception),
            attempt,
            now=self._clock(),
        )
        if delay is None:
            return False
        logger.warning(
            "GitHub answered %s to %s %s (attempt %d); retrying in %.0f s",
            int(exception.status_code),
            method,
            _without_query(url),
            attempt,
            delay,
        )
        await self.sleep(delay)
        return True


class InstallationAPI(_ObservedAPI):
    """A client acting as one installation; a refused token is renewed once per call."""

    def __init__(self, app: GitHubApp, installation_id: int, token: str, cache: Any) -> None:
        super().__init__(app, oauth_token=token, cache=cache)
        self._app = app
        self.installation_id = installation_id

    async def _make_request(self, *args: Any, **kwargs: Any) -> Any:
        marker = _call_state.set(_CallState())
        try:
            return await super()._make_request(*args, **kwargs)
        finally:
            _call_state.reset(marker)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        # gidgethub builds the headers once per logical call; a retry after a refresh
        # must carry the new token, so the header is written here, on every attempt.
        headers = {**headers, "authorization": f"token {self.oauth_token}"}
        return await super()._request(method, url, headers, body)

    async def handle_rate_limit_error(
        self,
        *,
        method: str,
        url: str,
        exception: gidgethub.HTTPException,
        attempt: int,
    ) -> bool:
        state = _call_state.get()
        if int(exception.status_code) == 401 and state is not None and not state.token_refreshed:
            state.token_refreshed = True
            logger.info(
                "GitHub refused the token of installation %d; fetching a new one",
                self.installation_id,
            )
            self.oauth_token = await self._app.installation_token(
                self.installation_id, refuse=self.oauth_token
            )
            return True
        return await super().handle_rate_limit_error(
            method=method, url=url, exception=exception, attempt=attempt
        )


class GitHubApp:
    """The App's credentials and everything shared across its calls to GitHub."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        app_id: int | str,
        private_key_pem: str,
        api_url: str = sansio.DOMAIN,
        requester: str = REQUESTER,
        *,
        sleeper: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        token_margin: float = TOKEN_MARGIN_SECONDS,
    ) -> None:
        self.session = session
        self.app_id = str(app_id)
        self._private_key = private_key_pem
        self.api_url = api_url.rstrip("/")
        self.requester = requester
        self.sleeper = sleeper
        self.clock = clock
        self.token_margin = token_margin
        self.counters = RequestCounters()
        # Each token lives until its own expiry (minus the margin), hence a TLRU cache.
        self._tokens: cachetools.TLRUCache[int, _Token] = cachetools.TLRUCache(
            maxsize=INSTALLATION_CACHE_SIZE,
            ttu=lambda _key, token, _now: token.refresh_at,
            timer=lambda: self.clock(),
        )
        # ETags answer for one token's view, so each installation has its own cache.
        self._etag_caches: cachetools.LRUCache[int, cachetools.LRUCache[str, Any]] = (
            cachetools.LRUCache(maxsize=INSTALLATION_CACHE_SIZE)
        )
        self._locks: dict[int, asyncio.Lock] = {}
        # Content-addressed: the same sha is the same bytes whichever installation read it,
        # and a sha is only ever looked up after a tree the installation could read named it.
        self.blobs: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(
            maxsize=BLOB_CACHE_BYTES, getsizeof=len
        )

    @property
    def requests_by_status(self) -> Counter[int]:
        return self.counters.by_status

    @property
    def rate_limit_remaining(self) -> int | None:
        return self.counters.rate_limit_remaining

    async def app_api(self) -> gh_aiohttp.GitHubAPI:
        """A client authenticated as the App itself (a JWT), for ``/app`` calls."""
        return _ObservedAPI(self, app_id=self.app_id, private_key=self._private_key)

    async def installation_token(self, installation_id: int, *, refuse: str | None = None) -> str:
        """A token for the installation, from the cache unless it is the ``refuse``d one."""
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached.value != refuse:
                return cached.value
            self._tokens.pop(installation_id, None)
            api = await self.app_api()
            self.counters.token_requests += 1
            answer = await api.post(
                "/app/installations/{installation_id}/access_tokens",
                {"installation_id": installation_id},
                data=b"",
            )
            token = _Token(
                answer["token"], token_refresh_at(answer["expires_at"], self.token_margin)
            )
            if token.refresh_at > self.clock():
                self._tokens[installation_id] = token
            return token.value

    async def repository_read_token(self, installation_id: int, repo: str) -> str:
        """A new token that can only read the contents of the installation's ``repo``.

        For a server to fetch the course's shared folders itself: short-lived, never
        cached here, and narrower than the service's own token.
        """
        api = await self.app_api()
        self.counters.token_requests += 1
        answer = await api.post(
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": installation_id},
            data={"repositories": [repo], "permissions": {"contents": "read"}},
        )
        return str(answer["token"])

    async def installation_api(
        self, installation_id: int, *, etag_cache: bool = True
    ) -> InstallationAPI:
        """A client acting as the installation, sharing its token and ETag caches.

        Without ``etag_cache`` the answers are not kept: for content-addressed reads
        (blobs), which the caller caches by sha and never asks for twice.
        """
        token = await self.installation_token(installation_id)
        if not etag_cache:
            return InstallationAPI(self, installation_id, token, None)
        cache = self._etag_caches.get(installation_id)
        if cache is None:
            cache = cachetools.LRUCache(maxsize=ETAG_CACHE_SIZE)
            self._etag_caches[installation_id] = cache
        return InstallationAPI(self, installation_id, token, cache)


async def convert_manifest(
    session: aiohttp.ClientSession, api_url: str, code: str
) -> dict[str, Any]:
    """Exchange the manifest flow's one-time ``code`` for the new App's credentials.

    The answer holds the App's private key, webhook secret and client secret: callers
    store it and must not log it.
    """
    if not MANIFEST_CODE_PATTERN.match(code):
        raise GitHubError(f"manifest code {code!r} is not one GitHub issues")
    api = CappedGitHubAPI(session, REQUESTER, base_url=api_url.rstrip("/"))
    answer = await api.post("/app-manifests/{code}/conversions", {"code": code}, data=b"")
    if not isinstance(answer, dict) or not {"id", "pem", "webhook_secret"} <= answer.keys():
        raise GitHubError("the manifest conversion answered without the App's credentials")
    return answer


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


class AppNotRegistered(RuntimeError):
    """Something asked GitHub for an installation before the App was registered."""


class AppRegistration:
    """The GitHub App the service acts as: none until it is registered (the setup page, or
    credentials in the environment), then the client of its credentials, replaced when the
    setup page registers a new App without a restart."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.app: GitHubApp | None = None

    def register(self, app_id: int, private_key: str, api_url: str) -> GitHubApp:
        self.app = GitHubApp(self.session, app_id, private_key, api_url)
        return self.app

    def require(self) -> GitHubApp:
        """The registered App's client; ``AppNotRegistered`` before registration."""
        if self.app is None:
            raise AppNotRegistered(
                "the GitHub App is not registered yet: open the service's home page to do so"
            )
        return self.app
