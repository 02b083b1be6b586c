"""What a stranger, a fork and a replayed delivery can do to a course, through ``/webhook``
with the fake GitHub and the loopback sshd (invariant 12 and the trust boundaries of
docs/architecture.md).

- A pull request's plan is computed from its configuration alone: a fork naming an
  attacker's host makes no SSH connection and leaves the course's server record as it was;
  one plan waits per pull request; its check run has no buttons.
- A button, even on a pull request's check run, uses the default branch's configuration.
- A command is checked when it arrives: a stranger's is dropped before it can replace a
  writer's queued one, and only identical requests are merged.
- A signed body sent again under a new ``X-GitHub-Delivery`` id runs nothing.
- An SSH answer of 150 MB is refused with a clear error, without holding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from typing import Any

import pytest

from bot.store import QUEUED, SUPERSEDED
from deploy.ssh import OUTPUT_LIMIT, OutputTooLarge, SSHPool, Target
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.plugins.service import deliver

pytestmark = pytest.mark.sshd

FORK = "mallory/physics101"


class AttackersServer:
    """An SSH server of the attacker's that lets the service's key in: a port on loopback
    forwarding to the test's sshd, counting every connection made to it."""

    def __init__(self, target) -> None:
        self.target = target
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> AttackersServer:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(self.target.host, self.target.port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def attackers_files(classroom, *, port: int) -> dict[str, bytes]:
    """A fork's course files naming the attacker's server, and another package."""
    files = ssh_course_files(classroom.target, apt="graphviz\njq\n")
    config = files[".github/classroom.yml"].decode()
    files[".github/classroom.yml"] = config.replace(
        f"port: {classroom.target.port}", f"port: {port}"
    ).encode()
    return files


def pull_request_payload(
    classroom, example, sha: str, *, action: str = "opened", number: int = 7
) -> dict[str, Any]:
    payload = example("pull_request", "opened")
    pr = payload["pull_request"]
    payload["action"] = action
    payload["number"] = number
    payload["pull_request"] = {
        **pr,
        "number": number,
        "head": {**pr["head"], "sha": sha, "repo": {**pr["head"]["repo"], "full_name": FORK}},
        "base": {**pr["base"], "repo": {**pr["base"]["repo"], "full_name": COURSE_REPO}},
    }
    payload.update(
        repository=classroom.repository_payload(payload),
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    return payload


async def deployed(classroom, example) -> str:
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert run["conclusion"] == "success", run["output"]
    return sha


def issue_payload(example, number: int) -> dict[str, Any]:
    return {**example("issue_comment", "created")["issue"], "number": number, "pull_request": None}


def restarts_of(classroom) -> list[dict]:
    return [c for c in classroom.target.calls("systemctl") if c["argv"][:1] == ["restart"]]


async def command_jobs(classroom) -> list:
    return [j for j in await classroom.services.store.jobs() if j.kind == "command"]


# -- pull requests ----------------------------------------------------------------------------


async def test_a_fork_naming_an_attackers_host_contacts_nothing_and_changes_nothing(
    classroom, example
):
    await deployed(classroom, example)
    store = classroom.services.store
    record = await store.get_server(COURSE_REPO)
    pool: SSHPool = classroom.services.engine.ssh
    before = pool.counters()
    calls = len(classroom.target.calls())
    async with AttackersServer(classroom.target) as attacker:
        sha = classroom.commit(attackers_files(classroom, port=attacker.port), branch=None)
        response = await deliver(
            classroom.client, "pull_request", pull_request_payload(classroom, example, sha)
        )
        assert response.status == 202
        await classroom.settle()
        assert attacker.connections == 0

    assert pool.counters() == before, "a pull request's plan opens no SSH connection"
    assert len(classroom.target.calls()) == calls
    assert await store.get_server(COURSE_REPO) == record
    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    summary = run["output"]["summary"]
    assert "No server was contacted" in summary
    assert f"`127.0.0.1:{attacker.port}`" in summary and "names another server" in summary
    # Pull requests' check runs get no buttons.
    assert classroom.github.check_run_history(run["id"])[-1]["actions"] == []
    assert classroom.github.deployments == {} or all(
        d["sha"] != sha for d in classroom.github.deployments.values()
    )


async def test_a_pull_requests_plan_compares_with_what_the_last_deploy_saw(classroom, example):
    await deployed(classroom, example)
    pool: SSHPool = classroom.services.engine.ssh
    before = pool.counters()
    files = ssh_course_files(classroom.target, apt="graphviz\njq\n")
    sha = classroom.commit(files, branch=None)
    await deliver(classroom.client, "pull_request", pull_request_payload(classroom, example, sha))
    await classroom.settle()
    assert pool.counters() == before
    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    summary = run["output"]["summary"]
    # Only what the pull request adds: the server already has TLJH and graphviz.
    assert "jq" in summary and "tljh-install" not in summary
    assert "as last observed" in summary


async def test_one_pending_plan_per_pull_request(classroom, example):
    await deployed(classroom, example)
    runner = classroom.services.runner
    shas = [
        classroom.commit(attackers_files(classroom, port=40000 + n), branch=None) for n in range(3)
    ]
    runner.pause()
    try:
        for n, sha in enumerate(shas):
            payload = pull_request_payload(
                classroom, example, sha, action="opened" if n == 0 else "synchronize"
            )
            assert (await deliver(classroom.client, "pull_request", payload)).status == 202
        plans = [j for j in await classroom.services.store.jobs() if j.kind == "plan"]
        queued = [j.payload["head_sha"] for j in plans if j.state == QUEUED]
        assert queued == [shas[-1]]
        assert sorted(j.payload["head_sha"] for j in plans if j.state == SUPERSEDED) == sorted(
            shas[:-1]
        )
    finally:
        runner.resume()
    await classroom.settle()


async def test_a_button_on_a_pull_requests_run_uses_the_default_branchs_config(classroom, example):
    await deployed(classroom, example)
    store = classroom.services.store
    record = await store.get_server(COURSE_REPO)
    # The pull request adds jq; its check run is a plan.
    sha = classroom.commit(ssh_course_files(classroom.target, apt="graphviz\njq\n"), branch=None)
    await deliver(classroom.client, "pull_request", pull_request_payload(classroom, example, sha))
    await classroom.settle()
    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    calls = len(classroom.target.calls())

    # An old run (or a forged press) asks for Rebuild on the pull request's run.
    assert (await classroom.press(example, run, "rebuild")).status == 202
    await classroom.settle()

    new = classroom.target.calls()[calls:]
    assert any(c["program"] == "bootstrap" for c in new), "the rebuild ran"
    installs = [c["argv"] for c in new if c["program"] == "apt-get"]
    assert not any("jq" in argv for argv in installs), installs
    assert await store.get_server(COURSE_REPO) == record


# -- commands at intake ----------------------------------------------------------------------


async def test_a_strangers_restore_leaves_a_writers_queued_restore_to_run(classroom, example):
    runner = classroom.services.runner
    number = classroom.github.add_issue(COURSE_REPO, "Restore").number
    issue = issue_payload(example, number)
    runner.pause()
    try:
        writer = await classroom.comment(
            example, "/restore nightly-1 --all --confirm", user="alice", issue=issue
        )
        stranger = await classroom.comment(example, "/restore", user="mallory", issue=issue)
        assert (writer.status, stranger.status) == (202, 200)
        [job] = await command_jobs(classroom)
        assert job.state == QUEUED and job.payload["user"] == "alice"
        assert job.payload["args"] == ["nightly-1", "--all", "--confirm"]
    finally:
        runner.resume()
    await classroom.settle()
    [job] = await command_jobs(classroom)
    assert job.state not in (QUEUED, SUPERSEDED)
    # The stranger got nothing: no reaction, no reply, as /help says.
    comments = classroom.github.issues[(COURSE_REPO, number)].comments
    assert [c["body"].split()[0] for c in comments] == ["@alice"]
    assert len(classroom.github.reactions) == 2  # eyes, then the outcome, on alice's


async def test_approve_bob_and_approve_ada_both_run(classroom, example):
    runner = classroom.services.runner
    number = classroom.github.add_issue(COURSE_REPO, "Sign-ups").number
    issue = issue_payload(example, number)
    runner.pause()
    try:
        await classroom.comment(example, "/approve bob", user="alice", issue=issue)
        await classroom.comment(example, "/approve ada", user="alice", issue=issue)
        # An identical request is still merged into the one waiting.
        await classroom.comment(example, "/approve ada", user="alice", issue=issue)
        jobs = await command_jobs(classroom)
        assert sorted(j.payload["args"][0] for j in jobs if j.state == QUEUED) == ["ada", "bob"]
        assert [j.state for j in jobs].count(SUPERSEDED) == 1
    finally:
        runner.resume()
    await classroom.settle()
    replies = [c["body"] for c in classroom.github.issues[(COURSE_REPO, number)].comments]
    merged = [r for r in replies if "arrived again" in r]
    assert len(merged) == 1 and "`/approve ada`" in merged[0]
    ran = sorted(r.split("`")[1] for r in replies if r not in merged)
    assert ran == ["/approve ada", "/approve bob"]


async def test_a_replayed_body_with_a_new_delivery_id_runs_nothing(classroom, example):
    await deployed(classroom, example)
    number = classroom.github.add_issue(COURSE_REPO, "Restart").number
    payload = example("issue_comment", "created")
    payload["comment"] = {
        **payload["comment"],
        "body": "/restart",
        "id": 777001,
        "user": {**payload["comment"]["user"], "login": "alice", "type": "User"},
        "performed_via_github_app": None,
    }
    payload["sender"] = {**payload["sender"], "login": "alice", "type": "User"}
    payload.update(
        issue=issue_payload(example, number),
        repository=classroom.repository_payload(payload),
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    first = await deliver(classroom.client, "issue_comment", payload, delivery="first-id")
    assert first.status == 202
    await classroom.settle()
    restarts = len(restarts_of(classroom))
    assert restarts == 1
    jobs = len(await classroom.services.store.jobs())

    # The same signed body, captured and sent again under new ids: a duplicate each time.
    for replay in ("captured-1", "captured-2"):
        again = await deliver(classroom.client, "issue_comment", payload, delivery=replay)
        assert again.status == 200
        assert (await again.json())["message"] == "duplicate delivery"
    # And a push, the same way.
    push = example("push")
    push.update(
        ref="refs/heads/main",
        after=classroom.github.repositories[COURSE_REPO].branches["main"],
        deleted=False,
        repository=classroom.repository_payload(push),
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    assert (await deliver(classroom.client, "push", push, delivery="push-1")).status in (200, 202)
    jobs_after_push = len(await classroom.services.store.jobs())
    assert (await deliver(classroom.client, "push", push, delivery="push-2")).status == 200
    await classroom.settle()
    assert len(restarts_of(classroom)) == restarts
    assert len(classroom.github.issues[(COURSE_REPO, number)].comments) == 1
    assert len(await classroom.services.store.jobs()) == jobs_after_push >= jobs


# -- bounded reads ----------------------------------------------------------------------------


async def test_a_150_mb_ssh_answer_fails_clearly_with_bounded_memory(ssh_target):
    pool = SSHPool()
    target = Target(
        host=ssh_target.host, port=ssh_target.port, user="root", client_key=ssh_target.client_key
    )
    try:
        # The connection first, so its own buffers are not counted.
        assert (await pool.run_script(target, "echo ready"))[1] == "ready\n"
        tracemalloc.start()
        try:
            with pytest.raises(OutputTooLarge) as raised:
                await pool.run_script(target, "head -c 150000000 /dev/zero")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "printed over 16 MiB on stdout" in str(raised.value)
        assert peak < OUTPUT_LIMIT + 16 * 1024 * 1024, f"held {peak / 2**20:.0f} MiB"
        # The connection is still good for the next script.
        assert (await pool.run_script(target, "echo still"))[1] == "still\n"
    finally:
        await pool.close_all()
