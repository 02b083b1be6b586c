"""``provider: kubernetes``: the course's hub as a Zero to JupyterHub release on its own
DigitalOcean Kubernetes cluster (``deploy.providers.kubernetes_course`` does the work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from deploy.engine import Engine, operation_result
from deploy.host.shared import SharedSource
from deploy.model import CourseConfig, Observed, OperationResult, Progress
from deploy.providers import kubernetes_course
from deploy.providers.base import BeforeApply


async def _silent(_line: str) -> None:
    """Progress nobody reads (a plan from the configuration alone)."""


class KubernetesCluster:
    """A course's cluster: deploy, plan, status, restart and node-pool resize."""

    name = "kubernetes"

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
        return await kubernetes_course.deploy(
            engine, course, config, mode=mode, progress=progress, before_apply=before_apply
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
        # The cluster's own plan is made from the config alone too.
        return await kubernetes_course.deploy(
            engine, course, config, mode="plan", progress=_silent, before_apply=None
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
        return await kubernetes_course.status(engine, course, config, progress=progress)

    async def restart(
        self, engine: Engine, course: str, config: CourseConfig, *, reboot: bool, progress: Progress
    ) -> OperationResult:
        return await kubernetes_course.restart(
            engine, course, config, reboot=reboot, progress=progress
        )

    async def snapshot(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        name: str | None,
        *,
        progress: Progress,
    ) -> OperationResult:
        return kubernetes_course.not_built("/snapshot")

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
        if disk:
            return operation_result(
                "failure",
                "Resize failed",
                "`--disk` is for droplets; nodes' disks come with their size",
            )
        return await kubernetes_course.resize(
            engine, course, config, size=wanted or None, nodes=nodes, progress=progress
        )
