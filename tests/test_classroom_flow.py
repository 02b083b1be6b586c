"""Issue 4's workflows through /webhook with the fake GitHub and the loopback SSH server."""

from __future__ import annotations

import pytest

from bot.github.reporting import DEPLOYMENT_ASKED
from tests.plugins.classroom import ssh_course_files

pytestmark = pytest.mark.sshd


async def test_push_to_default_branch_deploys_with_a_check_run_and_deployment(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    response = await classroom.push(example, sha)
    assert response.status == 202
    await classroom.settle()

    runs = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert len(runs) == 1
    run = runs[0]
    history = classroom.github.check_run_history(run["id"])
    assert history[0]["status"] == "queued"
    assert any(h.get("status") == "in_progress" for h in history)
    assert run["status"] == "completed" and run["conclusion"] == "success", run["output"]
    assert "http://127.0.0.1" in run["output"]["summary"]
    assert "git-pull?repo=" in run["output"]["summary"]

    deployments = [d for d in classroom.github.deployments.values() if d["sha"] == sha]
    assert len(deployments) == 1 and deployments[0]["environment"] == "classroom"
    statuses = classroom.github.deployment_statuses[deployments[0]["id"]]
    assert [s["state"] for s in statuses] == ["in_progress", "success"]
    assert statuses[-1]["environment_url"] == "http://127.0.0.1"
    assert classroom.target.canary.intact()


async def test_branch_push_and_pull_request_only_plan(classroom, example):
    files = ssh_course_files(classroom.target, apt="graphviz\njq\n")
    sha = classroom.commit(files, branch="feature")
    await classroom.push(example, sha, branch="feature")
    await classroom.settle()
    runs = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert len(runs) == 1 and runs[0]["conclusion"] == "success"
    assert "jq" in runs[0]["output"]["summary"]
    changing = [
        c
        for c in classroom.target.calls()
        if c["program"] in ("apt-get", "bootstrap")
        or (c["program"] == "tljh-config" and c["argv"][:1] != ["show"])
    ]
    assert changing == []
    assert classroom.github.deployments == {}


async def test_a_pull_request_from_a_fork_only_plans(classroom, example):
    files = ssh_course_files(classroom.target, apt="graphviz\njq\n")
    sha = classroom.commit(files, branch=None)  # the fork's commit, reachable from the PR
    payload = example("pull_request", "opened")
    pr = payload["pull_request"]
    payload["pull_request"] = {
        **pr,
        "head": {
            **pr["head"],
            "sha": sha,
            "repo": {**pr["head"]["repo"], "full_name": "someone/fork"},
        },
        "base": {**pr["base"], "repo": {**pr["base"]["repo"], "full_name": "octo-org/physics101"}},
    }
    payload.update(
        repository=classroom.repository_payload(payload),
        installation={"id": 1001, "node_id": "x"},
    )
    from tests.plugins.service import deliver

    assert (await deliver(classroom.client, "pull_request", payload)).status == 202
    await classroom.settle()
    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert run["conclusion"] == "success" and "jq" in run["output"]["summary"]
    assert classroom.github.deployments == {}
    assert [c for c in classroom.target.calls() if c["program"] in ("apt-get", "bootstrap")] == []


async def test_a_rerun_with_nothing_left_to_apply_concludes_the_deployment_it_opened(
    classroom, example
):
    # The window a crash can hit: an attempt opened the deployment and applied every step,
    # then died before the final status; its re-run finds nothing to do.
    files = ssh_course_files(classroom.target)
    await classroom.push(example, classroom.commit(files))
    await classroom.settle()
    sha = classroom.commit({**files, "notes.md": b"week 2\n"})
    runner = classroom.services.runner
    runner.pause()
    try:
        await classroom.push(example, sha)
        [job] = [
            j for j in await classroom.services.store.jobs() if j.payload.get("head_sha") == sha
        ]
        opened = await classroom.services.reporter.start_deployment(job, "first attempt")
    finally:
        runner.resume()
    await classroom.settle()
    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert run["status"] == "completed" and run["conclusion"] == "neutral", run["output"]
    states = [s["state"] for s in classroom.github.deployment_statuses[opened]]
    assert states == ["in_progress", "success"]
    assert [d["id"] for d in classroom.github.deployments.values() if d["sha"] == sha] == [opened]


async def test_a_rerun_after_a_kill_while_asking_for_the_deployment_makes_no_second_one(
    classroom, example
):
    # The kill lands after GitHub made the deployment and before its id was recorded.
    sha = classroom.commit(ssh_course_files(classroom.target))
    runner = classroom.services.runner
    runner.pause()
    try:
        await classroom.push(example, sha)
        [job] = await classroom.services.store.jobs()
        reporter = classroom.services.reporter
        await reporter.start_deployment(job, "first attempt")
        await classroom.services.store.set_meta(f"deployment:job:{job.id}", DEPLOYMENT_ASKED)
    finally:
        runner.resume()
    await classroom.settle()
    [deployment] = [d for d in classroom.github.deployments.values() if d["sha"] == sha]
    states = [s["state"] for s in classroom.github.deployment_statuses[deployment["id"]]]
    assert states[-1] == "success" and "in_progress" in states
