"""python-digitalocean with one request path: where every call is sent and its errors mapped.

python-digitalocean's objects (``Manager``, ``Droplet``, ``Action``, ``SSHKey``,
``Domain`` …) all read and write through ``BaseAPI.get_data(url, type=, params=)``.
``OneRequestPath`` overrides that one public method, so every call of every class made by
``api.new(Class, …)`` goes through ``OneRequestPath.get_data``, which:

- sends the request with our timeout (the library only reads one from the environment);
- follows DigitalOcean's pagination (``links.pages.next``);
- maps what comes back: 429 and 5xx, a timeout or no answer are ``Transient`` (carrying
  the status and headers, so a caller can wait as DigitalOcean asks); 404 is ``Gone``;
  401 is ``WrongToken`` with DigitalOcean's own message; any other refusal is
  ``Refused`` with DigitalOcean's message. No message ever holds the token.

To reach a new part of the API (volumes, reserved IPs …) use its python-digitalocean
class through ``api.new``, or ``api.request`` for a call the library has no method for.
Nothing here retries: that is the caller's policy (``deploy.retry``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urljoin, urlsplit

import digitalocean
import requests
from digitalocean.baseapi import DELETE, GET, PATCH, POST, PUT, BaseAPI

from deploy.redact import add_secrets, redact

__all__ = [
    "DELETE",
    "GET",
    "PATCH",
    "POST",
    "PUT",
    "DigitalOceanAPI",
    "DigitalOceanError",
    "Gone",
    "Refused",
    "ResponseTooLarge",
    "Transient",
    "WrongToken",
]

DEFAULT_END_POINT = "https://api.digitalocean.com/v2/"
PAGE_SIZE = 200
MAX_PAGES = 100  # 20,000 items: far beyond any account this serves; a loop guard
# The most of one answer the service reads: a page of 200 droplets is well under 1 MiB.
RESPONSE_LIMIT = 16 * 1024 * 1024
READ_CHUNK = 64 * 1024

B = TypeVar("B", bound=BaseAPI)


class DigitalOceanError(Exception):
    """DigitalOcean did not do what was asked; the message is safe to show."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.message = redact(message)
        self.status = status


class Transient(DigitalOceanError):
    """Worth another try: a 429, a 5xx, a timeout, or no answer at all (``status`` None)."""

    def __init__(
        self, message: str, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, status)
        self.headers = dict(headers or {})


class Gone(DigitalOceanError):
    """404: the thing asked about does not exist (any more)."""


class WrongToken(DigitalOceanError):
    """401: DigitalOcean does not accept the token."""


class Refused(DigitalOceanError):
    """Any other 4xx: DigitalOcean understood and said no (its message says why)."""


class ResponseTooLarge(DigitalOceanError):
    """An answer longer than the service reads; the rest was not read."""


def _read_capped(response: requests.Response, limit: int) -> bytes:
    """The body of a streamed ``response``, closed after; ``ResponseTooLarge`` past ``limit``."""
    with response:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(
                f"DigitalOcean's answer is {int(declared):,} bytes, over the {limit:,} read",
                response.status_code,
            )
        body = bytearray()
        for chunk in response.iter_content(READ_CHUNK):
            if len(body) + len(chunk) > limit:
                raise ResponseTooLarge(
                    f"DigitalOcean's answer is over the {limit:,} bytes read", response.status_code
                )
            body += chunk
        return bytes(body)


def _message(response: requests.Response, content: bytes) -> str:
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    return response.reason or f"HTTP {response.status_code}"


class OneRequestPath:
    """Mixed into python-digitalocean's classes: their every request goes through here."""

    request_timeout: float = 30.0
    # Shared by the objects of one DigitalOceanAPI, so calls reuse their connections.
    http: requests.Session | None = None
    end_point: str
    token: Any

    def get_data(self, url: str, type: str = GET, params: dict[str, Any] | None = None) -> Any:
        """python-digitalocean's request method: one answer's JSON, all pages of a list."""
        params = dict(params or {})
        if type == GET:
            params.setdefault("per_page", PAGE_SIZE)
        data = self._send(url, type, params)
        if type != GET or not isinstance(data, dict):
            return data
        pages = 1
        next_url = ((data.get("links") or {}).get("pages") or {}).get("next")
        while next_url and "page" not in params and pages < MAX_PAGES:
            split = urlsplit(next_url)
            more = self._send(split.path, GET, dict(parse_qsl(split.query)))
            for key, value in more.items():
                if isinstance(value, list) and isinstance(data.get(key), list):
                    data[key] = data[key] + value
            next_url = ((more.get("links") or {}).get("pages") or {}).get("next")
            pages += 1
        return data

    def _send(self, url: str, method: str, params: dict[str, Any]) -> Any:
        response, content = self._response(url, method, params)
        status = response.status_code
        if status == 204 or not content:
            return True
        try:
            return json.loads(content)
        except ValueError:
            raise Transient(f"DigitalOcean answered {status} without JSON", status) from None

    def _response(
        self, url: str, method: str, params: dict[str, Any]
    ) -> tuple[requests.Response, bytes]:
        """One request and its body (read up to ``RESPONSE_LIMIT``), its refusals mapped to
        this module's errors."""
        token = self.token
        address = urljoin(self.end_point, url)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            response = (self.http or requests).request(
                method,
                address,
                headers=headers,
                timeout=self.request_timeout,
                stream=True,
                params=params if method == GET else None,
                json=None if method == GET else params,
            )
            content = _read_capped(response, RESPONSE_LIMIT)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise Transient(f"no answer from DigitalOcean ({type(exc).__name__})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise Transient(
                f"DigitalOcean answered {status} {response.reason}: {_message(response, content)}",
                status,
                response.headers,
            )
        if status == 404:
            raise Gone(_message(response, content), status)
        if status == 401:
            message = _message(response, content)
            raise WrongToken(f"DigitalOcean refused the token: {message}", status)
        if status >= 400:
            raise Refused(_message(response, content), status)
        return response, content


class DigitalOceanAPI:
    """A token and an end point, and python-digitalocean objects that use them."""

    def __init__(
        self, token: str, *, end_point: str | None = None, request_timeout: float = 30.0
    ) -> None:
        add_secrets([token])
        self.token = token
        # python-digitalocean's own variable, read the way the library reads it.
        self.end_point = end_point or os.getenv("DIGITALOCEAN_END_POINT") or DEFAULT_END_POINT
        if not self.end_point.endswith("/"):
            self.end_point += "/"
        self.request_timeout = request_timeout
        self.http = requests.Session()
        self._classes: dict[type, type] = {}

    def new(self, cls: type[B], **attributes: Any) -> B:
        """An object of python-digitalocean's ``cls`` sending its requests through here."""
        wrapped = self._classes.get(cls)
        if wrapped is None:
            wrapped = type(cls.__name__, (OneRequestPath, cls), {})
            self._classes[cls] = wrapped
        obj = wrapped(token=self.token, end_point=self.end_point, **attributes)
        obj.request_timeout = self.request_timeout
        obj.http = self.http
        return cast(B, obj)  # python-digitalocean is untyped: obj is the class asked for

    def request(self, url: str, method: str = GET, params: dict[str, Any] | None = None) -> Any:
        """A call python-digitalocean has no method for, through the same request path."""
        return self.new(digitalocean.Manager).get_data(url, type=method, params=params)

    def text(self, url: str) -> str:
        """A GET whose answer is not JSON (a cluster's kubeconfig is YAML), as text."""
        answer: tuple[requests.Response, bytes] = self.new(digitalocean.Manager)._response(
            url, GET, {}
        )
        response, content = answer
        return content.decode(response.encoding or "utf-8", "replace")
