"""A TLJH server reached over SSH: what a DigitalOcean droplet and an operator's own server
(``provider: ssh``) share. Deploy, plan, status and restart are the engine's TLJH
operations; snapshot and resize need a provider's API, so a plain server refuses them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from deploy.engine import Engine, operation_result
from deploy.host.shared import SharedSource
from deploy.model import CourseConfig, Observed, OperationResult, Progress
from deploy.operations import deploy_course, hub_restart, server_resize, server_status
from deploy.providers.base import BeforeApply


class TLJHServer:
    """The TLJH operations on a server the service reaches over SSH."""

    name = "ssh"
    snapshot_refusal = (
        "`provider: ssh` servers cannot be snapshotted from here; use your provider's backups"
    )
    resize_refusal = (
        "`provider: ssh` servers cannot be resized from here; resize it with your provider"
    )

    async def deploy(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        *,
        mode: Literal["plan", "apply"],
        rebuild: bool,
        progress: Progress,
        before_apply: BeforeApply | None,
        checkpoint: Callable[[], None] | None,
        source: SharedSource | None,
    ) -> OperationResult:
        return await deploy_course.deploy(
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
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        last_seen: Observed | None,
        *,
        seen_at: str | None,
    ) -> OperationResult:
        return await deploy_course.plan_from_config(
            engine, course, config, last_seen, seen_at=seen_at
        )

    async def status(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig | None,
        *,
        progress: Progress,
        hub: str | None,
    ) -> OperationResult:
        return await server_status.status(engine, course, config, progress=progress, hub=hub)

    async def restart(
        self, engine: Engine, course: str, config: CourseConfig, *, reboot: bool, progress: Progress
    ) -> OperationResult:
        return await hub_restart.restart(engine, course, config, reboot=reboot, progress=progress)

    async def snapshot(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        name: str | None,
        *,
        progress: Progress,
    ) -> OperationResult:
        return operation_result("failure", "Could not snapshot", self.snapshot_refusal)

    async def resize(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        wanted: str,
        *,
        disk: bool,
        nodes: tuple[int, int] | None,
        progress: Progress,
    ) -> OperationResult:
        if nodes is not None:
            return operation_result(
                "failure", "Resize failed", server_resize.NODES_ARE_FOR_KUBERNETES
            )
        return operation_result("failure", "Resize failed", self.resize_refusal)
