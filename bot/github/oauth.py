"""Signing in with GitHub: the App's OAuth web flow and the few user-API calls the console makes.

The App's own user authorization (``GITHUB_CLIENT_ID``/``GITHUB_CLIENT_SECRET`` from the
manifest conversion): the browser is sent to ``{GITHUB_URL}/login/oauth/authorize``, the
code it brings back is exchanged at ``{GITHUB_URL}/login/oauth/access_token``, and expiring
user tokens are renewed with their refresh token. A token GitHub no longer accepts raises
``TokenRejected``: the console then signs the person out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.bounded import BodyTooLarge, read_capped
from deploy.redact import add_secrets

API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
# Refresh a little before GitHub's expiry, so a page never starts with a dying token.
EXPIRY_MARGIN = 60.0
PAGE_SIZE = 100
MAX_PAGES = 20
RESPONSE_LIMIT = 8 * 1024 * 1024  # a page of 100 repositories is a few hundred KiB


class OAuthError(Exception):
    """GitHub refused the sign-in (a bad code, bad client credentials); the message says why."""


class TokenRejected(OAuthError):
    """GitHub no longer accepts the user's token or refresh token (revoked or expired)."""


@dataclass(frozen=True)
class UserToken:
    access_token: str
    refresh_token: str | None
    expires_at: float | None  # epoch seconds; None for tokens that never expire

    def expired(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now if now is not None else time.time()) >= self.expires_at - EXPIRY_MARGIN

    def as_session(self) -> dict[str, Any]:
        return {"token": self.access_token, "refresh": self.refresh_token, "exp": self.expires_at}

    @classmethod
    def from_session(cls, data: Mapping[str, Any]) -> UserToken | None:
        token = data.get("token")
        if not isinstance(token, str) or not token:
            return None
        refresh = data.get("refresh")
        expires = data.get("exp")
        return cls(
            token,
            refresh if isinstance(refresh, str) else None,
            float(expires) if isinstance(expires, int | float) else None,
        )


class GitHubOAuth:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: str,
        github_url: str,
        api_url: str,
    ) -> None:
        self.session = session
        self.client_id = client_id
        self.client_secret = client_secret
        self.github_url = github_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.requests = 0  # every request to GitHub, for the benchmark

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "allow_signup": "false",
            }
        )
        return f"{self.github_url}/login/oauth/authorize?{query}"

    async def _token_request(self, form: dict[str, str]) -> UserToken:
        self.requests += 1
        async with self.session.post(
            f"{self.github_url}/login/oauth/access_token",
            data={"client_id": self.client_id, "client_secret": self.client_secret, **form},
            headers={"Accept": "application/json"},
        ) as response:
            if response.status >= 500:
                raise OAuthError(f"GitHub answered HTTP {response.status}; try again")
            try:
                data = json.loads(await read_capped(response, RESPONSE_LIMIT, "GitHub's answer"))
            except BodyTooLarge as exc:
                raise OAuthError(str(exc)) from None
            except ValueError:
                raise OAuthError(f"GitHub answered HTTP {response.status} without JSON") from None
        if not isinstance(data, dict):
            raise OAuthError("GitHub's answer was not a JSON object")
        if "error" in data or not isinstance(data.get("access_token"), str):
            reason = str(data.get("error_description") or data.get("error") or "no token")
            if data.get("error") == "bad_refresh_token":
                raise TokenRejected(reason)
            raise OAuthError(reason)
        add_secrets(
            [data["access_token"], *([data["refresh_token"]] if data.get("refresh_token") else [])]
        )
        expires_in = data.get("expires_in")
        return UserToken(
            data["access_token"],
            data.get("refresh_token") or None,
            time.time() + float(expires_in) if isinstance(expires_in, int | float) else None,
        )

    async def exchange(self, code: str, redirect_uri: str) -> UserToken:
        """The user token for the code GitHub sent back to ``/login/callback``."""
        return await self._token_request({"code": code, "redirect_uri": redirect_uri})

    async def refresh(self, token: UserToken) -> UserToken:
        if not token.refresh_token:
            raise TokenRejected("the token expired and has no refresh token")
        return await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": token.refresh_token}
        )

    async def _get(self, token: UserToken, path: str, **query: str) -> Any:
        self.requests += 1
        async with self.session.get(
            f"{self.api_url}{path}",
            params=query or None,
            headers={**API_HEADERS, "Authorization": f"Bearer {token.access_token}"},
        ) as response:
            if response.status == 401:
                raise TokenRejected("GitHub no longer accepts the token")
            if response.status != 200:
                raise OAuthError(f"GitHub answered {path} with HTTP {response.status}")
            try:
                return json.loads(await read_capped(response, RESPONSE_LIMIT, f"GitHub's {path}"))
            except BodyTooLarge as exc:
                raise OAuthError(str(exc)) from None
            except ValueError:
                raise OAuthError(f"GitHub answered {path} without JSON") from None

    async def user(self, token: UserToken) -> dict[str, Any]:
        answer = await self._get(token, "/user")
        if not isinstance(answer, dict):
            raise OAuthError("GitHub answered /user without an object")
        return answer

    async def repositories(self, token: UserToken, app_id: int | None) -> list[dict[str, Any]]:
        """Every repository the person can reach through an installation of this App."""
        installations = await self._get(token, "/user/installations", per_page=str(PAGE_SIZE))
        found: list[dict[str, Any]] = []
        for installation in installations.get("installations", []):
            if app_id is not None and installation.get("app_id") not in (None, app_id):
                continue
            for page in range(1, MAX_PAGES + 1):
                data = await self._get(
                    token,
                    f"/user/installations/{int(installation['id'])}/repositories",
                    per_page=str(PAGE_SIZE),
                    page=str(page),
                )
                batch = data.get("repositories", [])
                found.extend({**repo, "installation_id": installation["id"]} for repo in batch)
                if len(batch) < PAGE_SIZE:
                    break
        return found
