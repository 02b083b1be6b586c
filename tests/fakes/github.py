"""A fake GitHub, API and web side, served on loopback for the service's tests.

It keeps just enough state to answer the operations the bot uses the way GitHub does
(App JWTs, installation tokens, ETags and 304s, git trees and blobs, 409 on a stale
file sha, the manifest flow) and checks every API request against GitHub's published
OpenAPI description (``tests/data/github-openapi-subset.json``): an unknown operation is
answered 404 and an invalid request 422, and both are recorded in ``validation_errors``
so a test can never pass by accident on a request GitHub would refuse.

A repository's files may be ``VirtualFile``s (a size and a seed, their bytes generated
only if someone reads them), so a test can hold a gigabyte of course data without
allocating it, and ``Symlink``s. Every request records the bytes the fake sent back
(``RecordedRequest.sent_bytes``), so a test can bound what the service read.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import hmac
import html
import itertools
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.git_http import GitServer, prepare_served_repository
from tests.fakes.openapi_check import OpenAPIChecker, OpenAPICheckError

SUBSET = Path(__file__).resolve().parent.parent / "data" / "github-openapi-subset.json"
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
DOCS = "https://docs.github.com/rest"
# Operations that authenticate as the App (a JWT), or not at all; the rest take a token.
APP_OPERATIONS = {"apps/get-authenticated", "apps/create-installation-access-token"}
UNAUTHENTICATED_OPERATIONS = {"apps/create-from-manifest"}
# Operations only a user's token (from the OAuth web flow) may call.
USER_OPERATIONS = {
    "users/get-authenticated",
    "apps/list-installations-for-authenticated-user",
    "apps/list-installation-repos-for-authenticated-user",
}
# GitHub's role names, and the legacy permission the permission endpoint reports for each.
ROLE_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
}


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def blob_sha(data: bytes) -> str:
    """Git's object id for a file's contents, which GitHub reports as the file's ``sha``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class VirtualFile:
    """A file of ``size`` bytes generated from ``seed`` only when read.

    Its sha is derived from seed and size, not from the bytes (hashing a gigabyte would
    defeat the point); within the fake it is as content-addressed as a real one.
    """

    size: int
    seed: str = ""

    @property
    def sha(self) -> str:
        key = f"virtual {self.seed} {self.size}".encode()
        return hashlib.sha1(key, usedforsecurity=False).hexdigest()

    def read(self) -> bytes:
        pattern = hashlib.sha256(self.seed.encode()).hexdigest().encode()
        whole, rest = divmod(self.size, len(pattern))
        return pattern * whole + pattern[:rest]


@dataclass(frozen=True)
class Symlink:
    """A symbolic link; git stores its target as the blob's contents."""

    target: str


FileData = bytes | VirtualFile | Symlink
GIT_MODES = {"file": "100644", "link": "120000", "tree": "040000"}


def file_bytes(data: FileData) -> bytes:
    if isinstance(data, VirtualFile):
        return data.read()
    if isinstance(data, Symlink):
        return data.target.encode()
    return data


def file_size(data: FileData) -> int:
    return data.size if isinstance(data, VirtualFile) else len(file_bytes(data))


def file_sha(data: FileData) -> str:
    return data.sha if isinstance(data, VirtualFile) else blob_sha(file_bytes(data))


@dataclass(frozen=True)
class TreeItem:
    """One entry of a git tree object: a file, a link, or a folder (another tree)."""

    name: str
    mode: str
    type: str  # "blob" or "tree"
    sha: str
    size: int | None = None


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"message": message, "documentation_url": DOCS, "status": str(status)},
        status=status,
        headers=headers,
    )


@dataclass
class App:
    id: int
    slug: str
    name: str
    private_key_pem: str
    public_key_pem: str
    webhook_secret: str
    client_id: str
    client_secret: str
    owner: str = "octo-org"
    # The App's callback URLs; None (a test's App set up by hand): any http(s) URL.
    callback_urls: list[str] | None = None


@dataclass
class Installation:
    id: int
    account: str
    repositories: set[str] = field(default_factory=set)  # "owner/repo"


@dataclass
class Token:
    value: str
    installation_id: int
    expires_at: datetime
    # What the request for the token narrowed it to (None: all the installation has).
    repositories: list[str] | None = None
    permissions: dict[str, str] | None = None


@dataclass
class UserToken:
    """A user access token from the OAuth web flow, with its refresh token."""

    value: str
    login: str
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    revoked: bool = False


@dataclass
class Repository:
    owner: str
    name: str
    id: int
    default_branch: str = "main"
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, FileData]] = field(default_factory=dict)  # sha -> path -> data
    roots: dict[str, str] = field(default_factory=dict)  # commit sha -> root tree sha
    objects: set[str] = field(default_factory=set)  # shas of its commits' trees and blobs
    collaborators: dict[str, str] = field(default_factory=dict)  # username -> role

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def resolve(self, ref: str | None) -> str | None:
        """The commit sha a branch name, full sha or unambiguous short sha names."""
        ref = ref or self.default_branch
        if ref in self.branches:
            return self.branches[ref]
        if ref in self.commits:
            return ref
        matches = [sha for sha in self.commits if len(ref) >= 7 and sha.startswith(ref)]
        return matches[0] if len(matches) == 1 else None


@dataclass
class CheckRun:
    id: int
    repository: str
    current: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # every create/update body


@dataclass
class Issue:
    number: int
    repository: str
    title: str
    body: str | None = None
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    user: str = "littlest-classroom[bot]"
    comments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    operation_id: str | None
    headers: dict[str, str]
    json: Any
    status: int = 0
    sent_bytes: int = 0  # the response body's length, as the fake sent it


@dataclass
class QueuedResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _generate_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@functools.cache
def _checker(description: Path) -> OpenAPIChecker:
    # Once per test process, not per fake; the description's own validity (a quarter of
    # a second per process) is checked once, by tests/test_openapi_subsets.py.
    return OpenAPIChecker(description, check_description=False)


class FakeGitHub:
    """State and handlers of the fake; ``await start()`` serves it on 127.0.0.1."""

    def __init__(self, description: Path = SUBSET) -> None:
        self.checker = _checker(description)
        private, public = _generate_key()
        self.app = App(
            id=4242,
            slug="littlest-classroom",
            name="Littlest Classroom",
            private_key_pem=private,
            public_key_pem=public,
            webhook_secret=secrets.token_hex(20),
            client_id="Iv1." + secrets.token_hex(8),
            client_secret=secrets.token_hex(20),
        )
        self.url = ""
        self.installations: dict[int, Installation] = {}
        self.repositories: dict[str, Repository] = {}
        self.tokens: dict[str, Token] = {}
        # Real bare repositories served over git's smart HTTP (``serve_git``).
        self.git: GitServer | None = None
        self.token_lifetime = timedelta(hours=1)
        self.check_runs: dict[int, CheckRun] = {}
        self.deployments: dict[int, dict[str, Any]] = {}
        self.deployment_statuses: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        self.issues: dict[tuple[str, int], Issue] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.reactions: list[dict[str, Any]] = []
        self.manifests: list[dict[str, Any]] = []
        self.conversions: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.validation_errors: list[str] = []
        self.not_modified = 0
        self.rate_limit_remaining = 5000
        self._queued: dict[str, collections.deque[QueuedResponse]] = collections.defaultdict(
            collections.deque
        )
        self._ids = itertools.count(1000)
        self.trees: dict[str, list[TreeItem]] = {}  # tree sha -> entries, as git stores them
        self.blobs: dict[str, FileData] = {}  # blob sha -> contents
        # GitHub cuts a recursive tree listing above 100,000 entries (or 7 MB) and says
        # ``truncated``; a test lowers this to see the service cope.
        self.tree_entry_limit = 100_000
        self._runner: web.AppRunner | None = None
        # The OAuth web flow: who is signed in to "github.com" in the browser, the codes
        # handed out and the user tokens they became.
        self.browser_user: str | None = "alice"
        self.users: dict[str, int] = {}
        self.oauth_codes: dict[str, tuple[str, str]] = {}  # code -> (login, redirect_uri)
        self.user_tokens: dict[str, UserToken] = {}
        self.user_token_lifetime = timedelta(hours=8)
        self.oauth_requests: list[dict[str, str]] = []

    # ----- set-up helpers for tests -------------------------------------------------------

    def add_installation(self, installation_id: int, account: str) -> Installation:
        installation = Installation(installation_id, account)
        self.installations[installation_id] = installation
        return installation

    def add_repository(
        self,
        full_name: str,
        files: Mapping[str, FileData] | None = None,
        *,
        installation_id: int | None = None,
        default_branch: str = "main",
        collaborators: Mapping[str, str] | None = None,
        repo_id: int | None = None,
    ) -> Repository:
        """A repository whose default branch holds ``files`` in one commit."""
        owner, name = full_name.split("/")
        made_id = next(self._ids)
        repository = Repository(owner, name, repo_id or made_id, default_branch)
        repository.collaborators.update(collaborators or {})
        self.repositories[full_name] = repository
        if installation_id is not None:
            self.installations[installation_id].repositories.add(full_name)
        self.put_commit(full_name, dict(files or {}), branch=default_branch)
        return repository

    def put_commit(
        self,
        full_name: str,
        files: Mapping[str, FileData],
        *,
        sha: str | None = None,
        branch: str | None = None,
    ) -> str:
        """Store a commit's files (path -> data); move ``branch`` to it if given."""
        repository = self.repositories[full_name]
        if sha is None:
            digest = hashlib.sha1(usedforsecurity=False)
            digest.update(str(len(repository.commits)).encode())
            for path in sorted(files):
                digest.update(path.encode() + b"\0" + file_sha(files[path]).encode())
            sha = digest.hexdigest()
        repository.commits[sha] = dict(files)
        repository.roots[sha] = self._store_tree(files, repository.objects)
        if branch is not None:
            repository.branches[branch] = sha
        return sha

    def files(self, full_name: str, ref: str | None = None) -> dict[str, FileData]:
        repository = self.repositories[full_name]
        return repository.commits[repository.resolve(ref) or ""]

    def _store_tree(self, files: Mapping[str, FileData], objects: set[str]) -> str:
        """Store the blobs and tree objects of ``files``, adding their shas to ``objects``;
        the root tree's sha."""
        folders: dict[str, dict[str, FileData]] = {}
        here: dict[str, FileData] = {}
        for path, data in files.items():
            head, _, rest = path.partition("/")
            if rest:
                folders.setdefault(head, {})[rest] = data
            else:
                here[head] = data
        items = [
            TreeItem(name, GIT_MODES["tree"], "tree", self._store_tree(inner, objects))
            for name, inner in folders.items()
        ]
        for name, data in here.items():
            sha = file_sha(data)
            self.blobs[sha] = data
            objects.add(sha)
            mode = GIT_MODES["link" if isinstance(data, Symlink) else "file"]
            items.append(TreeItem(name, mode, "blob", sha, file_size(data)))
        # git orders a tree's entries by name, a folder's name as if it ended in "/".
        items.sort(key=lambda item: item.name + ("/" if item.type == "tree" else ""))
        body = b"".join(
            f"{item.mode.lstrip('0')} {item.name}".encode() + b"\0" + bytes.fromhex(item.sha)
            for item in items
        )
        sha = hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).hexdigest()
        self.trees[sha] = items
        objects.add(sha)
        return sha

    def serve_git(self, full_name: str, bare: Path) -> Path:
        """Serve the bare repository ``bare`` as ``{url}/{full_name}.git`` (fetch only).

        The repository is moved under the fake's git root; its path there is returned.
        """
        if self.git is None:
            self.git = GitServer(bare.parent / "served")
        where = self.git.path_of(full_name)
        where.parent.mkdir(parents=True, exist_ok=True)
        bare.rename(where)
        prepare_served_repository(where)
        return where

    def _git_token_allows(self, full_name: str, value: str) -> bool:
        """Whether an installation token may read ``full_name``'s contents, as GitHub says."""
        token = self.tokens.get(value)
        if token is None or token.expires_at <= _now():
            return False
        installation = self.installations.get(token.installation_id)
        if installation is None or full_name not in installation.repositories:
            return False
        name = full_name.split("/", 1)[1]
        if token.repositories is not None and name not in token.repositories:
            return False
        return token.permissions is None or token.permissions.get("contents") in ("read", "write")

    async def _git_http(self, request: web.Request) -> web.Response:
        owner, repo = request.match_info["owner"], request.match_info["repo"]
        full_name = f"{owner}/{repo}"
        if self.git is None or not self.git.has(full_name):
            return web.Response(status=404, text="Repository not found.")
        return await self.git.serve(
            request,
            full_name,
            request.match_info["rest"],
            lambda value: self._git_token_allows(full_name, value),
        )

    def invalidate_token(self, token: str) -> None:
        """The next request with ``token`` gets 401, as after a revocation."""
        if token in self.tokens:
            self.tokens[token].expires_at = datetime.fromtimestamp(0, UTC)

    def queue(
        self,
        operation_id: str,
        status: int,
        *,
        times: int = 1,
        message: str = "Injected failure",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next ``times`` requests for ``operation_id`` get this answer instead."""
        for _ in range(times):
            self._queued[operation_id].append(
                QueuedResponse(
                    status, {"message": message, "documentation_url": DOCS}, dict(headers or {})
                )
            )

    def queue_secondary_rate_limit(
        self, operation_id: str, *, times: int = 1, retry_after: int = 1, status: int = 403
    ) -> None:
        self.queue(
            operation_id,
            status,
            times=times,
            message=SECONDARY_RATE_LIMIT_MESSAGE,
            headers={"retry-after": str(retry_after)},
        )

    def revoke_user_tokens(self, login: str) -> None:
        """As when a person revokes the App's authorization: tokens and refresh tokens die."""
        for token in self.user_tokens.values():
            if token.login == login:
                token.revoked = True

    def expire_user_tokens(self, login: str) -> None:
        """The person's access tokens expire now; their refresh tokens still work."""
        for token in self.user_tokens.values():
            if token.login == login:
                token.expires_at = datetime.fromtimestamp(0, UTC)

    def oauth_count(self, grant: str) -> int:
        """How many token requests of a grant (``authorization_code``, ``refresh_token``)."""
        return sum(1 for r in self.oauth_requests if r.get("grant_type") == grant)

    def count(self, operation_id: str) -> int:
        """How many requests for ``operation_id`` arrived (whatever their answer)."""
        return sum(1 for r in self.requests if r.operation_id == operation_id)

    def installation_tokens(self) -> list[str]:
        return list(self.tokens)

    def check_run_history(self, check_run_id: int) -> list[dict[str, Any]]:
        return self.check_runs[check_run_id].history

    # ----- serving -----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        application = web.Application(client_max_size=64 * 1024**2)
        application.router.add_route("*", "/settings/apps/new", self._manifest_form)
        application.router.add_route(
            "*", "/organizations/{org}/settings/apps/new", self._manifest_form
        )
        application.router.add_get("/apps/{slug}/installations/new", self._install_page)
        application.router.add_get("/login/oauth/authorize", self._oauth_authorize)
        application.router.add_post("/login/oauth/access_token", self._oauth_access_token)
        # Browsers ask every site for its icon; it is the web side, not an API request.
        application.router.add_get("/favicon.ico", self._no_icon)
        application.router.add_route("*", "/{owner}/{repo}.git/{rest:.*}", self._git_http)
        application.router.add_route("*", "/{tail:.*}", self._api)
        return application

    async def start(self) -> str:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            operation_id=None,
            headers=dict(request.headers),
            json=payload,
        )
        self.requests.append(record)
        response = await self._answer(request, record, body)
        record.status = response.status
        if isinstance(response, web.Response):
            record.sent_bytes = len(response.body or b"")
        return response

    async def _answer(
        self, request: web.Request, record: RecordedRequest, body: bytes
    ) -> web.StreamResponse:
        try:
            record.operation_id = self.checker.check(
                request.method,
                request.raw_path.split("?")[0],
                query=list(request.query.items()),
                headers=dict(request.headers),
                body=body or None,
                content_type=request.content_type if body else "application/json",
            )
        except OpenAPICheckError as exc:
            record.operation_id = exc.operation_id
            self.validation_errors.append(str(exc))
            return _error(exc.status, str(exc))
        if body and not isinstance(record.json, dict):
            self.validation_errors.append(f"{request.method} {request.path}: body is not JSON")
            return _error(400, "Problems parsing JSON")
        operation_id = record.operation_id
        params = self.checker.match(request.method, request.raw_path.split("?")[0]).path_parameters
        denied = self._authenticate(request, operation_id, params)
        if denied is not None:
            return denied
        queued = self._queued.get(operation_id)
        if queued:
            answer = queued.popleft()
            return web.json_response(
                answer.body, status=answer.status, headers=self._rate_headers(answer.headers)
            )
        handler = getattr(self, "_op_" + operation_id.replace("/", "_").replace("-", "_"))
        response: web.StreamResponse = await handler(request, params, record.json or {})
        if (
            request.method == "GET"
            and isinstance(response, web.Response)
            and response.status == 200
        ):
            response = self._conditional(request, response)
        response.headers.update(self._rate_headers({}))
        return response

    def _rate_headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        self.rate_limit_remaining = max(0, self.rate_limit_remaining - 1)
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(self.rate_limit_remaining),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-used": str(5000 - self.rate_limit_remaining),
        }
        headers.update(extra)
        return headers

    def _conditional(self, request: web.Request, response: web.Response) -> web.Response:
        # GitHub's ETags depend on the credentials too; the body alone is enough here.
        etag = '"' + hashlib.sha256(response.body or b"").hexdigest()[:32] + '"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304, headers={"ETag": etag})
        response.headers["ETag"] = etag
        response.headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
        return response

    def _authenticate(
        self, request: web.Request, operation_id: str, params: Mapping[str, str]
    ) -> web.Response | None:
        if operation_id in UNAUTHENTICATED_OPERATIONS:
            return None
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        scheme = scheme.lower()
        if operation_id in APP_OPERATIONS:
            if scheme != "bearer":
                return _error(401, "A JSON web token could not be decoded")
            try:
                claims = jwt.decode(
                    credential,
                    self.app.public_key_pem,
                    algorithms=["RS256"],
                    options={"require": ["iat", "exp", "iss"]},
                )
            except jwt.PyJWTError as exc:
                return _error(401, f"A JSON web token could not be decoded ({exc})")
            if str(claims["iss"]) != str(self.app.id):
                return _error(401, "'Issuer' claim ('iss') must be an Integer")
            if claims["exp"] - claims["iat"] > 600:
                return _error(401, "'Expiration time' claim ('exp') is too far in the future")
            return None
        if scheme not in ("token", "bearer"):
            return _error(401, "Requires authentication")
        if operation_id in USER_OPERATIONS:
            user_token = self.user_tokens.get(credential)
            if user_token is None or user_token.revoked or user_token.expires_at <= _now():
                return _error(401, "Bad credentials")
            return None
        if credential in self.user_tokens:
            return _error(403, "Resource not accessible by integration")
        token = self.tokens.get(credential)
        if token is None or token.expires_at <= _now():
            return _error(401, "Bad credentials")
        full_name = f"{params.get('owner')}/{params.get('repo')}"
        if "owner" in params and full_name not in self.repositories:
            return _error(404, "Not Found")
        installation = self.installations[token.installation_id]
        if "owner" in params and full_name not in installation.repositories:
            return _error(404, "Not Found")
        return None

    # ----- the App ----------------------------------------------------------------------

    def _app_json(self) -> dict[str, Any]:
        return {
            "id": self.app.id,
            "slug": self.app.slug,
            "name": self.app.name,
            "node_id": f"A_{self.app.id}",
            "client_id": self.app.client_id,
            "owner": {"login": self.app.owner, "id": 1, "type": "Organization"},
            "description": "",
            "external_url": "",
            "html_url": f"{self.url}/apps/{self.app.slug}",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "permissions": {"checks": "write", "contents": "write"},
            "events": ["push"],
        }

    async def _op_apps_get_authenticated(self, request, params, body) -> web.Response:
        return web.json_response(self._app_json())

    async def _op_apps_create_installation_access_token(
        self, request, params, body
    ) -> web.Response:
        installation = self.installations.get(int(params["installation_id"]))
        if installation is None:
            return _error(404, "Not Found")
        token = Token("ghs_" + secrets.token_hex(18), installation.id, _now() + self.token_lifetime)
        if "repositories" in body:
            unknown = [
                name
                for name in body["repositories"]
                if f"{installation.account}/{name}" not in installation.repositories
            ]
            if unknown:
                return _error(422, f"Some repositories do not exist: {unknown}")
            token.repositories = list(body["repositories"])
        if "permissions" in body:
            token.permissions = dict(body["permissions"])
        self.tokens[token.value] = token
        return web.json_response(
            {
                "token": token.value,
                "expires_at": _iso(token.expires_at),
                "permissions": token.permissions or {"checks": "write", "contents": "write"},
                "repository_selection": "selected",
            },
            status=201,
        )

    async def _manifest_form(self, request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else request.query
        raw = form.get("manifest")
        if not isinstance(raw, str):
            return web.Response(status=400, text="The manifest form field is missing.")
        try:
            manifest = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="The manifest is not JSON.")
        redirect = manifest.get("redirect_url") if isinstance(manifest, dict) else None
        if not isinstance(redirect, str) or urlsplit(redirect).scheme not in ("http", "https"):
            return web.Response(status=400, text="The manifest has no redirect_url.")
        organization = request.match_info.get("org")
        manifest_record = {"manifest": manifest, "organization": organization}
        self.manifests.append(manifest_record)
        code = secrets.token_hex(10)
        self.conversions[code] = manifest_record
        query = {"code": code}
        if "state" in request.query:
            query["state"] = request.query["state"]
        separator = "&" if "?" in redirect else "?"
        return web.Response(
            status=302, headers={"Location": redirect + separator + urlencode(query)}
        )

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="Not Found")

    async def _install_page(self, request: web.Request) -> web.Response:
        """The web page GitHub sends a person to after registering an App: install it."""
        if request.match_info["slug"] != self.app.slug:
            return web.Response(status=404, text="Not Found")
        name = html.escape(self.app.name)
        return web.Response(
            text=f"<!doctype html><title>Install {name}</title>"
            f"<h1>Install {name}</h1><p>The GitHub App {name} is registered.</p>",
            content_type="text/html",
        )

    async def _op_apps_create_from_manifest(self, request, params, body) -> web.Response:
        record = self.conversions.pop(params["code"], None)
        if record is None:
            return _error(404, "Not Found")
        manifest = record["manifest"]
        if isinstance(manifest.get("name"), str):
            self.app.name = manifest["name"]
        if record["organization"]:
            self.app.owner = record["organization"]
        # An App registered without callback URLs cannot sign anyone in.
        urls = manifest.get("callback_urls")
        self.app.callback_urls = [str(url) for url in urls] if isinstance(urls, list) else []
        answer = self._app_json()
        answer.update(
            {
                "client_secret": self.app.client_secret,
                "webhook_secret": self.app.webhook_secret,
                "pem": self.app.private_key_pem,
            }
        )
        return web.json_response(answer, status=201)

    # ----- repositories and contents ------------------------------------------------------

    def _repository(self, params: Mapping[str, str]) -> Repository:
        return self.repositories[f"{params['owner']}/{params['repo']}"]

    async def _op_repos_get(self, request, params, body) -> web.Response:
        repository = self._repository(params)
        return web.json_response(
            {
                "id": repository.id,
                "node_id": f"R_{repository.id}",
                "name": repository.name,
                "full_name": repository.full_name,
                "private": False,
                "owner": {"login": repository.owner, "id": 1, "type": "Organization"},
                "html_url": f"{self.url}/{repository.full_name}",
                "clone_url": f"{self.url}/{repository.full_name}.git",
                "default_branch": repository.default_branch,
                "archived": False,
            }
        )

    def _tree_json(self, repository: Repository, prefix: str, item: TreeItem) -> dict[str, Any]:
        kind = "trees" if item.type == "tree" else "blobs"
        entry: dict[str, Any] = {
            "path": prefix + item.name,
            "mode": item.mode,
            "type": item.type,
            "sha": item.sha,
            "url": f"{self.url}/repos/{repository.full_name}/git/{kind}/{item.sha}",
        }
        if item.size is not None:
            entry["size"] = item.size
        return entry

    def _listing(self, repository: Repository, tree: str, prefix: str = "") -> list[dict]:
        """Every entry under ``tree``, a folder before what it holds, as GitHub lists them."""
        entries: list[dict[str, Any]] = []
        for item in self.trees[tree]:
            entries.append(self._tree_json(repository, prefix, item))
            if item.type == "tree":
                entries += self._listing(repository, item.sha, f"{prefix}{item.name}/")
        return entries

    async def _op_git_get_tree(self, request, params, body) -> web.Response:
        repository = self._repository(params)
        name = params["tree_sha"]
        commit = repository.resolve(name)
        tree = repository.roots[commit] if commit is not None else name
        if tree not in repository.objects or tree not in self.trees:
            return _error(404, "Not Found")
        truncated = False
        if "recursive" in request.query:  # GitHub: any value, even "false", means recursive
            entries = self._listing(repository, tree)
            truncated = len(entries) > self.tree_entry_limit
            del entries[self.tree_entry_limit :]
        else:
            entries = [self._tree_json(repository, "", item) for item in self.trees[tree]]
        return web.json_response(
            {
                "sha": tree,
                "url": f"{self.url}/repos/{repository.full_name}/git/trees/{tree}",
                "tree": entries,
                "truncated": truncated,
            }
        )

    async def _op_git_get_blob(self, request, params, body) -> web.Response:
        repository = self._repository(params)
        sha = params["file_sha"]
        data = self.blobs.get(sha)
        if data is None or sha not in repository.objects:
            return _error(404, "Not Found")
        content = file_bytes(data)
        return web.json_response(
            {
                "sha": sha,
                "node_id": f"B_{sha[:16]}",
                "size": len(content),
                "url": f"{self.url}/repos/{repository.full_name}/git/blobs/{sha}",
                "content": base64.encodebytes(content).decode(),
                "encoding": "base64",
            }
        )

    def _content_json(self, repository: Repository, path: str, data: FileData) -> dict[str, Any]:
        return {
            "type": "file",
            "encoding": "base64",
            "size": file_size(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.encodebytes(file_bytes(data)).decode(),
            "sha": file_sha(data),
            "url": f"{self.url}/repos/{repository.full_name}/contents/{path}",
            "git_url": None,
            "html_url": None,
            "download_url": None,
            "_links": {"self": "", "git": None, "html": None},
        }

    async def _op_repos_get_content(self, request, params, body) -> web.Response:
        repository = self._repository(params)
        sha = repository.resolve(request.query.get("ref"))
        if sha is None:
            return _error(404, "No commit found for the ref")
        files = repository.commits[sha]
        path = params["path"].strip("/")
        if path in files:
            return web.json_response(self._content_json(repository, path, files[path]))
        prefix = path + "/" if path else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, data in files.items():
            if not name.startswith(prefix):
                continue
            child, _, rest = name[len(prefix) :].partition("/")
            entry_path = prefix + child
            if rest:
                entries[child] = {"type": "dir", "name": child, "path": entry_path, "size": 0}
            else:
                entries[child] = {
                    "type": "file",
                    "name": child,
                    "path": entry_path,
                    "size": file_size(data),
                    "sha": file_sha(data),
                }
        if not entries:
            return _error(404, "Not Found")
        return web.json_response([entries[name] for name in sorted(entries)])

    async def _op_repos_create_or_update_file_contents(self, request, params, body):
        repository = self._repository(params)
        branch = body.get("branch") or repository.default_branch
        if branch not in repository.branches:
            return _error(404, f"Branch {branch} not found")
        files = dict(repository.commits[repository.branches[branch]])
        path = params["path"].strip("/")
        current = files.get(path)
        if current is not None and "sha" not in body:
            return _error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if current is not None and body["sha"] != file_sha(current):
            return _error(409, f"{path} does not match {body['sha']}")
        try:
            data = base64.b64decode(body["content"], validate=True)
        except ValueError:
            return _error(422, "content is not valid Base64")
        files[path] = data
        commit = self.put_commit(repository.full_name, files, branch=branch)
        return web.json_response(
            {
                "content": self._content_json(repository, path, data),
                "commit": {"sha": commit, "message": body["message"]},
            },
            status=200 if current is not None else 201,
        )

    # ----- signing in with GitHub: the OAuth web flow and the user API -------------------------
    # The web endpoints are not in the REST description; their parameters are checked here
    # as GitHub's "Authorizing OAuth apps" documentation describes them.

    def _redirect_allowed(self, redirect_uri: str) -> bool:
        if urlsplit(redirect_uri).scheme not in ("http", "https"):
            return False
        callbacks = self.app.callback_urls
        if callbacks is None:
            return True
        return any(redirect_uri.startswith(url) for url in callbacks)

    async def _oauth_authorize(self, request: web.Request) -> web.Response:
        query = request.query
        self.oauth_requests.append({"endpoint": "authorize", **query})
        if query.get("client_id") != self.app.client_id:
            return web.Response(status=404, text="Not Found")
        redirect_uri = query.get("redirect_uri", "")
        if not self._redirect_allowed(redirect_uri):
            self.validation_errors.append(f"authorize: redirect_uri {redirect_uri!r} not allowed")
            return web.Response(
                status=400, text="The redirect_uri is not associated with this application."
            )
        if self.browser_user is None:
            return web.Response(status=200, text="Sign in to GitHub", content_type="text/html")
        code = secrets.token_hex(10)
        self.oauth_codes[code] = (self.browser_user, redirect_uri)
        answer = {"code": code}
        if "state" in query:
            answer["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return web.Response(
            status=302, headers={"Location": redirect_uri + separator + urlencode(answer)}
        )

    def _issue_user_token(self, login: str) -> dict[str, Any]:
        self.users.setdefault(login, 5000 + len(self.users))
        now = _now()
        token = UserToken(
            value="ghu_" + secrets.token_hex(18),
            login=login,
            expires_at=now + self.user_token_lifetime,
            refresh_token="ghr_" + secrets.token_hex(38),
            refresh_expires_at=now + timedelta(days=184),
        )
        self.user_tokens[token.value] = token
        return {
            "access_token": token.value,
            "expires_in": int(self.user_token_lifetime.total_seconds()),
            "refresh_token": token.refresh_token,
            "refresh_token_expires_in": int(timedelta(days=184).total_seconds()),
            "scope": "",
            "token_type": "bearer",
        }

    async def _oauth_access_token(self, request: web.Request) -> web.Response:
        form = {**request.query, **(await request.post())}
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        self.oauth_requests.append(
            {"endpoint": "access_token", "grant_type": "authorization_code", **values}
        )
        if "application/json" not in request.headers.get("Accept", ""):
            self.validation_errors.append("access_token: no Accept: application/json")

        def oauth_error(error: str, description: str) -> web.Response:
            # GitHub answers these errors with 200 and an "error" field.
            return web.json_response(
                {"error": error, "error_description": description, "error_uri": DOCS}
            )

        if (
            values.get("client_id") != self.app.client_id
            or values.get("client_secret") != self.app.client_secret
        ):
            return oauth_error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        if values.get("grant_type") == "refresh_token":
            self.oauth_requests[-1]["grant_type"] = "refresh_token"
            old = next(
                (
                    t
                    for t in self.user_tokens.values()
                    if t.refresh_token == values.get("refresh_token")
                ),
                None,
            )
            if old is None or old.revoked or old.refresh_expires_at <= _now():
                return oauth_error(
                    "bad_refresh_token", "The refresh token passed is incorrect or expired."
                )
            # A refresh token is used once; the old access token stops working too.
            old.revoked = True
            return web.json_response(self._issue_user_token(old.login))
        if "grant_type" in values and values["grant_type"] != "authorization_code":
            return oauth_error("unsupported_grant_type", "The grant type is not supported.")
        found = self.oauth_codes.pop(values.get("code", ""), None)
        if found is None:
            return oauth_error("bad_verification_code", "The code passed is incorrect or expired.")
        login, redirect_uri = found
        if values.get("redirect_uri") not in (None, redirect_uri):
            return oauth_error(
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            )
        return web.json_response(self._issue_user_token(login))

    def _user_login(self, request: web.Request) -> str:
        credential = request.headers.get("Authorization", "").partition(" ")[2]
        return self.user_tokens[credential].login

    def _user_json(self, login: str) -> dict[str, Any]:
        user_id = self.users.setdefault(login, 5000 + len(self.users))
        return {
            "login": login,
            "id": user_id,
            "node_id": f"U_{user_id}",
            "type": "User",
            "site_admin": False,
            "html_url": f"{self.url}/{login}",
        }

    async def _op_users_get_authenticated(self, request, params, body) -> web.Response:
        return web.json_response(self._user_json(self._user_login(request)))

    def _user_repositories(self, login: str, installation: Installation) -> list[Repository]:
        return [
            self.repositories[name]
            for name in sorted(installation.repositories)
            if login in self.repositories[name].collaborators
        ]

    async def _op_apps_list_installations_for_authenticated_user(
        self, request, params, body
    ) -> web.Response:
        login = self._user_login(request)
        installations = [
            {
                "id": installation.id,
                "app_id": self.app.id,
                "app_slug": self.app.slug,
                "account": {"login": installation.account, "id": 1, "type": "Organization"},
                "target_type": "Organization",
                "repository_selection": "selected",
            }
            for installation in self.installations.values()
            if self._user_repositories(login, installation)
        ]
        return web.json_response(
            {"total_count": len(installations), "installations": installations}
        )

    async def _op_apps_list_installation_repos_for_authenticated_user(
        self, request, params, body
    ) -> web.Response:
        login = self._user_login(request)
        installation = self.installations.get(int(params["installation_id"]))
        if installation is None:
            return _error(404, "Not Found")
        repositories = self._user_repositories(login, installation)
        if not repositories:
            return _error(404, "Not Found")
        per_page = int(request.query.get("per_page", "30"))
        page = int(request.query.get("page", "1"))
        chosen = repositories[(page - 1) * per_page : page * per_page]
        items = []
        for repository in chosen:
            role = repository.collaborators[login]
            rank = ["read", "triage", "write", "maintain", "admin"].index(role)
            items.append(
                {
                    "id": repository.id,
                    "name": repository.name,
                    "full_name": repository.full_name,
                    "owner": {"login": repository.owner, "id": 1, "type": "Organization"},
                    "private": True,
                    "default_branch": repository.default_branch,
                    "permissions": {
                        "pull": True,
                        "triage": rank >= 1,
                        "push": rank >= 2,
                        "maintain": rank >= 3,
                        "admin": rank >= 4,
                    },
                }
            )
        return web.json_response({"total_count": len(repositories), "repositories": items})

    async def _op_repos_get_collaborator_permission_level(self, request, params, body):
        repository = self._repository(params)
        role = repository.collaborators.get(params["username"])
        if role is None:
            return _error(404, f"{params['username']} is not a user")
        return web.json_response(
            {
                "permission": ROLE_PERMISSION.get(role, "none"),
                "role_name": role,
                "user": {"login": params["username"], "id": 7, "type": "User"},
            }
        )

    # ----- check runs and deployments ---------------------------------------------------------

    async def _op_checks_create(self, request, params, body) -> web.Response:
        repository = self._repository(params)
        run_id = next(self._ids)
        current = {
            "id": run_id,
            "head_sha": body["head_sha"],
            "name": body["name"],
            "status": body.get("status", "queued"),
            "conclusion": body.get("conclusion"),
            "details_url": body.get("details_url"),
            "external_id": body.get("external_id"),
            "started_at": body.get("started_at", _iso(_now())),
            "completed_at": body.get("completed_at"),
            "output": {"annotations_count": 0, **body.get("output", {})},
            "html_url": f"{self.url}/{repository.full_name}/runs/{run_id}",
            "app": {"id": self.app.id, "slug": self.app.slug},
        }
        if current["conclusion"] is not None:
            current["status"] = "completed"
        run = CheckRun(run_id, repository.full_name, current, [dict(body)])
        self.check_runs[run_id] = run
        return web.json_response(current, status=201)

    def _check_run(self, params: Mapping[str, str]) -> CheckRun | None:
        run = self.check_runs.get(int(params["check_run_id"]))
        if run is None or run.repository != self._repository(params).full_name:
            return None
        return run

    async def _op_checks_update(self, request, params, body) -> web.Response:
        run = self._check_run(params)
        if run is None:
            return _error(404, "Not Found")
        run.history.append(dict(body))
        for key, value in body.items():
            if key == "output":
                run.current["output"] = {**run.current["output"], **value}
            else:
                run.current[key] = value
        if body.get("conclusion") is not None:
            run.current["status"] = "completed"
            run.current.setdefault("completed_at", _iso(_now()))
        return web.json_response(run.current)

    async def _op_checks_get(self, request, params, body) -> web.Response:
        run = self._check_run(params)
        if run is None:
            return _error(404, "Not Found")
        return web.json_response(run.current)

    async def _op_repos_create_deployment(self, request, params, body) -> web.Response:
        repository = self._repository(params)
        sha = repository.resolve(body["ref"])
        if sha is None:
            return _error(422, f"No ref found for: {body['ref']}")
        deployment_id = next(self._ids)
        deployment = {
            "id": deployment_id,
            "sha": sha,
            "ref": body["ref"],
            "task": body.get("task", "deploy"),
            "environment": body.get("environment", "production"),
            "description": body.get("description"),
            "payload": body.get("payload", {}),
            "repository": repository.full_name,
            "created_at": _iso(_now()),
        }
        self.deployments[deployment_id] = deployment
        return web.json_response(deployment, status=201)

    async def _op_repos_list_deployments(self, request, params, body) -> web.Response:
        full_name = self._repository(params).full_name
        wanted = {k: request.query[k] for k in ("sha", "ref", "environment") if k in request.query}
        found = [
            deployment
            for deployment in sorted(self.deployments.values(), key=lambda d: -d["id"])
            if deployment["repository"] == full_name
            and all(deployment.get(key) == value for key, value in wanted.items())
        ]
        return web.json_response(found)

    async def _op_repos_create_deployment_status(self, request, params, body) -> web.Response:
        deployment_id = int(params["deployment_id"])
        if deployment_id not in self.deployments:
            return _error(404, "Not Found")
        status = {"id": next(self._ids), "deployment_id": deployment_id, **body}
        self.deployment_statuses[deployment_id].append(status)
        return web.json_response(status, status=201)

    # ----- issues, comments, reactions ----------------------------------------------------

    def _issue_json(self, issue: Issue) -> dict[str, Any]:
        return {
            "id": issue.number + 500000,
            "number": issue.number,
            "title": issue.title,
            "body": issue.body,
            "state": issue.state,
            "labels": [{"name": name} for name in issue.labels],
            "user": {"login": issue.user, "type": "Bot"},
            "html_url": f"{self.url}/{issue.repository}/issues/{issue.number}",
            "comments": len(issue.comments),
        }

    def add_issue(self, full_name: str, title: str, **fields: Any) -> Issue:
        number = 1 + max((n for (r, n) in self.issues if r == full_name), default=0)
        issue = Issue(number, full_name, title, **fields)
        self.issues[(full_name, number)] = issue
        return issue

    async def _op_issues_create(self, request, params, body) -> web.Response:
        labels = [
            label if isinstance(label, str) else label["name"] for label in body.get("labels", [])
        ]
        issue = self.add_issue(
            self._repository(params).full_name, body["title"], body=body.get("body"), labels=labels
        )
        return web.json_response(self._issue_json(issue), status=201)

    async def _op_issues_update(self, request, params, body) -> web.Response:
        issue = self.issues.get((self._repository(params).full_name, int(params["issue_number"])))
        if issue is None:
            return _error(404, "Not Found")
        for key in ("title", "body", "state"):
            if key in body:
                setattr(issue, key, body[key])
        if "labels" in body:
            issue.labels = [x if isinstance(x, str) else x["name"] for x in body["labels"]]
        return web.json_response(self._issue_json(issue))

    async def _op_issues_list_for_repo(self, request, params, body) -> web.Response:
        full_name = self._repository(params).full_name
        state = request.query.get("state", "open")
        wanted_labels = {x for x in request.query.get("labels", "").split(",") if x}
        creator = request.query.get("creator")
        found = [
            self._issue_json(issue)
            for (repo, _), issue in sorted(self.issues.items(), key=lambda kv: -kv[0][1])
            if repo == full_name
            and state in ("all", issue.state)
            and wanted_labels <= set(issue.labels)
            and creator in (None, issue.user)
        ]
        return web.json_response(found)

    async def _op_issues_create_comment(self, request, params, body) -> web.Response:
        full_name = self._repository(params).full_name
        issue = self.issues.get((full_name, int(params["issue_number"])))
        if issue is None:
            return _error(404, "Not Found")
        comment_id = next(self._ids)
        comment = {
            "id": comment_id,
            "body": body["body"],
            "user": {"login": f"{self.app.slug}[bot]", "type": "Bot"},
            "html_url": f"{self.url}/{full_name}/issues/{issue.number}#issuecomment-{comment_id}",
            "issue_number": issue.number,
        }
        issue.comments.append(comment)
        self.comments[comment_id] = comment
        return web.json_response(comment, status=201)

    async def _op_reactions_create_for_issue_comment(self, request, params, body):
        comment_id = int(params["comment_id"])
        reaction = {
            "id": next(self._ids),
            "comment_id": comment_id,
            "repository": self._repository(params).full_name,
            "content": body["content"],
            "user": {"login": f"{self.app.slug}[bot]"},
        }
        self.reactions.append(reaction)
        return web.json_response(reaction, status=201)
