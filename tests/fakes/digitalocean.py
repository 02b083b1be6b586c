"""A fake DigitalOcean API on loopback: droplets whose actions take time, fail and rate-limit.

It keeps just enough state (account, SSH keys, droplets, actions, sizes, regions,
snapshots, volumes with their actions and snapshots, reserved IPs, domains, records,
tags) for the droplet and volume drivers to be exercised end to end through
python-digitalocean, and records every request and every action so a test can assert
what was (and was never) asked of DigitalOcean.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.digitalocean_kubernetes import KubernetesClustersFake

# Validates one request (method, path, query, headers, raw body); returns the problems
# found, empty when the request conforms. Pluggable so the fake needs no particular checker.
RequestValidator = Callable[[str, str, Mapping[str, str], Mapping[str, str], bytes], list[str]]

FAKE_TOKEN = "dop_v1_" + "0123456789abcdef" * 4

_REGIONS: list[tuple[str, str]] = [
    ("nyc1", "New York 1"),
    ("nyc3", "New York 3"),
    ("sfo3", "San Francisco 3"),
    ("ams3", "Amsterdam 3"),
    ("sgp1", "Singapore 1"),
    ("lon1", "London 1"),
    ("fra1", "Frankfurt 1"),
    ("tor1", "Toronto 1"),
    ("blr1", "Bangalore 1"),
    ("syd1", "Sydney 1"),
]
_ALL_REGIONS = [slug for slug, _ in _REGIONS]

# slug, vcpus, memory MB, disk GB, transfer TB, price_monthly, regions (None: all), available
_SIZES: list[tuple[str, int, int, int, float, float, list[str] | None, bool]] = [
    ("s-1vcpu-512mb-10gb", 1, 512, 10, 0.5, 4.0, ["nyc1", "sfo3", "fra1"], True),
    ("s-1vcpu-1gb", 1, 1024, 25, 1.0, 6.0, None, True),
    ("s-1vcpu-2gb", 1, 2048, 50, 2.0, 12.0, None, True),
    ("s-2vcpu-2gb", 2, 2048, 60, 3.0, 18.0, None, True),
    ("s-2vcpu-4gb", 2, 4096, 80, 4.0, 24.0, None, True),
    ("s-2vcpu-4gb-amd", 2, 4096, 80, 4.0, 28.0, None, True),
    ("s-4vcpu-8gb", 4, 8192, 160, 5.0, 48.0, None, True),
    ("s-4vcpu-8gb-amd", 4, 8192, 160, 5.0, 42.0, None, True),
    ("s-4vcpu-8gb-intel", 4, 8192, 160, 5.0, 56.0, None, True),
    ("s-4vcpu-16gb-amd", 4, 16384, 200, 8.0, 84.0, None, True),
    ("s-8vcpu-16gb", 8, 16384, 320, 6.0, 96.0, None, True),
    ("s-8vcpu-16gb-amd", 8, 16384, 320, 6.0, 84.0, ["nyc1", "nyc3", "sfo3", "ams3"], True),
    ("s-8vcpu-16gb-intel", 8, 16384, 480, 9.0, 112.0, None, True),
    ("c-4", 4, 8192, 50, 5.0, 84.0, None, True),
    ("g-2vcpu-8gb", 2, 8192, 25, 4.0, 63.0, None, True),
    ("m-2vcpu-16gb", 2, 16384, 50, 4.0, 84.0, None, True),
    # DigitalOcean's storage-optimized sizes have an underscore in their slug.
    ("so1_5-2vcpu-16gb", 2, 16384, 450, 4.0, 131.0, None, True),
    ("s-16vcpu-32gb", 16, 32768, 640, 8.0, 192.0, ["nyc3"], False),
]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def size_json(slug: str) -> dict[str, Any]:
    """The API's representation of one of the fake's sizes."""
    for s, vcpus, memory, disk, transfer, price, regions, available in _SIZES:
        if s == slug:
            return {
                "slug": s,
                "memory": memory,
                "vcpus": vcpus,
                "disk": disk,
                "transfer": transfer,
                "price_monthly": price,
                "price_hourly": round(price / 672, 5),
                "regions": list(regions or _ALL_REGIONS),
                "available": available,
                "description": "Basic" if s.startswith("s-") else "Other",
            }
    raise KeyError(slug)


def _region_json(slug: str) -> dict[str, Any]:
    name = dict(_REGIONS)[slug]
    sizes = [s[0] for s in _SIZES if s[6] is None or slug in s[6]]
    return {
        "slug": slug,
        "name": name,
        "sizes": sizes,
        "available": True,
        "features": ["backups", "ipv6", "metadata", "install_agent"],
    }


@dataclass
class FakeRequest:
    """One request the fake received, as a test may want to inspect it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    token: str = ""  # the bearer token it carried


@dataclass
class FakeAction:
    """A droplet action: in progress for some polls, then completed or errored."""

    id: int
    type: str
    droplet_id: int | None
    polls_left: int
    outcome: str = "completed"  # what it becomes once polls_left reaches 0
    not_before: float = 0.0  # time.monotonic() before which it stays in progress
    status: str = "in-progress"
    started_at: str = field(default_factory=_now)
    completed_at: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    region: str = "nyc3"
    volume_id: str | None = None  # set for a volume action
    reserved_ip: str | None = None  # set for a reserved IP action

    def to_json(self) -> dict[str, Any]:
        resource_type = (
            "volume" if self.volume_id else "reserved_ip" if self.reserved_ip else "droplet"
        )
        return {
            "id": self.id,
            "status": self.status,
            "type": self.type,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "resource_id": self.droplet_id if resource_type == "droplet" else None,
            "resource_type": resource_type,
            "region": _region_json(self.region),
            "region_slug": self.region,
        }


@dataclass
class FakeDroplet:
    id: int
    name: str
    region: str
    size: str
    image: str
    tags: list[str]
    ssh_keys: list[Any]
    monitoring: bool
    status: str = "new"
    disk: int = 0
    ipv4: str | None = None
    boot_polls_left: int = 2
    snapshot_ids: list[int] = field(default_factory=list)
    volume_ids: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    account: str = ""  # uuid of the account it lives in; "" for the main account

    def to_json(self) -> dict[str, Any]:
        size = size_json(self.size)
        networks_v4 = []
        if self.ipv4:
            networks_v4 = [
                {
                    "ip_address": self.ipv4,
                    "netmask": "255.0.0.0",
                    "gateway": "127.0.0.1",
                    "type": "public",
                }
            ]
        return {
            "id": self.id,
            "name": self.name,
            "memory": size["memory"],
            "vcpus": size["vcpus"],
            "disk": self.disk,
            "locked": False,
            "status": self.status,
            "created_at": self.created_at,
            "features": ["monitoring"] if self.monitoring else [],
            "backup_ids": [],
            "next_backup_window": None,
            "snapshot_ids": list(self.snapshot_ids),
            "image": {
                "id": 1000,
                "name": self.image,
                "slug": self.image,
                "distribution": "Ubuntu",
                "public": True,
                "regions": _ALL_REGIONS,
                "type": "base",
                "min_disk_size": 7,
                "created_at": "2024-04-25T00:00:00Z",
            },
            "volume_ids": list(self.volume_ids),
            "size": size,
            "size_slug": self.size,
            "networks": {"v4": networks_v4, "v6": []},
            "region": _region_json(self.region),
            "tags": list(self.tags),
            "kernel": None,
            "vpc_uuid": "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
        }


@dataclass
class FakeVolume:
    """A block storage volume; ``attached_to`` remembers every droplet it was ever on."""

    id: str
    name: str
    region: str
    size_gigabytes: int
    tags: list[str]
    droplet_ids: list[int] = field(default_factory=list)
    snapshot_id: str | None = None  # the snapshot it was made from
    attached_to: set[int] = field(default_factory=set)
    created_at: str = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "region": _region_json(self.region),
            "droplet_ids": list(self.droplet_ids),
            "description": "",
            "size_gigabytes": self.size_gigabytes,
            "created_at": self.created_at,
            "filesystem_type": "",
            "filesystem_label": "",
            "tags": list(self.tags),
        }


@dataclass
class FakeReservedIP:
    ip: str
    region: str
    droplet_id: int | None = None


@dataclass
class _Fault:
    """An injected failure for the next ``times`` requests to one operation."""

    kind: str  # "status", "slow" or "lost" (carried out, then answered with ``status``)
    times: int
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class DigitalOceanFake(KubernetesClustersFake):
    """The fake API's state, its HTTP handlers and the helpers tests use to steer it.

    A droplet action stays ``in-progress`` for ``action_polls`` reads of it and at least
    ``action_seconds``; a new droplet is ``new``, without an address, for ``boot_polls``
    reads. ``validator`` checks each request; what it finds is kept in
    ``validation_errors`` and answered with a 400, as DigitalOcean would.
    """

    def __init__(
        self,
        *,
        token: str = FAKE_TOKEN,
        action_polls: int = 2,
        action_seconds: float = 0.0,
        boot_polls: int = 2,
        validator: RequestValidator | None = None,
    ) -> None:
        self.token = token
        self.action_polls = action_polls
        self.action_seconds = action_seconds
        self.boot_polls = boot_polls
        self.validator = validator
        self.url = ""
        self.requests: list[FakeRequest] = []
        self.actions: list[FakeAction] = []
        self.validation_errors: list[str] = []
        self.account = {
            "droplet_limit": 25,
            "floating_ip_limit": 5,
            "volume_limit": 100,
            "email": "teacher@example.edu",
            "email_verified": True,
            "uuid": "b6fr89dbf6d9156cace5f3c78dc9851d957381ef",
            "status": "active",
            "status_message": "",
        }
        # Further accounts, each reached with its own token (a course's own token).
        self.other_accounts: dict[str, dict[str, Any]] = {}
        self.ssh_keys: list[dict[str, Any]] = []
        self.droplets: dict[int, FakeDroplet] = {}
        self.snapshots: list[dict[str, Any]] = []
        self.volumes: dict[str, FakeVolume] = {}
        self.deleted_volumes: list[FakeVolume] = []
        self.deleted_snapshots: list[dict[str, Any]] = []
        self.reserved_ips: dict[str, FakeReservedIP] = {}
        # Called when a volume attach or detach completes, so a test can make the volume
        # appear on (or leave) the server its droplet stands for.
        self.on_attach: Callable[[FakeVolume, FakeDroplet], None] | None = None
        self.on_detach: Callable[[FakeVolume, FakeDroplet], None] | None = None
        self.domains: dict[str, list[dict[str, Any]]] = {}
        self.tags: set[str] = set()
        self._ids = itertools.count(1001)
        self._addresses = itertools.count(2)
        self._reserved_addresses = itertools.count(2)
        # Where new droplets' SSH can be reached in a test (the loopback SSH server's
        # address); by default each droplet gets an address of its own that nobody serves.
        self.new_droplet_address: str | None = None
        self._faults: dict[str, list[_Fault]] = {}
        self._action_faults: dict[str, list[str]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._init_clusters()

    # ---- steering, for tests ---------------------------------------------------------

    def fail(
        self,
        operation: str,
        status: int = 500,
        *,
        times: int = 1,
        ratelimit_reset: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``operation`` with ``status``.

        ``operation`` is "METHOD /template", e.g. "POST /v2/droplets/{droplet_id}/actions".
        """
        headers: dict[str, str] = {}
        if ratelimit_reset is not None:
            headers["ratelimit-reset"] = str(ratelimit_reset)
            headers["ratelimit-remaining"] = "0"
            headers["ratelimit-limit"] = "5000"
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        self._faults.setdefault(operation, []).append(
            _Fault("status", times, status=status, headers=headers)
        )

    def slow(self, operation: str, seconds: float, *, times: int = 1) -> None:
        """Delay the next ``times`` answers to ``operation`` by ``seconds`` (a client timeout)."""
        self._faults.setdefault(operation, []).append(_Fault("slow", times, seconds=seconds))

    def lose_answer(self, operation: str, status: int = 500, *, times: int = 1) -> None:
        """Carry out the next ``times`` requests to ``operation`` but answer ``status``.

        What a client sees when DigitalOcean did the work and the answer was lost on the
        way back: asking again blindly would do it twice.
        """
        self._faults.setdefault(operation, []).append(_Fault("lost", times, status=status))

    def error_action(self, action_type: str, *, times: int = 1) -> None:
        """Make the next ``times`` actions of ``action_type`` end ``errored``."""
        self._action_faults.setdefault(action_type, []).extend(["errored"] * times)

    def hang_action(self, action_type: str, *, times: int = 1) -> None:
        """Make the next ``times`` actions of ``action_type`` stay ``in-progress`` for ever."""
        self._action_faults.setdefault(action_type, []).extend(["hang"] * times)

    def add_account(self, token: str, email: str) -> dict[str, Any]:
        """Another DigitalOcean account, reached with ``token``."""
        account = {
            **self.account,
            "email": email,
            "uuid": hashlib.sha1(email.encode(), usedforsecurity=False).hexdigest(),
        }
        self.other_accounts[token] = account
        return account

    def _account_of(self, token: str) -> dict[str, Any] | None:
        if token == self.token:
            return self.account
        return self.other_accounts.get(token)

    def add_droplet(
        self,
        name: str,
        *,
        region: str = "syd1",
        size: str = "s-2vcpu-4gb",
        tags: list[str] | None = None,
        status: str = "active",
        account: str = "",
    ) -> FakeDroplet:
        """Put an already existing droplet in the account (or another one's, by uuid)."""
        droplet = FakeDroplet(
            id=next(self._ids),
            name=name,
            region=region,
            size=size,
            image="ubuntu-24-04-x64",
            tags=list(tags or []),
            ssh_keys=[],
            monitoring=True,
            status=status,
            disk=size_json(size)["disk"],
            ipv4=f"127.0.0.{next(self._addresses)}",
            boot_polls_left=0,
            account=account,
        )
        self.droplets[droplet.id] = droplet
        self.tags.update(droplet.tags)
        return droplet

    def lose_droplet(self, droplet_id: int) -> None:
        """The droplet is destroyed in the control panel: its volumes are detached and
        kept, its reserved IP is left unassigned."""
        droplet = self.droplets.pop(droplet_id)
        for volume in self.volumes.values():
            if droplet_id in volume.droplet_ids:
                volume.droplet_ids.remove(droplet_id)
                if self.on_detach is not None:
                    self.on_detach(volume, droplet)
        for reserved in self.reserved_ips.values():
            if reserved.droplet_id == droplet_id:
                reserved.droplet_id = None

    def add_domain(self, name: str) -> None:
        """Put a domain (with DigitalOcean's default NS records) in the account."""
        self.domains[name] = [
            {
                "id": next(self._ids),
                "type": "NS",
                "name": "@",
                "data": f"ns{i}.digitalocean.com",
                "priority": None,
                "port": None,
                "ttl": 1800,
                "weight": None,
                "flags": None,
                "tag": None,
            }
            for i in (1, 2, 3)
        ]

    def add_volume(
        self,
        name: str,
        *,
        region: str = "syd1",
        size_gigabytes: int = 20,
        tags: list[str] | None = None,
        droplet_id: int | None = None,
    ) -> FakeVolume:
        """Put an already existing volume in the account, attached to ``droplet_id`` if given."""
        volume = FakeVolume(
            id=str(uuid.uuid4()),
            name=name,
            region=region,
            size_gigabytes=size_gigabytes,
            tags=list(tags or []),
        )
        if droplet_id is not None:
            volume.droplet_ids = [droplet_id]
            volume.attached_to.add(droplet_id)
        self.volumes[volume.id] = volume
        self.tags.update(volume.tags)
        return volume

    def add_volume_snapshot(
        self, volume: FakeVolume, name: str, *, tags: list[str] | None = None, created_at: str = ""
    ) -> dict[str, Any]:
        """Put a snapshot of ``volume`` in the account (``created_at`` as the API writes it)."""
        snapshot = self._volume_snapshot(volume, name, list(tags or []))
        if created_at:
            snapshot["created_at"] = created_at
        return snapshot

    def volume_action_types(self, volume_id: str | None = None) -> list[str]:
        """The types of the volume actions performed, in order."""
        return [
            a.type
            for a in self.actions
            if a.volume_id is not None and (volume_id is None or a.volume_id == volume_id)
        ]

    def action_types(self, droplet_id: int | None = None) -> list[str]:
        """The types of the droplet actions performed, in order."""
        return [
            a.type
            for a in self.actions
            if a.volume_id is None
            and a.reserved_ip is None
            and (droplet_id is None or a.droplet_id == droplet_id)
        ]

    def calls(self, method: str, path_prefix: str) -> list[FakeRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # ---- serving -----------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        routes = [
            ("GET", "/v2/account", self._account),
            ("GET", "/v2/account/keys", self._list_keys),
            ("POST", "/v2/account/keys", self._create_key),
            ("GET", "/v2/droplets", self._list_droplets),
            ("POST", "/v2/droplets", self._create_droplet),
            ("GET", "/v2/droplets/{droplet_id}", self._get_droplet),
            ("DELETE", "/v2/droplets/{droplet_id}", self._destroy_droplet),
            ("GET", "/v2/droplets/{droplet_id}/actions", self._list_droplet_actions),
            ("POST", "/v2/droplets/{droplet_id}/actions", self._droplet_action),
            ("GET", "/v2/droplets/{droplet_id}/actions/{action_id}", self._get_action),
            ("GET", "/v2/actions/{action_id}", self._get_action),
            ("GET", "/v2/sizes", self._sizes),
            ("GET", "/v2/regions", self._regions),
            ("GET", "/v2/snapshots", self._list_snapshots),
            ("GET", "/v2/domains", self._list_domains),
            ("GET", "/v2/domains/{domain_name}", self._get_domain),
            ("GET", "/v2/domains/{domain_name}/records", self._list_records),
            ("POST", "/v2/domains/{domain_name}/records", self._create_record),
            ("GET", "/v2/domains/{domain_name}/records/{domain_record_id}", self._get_record),
            ("PUT", "/v2/domains/{domain_name}/records/{domain_record_id}", self._put_record),
            ("GET", "/v2/tags", self._list_tags),
            ("GET", "/v2/snapshots/{snapshot_id}", self._get_snapshot),
            ("DELETE", "/v2/snapshots/{snapshot_id}", self._delete_snapshot),
            ("GET", "/v2/volumes", self._list_volumes),
            ("POST", "/v2/volumes", self._create_volume),
            ("GET", "/v2/volumes/snapshots/{snapshot_id}", self._get_snapshot),
            ("DELETE", "/v2/volumes/snapshots/{snapshot_id}", self._delete_snapshot),
            ("GET", "/v2/volumes/{volume_id}", self._get_volume),
            ("DELETE", "/v2/volumes/{volume_id}", self._delete_volume),
            ("GET", "/v2/volumes/{volume_id}/actions", self._list_volume_actions),
            ("POST", "/v2/volumes/{volume_id}/actions", self._volume_action),
            ("GET", "/v2/volumes/{volume_id}/actions/{action_id}", self._get_action),
            ("GET", "/v2/volumes/{volume_id}/snapshots", self._list_volume_snapshots),
            ("POST", "/v2/volumes/{volume_id}/snapshots", self._create_volume_snapshot),
            ("GET", "/v2/reserved_ips", self._list_reserved_ips),
            ("POST", "/v2/reserved_ips", self._create_reserved_ip),
            ("GET", "/v2/reserved_ips/{reserved_ip}", self._get_reserved_ip),
            ("GET", "/v2/reserved_ips/{reserved_ip}/actions", self._list_reserved_ip_actions),
            ("POST", "/v2/reserved_ips/{reserved_ip}/actions", self._reserved_ip_action),
            ("GET", "/v2/reserved_ips/{reserved_ip}/actions/{action_id}", self._get_action),
            *self.cluster_routes(),
        ]
        for method, path, handler in routes:
            # python-digitalocean asks for "droplets/" as often as "droplets".
            app.router.add_route(method, path, handler)
            app.router.add_route(method, path + "/", handler)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v2/"
        return self.url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        body: Any = None
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        path = request.path.rstrip("/") or "/"
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        record = FakeRequest(request.method, path, dict(request.query), body, token=token)
        self.requests.append(record)
        response = await self._answer(request, handler, path, raw, body)
        record.status = response.status
        return response

    async def _answer(
        self, request: web.Request, handler: Callable, path: str, raw: bytes, body: Any
    ) -> web.StreamResponse:
        account = self._account_of(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if account is None:
            return _error(401, "unauthorized", "Unable to authenticate you")
        request["account"] = "" if account is self.account else account["uuid"]
        template = request.match_info.route.resource.canonical.rstrip("/")
        operation = f"{request.method} {template}"
        if self.validator is not None:
            problems = self.validator(
                request.method, path, dict(request.query), dict(request.headers), raw
            )
            if problems:
                self.validation_errors.extend(f"{operation}: {p}" for p in problems)
                return _error(400, "bad_request", "; ".join(problems))
        faults = self._faults.get(operation)
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            if fault.kind == "slow":
                # Ends early when the fake closes, so teardown never waits on it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), fault.seconds)
            elif fault.kind == "lost":
                request["json"] = body
                await handler(request)
                return _error(
                    fault.status, "server_error", "Server was unable to give you a response."
                )
            elif fault.status == 429:
                return _error(429, "too_many_requests", "API Rate limit exceeded.", fault.headers)
            else:
                return _error(
                    fault.status, "server_error", "Server was unable to give you a response."
                )
        request["json"] = body
        return await handler(request)

    # ---- handlers ----------------------------------------------------------------------

    async def _account(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response({"account": self._account_of(token)})

    async def _list_keys(self, request: web.Request) -> web.Response:
        return _listing("ssh_keys", self.ssh_keys)

    async def _create_key(self, request: web.Request) -> web.Response:
        body = request["json"] or {}
        public_key = str(body.get("public_key", ""))
        if any(k["public_key"] == public_key for k in self.ssh_keys):
            return _error(422, "unprocessable_entity", "SSH Key is already in use on your account")
        key = {
            "id": next(self._ids),
            "fingerprint": fingerprint(public_key),
            "public_key": public_key,
            "name": body.get("name", ""),
        }
        self.ssh_keys.append(key)
        return web.json_response({"ssh_key": key}, status=201)

    async def _list_droplets(self, request: web.Request) -> web.Response:
        tag = request.query.get("tag_name")
        name = request.query.get("name")
        found = [
            d.to_json()
            for d in self.droplets.values()
            if d.account == request.get("account", "")
            and (tag is None or tag in d.tags)
            and (name is None or d.name.lower() == name.lower())
        ]
        return self._page(request, "droplets", found)

    def _page(self, request: web.Request, key: str, items: list[dict[str, Any]]) -> web.Response:
        """One page of ``items`` as DigitalOcean pages a list: ``links.pages.next`` if more."""
        per_page = int(request.query.get("per_page", 20))
        page = int(request.query.get("page", 1))
        start = (page - 1) * per_page
        links: dict[str, Any] = {}
        if start + per_page < len(items):
            query = {**request.query, "page": str(page + 1), "per_page": str(per_page)}
            following = request.url.with_query(query)
            links["pages"] = {"next": str(following)}
        body = {key: items[start : start + per_page], "links": links, "meta": {"total": len(items)}}
        return web.json_response(body)

    async def _create_droplet(self, request: web.Request) -> web.Response:
        body = request["json"] or {}
        size = body.get("size")
        region = body.get("region")
        try:
            size_info = size_json(size)
        except KeyError:
            return _error(422, "unprocessable_entity", "You specified an invalid size.")
        if region not in size_info["regions"] or not size_info["available"]:
            return _error(422, "unprocessable_entity", "Size is not available in this region.")
        droplet = FakeDroplet(
            id=next(self._ids),
            name=body["name"],
            region=region,
            size=size,
            image=str(body.get("image")),
            tags=list(body.get("tags") or []),
            ssh_keys=list(body.get("ssh_keys") or []),
            monitoring=bool(body.get("monitoring")),
            disk=size_info["disk"],
            boot_polls_left=self.boot_polls,
            account=request.get("account", ""),
        )
        self.droplets[droplet.id] = droplet
        self.tags.update(droplet.tags)
        action = self._start_action("create", droplet, polls=self.boot_polls)
        return web.json_response(
            {
                "droplet": droplet.to_json(),
                "links": {"actions": [{"id": action.id, "rel": "create", "href": ""}]},
            },
            status=202,
        )

    def _droplet_or_404(self, request: web.Request) -> FakeDroplet | None:
        try:
            droplet = self.droplets.get(int(request.match_info["droplet_id"]))
        except ValueError:
            return None
        # Another account's droplet is as unknown as a droplet that does not exist.
        if droplet is None or droplet.account != request.get("account", ""):
            return None
        return droplet

    async def _get_droplet(self, request: web.Request) -> web.Response:
        droplet = self._droplet_or_404(request)
        if droplet is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        if droplet.status == "new":
            droplet.boot_polls_left -= 1
            if droplet.boot_polls_left <= 0:
                self._boot(droplet)
        return web.json_response({"droplet": droplet.to_json()})

    def _boot(self, droplet: FakeDroplet) -> None:
        droplet.status = "active"
        if droplet.ipv4 is None:
            droplet.ipv4 = self.new_droplet_address or f"127.0.0.{next(self._addresses)}"

    async def _destroy_droplet(self, request: web.Request) -> web.Response:
        # Served only so that a call would be recorded; the driver must never make one.
        droplet = self._droplet_or_404(request)
        if droplet is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        del self.droplets[droplet.id]
        for volume in self.volumes.values():
            if droplet.id in volume.droplet_ids:
                volume.droplet_ids.remove(droplet.id)
        for reserved in self.reserved_ips.values():
            if reserved.droplet_id == droplet.id:
                reserved.droplet_id = None
        return web.Response(status=204)

    async def _list_droplet_actions(self, request: web.Request) -> web.Response:
        droplet = self._droplet_or_404(request)
        if droplet is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        found = [a.to_json() for a in self.actions if a.droplet_id == droplet.id]
        return _listing("actions", found)

    async def _droplet_action(self, request: web.Request) -> web.Response:
        droplet = self._droplet_or_404(request)
        if droplet is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        body = request["json"] or {}
        kind = body.get("type")
        if kind == "resize":
            if droplet.status != "off":
                return _error(
                    422,
                    "unprocessable_entity",
                    "Droplet is currently on. Please power it off to run this event.",
                )
            try:
                new = size_json(body.get("size"))
            except KeyError:
                return _error(422, "unprocessable_entity", "You specified an invalid size.")
            if _truthy(body.get("disk")) and new["disk"] < droplet.disk:
                return _error(422, "unprocessable_entity", "Droplet disks cannot shrink.")
        if kind == "power_on" and droplet.status == "active":
            return _error(422, "unprocessable_entity", "Droplet is already powered on.")
        action = self._start_action(str(kind), droplet, params=body)
        return web.json_response({"action": action.to_json()}, status=201)

    def _start_action(
        self,
        kind: str,
        droplet: FakeDroplet,
        *,
        polls: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> FakeAction:
        outcome = "completed"
        pending = self._action_faults.get(kind)
        if pending:
            outcome = pending.pop(0)
        action = FakeAction(
            id=next(self._ids),
            type=kind,
            droplet_id=droplet.id,
            polls_left=self.action_polls if polls is None else polls,
            outcome=outcome,
            params=dict(params or {}),
            region=droplet.region,
            not_before=time.monotonic() + self.action_seconds,
        )
        self.actions.append(action)
        return action

    async def _get_action(self, request: web.Request) -> web.Response:
        try:
            action_id = int(request.match_info["action_id"])
        except ValueError:
            action_id = -1
        action = next((a for a in self.actions if a.id == action_id), None)
        if action is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        self._advance(action)
        return web.json_response({"action": action.to_json()})

    def _advance(self, action: FakeAction) -> None:
        if action.status != "in-progress" or action.outcome == "hang":
            return
        action.polls_left -= 1
        if action.polls_left > 0 or time.monotonic() < action.not_before:
            return
        action.completed_at = _now()
        action.status = action.outcome
        if action.volume_id is not None or action.reserved_ip is not None:
            if action.status == "completed":
                self._finish_resource_action(action)
            return
        droplet = self.droplets.get(action.droplet_id or -1)
        if action.status != "completed" or droplet is None:
            return
        if action.type == "create":
            self._boot(droplet)
        elif action.type in ("shutdown", "power_off"):
            droplet.status = "off"
        elif action.type in ("power_on", "reboot", "power_cycle"):
            droplet.status = "active"
        elif action.type == "resize":
            droplet.size = action.params["size"]
            if _truthy(action.params.get("disk")):
                droplet.disk = size_json(droplet.size)["disk"]
        elif action.type == "snapshot":
            snapshot_id = next(self._ids)
            droplet.snapshot_ids.append(snapshot_id)
            self.snapshots.append(
                {
                    "id": str(snapshot_id),
                    "name": action.params.get("name") or f"{droplet.name}-{snapshot_id}",
                    "created_at": action.completed_at,
                    "regions": [droplet.region],
                    "resource_id": str(droplet.id),
                    "resource_type": "droplet",
                    "min_disk_size": droplet.disk,
                    "size_gigabytes": 2.5,
                    "tags": [],
                }
            )

    async def _sizes(self, request: web.Request) -> web.Response:
        return _listing("sizes", [size_json(s[0]) for s in _SIZES])

    async def _regions(self, request: web.Request) -> web.Response:
        return _listing("regions", [_region_json(slug) for slug, _ in _REGIONS])

    async def _list_snapshots(self, request: web.Request) -> web.Response:
        kind = request.query.get("resource_type")
        found = [s for s in self.snapshots if kind is None or s["resource_type"] == kind]
        return _listing("snapshots", found)

    async def _list_domains(self, request: web.Request) -> web.Response:
        domains = [{"name": n, "ttl": 1800, "zone_file": ""} for n in sorted(self.domains)]
        return _listing("domains", domains)

    async def _get_domain(self, request: web.Request) -> web.Response:
        name = request.match_info["domain_name"]
        if name not in self.domains:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return web.json_response({"domain": {"name": name, "ttl": 1800, "zone_file": ""}})

    async def _list_records(self, request: web.Request) -> web.Response:
        records = self.domains.get(request.match_info["domain_name"])
        if records is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        kind = request.query.get("type")
        name = request.query.get("name")
        domain = request.match_info["domain_name"]
        found = [
            r
            for r in records
            if (kind is None or r["type"] == kind)
            and (name is None or _fqdn(r["name"], domain) == name)
        ]
        return _listing("domain_records", found)

    async def _create_record(self, request: web.Request) -> web.Response:
        records = self.domains.get(request.match_info["domain_name"])
        if records is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        body = request["json"] or {}
        record = {
            "id": next(self._ids),
            "type": body.get("type"),
            "name": body.get("name"),
            "data": body.get("data"),
            "priority": body.get("priority"),
            "port": body.get("port"),
            "ttl": body.get("ttl") or 1800,
            "weight": body.get("weight"),
            "flags": body.get("flags"),
            "tag": body.get("tag"),
        }
        records.append(record)
        return web.json_response({"domain_record": record}, status=201)

    def _record_or_none(self, request: web.Request) -> dict[str, Any] | None:
        records = self.domains.get(request.match_info["domain_name"], [])
        wanted = request.match_info["domain_record_id"]
        return next((r for r in records if str(r["id"]) == wanted), None)

    async def _get_record(self, request: web.Request) -> web.Response:
        record = self._record_or_none(request)
        if record is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return web.json_response({"domain_record": record})

    async def _put_record(self, request: web.Request) -> web.Response:
        record = self._record_or_none(request)
        if record is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        body = request["json"] or {}
        for key in ("type", "name", "data", "priority", "port", "ttl", "weight", "flags", "tag"):
            if key in body:
                record[key] = body[key]
        return web.json_response({"domain_record": record})

    async def _list_tags(self, request: web.Request) -> web.Response:
        tags = []
        for name in sorted(self.tags):
            count = sum(1 for d in self.droplets.values() if name in d.tags)
            tags.append(
                {
                    "name": name,
                    "resources": {
                        "count": count,
                        "droplets": {"count": count},
                    },
                }
            )
        return _listing("tags", tags)

    # ---- volumes, their snapshots and reserved IPs ---------------------------------------

    def _finish_resource_action(self, action: FakeAction) -> None:
        if action.reserved_ip is not None:
            reserved = self.reserved_ips[action.reserved_ip]
            reserved.droplet_id = action.droplet_id if action.type == "assign" else None
            return
        volume = self.volumes.get(action.volume_id or "")
        if volume is None:
            return
        droplet = self.droplets.get(action.droplet_id or -1)
        if action.type == "attach" and droplet is not None:
            volume.droplet_ids = [droplet.id]
            volume.attached_to.add(droplet.id)
            droplet.volume_ids.append(volume.id)
            if self.on_attach is not None:
                self.on_attach(volume, droplet)
        elif action.type == "detach":
            volume.droplet_ids = []
            if droplet is not None and volume.id in droplet.volume_ids:
                droplet.volume_ids.remove(volume.id)
            if droplet is not None and self.on_detach is not None:
                self.on_detach(volume, droplet)
        elif action.type == "resize":
            volume.size_gigabytes = int(action.params["size_gigabytes"])

    def _start_resource_action(
        self,
        kind: str,
        *,
        region: str,
        droplet_id: int | None,
        params: dict[str, Any],
        volume_id: str | None = None,
        reserved_ip: str | None = None,
    ) -> FakeAction:
        outcome = "completed"
        pending = self._action_faults.get(kind)
        if pending:
            outcome = pending.pop(0)
        action = FakeAction(
            id=next(self._ids),
            type=kind,
            droplet_id=droplet_id,
            polls_left=self.action_polls,
            outcome=outcome,
            params=dict(params),
            region=region,
            not_before=time.monotonic() + self.action_seconds,
            volume_id=volume_id,
            reserved_ip=reserved_ip,
        )
        self.actions.append(action)
        return action

    def _volume_or_none(self, request: web.Request) -> FakeVolume | None:
        return self.volumes.get(request.match_info["volume_id"])

    async def _list_volumes(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        region = request.query.get("region")
        found = [
            v.to_json()
            for v in self.volumes.values()
            if (name is None or v.name == name) and (region is None or v.region == region)
        ]
        return _listing("volumes", found)

    async def _create_volume(self, request: web.Request) -> web.Response:
        body = request["json"] or {}
        name, region = body.get("name"), body.get("region")
        if any(v.name == name and v.region == region for v in self.volumes.values()):
            return _error(409, "conflict", "a volume with that name already exists in the region")
        size = int(body.get("size_gigabytes") or 0)
        source = body.get("snapshot_id")
        if source is not None:
            snapshot = next((s for s in self.snapshots if s["id"] == source), None)
            if snapshot is None or snapshot["resource_type"] != "volume":
                return _error(404, "not_found", "The snapshot could not be found.")
            if size < snapshot["min_disk_size"]:
                return _error(422, "unprocessable_entity", "size is below the snapshot's size")
        volume = FakeVolume(
            id=str(uuid.uuid4()),
            name=str(name),
            region=str(region),
            size_gigabytes=size,
            tags=list(body.get("tags") or []),
            snapshot_id=source,
        )
        self.volumes[volume.id] = volume
        self.tags.update(volume.tags)
        return web.json_response({"volume": volume.to_json()}, status=201)

    async def _get_volume(self, request: web.Request) -> web.Response:
        volume = self._volume_or_none(request)
        if volume is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return web.json_response({"volume": volume.to_json()})

    async def _delete_volume(self, request: web.Request) -> web.Response:
        volume = self._volume_or_none(request)
        if volume is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        if volume.droplet_ids:
            return _error(409, "conflict", "The volume is attached to a Droplet; detach it first.")
        del self.volumes[volume.id]
        self.deleted_volumes.append(volume)
        return web.Response(status=204)

    async def _list_volume_actions(self, request: web.Request) -> web.Response:
        volume = self._volume_or_none(request)
        if volume is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return _listing("actions", [a.to_json() for a in self.actions if a.volume_id == volume.id])

    async def _volume_action(self, request: web.Request) -> web.Response:
        volume = self._volume_or_none(request)
        if volume is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        body = request["json"] or {}
        kind = str(body.get("type"))
        droplet_id = body.get("droplet_id")
        if kind == "attach":
            droplet = self.droplets.get(droplet_id)
            if droplet is None:
                return _error(404, "not_found", "The Droplet could not be found.")
            if droplet.region != volume.region:
                return _error(422, "unprocessable_entity", "Volume and Droplet regions differ.")
            if volume.droplet_ids and volume.droplet_ids != [droplet_id]:
                return _error(
                    422, "unprocessable_entity", "Volume is already attached to another Droplet."
                )
        elif kind == "detach" and droplet_id not in volume.droplet_ids:
            return _error(422, "unprocessable_entity", "Volume is not attached to this Droplet.")
        elif kind == "resize" and int(body.get("size_gigabytes") or 0) < volume.size_gigabytes:
            return _error(422, "unprocessable_entity", "Volumes cannot be decreased in size.")
        action = self._start_resource_action(
            kind,
            region=volume.region,
            droplet_id=droplet_id,
            params=body,
            volume_id=volume.id,
        )
        return web.json_response({"action": action.to_json()}, status=202)

    def _volume_snapshot(self, volume: FakeVolume, name: str, tags: list[str]) -> dict[str, Any]:
        snapshot = {
            "id": str(uuid.uuid4()),
            "name": name,
            "created_at": _now(),
            "regions": [volume.region],
            "resource_id": volume.id,
            "resource_type": "volume",
            "min_disk_size": volume.size_gigabytes,
            "size_gigabytes": round(volume.size_gigabytes * 0.1, 2),
            "tags": tags,
        }
        self.snapshots.append(snapshot)
        self.tags.update(tags)
        return snapshot

    async def _list_volume_snapshots(self, request: web.Request) -> web.Response:
        volume = self._volume_or_none(request)
        if volume is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return _listing("snapshots", [s for s in self.snapshots if s["resource_id"] == volume.id])

    async def _create_volume_snapshot(self, request: web.Request) -> web.Response:
        volume = self._volume_or_none(request)
        if volume is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        body = request["json"] or {}
        name = str(body.get("name"))
        if any(s["name"] == name and s["resource_id"] == volume.id for s in self.snapshots):
            return _error(409, "conflict", "a snapshot with that name already exists")
        snapshot = self._volume_snapshot(volume, name, list(body.get("tags") or []))
        return web.json_response({"snapshot": snapshot}, status=201)

    def _snapshot_or_none(self, request: web.Request) -> dict[str, Any] | None:
        wanted = request.match_info["snapshot_id"]
        return next((s for s in self.snapshots if str(s["id"]) == wanted), None)

    async def _get_snapshot(self, request: web.Request) -> web.Response:
        snapshot = self._snapshot_or_none(request)
        if snapshot is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return web.json_response({"snapshot": snapshot})

    async def _delete_snapshot(self, request: web.Request) -> web.Response:
        snapshot = self._snapshot_or_none(request)
        if snapshot is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        self.snapshots.remove(snapshot)
        self.deleted_snapshots.append(snapshot)
        return web.Response(status=204)

    def _reserved_ip_json(self, reserved: FakeReservedIP) -> dict[str, Any]:
        droplet = self.droplets.get(reserved.droplet_id or -1)
        return {
            "ip": reserved.ip,
            "region": _region_json(reserved.region),
            "droplet": droplet.to_json() if droplet else None,
            "locked": False,
            "project_id": "746c6152-2fa2-11ed-92d3-27aaa54e4988",
        }

    async def _list_reserved_ips(self, request: web.Request) -> web.Response:
        found = [self._reserved_ip_json(r) for r in self.reserved_ips.values()]
        return _listing("reserved_ips", found)

    async def _create_reserved_ip(self, request: web.Request) -> web.Response:
        body = request["json"] or {}
        droplet = self.droplets.get(body.get("droplet_id") or -1)
        if "droplet_id" in body and droplet is None:
            return _error(404, "not_found", "The Droplet could not be found.")
        region = droplet.region if droplet else str(body.get("region"))
        reserved = FakeReservedIP(
            ip=f"127.1.0.{next(self._reserved_addresses)}",
            region=region,
            droplet_id=droplet.id if droplet else None,
        )
        self.reserved_ips[reserved.ip] = reserved
        return web.json_response({"reserved_ip": self._reserved_ip_json(reserved)}, status=202)

    async def _get_reserved_ip(self, request: web.Request) -> web.Response:
        reserved = self.reserved_ips.get(request.match_info["reserved_ip"])
        if reserved is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return web.json_response({"reserved_ip": self._reserved_ip_json(reserved)})

    async def _list_reserved_ip_actions(self, request: web.Request) -> web.Response:
        ip = request.match_info["reserved_ip"]
        return _listing("actions", [a.to_json() for a in self.actions if a.reserved_ip == ip])

    async def _reserved_ip_action(self, request: web.Request) -> web.Response:
        reserved = self.reserved_ips.get(request.match_info["reserved_ip"])
        if reserved is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        body = request["json"] or {}
        kind = str(body.get("type"))
        droplet_id = body.get("droplet_id")
        if kind == "assign" and droplet_id not in self.droplets:
            return _error(404, "not_found", "The Droplet could not be found.")
        action = self._start_resource_action(
            kind,
            region=reserved.region,
            droplet_id=droplet_id,
            params=body,
            reserved_ip=reserved.ip,
        )
        return web.json_response({"action": action.to_json()}, status=201)


def fingerprint(public_key: str) -> str:
    """DigitalOcean's fingerprint of an OpenSSH public key: MD5 of the key blob, colon hex."""
    import base64
    import hashlib

    parts = public_key.split()
    blob = base64.b64decode(parts[1]) if len(parts) > 1 else public_key.encode()
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(re.findall("..", digest))


def _fqdn(name: str, domain: str) -> str:
    return domain if name == "@" else f"{name}.{domain}"


def _truthy(value: Any) -> bool:
    # python-digitalocean sends the string "true"; other clients send a boolean.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _listing(key: str, items: list[dict[str, Any]]) -> web.Response:
    return web.json_response({key: items, "links": {}, "meta": {"total": len(items)}})


def _error(
    status: int, error_id: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"id": error_id, "message": message, "request_id": "fake-request"},
        status=status,
        headers=dict(headers or {}),
    )
