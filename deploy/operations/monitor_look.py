"""The monitor's look at a server: services, disk, memory, waiting sign-ups."""

from __future__ import annotations

from deploy.engine import (
    Engine,
    remembered_target,
)
from deploy.host.observe import observe_script, parse_observation


async def look(engine: Engine, course: str) -> dict[str, object]:
    """For the monitor: services, disk and memory, from the remembered server."""
    record = await engine.records.get_server(course)
    if record is None or not record.address or record.provider == "kubernetes":
        return {}
    target = await remembered_target(engine, course, record)
    _, stdout, _ = await engine.ssh.run_script(target, observe_script())
    observed = parse_observation(stdout)
    return {
        "services": observed.services,
        "disk_used_percent": observed.disk_used_percent,
        "memory_available_bytes": observed.memory_available_bytes,
        # How many sign-ups wait for approval (None: the hub has no database yet).
        "waiting": len(observed.accounts.waiting) if observed.accounts.database else None,
    }
