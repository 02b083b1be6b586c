"""Acting as a person on the console in tests: sign in through the fake GitHub, read forms."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.fakes.github import FakeGitHub

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


async def follow_authorize(location: str) -> str:
    """What GitHub's authorize page answers: the redirect back to the service."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(location, allow_redirects=False) as answer,
    ):
        assert answer.status == 302, await answer.text()
        return answer.headers["Location"]


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def sign_in(client: Any, github: FakeGitHub, login: str = "alice") -> None:
    """The whole round trip: /login, GitHub's authorize page, /login/callback."""
    github.browser_user = login
    started = await client.get("/login", allow_redirects=False)
    assert started.status == 302
    back = await follow_authorize(started.headers["Location"])
    finished = await client.get(local(back), allow_redirects=False)
    assert finished.status == 302, await finished.text()
    assert finished.headers["Location"] == "/courses"


def csrf_of(page: str) -> str:
    match = CSRF_INPUT.search(page)
    assert match, "the page has no CSRF field"
    return match.group(1)
