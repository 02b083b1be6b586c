"""Fixture ``droplet``: an engine whose course droplet (the fake DigitalOcean's) answers SSH
on the loopback target, its block storage on, for the volume tests."""

from __future__ import annotations

import pytest

from deploy import operations
from deploy.keys import ServiceKey
from deploy.model import ServerRecord
from deploy.providers.droplets import DropletDriver
from deploy.ssh import SSHPool
from tests.support import volume_course
from tests.support.engine import TAGS, MemoryRecords, instant
from tests.support.volume_course import COURSE, NAME


@pytest.fixture
async def droplet(tmp_path, ssh_target, do_fake, monkeypatch):
    """A new droplet (nothing in /home, no TLJH) that answers SSH on the loopback target."""
    monkeypatch.setattr(volume_course, "PORT", ssh_target.port)
    ssh_target.empty_home()
    made = do_fake.add_droplet(NAME, tags=TAGS)
    do_fake.on_attach = lambda volume, _droplet: ssh_target.attach_volume(volume.name)
    records = MemoryRecords()
    records.records[COURSE] = ServerRecord(
        provider="digitalocean",
        address=ssh_target.host,
        port=ssh_target.port,
        droplet_id=made.id,
        host_key=ssh_target.host_key,
        size=made.size,
        region=made.region,
    )
    engine = operations.Engine(
        records=records,
        ssh=SSHPool(),
        service_key=ServiceKey(
            ssh_target.client_key,
            ssh_target.client_key.export_public_key("openssh").decode().strip(),
            "",
            "",
            tmp_path / "key",
        ),
        droplets=DropletDriver(do_fake.token, poll_interval=0.001, timeout=1.0, sleep=instant),
        ssh_poll_seconds=0.05,
    )
    yield engine
    await engine.close()
