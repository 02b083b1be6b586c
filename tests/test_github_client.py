"""Tests of bot/github.py: pure helpers, and the client against the fake GitHub."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import gidgethub
import pytest

from bot.github.client import (
    AppNotRegistered,
    AppRegistration,
    GitHubApp,
    GitHubError,
    convert_manifest,
    retry_delay,
    token_refresh_at,
)
from tests.fakes.github import FakeGitHub
from tests.plugins.github_fake import INSTALLATION_ID

TOKENS = "apps/create-installation-access-token"


class Clock:
    """Wall-clock time that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class Sleeps:
    """Records each requested wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def app(
    session: aiohttp.ClientSession, github_fake: FakeGitHub, clock: Clock, sleeps: Sleeps
) -> GitHubApp:
    return GitHubApp(
        session,
        github_fake.app.id,
        github_fake.app.private_key_pem,
        github_fake.url,
        sleeper=sleeps,
        clock=clock,
    )


# ----- pure helpers -----------------------------------------------------------------------


def test_retry_delay_follows_retry_after() -> None:
    assert retry_delay(403, {"Retry-After": "7"}, "secondary", 1, now=0) == 7.0
    assert retry_delay(429, {"retry-after": "0"}, "", 2, now=0) == 0.0


def test_retry_delay_waits_for_the_primary_reset() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"}
    assert retry_delay(403, headers, "API rate limit exceeded", 1, now=1000.0) == 31.0


def test_retry_delay_gives_up_after_the_attempt_bound() -> None:
    assert retry_delay(403, {"retry-after": "1"}, "", 3, now=0) is None
    assert retry_delay(403, {"retry-after": "1"}, "", 2, now=0, max_attempts=2) is None


def test_retry_delay_refuses_a_wait_over_the_bound() -> None:
    assert retry_delay(403, {"retry-after": "61"}, "", 1, now=0) is None
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "5000"}
    assert retry_delay(403, reset, "", 1, now=0) is None


def test_retry_delay_secondary_limit_without_header_waits_a_minute() -> None:
    message = "You have exceeded a secondary rate limit."
    assert retry_delay(403, {}, message, 1, now=0) == 60.0


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (403, {}, "Resource not accessible by integration"),  # a permission problem
        (404, {"retry-after": "1"}, ""),
        (500, {"retry-after": "1"}, ""),
        (403, {"retry-after": "soon"}, ""),
        (403, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": "10"}, ""),
    ],
)
def test_retry_delay_does_not_retry_other_errors(
    status: int, headers: dict[str, str], message: str
) -> None:
    assert retry_delay(status, headers, message, 1, now=0) is None


def test_token_refresh_at_subtracts_the_margin() -> None:
    assert token_refresh_at("1970-01-01T01:00:00Z", margin=300) == 3300.0
    assert token_refresh_at("1970-01-01T01:00:00+00:00", margin=0) == 3600.0


# ----- tokens --------------------------------------------------------------------------------


async def test_many_calls_need_one_token(app: GitHubApp, github_fake: FakeGitHub) -> None:
    for _ in range(5):
        gh = await app.installation_api(INSTALLATION_ID)
        repo = await gh.getitem(
            "/repos/{owner}/{repo}", {"owner": "octo-org", "repo": "physics101"}
        )
        assert repo["default_branch"] == "main"
    assert github_fake.count(TOKENS) == 1
    assert github_fake.count("repos/get") == 5


async def test_concurrent_first_calls_share_one_token_request(
    app: GitHubApp, github_fake: FakeGitHub
) -> None:
    import asyncio

    apis = await asyncio.gather(*(app.installation_api(INSTALLATION_ID) for _ in range(10)))
    assert len({api.oauth_token for api in apis}) == 1
    assert github_fake.count(TOKENS) == 1


async def test_a_token_near_expiry_is_replaced(
    app: GitHubApp, github_fake: FakeGitHub, clock: Clock
) -> None:
    first = await app.installation_api(INSTALLATION_ID)
    clock.offset = 3600 - 300 - 60  # a minute before the margin: still cached
    assert (await app.installation_api(INSTALLATION_ID)).oauth_token == first.oauth_token
    clock.offset = 3600 - 300 + 1
    second = await app.installation_api(INSTALLATION_ID)
    assert second.oauth_token != first.oauth_token
    assert github_fake.count(TOKENS) == 2


async def test_a_token_shorter_than_the_margin_is_not_cached(
    app: GitHubApp, github_fake: FakeGitHub
) -> None:
    from datetime import timedelta

    github_fake.token_lifetime = timedelta(minutes=2)
    await app.installation_api(INSTALLATION_ID)
    await app.installation_api(INSTALLATION_ID)
    assert github_fake.count(TOKENS) == 2


async def test_a_refused_token_is_refreshed_once_and_the_call_repeated(
    app: GitHubApp, github_fake: FakeGitHub
) -> None:
    gh = await app.installation_api(INSTALLATION_ID)
    old = gh.oauth_token
    assert old is not None
    github_fake.invalidate_token(old)
    run = await gh.post(
        "/repos/{owner}/{repo}/check-runs",
        {"owner": "octo-org", "repo": "physics101"},
        data={"name": "classroom", "head_sha": "a" * 40, "status": "in_progress"},
    )
    assert run["status"] == "in_progress"
    assert github_fake.count(TOKENS) == 2
    assert github_fake.count("checks/create") == 2
    assert [r.status for r in github_fake.requests if r.operation_id == "checks/create"] == [
        401,
        201,
    ]
    # The next client gets the fresh token from the cache, without another request.
    assert (await app.installation_api(INSTALLATION_ID)).oauth_token == gh.oauth_token != old
    assert github_fake.count(TOKENS) == 2


async def test_a_second_401_in_one_call_is_raised(app: GitHubApp, github_fake: FakeGitHub) -> None:
    gh = await app.installation_api(INSTALLATION_ID)
    github_fake.queue("repos/get", 401, times=2, message="Bad credentials")
    with pytest.raises(gidgethub.BadRequest) as raised:
        await gh.getitem("/repos/octo-org/physics101")
    assert raised.value.status_code == 401
    assert github_fake.count(TOKENS) == 2
    assert github_fake.count("repos/get") == 2


async def test_tokens_never_reach_the_logs(
    app: GitHubApp, github_fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gh = await app.installation_api(INSTALLATION_ID)
    assert gh.oauth_token is not None
    github_fake.invalidate_token(gh.oauth_token)
    github_fake.queue_secondary_rate_limit("repos/get")
    await gh.getitem("/repos/octo-org/physics101")
    assert "refused the token" in caplog.text
    for token in github_fake.installation_tokens():
        assert token not in caplog.text
    assert "ghs_" not in caplog.text


# ----- conditional requests and rate limits -------------------------------------------------


async def test_a_repeated_get_uses_the_etag(app: GitHubApp, github_fake: FakeGitHub) -> None:
    gh = await app.installation_api(INSTALLATION_ID)
    url = "/repos/octo-org/physics101/contents/README.md"
    first = await gh.getitem(url)
    gh_again = await app.installation_api(INSTALLATION_ID)
    second = await gh_again.getitem(url)
    assert first == second
    gets = [r for r in github_fake.requests if r.operation_id == "repos/get-content"]
    assert "If-None-Match" not in gets[0].headers
    assert gets[1].headers["If-None-Match"]
    assert [r.status for r in gets] == [200, 304]
    assert github_fake.not_modified == 1
    assert app.requests_by_status[304] == 1


async def test_a_secondary_rate_limit_is_waited_out(
    app: GitHubApp, github_fake: FakeGitHub, sleeps: Sleeps
) -> None:
    github_fake.queue_secondary_rate_limit("checks/create", retry_after=1)
    gh = await app.installation_api(INSTALLATION_ID)
    run = await gh.post(
        "/repos/octo-org/physics101/check-runs",
        data={"name": "classroom", "head_sha": "b" * 40},
    )
    assert run["name"] == "classroom"
    assert sleeps.waits == [1.0]
    assert github_fake.count("checks/create") == 2
    assert app.requests_by_status[403] == 1


async def test_a_429_with_retry_after_is_waited_out(
    app: GitHubApp, github_fake: FakeGitHub, sleeps: Sleeps
) -> None:
    github_fake.queue_secondary_rate_limit("repos/get", retry_after=2, status=429)
    gh = await app.installation_api(INSTALLATION_ID)
    await gh.getitem("/repos/octo-org/physics101")
    assert sleeps.waits == [2.0]


async def test_rate_limit_retries_are_bounded(
    app: GitHubApp, github_fake: FakeGitHub, sleeps: Sleeps
) -> None:
    github_fake.queue_secondary_rate_limit("checks/create", times=5)
    gh = await app.installation_api(INSTALLATION_ID)
    with pytest.raises(gidgethub.BadRequest) as raised:
        await gh.post(
            "/repos/octo-org/physics101/check-runs",
            data={"name": "classroom", "head_sha": "c" * 40},
        )
    assert raised.value.status_code == 403
    assert github_fake.count("checks/create") == 3
    assert sleeps.waits == [1.0, 1.0]


async def test_a_long_retry_after_is_not_waited_for(
    app: GitHubApp, github_fake: FakeGitHub, sleeps: Sleeps
) -> None:
    github_fake.queue_secondary_rate_limit("repos/get", retry_after=600)
    gh = await app.installation_api(INSTALLATION_ID)
    with pytest.raises(gidgethub.BadRequest):
        await gh.getitem("/repos/octo-org/physics101")
    assert sleeps.waits == []
    assert github_fake.count("repos/get") == 1


async def test_a_server_error_is_not_retried(app: GitHubApp, github_fake: FakeGitHub) -> None:
    github_fake.queue("repos/get", 500)
    gh = await app.installation_api(INSTALLATION_ID)
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.getitem("/repos/octo-org/physics101")
    assert app.requests_by_status[500] == 1


async def test_counters_track_statuses_and_remaining(
    app: GitHubApp, github_fake: FakeGitHub
) -> None:
    gh = await app.installation_api(INSTALLATION_ID)
    await gh.getitem("/repos/octo-org/physics101")
    assert app.requests_by_status[201] == 1  # the token
    assert app.requests_by_status[200] == 1
    assert app.rate_limit_remaining == github_fake.rate_limit_remaining


# ----- the App and the manifest -------------------------------------------------------------


async def test_app_api_authenticates_as_the_app(app: GitHubApp, github_fake: FakeGitHub) -> None:
    gh = await app.app_api()
    answer = await gh.getitem("/app")
    assert answer["slug"] == github_fake.app.slug
    request = github_fake.requests[-1]
    assert request.headers["Authorization"].lower().startswith("bearer ")


async def test_convert_manifest_once(
    session: aiohttp.ClientSession, github_fake: FakeGitHub
) -> None:
    manifest = '{"name": "Physics Hub", "url": "http://127.0.0.1:3000", "redirect_url": "http://127.0.0.1:3000/setup/callback"}'
    async with session.post(
        f"{github_fake.url}/settings/apps/new?state=s1",
        data={"manifest": manifest},
        allow_redirects=False,
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    query = dict(part.split("=") for part in location.split("?", 1)[1].split("&"))
    assert query["state"] == "s1"
    answer = await convert_manifest(session, github_fake.url, query["code"])
    assert answer["id"] == github_fake.app.id
    assert answer["pem"] == github_fake.app.private_key_pem
    assert answer["webhook_secret"] == github_fake.app.webhook_secret
    with pytest.raises(gidgethub.BadRequest) as raised:
        await convert_manifest(session, github_fake.url, query["code"])
    assert raised.value.status_code == 404


async def test_convert_manifest_refuses_an_odd_code(session: aiohttp.ClientSession) -> None:
    with pytest.raises(GitHubError, match="manifest code"):
        await convert_manifest(session, "http://127.0.0.1:9", "../../app")


async def test_the_apps_registration_says_clearly_when_there_is_no_app_yet(app_private_key):
    async with aiohttp.ClientSession() as session:
        registration = AppRegistration(session)
        with pytest.raises(AppNotRegistered, match="not registered yet"):
            registration.require()
        app = registration.register(1, app_private_key, "https://api.github.example")
        assert registration.require() is app and registration.app is app
