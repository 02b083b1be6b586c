"""Git's smart HTTP protocol for the fake GitHub: ``git http-backend`` run as a CGI.

A test registers a real bare repository for a course (``GitHubFake.serve_git``); a clone
or fetch of ``{GITHUB_URL}/{owner}/{repo}.git`` then reaches the real ``git
http-backend``, after the fake checked the Basic credentials as GitHub does for an
installation token (user ``x-access-token``, the token as password). Every request is
recorded with the bytes sent back, and an ``on_request`` hook runs while the client
waits (a test takes its ``ps`` snapshot there).
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web


@dataclass
class GitRequest:
    full_name: str
    path: str
    status: int
    sent_bytes: int = 0
    token: str | None = None


def prepare_served_repository(bare: Path) -> None:
    """Let clients fetch any commit by id, with a filter (partial clones), as GitHub does."""
    for key, value in (
        ("uploadpack.allowFilter", "true"),
        ("uploadpack.allowAnySHA1InWant", "true"),
        ("http.uploadpack", "true"),
        ("http.receivepack", "false"),
    ):
        subprocess.run(["git", "-C", str(bare), "config", key, value], check=True)


def basic_password(request: web.Request) -> str | None:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _, _, password = base64.b64decode(credential).decode().partition(":")
    except ValueError:
        return None
    return password or None


async def run_backend(
    request: web.Request, root: Path, path_info: str, user: str
) -> tuple[int, dict[str, str], bytes]:
    """One CGI call of ``git http-backend``: (status, headers, body)."""
    body = await request.read()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query_string,
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": user,
        "REMOTE_ADDR": "127.0.0.1",
    }
    if "Git-Protocol" in request.headers:
        env["GIT_PROTOCOL"] = request.headers["Git-Protocol"]
    # A gzip request body (git sends one for many wants) arrives decompressed: aiohttp
    # undoes the Content-Encoding, so the backend is not told of it.
    process = await asyncio.create_subprocess_exec(
        "git",
        "http-backend",
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate(body)
    # The CGI's headers end at the first empty line, whichever line ending it uses.
    ends = [(out.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if sep in out]
    at, separator = min(ends) if ends else (len(out), b"")
    head, payload = out[:at], out[at + len(separator) :]
    headers: dict[str, str] = {}
    status = 200
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return status, headers, payload


class GitServer:
    """The bare repositories served, and the requests they got."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[GitRequest] = []
        self.on_request: Callable[[GitRequest], None] | None = None

    def path_of(self, full_name: str) -> Path:
        return self.root / f"{full_name}.git"

    def has(self, full_name: str) -> bool:
        return self.path_of(full_name).is_dir()

    async def serve(
        self, request: web.Request, full_name: str, rest: str, allowed: Callable[[str], bool]
    ) -> web.Response:
        record = GitRequest(full_name, rest, 401)
        self.requests.append(record)
        password = basic_password(request)
        record.token = password
        if password is None:
            challenge = {"WWW-Authenticate": 'Basic realm="GitHub"'}
            return web.Response(status=401, text="Unauthorized", headers=challenge)
        if not allowed(password) or not self.has(full_name):
            record.status = 404
            return web.Response(status=404, text="Repository not found.")
        if self.on_request is not None:
            self.on_request(record)
        status, headers, payload = await run_backend(
            request, self.root, f"/{full_name}.git/{rest}", "x-access-token"
        )
        record.status, record.sent_bytes = status, len(payload)
        headers.pop("Content-Length", None)
        return web.Response(status=status, body=payload, headers=headers)
