"""``/restart``: restart the hub (or reboot the droplet), then wait until it answers."""

from __future__ import annotations

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
from deploy.providers.droplets import DropletError
from deploy.ssh import (
    SSHError,
)
from deploy.volumes import homevolume


async def restart(
    engine: Engine, course: str, config: CourseConfig, *, reboot: bool = False, progress: Progress
) -> OperationResult:
    """Restart the hub (or, on request, reboot the droplet), then wait until it answers."""
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
