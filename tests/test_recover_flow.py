"""A lost droplet through the service: the monitor's outage issue names ``/recover``, and the
comment, through ``/webhook``, brings the course back on a new droplet with its volume,
its accounts (the hub's database on the volume, the Linux users' UIDs), its reserved IP
and the students' files."""

from __future__ import annotations

import pytest
from aiohttp import web

from bot.monitor import ISSUE_TITLE, Monitor
from deploy.model import DROPLET_TAG, ServerRecord
from deploy.providers.droplets import DropletDriver
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support.droplet_classroom import do_config, issue_payload
from tests.support.engine import coded
from tests.support.hub_api import fake_hub
from tests.support.recovery import assert_recovered, student_files
from tests.support.volume_course import VOLUME

pytestmark = pytest.mark.sshd


async def test_the_outage_issue_names_recover_and_recover_brings_everything_back(
    classroom, do_fake, example
) -> None:
    target = classroom.target
    services = classroom.services
    target.empty_home()  # a new course on a new droplet: /home goes on the volume
    droplet = do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG])
    do_fake.new_droplet_address = target.host
    do_fake.on_attach = lambda volume, _droplet: target.attach_volume(volume.name)
    do_fake.on_detach = lambda volume, _droplet: target.detach_volume(volume.name)
    services.engine.droplets = DropletDriver(do_fake.token, poll_interval=0.01)
    await services.store.save_server(
        COURSE_REPO,
        ServerRecord(
            provider="digitalocean",
            address=target.host,
            port=target.port,
            droplet_id=droplet.id,
            size=droplet.size,
            region=droplet.region,
        ),
    )
    target.attach_volume(VOLUME)  # turns on the block storage and account stand-ins
    target.detach_volume(VOLUME)
    target.add_account("jupyter-alice", 1001, 1001)
    files = ssh_course_files(target)
    files[".github/classroom.yml"] = (do_config(target.port) + "storage: {size: 20}\n").encode()
    sha = classroom.commit(files)
    await classroom.push(example, sha)
    await classroom.settle()
    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert run["conclusion"] == "success", run["output"]
    target.add_account("jupyter-bob", 1002, 1002)
    kept = student_files(target)

    do_fake.lose_droplet(droplet.id)  # destroyed in DigitalOcean's control panel
    target.replace_machine()

    async def down(request: web.Request) -> web.Response:
        return web.Response(status=502, text="Bad Gateway")

    async with fake_hub(down) as hub_url:
        facts = await services.store.course_facts(COURSE_REPO)
        assert facts["server_name"] == coded("physics101-hub")
        await services.store.save_course_facts(COURSE_REPO, {**facts, "hub_url": hub_url})
        monitor = Monitor(services, http_timeout=2)
        for _ in range(2):
            await monitor.run_round(force=True)
    [issue] = [i for i in classroom.github.issues.values() if i.title == ISSUE_TITLE]
    assert "its droplet is gone" in issue.body
    assert f"404 (not found) for droplet {droplet.id}" in issue.body
    assert "comment `/recover`" in issue.body
    assert do_fake.droplets == {}  # the monitor made nothing itself

    response = await classroom.comment(
        example, "/recover", user="alice", issue=issue_payload(example, issue.number)
    )
    assert response.status == 202
    await classroom.settle()

    reply = issue.comments[-1]["body"]
    assert reply.startswith("@alice") and "Recovered on a new droplet" in reply, reply
    assert_recovered(
        await services.store.get_server(COURSE_REPO), target, do_fake, droplet.id, kept
    )
