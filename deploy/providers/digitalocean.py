"""``provider: digitalocean``: a droplet the service creates, resizes and snapshots in
DigitalOcean, with TLJH on it (reached over SSH like any TLJH server)."""

from __future__ import annotations

from deploy.engine import Engine
from deploy.model import CourseConfig, OperationResult, Progress
from deploy.operations import server_resize, server_snapshot
from deploy.providers.tljh_server import TLJHServer


class DropletServer(TLJHServer):
    """A course's droplet: the TLJH operations, and snapshot and resize through the API."""

    name = "digitalocean"

    async def snapshot(
        self,
        engine: Engine,
        course: str,
        config: CourseConfig,
        name: str | None,
        *,
        progress: Progress,
    ) -> OperationResult:
        return await server_snapshot.snapshot(engine, course, config, name, progress=progress)

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
        return await server_resize.resize(
            engine, course, config, wanted, disk=disk, nodes=nodes, progress=progress
        )
