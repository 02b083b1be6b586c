"""Crash recovery: the service SIGKILLed mid-deploy, or with a job accepted but not started,
then started again on the same data directory, finishes what it accepted.

The service runs as operators run it (``python -m bot``), against the fake GitHub and the
loopback SSH server; a stand-in ``apt-get`` that hangs holds the deploy mid-step at a
known point, so the kill point is fixed rather than random.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.github import FakeGitHub
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.plugins.service import WEBHOOK_SECRET, signed_headers
from tests.support.service_process import ServiceProcess

pytestmark = pytest.mark.sshd

# A limit, not a wait: generous, as the restarted service runs two jobs on a machine that
# may be busy with other tests (pytest-xdist workers).
SETTLE_SECONDS = 300.0


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def push_payload(example: Callable[..., dict], sha: str, branch: str = "main") -> dict[str, Any]:
    """GitHub's published push example, pointed at the course repository and ``sha``."""
    payload = example("push")
    repository = dict(payload["repository"])
    owner, name = COURSE_REPO.split("/")
    repository.update(
        full_name=COURSE_REPO,
        name=name,
        default_branch="main",
        owner={**repository["owner"], "login": owner},
    )
    payload.update(
        ref=f"refs/heads/{branch}",
        after=sha,
        deleted=False,
        repository=repository,
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    return payload


async def deliver_push(service: ServiceProcess, payload: dict[str, Any]) -> int:
    body = json.dumps(payload).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            service.url + "/webhook", data=body, headers=signed_headers(body, "push")
        ) as response,
    ):
        return response.status


def runs_for(github: FakeGitHub, sha: str) -> list[dict[str, Any]]:
    return [run.current for run in github.check_runs.values() if run.current["head_sha"] == sha]


def deployments_for(github: FakeGitHub, sha: str) -> list[dict[str, Any]]:
    return [d for d in github.deployments.values() if d["sha"] == sha]


def open_runs(github: FakeGitHub) -> list[dict[str, Any]]:
    return [
        run.current for run in github.check_runs.values() if run.current["status"] != "completed"
    ]


def hanging(target) -> list[Path]:
    """Stand-in calls sleeping on a ``hang_next`` right now."""
    return list((target.sandbox / "control").glob("hanging-*"))


@pytest.fixture
def course_service(
    github_fake: FakeGitHub, ssh_target, service_process, tmp_path: Path
) -> Callable[[], ServiceProcess]:
    """Starts the service as a child process wired to the fakes, with its own data dir."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    # The service's own SSH key is the one the loopback server authorises.
    key_file = data_dir / "ssh_ed25519"
    key_file.write_bytes(ssh_target.client_key.export_private_key("openssh"))
    key_file.chmod(0o600)
    settings = {
        "BOT_ENV_FILE": str(tmp_path / ".env"),
        "BOT_DATA_DIR": str(data_dir),
        "GITHUB_APP_ID": str(github_fake.app.id),
        "GITHUB_PRIVATE_KEY": github_fake.app.private_key_pem,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": github_fake.url,
        "GITHUB_URL": github_fake.url,
    }

    def start() -> ServiceProcess:
        return service_process(settings)

    return start


# Where the deploy is when the service dies, in the order a deploy reaches them, with how
# many deployments GitHub has seen by then: the deployment is made as the apply starts,
# after observing the server (systemctl is-active) and before TLJH's installer.
KILL_POINTS = {
    "systemctl": 0,  # observing the server
    "bootstrap": 1,  # TLJH's installer, mid-run
    "apt-get": 1,  # the course's apt packages, after TLJH and its settings
}


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
async def test_deploy_killed_mid_step_is_finished_after_restart(
    github_fake: FakeGitHub, ssh_target, course_service, example, kill_point: str
) -> None:
    sha = github_fake.put_commit(COURSE_REPO, ssh_course_files(ssh_target), branch="main")
    ssh_target.hang_next(kill_point)
    service = course_service()
    await service.wait_until_serving("/readyz")
    assert await deliver_push(service, push_payload(example, sha)) == 202

    # The kill point: the check run shows the deploy running and the program hangs mid-step.
    await eventually(
        lambda: [r["status"] for r in runs_for(github_fake, sha)] == ["in_progress"]
        and bool(hanging(ssh_target)),
        f"the deploy is in progress and {kill_point} hangs",
    )
    calls_before_kill = len(ssh_target.calls(kill_point))
    deployments_before_kill = len(deployments_for(github_fake, sha))
    service.kill()
    assert [r["status"] for r in runs_for(github_fake, sha)] == ["in_progress"]
    assert deployments_before_kill == KILL_POINTS[kill_point]

    service.start()
    await service.wait_until_serving("/readyz")
    await eventually(
        lambda: all(r["status"] == "completed" for r in runs_for(github_fake, sha)),
        "the commit's check run is completed after the restart",
        SETTLE_SECONDS,
    )

    # One check run for the commit, carried from queued to a conclusion across the crash:
    # the re-run job reuses the run it recorded instead of opening a second one.
    runs = runs_for(github_fake, sha)
    assert len(runs) == 1, runs
    assert runs[0]["conclusion"] == "success", runs[0]["output"]
    assert open_runs(github_fake) == []
    history = github_fake.check_run_history(runs[0]["id"])
    assert history[0]["status"] == "queued"
    assert history[-1]["conclusion"] == "success"

    # The interrupted step ran again (the hang applied to one call only) and the server
    # ended as the commit asks.
    assert len(ssh_target.calls(kill_point)) > calls_before_kill
    assert "graphviz" in json.dumps(ssh_target.state("apt"))
    assert ssh_target.state("services") == {"jupyterhub": "active", "traefik": "active"}
    if kill_point == "apt-get":
        # TLJH's installer finished before the kill: the re-run saw it and did not redo it.
        assert len(ssh_target.calls("bootstrap")) == 1
    assert ssh_target.canary.intact()

    # One deployment for the commit, whatever the kill point: the re-run reports on the one
    # its first attempt made rather than opening a second that would stay in_progress.
    deployments = deployments_for(github_fake, sha)
    assert len(deployments) == 1, deployments
    states = [s["state"] for s in github_fake.deployment_statuses[deployments[0]["id"]]]
    assert states[0] == "in_progress" and states[-1] == "success", states
    assert states.count("success") == 1


async def test_job_accepted_but_not_started_runs_after_restart(
    github_fake: FakeGitHub, ssh_target, course_service, example
) -> None:
    """A plan for a feature branch waits behind the course's running deploy; both are in the
    store when the service dies, and both run to their end after it starts again."""
    deploy_sha = github_fake.put_commit(COURSE_REPO, ssh_course_files(ssh_target), branch="main")
    plan_files = ssh_course_files(ssh_target, apt="graphviz\njq\n")
    plan_sha = github_fake.put_commit(COURSE_REPO, plan_files, branch="feature")
    ssh_target.hang_next("apt-get")
    service = course_service()
    await service.wait_until_serving("/readyz")
    assert await deliver_push(service, push_payload(example, deploy_sha)) == 202
    await eventually(
        lambda: bool(hanging(ssh_target)) and bool(runs_for(github_fake, deploy_sha)),
        "the deploy hangs in apt-get",
    )
    assert await deliver_push(service, push_payload(example, plan_sha, "feature")) == 202
    # Accepted: its check run is open and queued, and one operation per course at a time
    # keeps it from starting while the deploy runs.
    await eventually(
        lambda: [r["status"] for r in runs_for(github_fake, plan_sha)] == ["queued"],
        "the plan's check run is queued",
    )
    service.kill()

    service.start()
    await service.wait_until_serving("/readyz")
    await eventually(
        lambda: not open_runs(github_fake) and len(runs_for(github_fake, plan_sha)) == 1,
        "every check run is completed after the restart",
        SETTLE_SECONDS,
    )
    plan_runs = runs_for(github_fake, plan_sha)
    assert len(plan_runs) == 1
    assert plan_runs[0]["conclusion"] == "success", plan_runs[0]["output"]
    assert "jq" in plan_runs[0]["output"]["summary"]
    statuses = [h.get("status") for h in github_fake.check_run_history(plan_runs[0]["id"])]
    assert statuses[0] == "queued" and "in_progress" in statuses
    deploy_runs = runs_for(github_fake, deploy_sha)
    assert len(deploy_runs) == 1 and deploy_runs[0]["conclusion"] == "success"
    # A plan changes nothing: jq was never installed, only planned.
    assert "jq" not in json.dumps(ssh_target.state("apt"))
    assert ssh_target.canary.intact()


async def test_sigterm_stops_cleanly_and_the_accepted_job_finishes_after_restart(
    github_fake: FakeGitHub, ssh_target, course_service, example
) -> None:
    sha = github_fake.put_commit(COURSE_REPO, ssh_course_files(ssh_target), branch="main")
    ssh_target.hang_next("apt-get")
    service = course_service()
    await service.wait_until_serving("/readyz")
    assert await deliver_push(service, push_payload(example, sha)) == 202
    await eventually(lambda: bool(hanging(ssh_target)), "the deploy is mid-step")

    # A supervisor's stop: the service stops taking deliveries, gives the running job
    # its grace period, closes the store and exits 0 — it is not killed.
    assert service.stop(grace=60) == 0
    assert "stopped" in service.log()
    assert [r["status"] for r in runs_for(github_fake, sha)] == ["in_progress"]

    service.start()
    await service.wait_until_serving("/readyz")
    await eventually(
        lambda: all(r["status"] == "completed" for r in runs_for(github_fake, sha)),
        "the commit's check run is completed after the restart",
        SETTLE_SECONDS,
    )
    [run] = runs_for(github_fake, sha)
    assert run["conclusion"] == "success", run["output"]
    assert open_runs(github_fake) == []
    assert "graphviz" in json.dumps(ssh_target.state("apt"))
    assert ssh_target.canary.intact()
