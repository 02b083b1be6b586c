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
import hashlib
import json
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
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> contents (Git LFS)

    def add_lfs_object(self, data: bytes) -> bytes:
        """Keep ``data`` in the LFS store; returns the pointer file a commit holds for it."""
        oid = hashlib.sha256(data).hexdigest()
        self.lfs_objects[oid] = data
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n"
        ).encode()

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
        if rest.startswith("info/lfs/"):
            return await self._lfs(request, record, full_name, rest)
        status, headers, payload = await run_backend(
            request, self.root, f"/{full_name}.git/{rest}", "x-access-token"
        )
        record.status, record.sent_bytes = status, len(payload)
        headers.pop("Content-Length", None)
        return web.Response(status=status, body=payload, headers=headers)

    async def _lfs(
        self, request: web.Request, record: GitRequest, full_name: str, rest: str
    ) -> web.Response:
        """Git LFS's batch API (download only) and its objects, as GitHub serves them."""
        media = "application/vnd.git-lfs+json"
        if rest == "info/lfs/objects/batch" and request.method == "POST":
            asked = json.loads(await request.read())
            base = f"{request.scheme}://{request.host}/{full_name}.git/info/lfs/objects"
            answers = []
            for item in asked.get("objects", []):
                oid = item["oid"]
                if oid not in self.lfs_objects:
                    answers.append({**item, "error": {"code": 404, "message": "Not found"}})
                    continue
                answers.append(
                    {
                        "oid": oid,
                        "size": len(self.lfs_objects[oid]),
                        "authenticated": True,
                        "actions": {
                            "download": {
                                "href": f"{base}/{oid}",
                                "header": {"Authorization": request.headers["Authorization"]},
                            }
                        },
                    }
                )
            body = json.dumps({"transfer": "basic", "objects": answers}).encode()
            record.status, record.sent_bytes = 200, len(body)
            return web.Response(body=body, headers={"Content-Type": media})
        oid = rest.removeprefix("info/lfs/objects/")
        if request.method == "GET" and oid in self.lfs_objects:
            record.status, record.sent_bytes = 200, len(self.lfs_objects[oid])
            return web.Response(body=self.lfs_objects[oid])
        record.status = 404
        return web.Response(status=404, text="Not found")
