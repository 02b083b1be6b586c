"""``/resize`` of a droplet: its CPU and RAM (the disk on request)."""

from __future__ import annotations

from dataclasses import replace

from deploy.engine import (
    Engine,
    OperationError,
    droplet_driver,
    hub_url,
    known_server,
    operation_result,
    server_target,
    wait_for_ssh,
)
from deploy.host import tljh
from deploy.model import (
    CourseConfig,
    OperationResult,
    Progress,
    Step,
)
from deploy.providers.droplets import DropletError, choose_size
from deploy.ssh import (
    SSHError,
)

NODES_ARE_FOR_KUBERNETES = "`--nodes` is for `provider: kubernetes` node pools"


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
    """Change the droplet's CPU and RAM (the disk only with ``disk``), then wait for SSH
    and the hub."""
    if nodes is not None:
        return operation_result("failure", "Resize failed", NODES_ARE_FOR_KUBERNETES)
    try:
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
