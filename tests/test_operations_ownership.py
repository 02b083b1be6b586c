"""What a course may name as its hub's hostname and its own server, decided before anything
changes or any SSH connection is made: the service's own host, ``BOT_HUB_DOMAINS``,
another course's address, an address of the DigitalOcean account not the course's."""

from __future__ import annotations

import asyncssh
import pytest

from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.model import DROPLET_TAG
from deploy.ownership import course_tag
from deploy.providers.droplets import DropletDriver
from deploy.ssh import SSHPool
from tests.support.engine import OWNER, REPO_ID, MemoryRecords

COURSE = "octo-org/physics101"


def config(text: str):
    return load_course({".github/classroom.yml": text.encode()}, "octo-org", "physics101", REPO_ID)


def with_hostname(name: str):
    return config(f"hub:\n  hostname: {name}\n  letsencrypt_email: a@example.edu\n")


def ssh_at(host: str):
    return config(f"server:\n  provider: ssh\n  host: {host}\n")


def engine(tmp_path, **fields) -> operations.Engine:
    key = ServiceKey(asyncssh.generate_private_key("ssh-ed25519"), "", "", "", tmp_path / "k")
    return operations.Engine(records=MemoryRecords(), ssh=SSHPool(), service_key=key, **fields)


@pytest.mark.parametrize("name", ["classroom.example.edu", "hub.classroom.example.edu"])
def test_the_services_own_host_and_names_under_it_are_refused(tmp_path, name) -> None:
    e = engine(tmp_path, service_host="classroom.example.edu")
    refusal = operations.hostname_refusal(e, with_hostname(name))
    assert refusal is not None and "the service's own address" in refusal
    assert operations.hostname_refusal(e, with_hostname("hub.physics.example.edu")) is None


def test_only_the_listed_hub_domains_are_allowed(tmp_path) -> None:
    e = engine(tmp_path, hub_domains=("hubs.example.edu", "class.org"))
    assert operations.hostname_refusal(e, with_hostname("physics.hubs.example.edu")) is None
    assert operations.hostname_refusal(e, with_hostname("class.org")) is None
    refusal = operations.hostname_refusal(e, with_hostname("physics.example.edu"))
    assert refusal is not None and "BOT_HUB_DOMAINS" in refusal
    # A look-alike suffix is not the domain.
    assert operations.hostname_refusal(e, with_hostname("evilclass.org")) is not None
    assert operations.hostname_refusal(engine(tmp_path), with_hostname("any.where.org")) is None


async def test_another_courses_address_is_refused(tmp_path) -> None:
    async def others(course: str) -> set[str]:
        assert course == COURSE
        return {"203.0.113.7"}

    e = engine(tmp_path, other_addresses=others)
    refusal = await operations.foreign_host_refusal(e, COURSE, ssh_at("203.0.113.7"))
    assert refusal is not None and "another course's server" in refusal
    assert await operations.foreign_host_refusal(e, COURSE, ssh_at("203.0.113.8")) is None


async def test_an_address_of_the_account_not_the_courses_is_refused(tmp_path, do_fake) -> None:
    theirs = do_fake.add_droplet("their-hub", tags=[DROPLET_TAG, course_tag(REPO_ID + 1)])
    operators = do_fake.add_droplet("the-operators-own")
    ours = do_fake.add_droplet("our-hub", tags=[DROPLET_TAG, OWNER])
    e = engine(tmp_path, droplets=DropletDriver(do_fake.token, poll_interval=0.001))
    for droplet in (theirs, operators):
        refusal = await operations.foreign_host_refusal(e, COURSE, ssh_at(droplet.ipv4))
        assert refusal is not None and "DigitalOcean address" in refusal
    assert await operations.foreign_host_refusal(e, COURSE, ssh_at(ours.ipv4)) is None
