"""Safety invariant 10: the database is a cache. With it deleted (the ``.env`` credentials
and the service's SSH key kept) and the service restarted, the next event finds the course's
droplet again by the course's tag (the repository's id, asked of GitHub again), through the
service's own /webhook, the fake GitHub and DigitalOcean, and the loopback SSH server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import make_app
from bot.services import SERVICES
from deploy.model import DROPLET_TAG
from deploy.ownership import course_name, course_tag
from deploy.providers.droplets import DropletDriver
from tests.fakes.digitalocean import DigitalOceanFake
from tests.plugins.classroom import Classroom, ssh_course_files
from tests.plugins.github_fake import COURSE_REPO

pytestmark = pytest.mark.sshd

READABLE = "physics101-hub"


def identity(github) -> tuple[int, str, str]:
    """The course's repository id, droplet name and owner tag, as the service derives them."""
    repo_id = github.repositories[COURSE_REPO].id
    return repo_id, course_name(READABLE, repo_id), course_tag(repo_id)


def droplet_config(port: int) -> bytes:
    return (
        "server:\n  provider: digitalocean\n"
        f"  name: {READABLE}\n  region: syd1\n  size: s-2vcpu-4gb\n  port: {port}\n"
        "hub:\n  admins: [alice]\n"
    ).encode()


class Service:
    """Starts and stops the service in-process on one data directory, as an operator would."""

    def __init__(self, aiohttp_client, settings, github_fake, ssh_target, do_fake) -> None:
        self.aiohttp_client = aiohttp_client
        self.settings = settings
        self.github = github_fake
        self.target = ssh_target
        self.do_fake = do_fake
        self.room: Classroom | None = None

    async def start(self) -> Classroom:
        client = await self.aiohttp_client(make_app(self.settings, monitoring=False))
        services = client.app[SERVICES]
        services.app_slug = self.github.app.slug
        services.engine.droplets = DropletDriver(
            self.do_fake.token, poll_interval=0.01, shutdown_timeout=1.0
        )
        self.room = Classroom(client, self.github, self.target)
        return self.room

    async def stop_and_lose_the_database(self) -> None:
        assert self.room is not None
        await self.room.settle()
        await self.room.client.close()
        data_dir: Path = self.settings.data_dir
        lost = list(data_dir.glob("classroom.sqlite3*"))
        assert lost, "the database was where the service keeps it"
        for path in lost:
            path.unlink()
        assert (data_dir / "ssh_ed25519").exists()


@pytest.fixture
def service(aiohttp_client, make_settings, github_fake, ssh_target, do_fake, tmp_path) -> Service:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    key_file = data_dir / "ssh_ed25519"
    key_file.write_bytes(ssh_target.client_key.export_private_key("openssh"))
    key_file.chmod(0o600)
    settings = make_settings(
        GITHUB_APP_ID=str(github_fake.app.id),
        GITHUB_PRIVATE_KEY=github_fake.app.private_key_pem,
        GITHUB_API_URL=github_fake.url,
        GITHUB_URL=github_fake.url,
        BOT_DATA_DIR=str(data_dir),
    )
    return Service(aiohttp_client, settings, github_fake, ssh_target, do_fake)


def the_course_droplet(do_fake: DigitalOceanFake, ssh_target, github):
    """The course's tagged droplet, whose address is the loopback SSH server."""
    _, name, owner = identity(github)
    droplet = do_fake.add_droplet(name, tags=[DROPLET_TAG, owner])
    droplet.ipv4 = ssh_target.host
    return droplet


def droplets_created(do_fake: DigitalOceanFake) -> list:
    return [r for r in do_fake.requests if (r.method, r.path) == ("POST", "/v2/droplets")]


async def comment(room: Classroom, example, body: str, number: int) -> str:
    issue = example("issue_comment", "created")["issue"]
    response = await room.comment(
        example, body, issue={**issue, "number": number, "pull_request": None}
    )
    assert response.status == 202
    await room.settle()
    replies = room.github.issues[(COURSE_REPO, number)].comments
    return replies[-1]["body"]


async def test_status_and_resize_find_the_droplet_after_the_database_is_lost(
    service: Service, do_fake, ssh_target, example
) -> None:
    droplet = the_course_droplet(do_fake, ssh_target, service.github)
    repo_id, name, owner = identity(service.github)
    assert ssh_target.port != 22
    room = await service.start()
    files = ssh_course_files(ssh_target)
    files[".github/classroom.yml"] = droplet_config(ssh_target.port)
    sha = room.commit(files)

    # Deployed on a droplet whose SSH listens on server.port, found by its name and tag.
    await room.push(example, sha)
    await room.settle()
    run = next(r for r in room.runs() if r["head_sha"] == sha)
    assert run["conclusion"] == "success", run["output"]
    log = run["output"]["text"]
    assert f"found droplet {name} (id {droplet.id}) by the course's tag {owner}" in log
    assert f"pinned the host key of {ssh_target.host}:{ssh_target.port} on first contact" in log
    assert ssh_target.state("services") == {"jupyterhub": "active", "traefik": "active"}
    assert droplets_created(do_fake) == []

    await service.stop_and_lose_the_database()
    room = await service.start()
    number = room.github.add_issue(COURSE_REPO, "Running the course hub").number

    reply = await comment(room, example, "/status", number)
    assert "Hub is running" in reply, reply
    assert f"{name} ({droplet.id}), s-2vcpu-4gb in syd1" in reply
    assert "No server yet" not in reply

    reply = await comment(room, example, "/resize s-4vcpu-8gb", number)
    assert "Resized to s-4vcpu-8gb" in reply, reply
    assert do_fake.droplets[droplet.id].size == "s-4vcpu-8gb"
    assert do_fake.droplets[droplet.id].status == "active"
    assert droplets_created(do_fake) == []
    # The monitor knows the course again: the answers put back what it needs.
    assert await room.services.store.course_facts(COURSE_REPO) == {
        "hub_url": f"http://{ssh_target.host}",
        "monitor_every": 300,
        "monitor_issue": True,
        "tljh_version": "2.0.0",
        "branch": "main",
        "backup_every": None,
        "monitor_signups": True,
        "hub_admins": ["alice"],
        "server_name": name,
        "repo_id": repo_id,
        "assignments": None,
    }
    monitored = await room.services.store.monitored_courses()
    assert [(course.full_name, facts["hub_url"]) for course, facts in monitored] == [
        (COURSE_REPO, f"http://{ssh_target.host}")
    ]
    assert ssh_target.canary.intact()


async def test_status_of_a_tagged_droplet_this_service_never_deployed(
    service: Service, do_fake, ssh_target, example
) -> None:
    droplet = the_course_droplet(do_fake, ssh_target, service.github)
    _, name, _ = identity(service.github)
    room = await service.start()
    files = ssh_course_files(ssh_target)
    files[".github/classroom.yml"] = droplet_config(ssh_target.port)
    room.commit(files)
    number = room.github.add_issue(COURSE_REPO, "Is the hub there?").number

    reply = await comment(room, example, "/status", number)
    assert f"{name} ({droplet.id}), s-2vcpu-4gb in syd1, power: active" in reply, reply
    # Nothing installed the hub on it yet: reachable over SSH, and not healthy.
    assert "Hub is not healthy" in reply
    assert "No server yet" not in reply
    # Found and remembered, with the host key pinned on first contact; the job's log says so.
    [job] = [j for j in await room.services.store.jobs() if j.kind == "command"]
    log = (job.result or {}).get("log", "")
    assert f"found droplet {name} (id {droplet.id})" in log, job.result
    assert f"pinned the host key of {ssh_target.host}:{ssh_target.port}" in log
    record = await room.services.store.get_server(COURSE_REPO)
    assert record is not None and record.droplet_id == droplet.id and record.host_key
    assert record.port == ssh_target.port


async def test_a_new_droplet_is_created_and_deployed_on_the_configured_port(
    service: Service, do_fake, ssh_target, example
) -> None:
    do_fake.new_droplet_address = ssh_target.host
    room = await service.start()
    files = ssh_course_files(ssh_target)
    files[".github/classroom.yml"] = droplet_config(ssh_target.port)
    sha = room.commit(files)

    await room.push(example, sha)
    await room.settle()
    run = next(r for r in room.runs() if r["head_sha"] == sha)
    assert run["conclusion"] == "success", run["output"]
    [created] = droplets_created(do_fake)
    _, name, owner = identity(service.github)
    assert created.body["name"] == name and created.body["tags"] == [DROPLET_TAG, owner]
    assert ssh_target.state("services") == {"jupyterhub": "active", "traefik": "active"}
    record = await room.services.store.get_server(COURSE_REPO)
    assert record is not None and (record.port, record.user) == (ssh_target.port, "root")
