"""Deploy a course (plan or apply) on its server, and plan a pull request's configuration
without touching anything.

Observe the server in one SSH round trip, plan (``deploy.planning.planner``), and in apply mode run
each step: the engine's own steps (provision, volume, DNS, accounts, shared folders) here,
the others over SSH. Running it again after a crash or a cut connection converges.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from deploy.engine import (
    UNREACHABLE,
    Engine,
    OperationError,
    course_home_volume,
    droplet_driver,
    hostname_refusal,
    hub_url,
    known_server,
    observe_server,
    operation_result,
    owner_tag,
    provision,
    public_address,
    server_target,
    wait_for_ssh,
)
from deploy.host import accounts, shared
from deploy.keys import forget_key_script, trust_key_script
from deploy.model import (
    CourseConfig,
    Observed,
    OperationResult,
    Plan,
    Progress,
    ServerRecord,
    Step,
    StepResult,
)
from deploy.planning import planner
from deploy.planning.render import escape, render_plan
from deploy.providers.droplets import DropletError
from deploy.redact import redact
from deploy.ssh import (
    HostKeyChanged,
    KeyRefused,
    SSHError,
    Unreachable,
    stamp,
)
from deploy.volumes import homevolume
from deploy.volumes.volume_driver import VolumeDriver

ENGINE_STEPS = (
    "provision",
    "wait-ssh",
    "volume",
    "volume-snapshot",
    "dns",
    "accounts",
    "shared-fetch",
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
                record = outcome
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
