"""What instructors see on GitHub beyond a single run: README badges, re-runs, buttons,
output limits and the monitor's outage issue."""

from __future__ import annotations

import pytest
from aiohttp import web

from bot.github.readme import END_MARKER, START_MARKER
from bot.github.reporting import check_output
from bot.monitor import ISSUE_TITLE, Monitor
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.plugins.service import deliver
from tests.support.hub_api import fake_hub

pytestmark = pytest.mark.sshd


def readme_puts(github) -> list:
    return [r for r in github.requests if r.operation_id == "repos/create-or-update-file-contents"]


async def test_readme_block_is_written_once_with_the_right_links(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    assert len(readme_puts(classroom.github)) == 1
    readme = classroom.github.files(COURSE_REPO, "main")["README.md"].decode()
    block = readme.split(START_MARKER)[1].split(END_MARKER)[0]
    launch = (
        "http://127.0.0.1/hub/user-redirect/git-pull?repo="
        + f"{classroom.github.url}/{COURSE_REPO}".replace(":", "%3A").replace("/", "%2F")
        + "&urlpath=lab%2Ftree%2Fphysics101%2FStartHere.ipynb&branch=main"
    )
    assert launch in block
    assert "http://127.0.0.1/hub/signup" in block
    # Students are approved on the console's course page, never on /hub/authorize.
    assert f"{classroom.services.settings.public_url}/courses/{COURSE_REPO}" in block
    assert "/hub/authorize" not in block
    assert f"/badges/{COURSE_REPO}/status.svg" in block
    assert readme.startswith("# Physics 101\n\n") and readme.endswith("\n\nWelcome.\n")

    # The instructor's next push carries the written README: nothing to rewrite.
    files = dict(classroom.github.files(COURSE_REPO, "main"))
    files["apt.txt"] = b"graphviz\njq\n"
    second = classroom.commit(files)
    await classroom.push(example, second)
    await classroom.settle()
    assert len(readme_puts(classroom.github)) == 1


async def test_without_markers_the_readme_is_untouched_and_the_run_shows_the_block(
    classroom, example
):
    files = ssh_course_files(classroom.target)
    files["README.md"] = b"# Physics 101\n\nNo markers here.\n"
    sha = classroom.commit(files)
    await classroom.push(example, sha)
    await classroom.settle()
    assert readme_puts(classroom.github) == []
    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert START_MARKER in run["output"]["summary"]
    assert "hub/user-redirect/git-pull" in run["output"]["summary"]


async def test_check_suite_requested_with_a_push_makes_one_run_and_rerequests_run_again(
    classroom, example
):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    suite = example("check_suite", "requested")
    suite["check_suite"] = {**suite["check_suite"], "head_sha": sha, "head_branch": "main"}
    suite.update(
        repository=classroom.repository_payload(suite),
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    await deliver(classroom.client, "check_suite", suite)
    await classroom.settle()
    assert len([r for r in classroom.runs() if r["head_sha"] == sha]) == 1

    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    rerun = example("check_run", "rerequested")
    rerun["check_run"] = {
        **rerun["check_run"],
        "id": run["id"],
        "name": "classroom",
        "head_sha": sha,
        "app": {**rerun["check_run"]["app"], "id": classroom.github.app.id},
        "check_suite": {**rerun["check_run"]["check_suite"], "head_branch": "main"},
    }
    rerun.update(
        repository=classroom.repository_payload(rerun),
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    assert (await deliver(classroom.client, "check_run", rerun)).status == 202
    await classroom.settle()
    runs = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert len(runs) == 2
    assert runs[1]["conclusion"] == "neutral"  # deployed already: nothing to do
    assert "Nothing to do" in runs[1]["output"]["summary"]


async def test_requested_action_restart_runs_for_a_writer(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert {
        a["identifier"] for a in classroom.github.check_run_history(run["id"])[-1]["actions"]
    } == {
        "rebuild",
        "restart",
        "snapshot",
    }
    before = len(classroom.target.calls("systemctl"))
    assert (await classroom.press(example, run, "restart")).status == 202
    await classroom.settle()
    restarts = [
        c for c in classroom.target.calls("systemctl")[before:] if c["argv"][:1] == ["restart"]
    ]
    assert len(restarts) == 1
    runs = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert runs[-1]["conclusion"] == "success" and runs[-1]["output"]["title"] == "Hub restarted"


def test_output_over_the_limit_is_cut_by_bytes():
    text = "é€𝄞 log line\n" * 10000  # multibyte, far over 65,535 bytes
    output = check_output("Title", text, text)
    assert len(output["summary"].encode()) <= 65535
    assert len(output["text"].encode()) <= 65535
    assert output["text"].endswith("é€𝄞 log line\n")


async def test_an_oversized_log_is_accepted_by_githubs_schema(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    classroom.target.fail_next("apt-get", "é€𝄞 " * 40000)
    await classroom.push(example, sha)
    await classroom.settle()
    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert run["conclusion"] == "failure"
    for body in classroom.github.check_run_history(run["id"]):
        for value in (body.get("output") or {}).values():
            assert len(value.encode()) <= 65535
    assert classroom.github.validation_errors == []


async def test_monitor_opens_one_issue_after_two_failures_and_closes_it(classroom):
    answering = {"up": True}

    async def hub_api(request: web.Request) -> web.Response:
        if answering["up"]:
            return web.json_response({"version": "5.1.0"})
        return web.Response(status=502, text="Bad Gateway")

    async with fake_hub(hub_api) as hub_url:
        store = classroom.services.store
        await store.add_courses(INSTALLATION_ID, [(COURSE_REPO, None)])
        await store.save_course_facts(
            COURSE_REPO,
            {"hub_url": hub_url, "monitor_every": 60, "monitor_issue": True},
        )
        monitor = Monitor(classroom.services, http_timeout=2)
        client = classroom.client
        badge = f"/badges/{COURSE_REPO}/status.svg"

        await monitor.run_round(force=True)
        svg = await (await client.get(badge)).text()
        assert ">up<" in svg

        answering["up"] = False
        await monitor.run_round(force=True)
        assert classroom.github.issues == {}  # one failure is not an outage
        await monitor.run_round(force=True)
        issues = [i for i in classroom.github.issues.values() if i.title == ISSUE_TITLE]
        assert len(issues) == 1 and issues[0].state == "open"
        assert "502" in issues[0].body
        response = await client.get(badge)
        assert ">down<" in await response.text()
        assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"]
        cached = await client.get(badge, headers={"If-None-Match": response.headers["ETag"]})
        assert cached.status == 304

        await monitor.run_round(force=True)  # still down: never a second issue
        assert len([i for i in classroom.github.issues.values() if i.title == ISSUE_TITLE]) == 1

        answering["up"] = True
        await monitor.run_round(force=True)
        assert issues[0].state == "closed"
        assert issues[0].comments and "answers again" in issues[0].comments[-1]["body"]
        assert ">up<" in await (await client.get(badge)).text()


async def test_monitor_restarts_an_inactive_hub_once_and_says_so(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    engine = classroom.services.engine
    record = await classroom.services.store.get_server(COURSE_REPO)
    from deploy.operations import remembered_target

    target = await remembered_target(engine, COURSE_REPO, record)
    await engine.ssh.run_script(target, "systemctl stop jupyterhub")

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=502)

    async with fake_hub(down) as hub_url:
        await classroom.services.store.save_course_facts(
            COURSE_REPO, {"hub_url": hub_url, "monitor_issue": True}
        )
        monitor = Monitor(classroom.services, http_timeout=2)
        before = len(classroom.target.calls("systemctl"))
        for _ in range(3):
            await monitor.run_round(force=True)
        # The restart is a job of the course's queue, not done by the monitor itself.
        await classroom.settle()
        restarts = [
            c for c in classroom.target.calls("systemctl")[before:] if c["argv"][:1] == ["restart"]
        ]
        state = await classroom.services.store.monitor_state(COURSE_REPO)
        assert len(restarts) == 1, state.detail
        [job] = [j for j in await classroom.services.store.jobs() if j.kind == "command"]
        assert job.payload["name"] == "restart" and job.payload["source"] == "monitor"
        [issue] = [i for i in classroom.github.issues.values() if i.title == ISSUE_TITLE]
        assert "automatic restart" in issue.body
        assert "jupyterhub: inactive" in issue.body
        # The restart's outcome is posted on the outage issue.
        assert [c["body"] for c in issue.comments] == [
            "`/restart` done: **Hub restarted**\n\nThe hub restarted and answers again.\n\n"
            "The hub restarted; students may need to reload their page."
        ]
