"""The engine's operations, for the service to call: deploy (plan or apply), status,
restart, snapshot, resize, the monitor's look at a server, and the hub's accounts.

One module per operation; what they share is ``deploy.engine``, re-exported here with
them so the service reaches the whole engine through this one name. The operations that
differ by where the hub runs are dispatched here to the course's provider
(``deploy.providers``), which runs this package's TLJH operations on a droplet or an own
server, or the kubernetes course's. Each operation
reports progress line by line and returns an ``OperationResult`` (conclusion, Markdown
summary, redacted log). Operations are idempotent: running one again after a crash or a
cut connection converges instead of repeating side effects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from deploy.engine import (
    UNREACHABLE,
    Engine,
    OperationError,
    course_home_volume,
    foreign_host_refusal,
    hostname_refusal,
    hub_url,
    known_server,
    observe_server,
    operation_result,
    provision,
    remembered_target,
    server_target,
    wait_for_ssh,
)
from deploy.host.shared import SharedSource
from deploy.model import CourseConfig, Observed, OperationResult, Progress
from deploy.operations.hub_account_actions import (
    approve_students,
    discard_students,
    hub_accounts,
    reset_student_password,
    set_hub_password,
)
from deploy.operations.monitor_look import look
from deploy.operations.server_snapshot import snapshot_name
from deploy.operations.server_status import server_lines
from deploy.providers.base import BeforeApply
from deploy.providers.registry import provider_for

__all__ = [
    "UNREACHABLE",
    "Engine",
    "OperationError",
    "approve_students",
    "course_home_volume",
    "deploy",
    "discard_students",
    "foreign_host_refusal",
    "hostname_refusal",
    "hub_accounts",
    "hub_url",
    "known_server",
    "look",
    "observe_server",
    "operation_result",
    "plan_from_config",
    "provision",
    "remembered_target",
    "reset_student_password",
    "resize",
    "restart",
    "server_lines",
    "server_target",
    "set_hub_password",
    "snapshot",
    "snapshot_name",
    "status",
    "wait_for_ssh",
]


# --- the operations that differ by provider: each asks the course's provider ------------


async def deploy(
    engine: Engine,
    course: str,
    config: CourseConfig,
    *,
    mode: Literal["plan", "apply"],
    rebuild: bool = False,
    progress: Progress,
    before_apply: BeforeApply | None = None,
    checkpoint: Callable[[], None] | None = None,
    source: SharedSource | None = None,
) -> OperationResult:
    """Plan what the course's hub needs; in ``apply`` mode, do it, step by step.

    The result's ``details["observed"]`` is what the server last reported, if it answered:
    the service keeps it for the plans that may not look (``plan_from_config``).
    ``source`` is the pushed commit the shared folders come from, and how to get a token
    to fetch it; without it a plan says what a push would fetch.
    """
    return await provider_for(config.server.provider).deploy(
        engine,
        course,
        config,
        mode=mode,
        rebuild=rebuild,
        progress=progress,
        before_apply=before_apply,
        checkpoint=checkpoint,
        source=source,
    )


async def plan_from_config(
    engine: Engine,
    course: str,
    config: CourseConfig,
    last_seen: Observed | None,
    *,
    seen_at: str | None = None,
) -> OperationResult:
    """A pull request's (or another branch's) plan, from its configuration alone: no SSH,
    no provider's API, no write anywhere."""
    return await provider_for(config.server.provider).plan_from_config(
        engine, course, config, last_seen, seen_at=seen_at
    )


async def status(
    engine: Engine,
    course: str,
    config: CourseConfig | None,
    *,
    progress: Progress,
    hub: str | None = None,
) -> OperationResult:
    """``/status``: with ``config``, of the server it names; without it (the repository's
    config has errors), of the server the last deploy remembered."""
    if config is not None:
        name = config.server.provider
    else:
        remembered = await engine.records.get_server(course)
        name = remembered.provider if remembered is not None else "ssh"
    return await provider_for(name).status(engine, course, config, progress=progress, hub=hub)


async def restart(
    engine: Engine, course: str, config: CourseConfig, *, reboot: bool = False, progress: Progress
) -> OperationResult:
    """``/restart``: the hub (or, on request, the machine), then wait until it answers."""
    return await provider_for(config.server.provider).restart(
        engine, course, config, reboot=reboot, progress=progress
    )


async def snapshot(
    engine: Engine, course: str, config: CourseConfig, name: str | None, *, progress: Progress
) -> OperationResult:
    """``/snapshot``: a snapshot of the course's server in the provider's account."""
    return await provider_for(config.server.provider).snapshot(
        engine, course, config, name, progress=progress
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
    """``/resize``: a droplet's size, or a kubernetes course's node pool."""
    return await provider_for(config.server.provider).resize(
        engine, course, config, wanted, disk=disk, nodes=nodes, progress=progress
    )
