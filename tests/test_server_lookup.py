"""How operations find and reach a course's server: the config's port, user and host key
apply to droplets, a droplet the records forgot is found by name and tag, and waiting for
SSH is bounded. Against the fake DigitalOcean; no SSH server is needed."""

from __future__ import annotations

import socket

import asyncssh
import pytest

from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.model import DROPLET_TAG, ServerRecord
from deploy.ownership import course_tag
from deploy.providers.droplets import DropletDriver
from deploy.ssh import SSHPool
from tests.support.engine import OWNER, REPO_ID, TAGS, MemoryRecords, coded

COURSE = "octo-org/physics101"
NAME = coded("physics101-hub")


def config(extra: str = ""):
    text = (
        "server:\n  provider: digitalocean\n  name: physics101-hub\n"
        f"{extra}hub:\n  admins: [alice]\n"
    )
    return load_course({".github/classroom.yml": text.encode()}, "octo-org", "physics101", REPO_ID)


@pytest.fixture
def engine(do_fake, tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    service_key = ServiceKey(key, "", "", "", tmp_path / "key")
    return operations.Engine(
        records=MemoryRecords(),
        ssh=SSHPool(),
        service_key=service_key,
        droplets=DropletDriver(do_fake.token, poll_interval=0.001),
        ssh_wait_seconds=0.3,
        ssh_poll_seconds=0.05,
    )


async def progress_into(lines: list[str]):
    async def progress(line: str) -> None:
        lines.append(line)

    return progress


async def test_the_config_port_user_and_host_key_reach_a_droplet(engine) -> None:
    pinned = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtp3NuY76Bt19vHq5nw0bXQredWkiVPdEmBZy3Ndz0P"
    record = ServerRecord("digitalocean", address="127.0.0.9", droplet_id=5, host_key=None)
    target = await operations.server_target(
        engine, "o/r", config(f"  port: 2222\n  user: ubuntu\n  host_key: {pinned}\n"), record
    )
    assert (target.host, target.port, target.user) == ("127.0.0.9", 2222, "ubuntu")
    assert target.pinned_key == pinned


async def test_a_forgotten_droplet_is_found_by_its_course_tag_and_remembered(
    engine, do_fake
) -> None:
    do_fake.add_droplet(NAME)  # the same name without the tag is not the course's
    do_fake.add_droplet(NAME, tags=[DROPLET_TAG])  # nor with only the service's tag
    do_fake.add_droplet(NAME, tags=[DROPLET_TAG, course_tag(2002)])  # nor another course's
    droplet = do_fake.add_droplet(NAME, tags=TAGS, size="s-4vcpu-8gb")
    lines: list[str] = []
    found = await operations.known_server(
        engine, COURSE, config("  port: 2222\n"), await progress_into(lines)
    )
    assert found is not None
    assert (found.droplet_id, found.address, found.size) == (
        droplet.id,
        droplet.ipv4,
        "s-4vcpu-8gb",
    )
    assert (found.port, found.user, found.host_key) == (2222, "root", None)
    assert engine.records.records[COURSE] == found
    assert any(f"by the course's tag {OWNER}" in line for line in lines)


async def test_no_tagged_droplet_means_no_server_yet(engine, do_fake) -> None:
    do_fake.add_droplet(NAME)  # untagged
    do_fake.add_droplet(NAME, tags=[DROPLET_TAG])  # the service's, but no course's
    assert await operations.known_server(engine, COURSE, config()) is None
    assert engine.records.records == {}


async def test_a_remembered_droplet_is_not_looked_up_again(engine, do_fake) -> None:
    engine.records.records[COURSE] = ServerRecord(
        "digitalocean", address="127.0.0.9", droplet_id=77, port=22
    )
    found = await operations.known_server(engine, COURSE, config("  port: 2200\n"))
    assert found is not None and (found.droplet_id, found.port) == (77, 2200)
    assert do_fake.requests == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_waiting_for_ssh_is_bounded_and_says_so(engine) -> None:
    port = closed_port()
    record = ServerRecord("digitalocean", address="127.0.0.1", droplet_id=5, port=port)
    lines: list[str] = []
    with pytest.raises(operations.OperationError, match=r"did not answer over SSH within 0 s"):
        await operations.wait_for_ssh(
            engine, COURSE, config(f"  port: {port}\n"), record, await progress_into(lines)
        )
    waits = [line for line in lines if line.startswith("waiting for SSH")]
    assert 1 <= len(waits) <= 10
