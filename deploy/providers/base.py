"""The ``Provider`` protocol: what the engine's operations ask of where a course's hub runs.

``deploy.operations`` dispatches each operation to the course's provider
(``deploy.providers.registry.provider_for(config.server.provider)``): a new provider is one
module in ``deploy/providers/`` implementing this protocol, and one line in the registry.
Every method returns an ``OperationResult``; what a provider cannot do, it says so in a
failed or neutral result rather than raising.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, Protocol

from deploy.model import CourseConfig, Observed, OperationResult, Plan, Progress

if TYPE_CHECKING:
    from deploy.engine import Engine
    from deploy.host.shared import SharedSource

BeforeApply = Callable[[Plan], Awaitable[None]]


class Provider(Protocol):
    """One kind of server a course may name in ``server.provider``."""

    name: str

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
        """Plan what the course's hub needs; in ``apply`` mode, do it."""
        ...

    async def plan_from_config(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        last_seen: Observed | None,
        *,
        seen_at: str | None,
    ) -> OperationResult:
        """A pull request's plan, from its configuration alone: nothing contacted."""
        ...

    async def status(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig | None,
        *,
        progress: Progress,
        hub: str | None,
    ) -> OperationResult:
        """The server and its hub's health (``config`` None: from what was remembered)."""
        ...

    async def restart(
        self, engine: Engine, course: str, config: CourseConfig, *, reboot: bool, progress: Progress
    ) -> OperationResult:
        """Restart the hub (or, with ``reboot``, the machine), then wait until it answers."""
        ...

    async def snapshot(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        name: str | None,
        *,
        progress: Progress,
    ) -> OperationResult:
        """A snapshot of the course's server in the provider's account."""
        ...

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
        """Change the server's size (or a cluster's nodes)."""
        ...
