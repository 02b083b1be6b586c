"""A classroom whose course runs on a DigitalOcean droplet (the fake API's) that answers SSH
on the loopback target: deployed once, with an issue to comment commands on."""

from __future__ import annotations

from deploy.model import ServerRecord
from deploy.providers.droplets import DropletDriver
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO


def do_config(port: int) -> str:
    # The droplet's SSH is the loopback server's port: server.port applies to droplets too.
    return (
        "server:\n  provider: digitalocean\n  name: physics101-hub\n  region: syd1\n"
        f"  size: s-2vcpu-4gb\n  port: {port}\nhub:\n  admins: [alice]\n"
    )


async def droplet_classroom(classroom, do_fake, example) -> tuple[int, str]:
    """A course on a DigitalOcean droplet, deployed once; the droplet answers SSH on loopback."""
    droplet = do_fake.add_droplet("physics101-hub", tags=["littlest-classroom"])
    classroom.services.engine.droplets = DropletDriver(
        do_fake.token, poll_interval=0.01, shutdown_timeout=1.0
    )
    await classroom.services.store.save_server(
        COURSE_REPO,
        ServerRecord(
            provider="digitalocean",
            address=classroom.target.host,
            port=classroom.target.port,
            droplet_id=droplet.id,
            size=droplet.size,
            region=droplet.region,
        ),
    )
    files = ssh_course_files(classroom.target)
    files[".github/classroom.yml"] = do_config(classroom.target.port).encode()
    sha = classroom.commit(files)
    await classroom.push(example, sha)
    await classroom.settle()
    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert run["conclusion"] == "success", run["output"]
    issue = classroom.github.add_issue(COURSE_REPO, "Running the course hub")
    return droplet.id, issue.number


def issue_payload(example, number: int) -> dict:
    issue = example("issue_comment", "created")["issue"]
    return {**issue, "number": number, "pull_request": None}
