"""The console in headless Chromium, as an instructor uses it: sign in with GitHub, open the
course, press Restart hub and watch the job finish without reloading; markup in a job's
log stays text (no dialog opens).

The screenshots in ``docs/console.md`` are made by ``scripts/console_screenshots.py``.
"""

from __future__ import annotations

import pytest

from bot.store import NewJob
from deploy.model import ServerRecord
from deploy.providers.droplets import DropletDriver
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support.chromium import CHROMIUM, Chromium
from tests.support.service_process import free_port

pytestmark = [pytest.mark.sshd, pytest.mark.browser]

XSS = "<img src=x onerror=alert(1)>"


async def test_a_writer_signs_in_and_restarts_the_hub_in_chromium(
    classroom, example, do_fake, tmp_path
):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (CI does)")
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    services = classroom.services
    store = services.store
    added = await store.enqueue(NewJob(COURSE_REPO, "command", {"name": "status", "user": XSS}))
    assert added is not None
    await store.finish_job(
        added[0], "done", result={"conclusion": "success", "title": XSS, "log": XSS}
    )
    public = classroom.services.settings.public_url

    async with Chromium(tmp_path / "chromium-profile") as browser:
        await browser.send("Page.enable")
        await browser.send(
            "Emulation.setDeviceMetricsOverride", width=1100, height=860, deviceScaleFactor=1,
            mobile=False,
        )  # fmt: skip
        await browser.open(public + "/")
        await browser.evaluate("document.getElementById('sign-in').click()")
        await browser.wait_for("location.pathname === '/courses'", "signed in, on the course list")
        assert await browser.evaluate("document.getElementById('login').textContent") == "alice"
        await browser.evaluate("document.querySelector('a.course').click()")
        await browser.wait_for(
            f"location.pathname === '/courses/{COURSE_REPO}'", "the course page is open"
        )
        await browser.wait_for("!!document.querySelector('#job-table tbody tr[data-job]')", "jobs")
        before = await browser.evaluate("document.querySelectorAll('img').length")
        await browser.evaluate("document.getElementById('run-restart').click()")
        await browser.wait_for(
            "document.querySelector('#job-table tbody tr[data-job]').cells[1].textContent"
            " === 'restart'",
            "the restart job is listed",
        )
        navigations = sum(1 for e in browser.events if e["method"] == "Page.frameNavigated")
        await browser.wait_for(
            "document.querySelector('#job-table tbody tr[data-job]').dataset.done === 'yes'",
            "the restart job is done",
        )
        # The job finished on the page by polling: no navigation since it was listed.
        assert navigations == sum(1 for e in browser.events if e["method"] == "Page.frameNavigated")
        conclusion = await browser.evaluate(
            "document.querySelector('#job-table tbody tr[data-job] .conclusion').textContent"
        )
        logs = await browser.evaluate(
            "Array.from(document.querySelectorAll('#job-table pre')).map(p => p.textContent)"
        )
        images = await browser.evaluate("document.querySelectorAll('img').length")

        # The same course on a DigitalOcean droplet: the resize picker lists the region's sizes.
        droplet = do_fake.add_droplet("physics101-hub", tags=["littlest-classroom"])
        services.engine.droplets = DropletDriver(do_fake.token, poll_interval=0.01)
        await store.save_server(
            COURSE_REPO,
            ServerRecord(
                provider="digitalocean", address=droplet.ipv4, droplet_id=droplet.id,
                size=droplet.size, region=droplet.region,
            ),
        )  # fmt: skip
        await browser.open(f"{public}/courses/{COURSE_REPO}")
        power = await browser.evaluate("document.getElementById('power').textContent")
        await browser.send(
            "Emulation.setDeviceMetricsOverride", width=1100, height=1300, deviceScaleFactor=1,
            mobile=False,
        )  # fmt: skip
        picker = await browser.evaluate(
            "Array.from(document.querySelectorAll('#resize-size option')).map(o => o.textContent)"
        )
        dialogs = [e for e in browser.events if e["method"] == "Page.javascriptDialogOpening"]

    assert "s-4vcpu-8gb: 4 vCPU, 8.0 GiB, $48.00/month" in picker
    assert power == "active"
    assert conclusion == "success"
    assert XSS in logs  # shown as the text it is
    assert before == images == 0
    assert dialogs == []
    job = (await store.jobs())[-1]
    assert job.payload["source"] == "console" and job.payload["user"] == "alice"


async def test_a_service_registered_in_chromium_signs_its_instructor_in(
    github_fake, service_process, tmp_path
):
    """``python -m bot`` registered through the manifest flow: the callback URL it sent
    is the one GitHub then lets sign-in come back to."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (CI does)")
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    service = service_process(
        {
            "BOT_ENV_FILE": str(tmp_path / ".env"),
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "BOT_PUBLIC_URL": public,
            "GITHUB_URL": github_fake.url,
            "GITHUB_API_URL": github_fake.url,
        },
        port=port,
    )
    await service.wait_until_serving("/")
    async with Chromium(tmp_path / "chromium-profile") as browser:
        await browser.open(public + "/")
        await browser.evaluate("document.getElementById('register').click()")
        await browser.wait_for(
            "location.href.endsWith('/installations/new')", "the browser lands on GitHub"
        )
        await browser.open(public + "/")
        await browser.evaluate("document.getElementById('sign-in').click()")
        await browser.wait_for("location.pathname === '/courses'", "signed in")
        login = await browser.evaluate("document.getElementById('login').textContent")
        empty = await browser.evaluate("!!document.getElementById('no-courses')")
        await browser.evaluate("document.getElementById('logout').click()")
        await browser.wait_for("!!document.getElementById('sign-in')", "signed out, at /")

    assert github_fake.app.callback_urls == [f"{public}/login/callback"]
    assert login == "alice" and empty
    assert github_fake.oauth_count("authorization_code") == 1
