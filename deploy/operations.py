"""The engine's operations, for the service to call: deploy (plan or apply), resize,
restart, snapshot, status, and the monitor's look at a server.

Each reports progress line by line and returns an ``OperationResult`` (conclusion,
Markdown summary, redacted log). Operations are idempotent: running one again after a
crash or a cut connection converges instead of repeating side effects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from deploy import accounts, homevolume, kubernetes_course, planner, shared, tljh
from deploy.droplets import DropletDriver, DropletError, DropletInfo, choose_size
from deploy.keys import CourseKey, ServiceKey, forget_key_script, trust_key_script
from deploy.model import (
    CourseConfig,
    HubAccounts,
    Observed,
    OperationResult,
    Plan,
    Progress,
    ServerRecord,
    ServerRecords,
    Step,
    StepResult,
)
from deploy.observe import observe_script, parse_observation
from deploy.ownership import course_tag
from deploy.redact import redact
from deploy.render import escape, render_plan, render_status
from deploy.retry import RetryPolicy
from deploy.ssh import (
    HostKeyChanged,
    KeyRefused,
    SSHError,
    SSHPool,
    Target,
    Unreachable,
    fingerprint,
    stamp,
)
from deploy.volumes import VolumeDriver, VolumeInfo

ENGINE_STEPS = (
    "provision",
    "wait-ssh",
    "volume",
    "volume-snapshot",
    "dns",
    "accounts",
    "shared-fetch",
)
# What says the server is not answering (yet), as opposed to answering wrongly.
UNREACHABLE = (Unreachable, OSError, TimeoutError)
SNAPSHOT_NAME_LIMIT = 64


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
    cluster_options: dict = field(default_factory=dict)

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


async def _move_to_course_key(
    engine: Engine, course: str, config: CourseConfig, record: ServerRecord, progress: Progress
) -> ServerRecord:
    """Move a server that may still trust the service's key to the course's own key.

    Logged in with the course's key or else the service's, the course's key is added to
    the user's ``authorized_keys`` (once); a new login with the course's key alone must
    then work, and only after that the service key's line goes. A deploy cut anywhere in
    between leaves a server that one of the two keys still opens, and the next deploy,
    which offers the course's key first, finishes the move. Not reachable: nothing is
    changed, and the deploy reports the server as it would have.
    """
    key = await engine.course_key(course)
    if key is None or not record.trusts_service_key or not record.address:
        return record
    both = await server_target(engine, course, config, record)
    try:
        _, seen = await engine.ssh.connect(both)
        status, _, err = await engine.ssh.run_script(both, trust_key_script(key.public_line))
    except UNREACHABLE:
        return record
    if status != 0:
        raise OperationError(f"could not add the course's SSH key on the server: {err[-300:]}")
    alone = replace(both, fallback_key=None, pinned_key=both.pinned_key or seen)
    try:
        status, _, err = await engine.ssh.run_script(alone, "true")
    except Unreachable:
        raise OperationError(
            f"the server at {alone.address} still refuses the course's SSH key after it was "
            f"added to ~{alone.user}/.ssh/authorized_keys (does sshd read another "
            "AuthorizedKeysFile?); the service's key was left in place"
        ) from None
    if status == 0:
        forget = forget_key_script(key.public_line, engine.service_key.public_line)
        status, _, err = await engine.ssh.run_script(alone, forget)
    if status != 0:
        raise OperationError(f"could not remove the service's SSH key: {err[-300:]}")
    moved = replace(record, trusts_service_key=False)
    await engine.records.save_server(course, moved)
    await progress(f"the server now trusts the course's own SSH key ({key.name}) only")
    return moved


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


async def deploy(
    engine: Engine,
    course: str,
    config: CourseConfig,
    *,
    mode: Literal["plan", "apply"],
    rebuild: bool = False,
    progress: Progress,
    before_apply: Callable[[Plan], Awaitable[None]] | None = None,
    checkpoint: Callable[[], None] | None = None,
    source: shared.SharedSource | None = None,
) -> OperationResult:
    """Plan what the server needs; in ``apply`` mode, do it, step by step.

    The result's ``details["observed"]`` is what the server last reported, if it answered:
    the service keeps it for the plans that may not look (``plan_from_config``).
    ``source`` is the pushed commit the shared folders come from, and how to get a token
    to fetch it; without it a plan says what a push would fetch.
    """
    if config.server.provider == "kubernetes":
        return await kubernetes_course.deploy(
            engine, course, config, mode=mode, progress=progress, before_apply=before_apply
        )
    seen: list[Observed] = []
    try:
        result = await _deploy(
            engine,
            course,
            config,
            mode,
            rebuild,
            progress,
            before_apply,
            checkpoint,
            seen,
            source,
        )
    except (OperationError, SSHError, DropletError) as exc:
        result = operation_result("failure", "Could not deploy", str(exc))
    if seen and seen[-1].reachable:
        result = replace(result, details={**result.details, "observed": seen[-1]})
    return result


async def _silent(_line: str) -> None:
    return None


def _same_server(config: CourseConfig, record: ServerRecord | None) -> bool:
    """Whether ``config`` names the server the course has (as the store remembers it)."""
    if record is None:
        return False
    server = config.server
    if server.provider == "ssh":
        return record.provider == "ssh" and (record.address, record.port) == (
            server.host,
            server.port,
        )
    return record.provider == server.provider


async def plan_from_config(
    engine: Engine,
    course: str,
    config: CourseConfig,
    last_seen: Observed | None,
    *,
    seen_at: str | None = None,
) -> OperationResult:
    """A pull request's (or another branch's) plan, from its configuration alone.

    No SSH, no DigitalOcean, no write anywhere: the configuration is compared with what the
    service last recorded of the course's server (its record, and what the server reported
    when last observed by a deploy of the default branch or a command). A configuration
    naming another server than the course's is planned as a new server, and said so.
    """
    if config.server.provider == "kubernetes":
        # The cluster's own plan is made from the config alone too.
        return await kubernetes_course.deploy(
            engine, course, config, mode="plan", progress=_silent, before_apply=None
        )
    record = await engine.records.get_server(course)
    same = _same_server(config, record)
    observed = last_seen if same else None
    plan = planner.plan(config, observed, droplet_exists=same)
    notes = ["No server was contacted: this plan comes from the configuration alone."]
    if record is not None and not same:
        where = (
            f"`{escape(config.server.host or '')}:{config.server.port}`"
            if config.server.provider == "ssh"
            else f"a {escape(config.server.provider)} server"
        )
        notes.append(
            f"This configuration names another server ({where}) than the course's: "
            "merging it would deploy there, planned here as a new server."
        )
    elif observed is not None:
        notes.append(
            "Compared with the course's server as last observed"
            + (f" ({escape(seen_at)})." if seen_at else ".")
        )
    else:
        notes.append("The course's server has not been observed yet: planned as a new one.")
    title = "Nothing to do" if plan.empty else f"Plan: {len(plan.steps)} step(s)"
    summary = render_plan(plan) + "\n\n" + " ".join(notes)
    url = hub_url(config, record) if same else None
    return operation_result(
        "neutral" if plan.empty else "success", title, summary, url=url, plan=True
    )


async def _deploy(
    engine: Engine,
    course: str,
    config: CourseConfig,
    mode: str,
    rebuild: bool,
    progress: Progress,
    before_apply: Callable[[Plan], Awaitable[None]] | None,
    checkpoint: Callable[[], None] | None,
    seen: list[Observed],
    source: shared.SharedSource | None = None,
) -> OperationResult:
    refused = hostname_refusal(engine, config)
    if refused is not None:
        raise OperationError(refused)
    record = await known_server(engine, course, config, progress)
    if mode == "apply":
        record = await _claim(engine, course, config, record)
    commit = source.commit if source is not None else None
    observed = None
    if record is not None and mode == "apply":
        record = await _move_to_course_key(engine, course, config, record, progress)
    if record is not None:
        try:
            observed = await observe_server(engine, course, config, record, progress)
        except HostKeyChanged:
            raise
        except UNREACHABLE as exc:
            await progress(f"the server did not answer over SSH ({type(exc).__name__})")
            if isinstance(exc, KeyRefused):
                await progress(str(exc))
            observed = Observed(reachable=False)
        seen.append(observed)
    plan = planner.plan(
        config, observed, rebuild=rebuild, droplet_exists=record is not None, commit=commit
    )
    url = hub_url(config, record)
    if mode == "plan":
        title = "Nothing to do" if plan.empty else f"Plan: {len(plan.steps)} step(s)"
        return operation_result(
            "neutral" if plan.empty else "success", title, render_plan(plan), url=url, plan=True
        )
    if plan.empty:
        return operation_result("neutral", "Nothing to do", render_plan(plan), url=url)
    if before_apply is not None:
        await before_apply(plan)
    results: list[StepResult] = []
    steps = list(plan.steps)
    while steps:
        step = steps.pop(0)
        if checkpoint is not None:
            checkpoint()
        started = time.monotonic()
        await progress(f"step {step.name}: {step.reason}")
        if step.name == "accounts":
            assert record is not None
            result = await _seed_accounts(engine, course, config, record, step, progress)
            results.append(result)
            if not result.ok:
                return operation_result(
                    "failure",
                    "Admin accounts not created",
                    render_plan(plan, results=results),
                    steps=results,
                    url=hub_url(config, record),
                )
            continue
        if step.name == "volume":
            volume = await course_home_volume(engine, course, config, progress)
            if volume.created:
                # Only a volume this deploy created may be formatted (if it reads blank).
                steps = [homevolume.for_new_volume(s, volume.name) for s in steps]
            record = await engine.records.get_server(course) or record
            results.append(StepResult(step, True, time.monotonic() - started))
            continue
        if step.name == "shared-fetch":
            assert record is not None
            result = await _fetch_shared(engine, course, config, record, step, source, progress)
            results.append(result)
            if not result.ok:
                return operation_result(
                    "failure",
                    "Shared folders not fetched",
                    f"{render_plan(plan, results=results)}\n\n```\n{result.output_tail}\n```",
                    steps=results,
                    url=hub_url(config, record),
                )
            continue
        if step.name in ENGINE_STEPS:
            outcome = await _engine_step(engine, course, config, step, progress)
            if step.name == "provision":
                record = outcome  # type: ignore[assignment]
            ok = True
            if step.name == "wait-ssh":
                assert record is not None
                # Plan again against what the server says now: a droplet found by name may
                # already have the hub, and then only the differences remain to do.
                observed = await wait_for_ssh(engine, course, config, record, progress)
                seen.append(observed)
                replanned = planner.plan(config, observed, rebuild=rebuild, commit=commit)
                steps = [s for s in replanned.steps if s.name not in ("provision", "wait-ssh")]
                plan = Plan((*(r.step for r in results), step, *steps), replanned.kept)
            results.append(StepResult(step, ok, time.monotonic() - started))
            continue
        assert record is not None
        target = await server_target(engine, course, config, record)
        result = await engine.ssh.run_step(target, step, progress)
        results.append(result)
        if not result.ok:
            url = hub_url(config, record)
            summary = render_plan(plan, results=results)
            return operation_result(
                "failure",
                f"Step {step.name} failed",
                f"{summary}\n\n```\n{result.output_tail}\n```",
                steps=results,
                url=url,
            )
    if config.storage is not None and config.server.provider == "digitalocean":
        assert record is not None
        await _record_users(engine, course, config, record, progress)
    assert record is not None
    await _observe_after_apply(engine, course, config, record, seen)
    url = hub_url(config, record)
    return operation_result(
        "success",
        f"Deployed: {len(results)} step(s)",
        render_plan(plan, results=results),
        steps=results,
        url=url,
    )


async def _observe_after_apply(
    engine: Engine, course: str, config: CourseConfig, record: ServerRecord, seen: list[Observed]
) -> None:
    """What the server reports once a deploy applied everything: what pull requests' plans
    compare with until the next deploy. One round trip on the open connection; if it fails,
    the observation from before the deploy is not kept either (it no longer holds)."""
    try:
        seen.append(await observe_server(engine, course, config, record))
    except (SSHError, *UNREACHABLE):
        seen.clear()


async def _claim(
    engine: Engine, course: str, config: CourseConfig, record: ServerRecord | None
) -> ServerRecord | None:
    """Before a deploy changes anything: the course's droplet carries its tag (one made
    before courses had tags is tagged now, as the course's record names it), and
    ``hub.hostname`` is not a DNS name another course or anyone else holds."""
    if config.server.provider != "digitalocean":
        return record
    droplets = await droplet_driver(engine, course)
    owner = owner_tag(config)
    if record is not None and record.droplet_id:
        await droplets.find(config.server.name, owner, known_id=record.droplet_id)
    if config.hub.hostname:
        refused = await droplets.dns_refusal(
            config.hub.hostname, owner, record.dns_record_id if record else None
        )
        if refused is not None:
            raise OperationError(refused)
    return record


async def _seed_accounts(
    engine: Engine,
    course: str,
    config: CourseConfig,
    record: ServerRecord,
    step: Step,
    progress: Progress,
) -> StepResult:
    """Create the admins' hub accounts; a name a sign-up took meanwhile stops the deploy."""
    started = time.monotonic()
    try:
        target = await server_target(engine, course, config, record)
        seeded = await accounts.seed_admins(engine.ssh, target, step.names)
    except SSHError as exc:
        return StepResult(step, False, time.monotonic() - started, redact(str(exc)))
    if seeded.created:
        await progress(stamp(f"created hub accounts: {', '.join(seeded.created)}"))
    if seeded.taken:
        message = (
            f"{', '.join(seeded.taken)} signed up on the hub before the account could be made; "
            "it is left alone and not made an admin: check who it is on the hub"
        )
        await progress(stamp(message))
        return StepResult(step, False, time.monotonic() - started, message)
    return StepResult(step, True, time.monotonic() - started)


async def _fetch_shared(
    engine: Engine,
    course: str,
    config: CourseConfig,
    record: ServerRecord,
    step: Step,
    source: shared.SharedSource | None,
    progress: Progress,
) -> StepResult:
    """The server fetches the shared folders itself, with a fresh read-only token on stdin."""
    started = time.monotonic()
    if source is None:
        return StepResult(
            step,
            False,
            0.0,
            "the shared folders are fetched at a pushed commit: push to the default branch",
        )
    token = await source.token()
    try:
        status, out, err = await engine.ssh.run_script(
            await server_target(engine, course, config, record),
            shared.fetch_script(source, shared.read_only(config)),
            step.timeout,
            stdin=token + "\n",
        )
    except SSHError as exc:
        return StepResult(step, False, time.monotonic() - started, redact(str(exc)))
    tail = redact((out + err).replace(source.clone_url, "the repository"))[-2000:]
    if status != 0:
        return StepResult(step, False, time.monotonic() - started, tail)
    for line in out.splitlines()[-3:]:
        await progress(stamp(redact(line)))
    return StepResult(step, True, time.monotonic() - started)


async def _record_users(
    engine: Engine, course: str, config: CourseConfig, record: ServerRecord, progress: Progress
) -> None:
    """Keep the record of the server's Linux users (and its reserved IP) on the volume,
    for ``/recover``.

    Not a step: a deploy whose hub is running is not failed for it; the next one records.
    """
    try:
        status, _, err = await engine.ssh.run_script(
            await server_target(engine, course, config, record),
            homevolume.record_users_script(record.reserved_ip),
        )
    except (SSHError, *UNREACHABLE) as exc:
        status, err = -1, type(exc).__name__
    if status != 0:
        await progress(f"the students' accounts were not recorded on the volume: {err[-200:]}")


async def _engine_step(
    engine: Engine, course: str, config: CourseConfig, step: Step, progress: Progress
) -> ServerRecord | None:
    if step.name == "provision":
        return await provision(engine, course, config, progress)
    if step.name == "volume-snapshot":
        await _snapshot_home_volume(engine, course, config, progress)
    if step.name == "dns":
        record = await engine.records.get_server(course)
        address = public_address(record)
        if address and config.hub.hostname and record is not None:
            droplets = await droplet_driver(engine, course)
            made = await droplets.ensure_dns_a_record(
                config.hub.hostname, address, owner_tag(config), record.dns_record_id
            )
            if made is not None and made != record.dns_record_id:
                await engine.records.save_server(course, replace(record, dns_record_id=made))
            await progress(
                f"DNS A record {config.hub.hostname} → {address}"
                if made is not None
                else f"{config.hub.hostname} is not a domain in this DigitalOcean account; "
                "point its DNS at the server yourself"
            )
    return None


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


async def _snapshot_home_volume(
    engine: Engine, course: str, config: CourseConfig, progress: Progress
) -> None:
    """A snapshot before TLJH changes; if it fails, the change waits (the step raises)."""
    record = await engine.records.get_server(course)
    assert config.storage is not None and record is not None
    volumes = VolumeDriver(await droplet_driver(engine, course))
    owner = owner_tag(config)
    volume = await volumes.current_home_volume(
        config.server.name, owner, record.region or config.server.region, record.droplet_id
    )
    if volume is None:
        raise OperationError("the course's volume is missing; nothing was changed")
    await volumes.take_snapshot(volume, config.server.name, owner, datetime.now(UTC), progress)
    await volumes.prune_snapshots(config.server.name, owner, config.backup.keep, progress)


async def status(
    engine: Engine,
    course: str,
    config: CourseConfig | None,
    *,
    progress: Progress,
    hub: str | None = None,
) -> OperationResult:
    """Provider, size, region, address and power; hub version and health; disk and memory.

    With ``config`` the server is found as a deploy finds it (a droplet the database
    forgot is looked up by name and tag); without it (the repository's config has errors)
    it works from what the last deploy remembered.
    """
    remembered = await engine.records.get_server(course)
    if (config is not None and config.server.provider == "kubernetes") or (
        config is None and remembered is not None and remembered.provider == "kubernetes"
    ):
        return await kubernetes_course.status(engine, course, config, progress=progress)
    try:
        if config is not None:
            record = await known_server(engine, course, config, progress)
        else:
            record = await engine.records.get_server(course)
        if record is None or not record.address:
            return operation_result(
                "neutral",
                "No server yet",
                "No server yet: push to the default branch to create it.",
            )
        url = hub_url(config, record) if config is not None else hub or f"http://{record.address}"
        droplet = None
        droplets = await engine.droplets_for(course)
        if record.provider == "digitalocean" and record.droplet_id and droplets:
            droplet = await droplets.get(record.droplet_id)
        try:
            if config is not None:
                observed = await observe_server(engine, course, config, record, progress)
            else:
                target = await remembered_target(engine, course, record)
                _, stdout, _ = await engine.ssh.run_script(target, observe_script())
                observed = parse_observation(stdout)
        except UNREACHABLE as exc:
            observed = Observed(reachable=False)
            await progress(f"SSH failed: {type(exc).__name__}")
        summary = server_lines(record, droplet) + render_status(observed, hub_url=url)
    except (OperationError, SSHError, DropletError) as exc:
        return operation_result("failure", "Status unavailable", str(exc))
    healthy = observed.reachable and observed.services.get("jupyterhub") == "active"
    return operation_result(
        "success" if healthy else "failure",
        "Hub is running" if healthy else "Hub is not healthy",
        summary,
        url=url,
    )


async def restart(
    engine: Engine, course: str, config: CourseConfig, *, reboot: bool = False, progress: Progress
) -> OperationResult:
    """Restart the hub (or, on request, reboot the droplet), then wait until it answers."""
    if config.server.provider == "kubernetes":
        return await kubernetes_course.restart(
            engine, course, config, reboot=reboot, progress=progress
        )
    try:
        record = await known_server(engine, course, config, progress)
        if record is None:
            raise OperationError("there is no server yet: push to the default branch first")
        if reboot:
            if record.provider != "digitalocean" or not record.droplet_id:
                raise OperationError("only a DigitalOcean droplet can be rebooted from here")
            droplets = await droplet_driver(engine, course)
            await droplets.reboot(record.droplet_id, progress)
            await wait_for_ssh(engine, course, config, record, progress)
        step = Step(
            "restart",
            "restart the hub",
            tljh.script(*homevolume.hub_lines("restart"), *tljh.wait_for_hub()),
            timeout=300.0,
        )
        target = await server_target(engine, course, config, record)
        result = await engine.ssh.run_step(target, step, progress)
    except (OperationError, SSHError, DropletError) as exc:
        return operation_result("failure", "Could not restart", str(exc))
    if not result.ok:
        return operation_result(
            "failure", "The hub did not come back", f"```\n{result.output_tail}\n```"
        )
    return operation_result(
        "success",
        "Hub restarted",
        "The hub restarted and answers again.",
        url=hub_url(config, record),
    )


def snapshot_name(config: CourseConfig, name: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return (name or f"{config.server.name}-{stamp}")[:SNAPSHOT_NAME_LIMIT]


async def snapshot(
    engine: Engine, course: str, config: CourseConfig, name: str | None, *, progress: Progress
) -> OperationResult:
    if config.server.provider == "kubernetes":
        return kubernetes_course.not_built("/snapshot")
    try:
        record = await known_server(engine, course, config, progress)
        if config.server.provider != "digitalocean":
            raise OperationError(
                "`provider: ssh` servers cannot be snapshotted from here; "
                "use your provider's backups"
            )
        if record is None or not record.droplet_id:
            raise OperationError("there is no droplet yet: push to the default branch first")
        title = snapshot_name(config, name)
        droplets = await droplet_driver(engine, course)
        await droplets.snapshot(record.droplet_id, title, progress, owner_tag(config))
    except (OperationError, DropletError) as exc:
        return operation_result("failure", "Could not snapshot", str(exc))
    return operation_result(
        "success",
        f"Snapshot {title} taken",
        f"Snapshot `{escape(title)}` of droplet {record.droplet_id} is in your "
        "DigitalOcean account.",
    )


async def resize(
    engine: Engine,
    course: str,
    config: CourseConfig,
    wanted: str,
    *,
    disk: bool = False,
    nodes: tuple[int, int] | None = None,
    progress: Progress,
) -> OperationResult:
    """Change CPU and RAM (the disk only with ``disk``), then wait for SSH and the hub.

    A kubernetes course changes its node pool instead: its nodes' size, or with ``nodes``
    its autoscaling range.
    """
    if config.server.provider == "kubernetes":
        if disk:
            return operation_result(
                "failure",
                "Resize failed",
                "`--disk` is for droplets; nodes' disks come with their size",
            )
        return await kubernetes_course.resize(
            engine, course, config, size=wanted or None, nodes=nodes, progress=progress
        )
    if nodes is not None:
        return operation_result(
            "failure", "Resize failed", "`--nodes` is for `provider: kubernetes` node pools"
        )
    try:
        if config.server.provider != "digitalocean":
            raise OperationError(
                "`provider: ssh` servers cannot be resized from here; resize it with your provider"
            )
        record = await known_server(engine, course, config, progress)
        if record is None or not record.droplet_id:
            raise OperationError("there is no droplet yet: push to the default branch first")
        droplets = await droplet_driver(engine, course)
        region = record.region or config.server.region
        choice = choose_size(wanted, await droplets.list_sizes(), region)
        if choice.chosen is None:
            return operation_result(
                "neutral", f"No size matches {wanted}", choice.message, choice=None
            )
        slug = choice.chosen.slug
        if record.size == slug:
            return operation_result(
                "neutral", f"Already {slug}", f"The droplet is already `{slug}`."
            )
        info = await droplets.resize(record.droplet_id, slug, disk=disk, progress=progress)
        # A resize keeps the droplet and its address; only the size is new.
        record = replace(record, size=info.size)
        await engine.records.save_server(course, record)
        await wait_for_ssh(engine, course, config, record, progress)
        check = Step(
            "verify",
            "check the hub answers",
            tljh.script(*tljh.wait_for_hub()),
            changes_server=False,
        )
        target = await server_target(engine, course, config, record)
        verified = await engine.ssh.run_step(target, check, progress)
    except (OperationError, SSHError, DropletError) as exc:
        return operation_result("failure", "Resize failed", str(exc))
    note = choice.message
    if not verified.ok:
        return operation_result("failure", f"Resized to {slug}; the hub did not answer", note)
    return operation_result(
        "success", f"Resized to {slug}", note, url=hub_url(config, record), size=slug
    )


async def remembered_target(engine: Engine, course: str, record: ServerRecord) -> Target:
    """Where to reach a remembered server without the course config (the monitor, /status)."""
    assert record.address is not None
    target = Target(record.address, record.port, record.user, record.host_key)
    return await _with_keys(engine, course, record, target)


def server_lines(record: ServerRecord, droplet: DropletInfo | None) -> str:
    """The server half of /status, as Markdown lines."""
    lines = [f"- provider: {record.provider}", f"- address: {escape(record.address or 'unknown')}"]
    if droplet is not None:
        lines += [
            f"- droplet: {escape(droplet.name)} ({droplet.id}), {escape(droplet.size)} in "
            f"{escape(droplet.region)}, power: {escape(droplet.status)}",
            f"- {droplet.vcpus} vCPU, {droplet.memory} MB RAM, {droplet.disk} GB disk",
        ]
    return "\n".join(lines) + "\n\n"


async def look(engine: Engine, course: str) -> dict[str, object]:
    """For the monitor: services, disk and memory, from the remembered server."""
    record = await engine.records.get_server(course)
    if record is None or not record.address or record.provider == "kubernetes":
        return {}
    target = await remembered_target(engine, course, record)
    _, stdout, _ = await engine.ssh.run_script(target, observe_script())
    observed = parse_observation(stdout)
    return {
        "services": observed.services,
        "disk_used_percent": observed.disk_used_percent,
        "memory_available_bytes": observed.memory_available_bytes,
        # How many sign-ups wait for approval (None: the hub has no database yet).
        "waiting": len(observed.accounts.waiting) if observed.accounts.database else None,
    }


APPROVE_LIMIT = 100
# A password the console makes for a locked-out student: shown once, never stored.
RESET_PASSWORD_BYTES = 12


async def _on_kubernetes(engine: Engine, course: str) -> bool:
    record = await engine.records.get_server(course)
    return record is not None and record.provider == "kubernetes"


async def _quiet(_line: str) -> None:
    """Progress nobody reads (the console waits for the answer)."""


async def _hub_target(engine: Engine, course: str) -> Target:
    """The course's server as remembered: account work needs no repository read."""
    record = await engine.records.get_server(course)
    if record is not None and record.provider == "kubernetes":
        raise OperationError(
            "on a `provider: kubernetes` course only `/approve` and the admins' passwords "
            "reach the hub's accounts yet; manage the others on the hub's admin page"
        )
    if record is None or not record.address:
        raise OperationError("there is no server yet: push to the default branch first")
    return await remembered_target(engine, course, record)


# --- the console's account operations: each raises OperationError with the reason -----


async def hub_accounts(engine: Engine, course: str) -> HubAccounts:
    """Waiting sign-ups and students with their last activity, in one round trip."""
    try:
        return await accounts.list_accounts(engine.ssh, await _hub_target(engine, course))
    except SSHError as exc:
        raise OperationError(str(exc)) from None


async def discard_students(engine: Engine, course: str, names: list[str]) -> accounts.NamesOutcome:
    """Delete waiting sign-ups; approved accounts are kept (reported as ``already``)."""
    try:
        wanted = accounts.hub_names(names)
        return await accounts.discard(engine.ssh, await _hub_target(engine, course), wanted)
    except (accounts.AccountError, SSHError) as exc:
        raise OperationError(str(exc)) from None


async def set_hub_password(
    engine: Engine, course: str, name: str, password: str, again: str
) -> None:
    """An admin sets their own hub password (typed twice, the hub's own rules)."""
    try:
        accounts.check_new_password(password, again)
        if await _on_kubernetes(engine, course):
            answer = await kubernetes_course.accounts_action(
                engine, course, "set-password", accounts.password_request(name, password), _quiet
            )
            changed = bool(answer.get("updated"))
        else:
            changed = await accounts.set_password(
                engine.ssh, await _hub_target(engine, course), name, password
            )
    except (accounts.AccountError, SSHError, *kubernetes_course.ERRORS) as exc:
        raise OperationError(str(exc)) from None
    if not changed:
        raise OperationError(f"the hub has no account {name!r}: deploy first")


async def reset_student_password(engine: Engine, course: str, name: str) -> str:
    """A new password for a locked-out student, to show once; admins set their own."""
    try:
        target = await _hub_target(engine, course)
        wanted = accounts.hub_name(name)
        listed = await accounts.list_accounts(engine.ssh, target)
        if wanted in listed.seeded:
            raise OperationError(f"{wanted} is a hub admin: admins set their own password")
        if wanted not in {r.name for r in listed.approved}:
            raise OperationError(f"{wanted} is not an approved student on the hub")
        password = secrets.token_urlsafe(RESET_PASSWORD_BYTES)
        await accounts.set_password(engine.ssh, target, wanted, password)
    except (accounts.AccountError, SSHError) as exc:
        raise OperationError(str(exc)) from None
    return password


async def approve_students(
    engine: Engine, course: str, names: list[str], *, progress: Progress
) -> OperationResult:
    """``/approve NAME…``: authorise those waiting sign-ups, in one SSH round trip.

    Works from the remembered server (no repository read). The summary names only the
    names asked for, sorted into approved, already approved and unknown: nothing else
    about the hub's students is posted, as the repository may be public.
    """
    try:
        if not names:
            raise OperationError("name at least one student to approve: `/approve NAME…`")
        if len(names) > APPROVE_LIMIT:
            raise OperationError(
                f"at most {APPROVE_LIMIT} names at once ({len(names)} given); "
                "approve the rest on the console"
            )
        try:
            wanted = accounts.hub_names(names)
        except accounts.AccountError as exc:
            raise OperationError(str(exc)) from None
        if await _on_kubernetes(engine, course):
            answer = await kubernetes_course.accounts_action(
                engine, course, "approve", accounts.names_request(wanted), progress
            )
            outcome = accounts.NamesOutcome(*accounts.name_lists(answer, *accounts.APPROVED))
        else:
            target = await _hub_target(engine, course)
            outcome = await accounts.approve(engine.ssh, target, wanted)
    except (OperationError, SSHError, *kubernetes_course.ERRORS) as exc:
        return operation_result("failure", "Could not approve", str(exc))
    await progress(stamp(f"approved {len(outcome.done)}, already {len(outcome.already)}"))
    lines = []
    for label, group in (
        ("Approved; they can log in now", outcome.done),
        ("Already approved", outcome.already),
        ("Unknown: nobody signed up under these names", outcome.unknown),
    ):
        if group:
            lines.append(f"- {label}: {', '.join(escape(n) for n in group)}")
    title = (
        f"Approved {len(outcome.done)} student{'s' if len(outcome.done) != 1 else ''}"
        if outcome.done
        else "Nobody new approved"
    )
    return operation_result(
        "success" if outcome.done or not outcome.unknown else "neutral",
        title,
        "\n".join(lines),
        approved=list(outcome.done),
        already=list(outcome.already),
        unknown=list(outcome.unknown),
    )
