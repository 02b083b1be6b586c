"""``/snapshot`` of a droplet: a DigitalOcean snapshot of the course's droplet."""

from __future__ import annotations

from datetime import UTC, datetime

from deploy.engine import (
    Engine,
    OperationError,
    droplet_driver,
    known_server,
    operation_result,
    owner_tag,
)
from deploy.model import (
    CourseConfig,
    OperationResult,
    Progress,
)
from deploy.planning.render import escape
from deploy.providers.droplets import DropletError

SNAPSHOT_NAME_LIMIT = 64


def snapshot_name(config: CourseConfig, name: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return (name or f"{config.server.name}-{stamp}")[:SNAPSHOT_NAME_LIMIT]


async def snapshot(
    engine: Engine, course: str, config: CourseConfig, name: str | None, *, progress: Progress
) -> OperationResult:
    try:
        record = await known_server(engine, course, config, progress)
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
