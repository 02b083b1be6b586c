"""The monitor acts only through the course's job queue: its restart waits for a deploy under
way, a probe that fails during a job does not count, and a deploy whose check of the hub
passed shows the badge up at once."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bot import store as st
from bot.app import MONITOR
from bot.monitor import ISSUE_TITLE, Monitor
from deploy import operations
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support.hub_api import fake_hub

pytestmark = pytest.mark.sshd

BADGE = f"/badges/{COURSE_REPO}/status.svg"


def outage_issues(classroom) -> list:
    return [i for i in classroom.github.issues.values() if i.title == ISSUE_TITLE]


def restarts_since(classroom, before: int) -> list:
    calls = classroom.target.calls("systemctl")[before:]
    return [c for c in calls if c["argv"][:1] == ["restart"]]


async def test_the_badge_says_up_right_after_a_deploy_whose_hub_check_passed(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    assert classroom.client.app[MONITOR].rounds == 0  # no probe has run
    assert ">up<" in await (await classroom.client.get(BADGE)).text()


async def test_a_deploy_under_way_holds_the_monitors_restart_and_its_outage_issue(
    classroom, example, monkeypatch
):
    files = ssh_course_files(classroom.target)
    await classroom.push(example, classroom.commit(files))
    await classroom.settle()
    services = classroom.services
    store = services.store

    # The next deploy is slowed: it holds until the test lets it go on.
    entered, release = asyncio.Event(), asyncio.Event()
    real_deploy = operations.deploy

    async def slowed_deploy(*args, **kwargs):
        entered.set()
        await release.wait()
        return await real_deploy(*args, **kwargs)

    monkeypatch.setattr(operations, "deploy", slowed_deploy)

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=502, text="Bad Gateway")

    async with fake_hub(down) as hub_url:
        facts = {"hub_url": hub_url, "monitor_every": 60, "monitor_issue": True}
        await store.save_course_facts(COURSE_REPO, facts)
        monitor = Monitor(services, http_timeout=2)
        [course] = [c for c, _ in await store.monitored_courses()]
        before = len(classroom.target.calls("systemctl"))

        await classroom.push(example, classroom.commit({**files, "apt.txt": b"graphviz\njq\n"}))
        await asyncio.wait_for(entered.wait(), 30)
        [deploying] = await store.jobs(course=COURSE_REPO, states=[st.RUNNING])
        assert deploying.kind == "deploy"

        # The hub answers 502 throughout the deploy: none of it counts, no issue opens.
        for _ in range(3):
            await monitor.run_round(force=True)
        state = await store.monitor_state(COURSE_REPO)
        assert outage_issues(classroom) == []
        assert state.failures == 0 and state.state != "down"
        assert ">deploying<" in await (await classroom.client.get(BADGE)).text()

        # A restart the monitor asks for now is a job of the course: it waits its turn.
        restart_id = await monitor.request_restart(course, facts, None)
        assert restart_id is not None
        await asyncio.sleep(0.5)
        assert (await store.job(restart_id)).state == st.QUEUED
        assert restarts_since(classroom, before) == []

        release.set()
        await classroom.settle()
        deployed = await store.job(deploying.id)
        restarted = await store.job(restart_id)
        assert deployed.state == st.DONE and restarted.state == st.DONE
        assert restarted.started_at >= deployed.finished_at
        assert restarted.payload["source"] == "monitor"
        assert len(restarts_since(classroom, before)) == 1

        # With no job running, failed probes count again: the second opens the issue.
        await store.save_course_facts(COURSE_REPO, facts)
        await monitor.run_round(force=True)
        assert outage_issues(classroom) == []
        await monitor.run_round(force=True)
        [issue] = outage_issues(classroom)
        assert "502" in issue.body


async def test_a_passing_deploy_resets_the_monitors_count_of_failures(classroom, example):
    files = ssh_course_files(classroom.target)
    await classroom.push(example, classroom.commit(files))
    await classroom.settle()
    store = classroom.services.store
    monitor = classroom.client.app[MONITOR]  # the service's own, with its cache
    answering = {"up": False}

    async def hub_api(request: web.Request) -> web.Response:
        if answering["up"]:
            return web.json_response({"version": "5.1.0"})
        return web.Response(status=502)

    async with fake_hub(hub_api) as hub_url:
        facts = {"hub_url": hub_url, "monitor_every": 60, "monitor_issue": True}
        await store.save_course_facts(COURSE_REPO, facts)
        await monitor.run_round(force=True)
        await monitor.run_round(force=True)
        [issue] = outage_issues(classroom)
        assert ">down<" in await (await classroom.client.get(BADGE)).text()

        await classroom.push(example, classroom.commit({**files, "apt.txt": b"graphviz\njq\n"}))
        await classroom.settle()
        assert ">up<" in await (await classroom.client.get(BADGE)).text()

        # One failure after the deploy is one, not the third of an outage.
        await store.save_course_facts(COURSE_REPO, facts)
        await monitor.run_round(force=True)
        assert ">up<" in await (await classroom.client.get(BADGE)).text()
        assert (await store.monitor_state(COURSE_REPO)).failures == 1

        answering["up"] = True
        await monitor.run_round(force=True)
        assert issue.state == "closed"
