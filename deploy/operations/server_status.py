"""``/status``: the server (provider, size, region, address, power) and its hub (version,
health, disk, memory).
"""

from __future__ import annotations

from deploy.engine import (
    UNREACHABLE,
    Engine,
    OperationError,
    hub_url,
    known_server,
    observe_server,
    operation_result,
    remembered_target,
)
from deploy.host.observe import observe_script, parse_observation
from deploy.model import (
    CourseConfig,
    Observed,
    OperationResult,
    Progress,
    ServerRecord,
)
from deploy.planning.render import escape, render_status
from deploy.providers.droplets import DropletError, DropletInfo
from deploy.ssh import (
    SSHError,
)


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
