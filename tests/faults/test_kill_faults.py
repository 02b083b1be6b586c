"""The service killed with SIGKILL at random moments (fixed seeds) during a deploy and during
a resize, then started again on the same data directory. Afterwards no check run is left
open, the droplet is on, the job's outcome is recorded and reported once (one deployment,
ended once), the students' /home is untouched, and nothing was done twice."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from bot.store import Store
from deploy.model import ServerRecord
from tests.faults.service_process import ServiceProcess, comment_payload, push_payload
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO

pytestmark = pytest.mark.sshd

# A deploy on the loopback target runs 10 SSH commands: the kill lands just after the
# N-th has started, so it is inside the deploy whatever the machine's speed.
KILL_AFTER_COMMANDS = [1, 2, 3, 5, 7, 8, 9]
RESIZE_SEEDS = [21, 22, 23]
# The droplet's SSH is the loopback server's port: server.port applies to droplets too.
DO_CONFIG = (
    "server:\n  provider: digitalocean\n  name: physics101-hub\n  region: syd1\n"
    "  size: s-2vcpu-4gb\n  port: {port}\nhub:\n  admins: [alice]\n"
)


def completions(github, run_id: int) -> int:
    return sum(1 for body in github.check_run_history(run_id) if body.get("status") == "completed")


def assert_every_run_completed_once(github) -> None:
    assert github.check_runs, "a check run was opened"
    for run_id, run in github.check_runs.items():
        assert run.current["status"] == "completed", run.current
        assert completions(github, run_id) == 1, github.check_run_history(run_id)


@pytest.fixture
async def service(tmp_path, github_fake, ssh_target, do_fake):
    process = ServiceProcess(tmp_path, github_fake, ssh_target, do_fake)
    yield process
    await process.stop()


async def commands_started(ssh_target, count: int, timeout: float = 60.0) -> None:
    """Wait until the loopback server has been asked to run ``count`` commands."""
    log = ssh_target.sandbox / "log" / "commands.log"
    for _ in range(int(timeout / 0.01)):
        if log.exists() and len(log.read_text().splitlines()) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} SSH commands arrived")


@pytest.mark.parametrize("commands", KILL_AFTER_COMMANDS)
async def test_killed_during_a_deploy(service, github_fake, ssh_target, example, commands):
    sha = github_fake.put_commit(COURSE_REPO, ssh_course_files(ssh_target), branch="main")
    await service.start()

    assert await service.deliver("push", push_payload(example, sha)) == 202
    await service.job_running()
    await commands_started(ssh_target, commands)
    service.kill()
    # The kill landed inside the deploy: its job was still running when the power went.
    assert [j["state"] for j in service.jobs()] == ["running"]
    await service.start()
    await service.settled(github_fake)

    assert_every_run_completed_once(github_fake)
    runs = [r.current for r in github_fake.check_runs.values() if r.current["head_sha"] == sha]
    assert len(runs) == 1, "one check run for the commit, however many starts"
    jobs = service.jobs()
    assert [j["state"] for j in jobs] == ["done"], jobs
    assert json.loads(jobs[0]["result"])["conclusion"] in ("success", "neutral")
    assert runs[0]["conclusion"] in ("success", "neutral"), runs[0]["output"]

    config = ssh_target.state("tljh-config")
    assert config["users"]["admin"] == ["alice"]
    assert ssh_target.canary.intact()
    # Exactly one deployment for the commit, however many starts, and it ends once, in
    # success, pointing at the hub: none left in progress, none made twice.
    deployments = list(github_fake.deployments.values())
    assert len(deployments) == 1, deployments
    assert (deployments[0]["sha"], deployments[0]["environment"]) == (sha, "classroom")
    statuses = github_fake.deployment_statuses[deployments[0]["id"]]
    finals = [s for s in statuses if s["state"] in ("success", "failure", "error")]
    assert len(finals) == 1 and statuses[-1] is finals[0], statuses
    assert finals[0]["state"] == "success" and finals[0]["environment_url"], finals[0]


async def seed_droplet_course(service, do_fake, ssh_target, github_fake) -> int:
    droplet = do_fake.add_droplet("physics101-hub", tags=["littlest-classroom"])
    store = await Store.open(service.data_dir)
    await store.save_server(
        COURSE_REPO,
        ServerRecord(
            provider="digitalocean",
            address=ssh_target.host,
            port=ssh_target.port,
            droplet_id=droplet.id,
            host_key=ssh_target.host_key,
            size=droplet.size,
            region=droplet.region,
        ),
    )
    await store.close()
    (ssh_target.sandbox / "state" / "services.json").write_text(
        json.dumps({"jupyterhub": "active", "traefik": "active"})
    )
    files = ssh_course_files(ssh_target)
    files[".github/classroom.yml"] = DO_CONFIG.format(port=ssh_target.port).encode()
    github_fake.put_commit(COURSE_REPO, files, branch="main")
    return droplet.id


@pytest.mark.parametrize("seed", RESIZE_SEEDS)
async def test_killed_during_a_resize(service, github_fake, do_fake, ssh_target, example, seed):
    # Each action is in progress at its first poll and done at the second, which the
    # service makes 5 s later: a resize takes about 15 s, and the kill lands inside it.
    kill_after = random.Random(seed).uniform(0.3, 11.0)
    droplet_id = await seed_droplet_course(service, do_fake, ssh_target, github_fake)
    issue = github_fake.add_issue(COURSE_REPO, "Running the course hub")
    await service.start()

    payload = comment_payload(example, "/resize s-4vcpu-8gb", issue.number, 555001)
    assert await service.deliver("issue_comment", payload) == 202
    await service.job_running()
    await asyncio.sleep(kill_after)
    service.kill()
    await service.start()
    await service.settled(github_fake)

    droplet = do_fake.droplets[droplet_id]
    assert droplet.status == "active"
    assert droplet.size == "s-4vcpu-8gb"
    resizes = [a for a in do_fake.actions if a.type == "resize" and a.status == "completed"]
    assert len(resizes) == 1, [a.params for a in resizes]
    assert all(a.params["disk"] is False for a in do_fake.actions if a.type == "resize")
    jobs = service.jobs()
    assert [j["state"] for j in jobs] == ["done"], jobs
    comments = github_fake.issues[(COURSE_REPO, issue.number)].comments
    assert len(comments) == 1, [c["body"] for c in comments]
    assert "s-4vcpu-8gb" in comments[0]["body"]
    final = [r["content"] for r in github_fake.reactions if r["content"] != "eyes"]
    assert final == ["rocket"]
    assert ssh_target.canary.intact()
    assert not any(i.title != "Running the course hub" for i in github_fake.issues.values())
