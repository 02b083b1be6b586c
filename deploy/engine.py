"""The engine's public face: what every operation shares.

The ``Engine`` (where servers are remembered, SSH, the keys, DigitalOcean), the errors an
operation reports, and the pieces the operations in ``deploy.operations`` and the volume
operations (backup, recover, move-home) share: finding and reaching a course's server
(``known_server``, ``server_target``, ``remembered_target``, ``wait_for_ssh``), making its
droplet (``provision``, ``droplet_driver``) and its home volume (``course_home_volume``),
and an operation's result (``operation_result``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from deploy.host.observe import observe_script, parse_observation
from deploy.keys import CourseKey, ServiceKey
from deploy.model import (
    CourseConfig,
    Observed,
    OperationResult,
    Progress,
    ServerRecord,
    ServerRecords,
    StepResult,
)
from deploy.ownership import course_tag
from deploy.providers.droplets import DropletDriver
from deploy.redact import redact
from deploy.retry import RetryPolicy
from deploy.ssh import (
    KeyRefused,
    SSHPool,
    Target,
    Unreachable,
    fingerprint,
)
from deploy.volumes.volume_driver import VolumeDriver, VolumeInfo

# What says the server is not answering (yet), as opposed to answering wrongly.
UNREACHABLE = (Unreachable, OSError, TimeoutError)


class OperationError(Exception):
    """An operation cannot go on; the message is for the instructor."""


# A course's own DigitalOcean driver (its own token), or None to use the operator's.
DropletResolver = Callable[[str], Awaitable[DropletDriver | None]]


# A course's own SSH key pair, or None for a course the service cannot tell by its
# repository's id (then only the service's key is offered, as before per-course keys).
CourseKeyResolver = Callable[[str], Awaitable[CourseKey | None]]


# The server addresses the service remembers for every course but the one named.
OtherAddresses = Callable[[str], Awaitable[set[str]]]


@dataclass
class Engine:
    """What operations need: where servers are remembered, SSH, the key, DigitalOcean."""

    records: ServerRecords
    ssh: SSHPool
    service_key: ServiceKey
    droplets: DropletDriver | None = None
    ssh_wait_seconds: float = 600.0
    ssh_poll_seconds: float = 5.0
    droplet_resolver: DropletResolver | None = None
    key_resolver: CourseKeyResolver | None = None

    async def course_key(self, course: str) -> CourseKey | None:
        """The course's own SSH key pair (made on first need by the resolver)."""
        return await self.key_resolver(course) if self.key_resolver is not None else None

    # Where other courses' servers are: a `provider: ssh` host among them is refused.
    other_addresses: OtherAddresses | None = None
    # The only DNS domains hub.hostname may use (BOT_HUB_DOMAINS); empty: any.
    hub_domains: tuple[str, ...] = ()
    # The service's own public host name (BOT_PUBLIC_URL's): never a hub's.
    service_host: str | None = None
    # The repository id of a course (its ownership tag in DigitalOcean), for kubernetes.
    course_ids: Callable[[str], Awaitable[int | None]] | None = None
    # How the Kubernetes client waits for Jobs (poll_seconds, wait_seconds, sleep).
    cluster_options: dict[str, Any] = field(default_factory=dict)

    async def droplets_for(self, course: str) -> DropletDriver | None:
        """The driver for this course's droplets: its own token's, else the operator's."""
        if self.droplet_resolver is not None:
            own = await self.droplet_resolver(course)
            if own is not None:
                return own
        return self.droplets

    async def close(self) -> None:
        await self.ssh.close_all()


def hub_url(config: CourseConfig, record: ServerRecord | None) -> str | None:
    if config.hub.hostname:
        return f"https://{config.hub.hostname}"
    address = public_address(record)
    return f"http://{address}" if address else None


def public_address(record: ServerRecord | None) -> str | None:
    """Where people reach the hub: the course's reserved IP, else the droplet's address."""
    if record is None:
        return None
    return record.reserved_ip or record.address


def owner_tag(config: CourseConfig) -> str:
    """The course's tag on its cloud resources (``deploy.ownership``)."""
    if config.repo_id is None:
        raise OperationError(
            "the course's repository id is not known, so its cloud resources cannot be told "
            "apart from other courses'; nothing was done"
        )
    return course_tag(config.repo_id)


def hostname_refusal(engine: Engine, config: CourseConfig) -> str | None:
    """Why ``hub.hostname`` may not be used, from the config and the service's settings."""
    hostname = config.hub.hostname
    if not hostname:
        return None
    own = (engine.service_host or "").lower().rstrip(".")
    if own and (hostname == own or hostname.endswith("." + own)):
        return (
            f"hub.hostname {hostname} is the service's own address ({own}) or under it; "
            "a hub needs a name of its own. Nothing was changed."
        )
    if engine.hub_domains and not any(
        hostname == d or hostname.endswith("." + d) for d in engine.hub_domains
    ):
        return (
            f"hub.hostname {hostname} is not in a domain this service may use for hubs "
            f"({', '.join(engine.hub_domains)}, set by BOT_HUB_DOMAINS); ask its operator. "
            "Nothing was changed."
        )
    return None


async def _addresses_of(host: str) -> set[str]:
    """``host`` as addresses: itself if it is one, else what it resolves to now."""
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return set()
    return {str(info[4][0]) for info in infos}


async def foreign_host_refusal(engine: Engine, course: str, config: CourseConfig) -> str | None:
    """Why a `provider: ssh` host is not this course's to use, or ``None``: another
    course's server address, or an address in the operator's DigitalOcean account (a
    droplet or reserved IP) that is not this course's. Asked before any SSH connection."""
    server = config.server
    if server.provider != "ssh" or not server.host:
        return None
    addresses = await _addresses_of(server.host)
    if engine.other_addresses is not None:
        taken = addresses & await engine.other_addresses(course)
        if taken:
            return (
                f"server.host {server.host} is the address of another course's server "
                f"({', '.join(sorted(taken))}); a course may only use a server of its own. "
                "Nothing was done."
            )
    drivers = {id(d): d for d in (engine.droplets, await engine.droplets_for(course)) if d}
    own = course_tag(config.repo_id) if config.repo_id is not None else None
    for driver in drivers.values():
        for address, tags, _ in await driver.addresses():
            if address in addresses and (own is None or own not in tags):
                return (
                    f"server.host {server.host} is a DigitalOcean address of this service's "
                    f"account ({address}) that is not this course's; a `provider: ssh` "
                    "server must be one of your own. Nothing was done."
                )
    return None


async def server_target(
    engine: Engine, course: str, config: CourseConfig, record: ServerRecord
) -> Target:
    """Where to reach the server: its address, and the config's port, user and host key.

    The config decides for droplets as for ``provider: ssh`` servers: a droplet whose
    SSH listens on another port, or logs in as another user, is reached as the course says.
    """
    assert record.address is not None
    return await _with_keys(
        engine,
        course,
        record,
        Target(
            host=record.address,
            port=config.server.port,
            user=config.server.user,
            pinned_key=config.server.host_key or record.host_key,
        ),
    )


async def _with_keys(engine: Engine, course: str, record: ServerRecord, target: Target) -> Target:
    """``target`` with the keys this course offers this server.

    The course's own key, and after it the service's key only while the server may still
    trust it (``record.trusts_service_key``: a server from before per-course keys, until
    its next deploy moves it). So a course's deploy naming another course's server
    offers nothing that server trusts.
    """
    key = await engine.course_key(course)
    if key is None:
        return replace(target, client_key=engine.service_key.private)
    fallback = engine.service_key.private if record.trusts_service_key else None
    return replace(
        target, client_key=key.private, fallback_key=fallback, authorize_line=key.public_line
    )


async def remembered_target(engine: Engine, course: str, record: ServerRecord) -> Target:
    """Where to reach a remembered server without the course config (the monitor, /status)."""
    assert record.address is not None
    target = Target(record.address, record.port, record.user, record.host_key)
    return await _with_keys(engine, course, record, target)


async def known_server(
    engine: Engine, course: str, config: CourseConfig, progress: Progress | None = None
) -> ServerRecord | None:
    """The course's server: remembered, named by the config (``provider: ssh``), or found.

    The database is a cache: a droplet it does not remember is looked up in DigitalOcean
    by the config's ``server.name`` and the service's tag, and remembered again.
    """
    record = await engine.records.get_server(course)
    server = config.server
    if server.provider == "ssh":
        assert server.host is not None
        refused = await foreign_host_refusal(engine, course, config)
        if refused is not None:
            raise OperationError(refused)
        same = record is not None and record.address == server.host and record.port == server.port
        return ServerRecord(
            provider="ssh",
            address=server.host,
            port=server.port,
            user=server.user,
            host_key=server.host_key or (record.host_key if same and record else None),
            # Only the server this course already had may still trust the service's key.
            trusts_service_key=bool(same and record and record.trusts_service_key),
        )
    if record is not None and record.provider == "digitalocean" and record.droplet_id:
        return replace(record, port=server.port, user=server.user)
    droplets = await engine.droplets_for(course)
    if droplets is None:
        return None
    owner = owner_tag(config)
    found = await droplets.find(server.name, owner)
    if found is None or not found.ipv4:
        return None
    if progress is not None:
        await progress(
            f"found droplet {found.name} (id {found.id}) by the course's tag {owner}; "
            "remembering it"
        )
    found_record = ServerRecord(
        provider="digitalocean",
        address=found.ipv4,
        port=server.port,
        user=server.user,
        droplet_id=found.id,
        host_key=server.host_key,
        size=found.size,
        region=found.region,
    )
    await engine.records.save_server(course, found_record)
    return found_record


async def droplet_driver(engine: Engine, course: str) -> DropletDriver:
    """The course's DigitalOcean driver, or an OperationError that says none is configured."""
    droplets = await engine.droplets_for(course)
    if droplets is None:
        raise OperationError(
            "DigitalOcean is not configured on this service (DIGITALOCEAN_ACCESS_TOKEN); "
            "ask its operator, or use `provider: ssh` with a server of your own."
        )
    return droplets


async def provision(
    engine: Engine, course: str, config: CourseConfig, progress: Progress
) -> ServerRecord:
    """Ensure the course's droplet exists (never rebuilt) and remember it as its server."""
    server = config.server
    droplets = await droplet_driver(engine, course)
    key = await engine.course_key(course)
    previous = await engine.records.get_server(course)
    info = await droplets.ensure_droplet(
        server.name,
        owner_tag(config),
        server.region,
        server.size,
        server.image,
        key.public_line if key is not None else engine.service_key.public_line,
        progress,
        known_id=previous.droplet_id if previous and previous.provider == "digitalocean" else None,
    )
    record = ServerRecord(
        provider="digitalocean",
        address=info.ipv4,
        port=server.port,
        user=server.user,
        droplet_id=info.id,
        # A droplet with a new id is a new machine with a new host key.
        host_key=previous.host_key if previous and previous.droplet_id == info.id else None,
        size=info.size,
        region=info.region,
        reserved_ip=previous.reserved_ip if previous else None,
        # A droplet found by name may be one from before per-course keys.
        trusts_service_key=previous.trusts_service_key
        if previous and previous.droplet_id == info.id
        else True,
        dns_record_id=previous.dns_record_id if previous else None,
    )
    if record.reserved_ip and (previous is None or previous.droplet_id != info.id):
        # A new droplet for the course (the old one is gone): it takes the course's address.
        await VolumeDriver(droplets).assign_reserved_ip(record.reserved_ip, info.id, progress)
    await engine.records.save_server(course, record)
    return record


async def observe_server(
    engine: Engine,
    course: str,
    config: CourseConfig,
    record: ServerRecord,
    progress: Progress | None = None,
) -> Observed:
    """Everything the planner needs, in one SSH round trip; pins the host key on first contact."""
    target = await server_target(engine, course, config, record)
    _, stdout, _ = await engine.ssh.run_script(target, observe_script())
    remembered = replace(record, host_key=target.pinned_key)
    stored = await engine.records.get_server(course)
    if not target.pinned_key:
        _, seen = await engine.ssh.connect(target)  # the pooled connection: no new round trip
        remembered = replace(record, host_key=seen)
        if progress is not None and (stored is None or stored.host_key != seen):
            await progress(
                f"pinned the host key of {target.address} on first contact: {fingerprint(seen)}"
            )
    # Remembered for the monitor and /status, which work without the repository's config.
    if remembered != stored:
        await engine.records.save_server(course, remembered)
    return parse_observation(stdout)


async def wait_for_ssh(
    engine: Engine, course: str, config: CourseConfig, record: ServerRecord, progress: Progress
) -> Observed:
    """Observe the server once it answers over SSH (a new or rebooted droplet takes a while)."""

    async def on_retry(_failure: BaseException, _tries: int, _delay: float) -> None:
        await progress(f"waiting for SSH on {record.address}")

    def worth_waiting(failure: BaseException) -> bool:
        # A new droplet may refuse keys until cloud-init has put them in place; a
        # ``provider: ssh`` server that refuses the course's key waits for a person.
        refused = isinstance(failure, KeyRefused) and record.provider == "ssh"
        return isinstance(failure, UNREACHABLE) and not refused

    policy = RetryPolicy(
        retry_on=worth_waiting,
        attempts=None,
        within=engine.ssh_wait_seconds,
        wait=lambda _failure, _failures: engine.ssh_poll_seconds,
    )
    try:
        return await policy.call(
            lambda: observe_server(engine, course, config, record, progress), on_retry=on_retry
        )
    except KeyRefused as exc:
        if record.provider == "ssh":
            raise OperationError(str(exc)) from None
        raise OperationError(
            f"the server at {record.address} did not answer over SSH within "
            f"{engine.ssh_wait_seconds:.0f} s ({type(exc).__name__})"
        ) from None
    except UNREACHABLE as exc:
        raise OperationError(
            f"the server at {record.address} did not answer over SSH within "
            f"{engine.ssh_wait_seconds:.0f} s ({type(exc).__name__})"
        ) from None


def operation_result(
    conclusion: Literal["success", "failure", "neutral", "cancelled"],
    title: str,
    summary: str,
    *,
    log: str = "",
    steps: list[StepResult] | None = None,
    url: str | None = None,
    **details: object,
) -> OperationResult:
    """An operation's outcome, its summary and log redacted of anything secret-shaped."""
    return OperationResult(
        conclusion, title, redact(summary), redact(log), steps or [], url, dict(details)
    )


async def course_home_volume(
    engine: Engine, course: str, config: CourseConfig, progress: Progress
) -> VolumeInfo:
    """The course's volume found or created, grown to ``storage.size``, attached; and the
    course's reserved IP on its droplet."""
    record = await engine.records.get_server(course)
    if config.storage is None or record is None or record.droplet_id is None:
        raise OperationError("the course's volume needs its droplet, and none is known yet")
    volumes = VolumeDriver(await droplet_driver(engine, course))
    owner = owner_tag(config)
    volume = await volumes.ensure_home_volume(
        config.server.name,
        owner,
        record.region or config.server.region,
        config.storage.size_gib,
        progress,
        droplet_id=record.droplet_id,
    )
    attached = await volumes.attach(volume, owner, record.droplet_id, progress)
    volume = replace(attached, created=volume.created)
    region = record.region or config.server.region
    if record.reserved_ip:
        await volumes.assign_reserved_ip(record.reserved_ip, record.droplet_id, progress)
    else:
        reserved = await volumes.ensure_reserved_ip(record.droplet_id, region, progress)
        await engine.records.save_server(course, replace(record, reserved_ip=reserved))
    return volume
