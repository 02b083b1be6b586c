"""Acceptance in Chromium: the admin sets a hub password on the console, then logs into a
real JupyterHub 5.5 (NativeAuthenticator 1.3.0) as its admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support.chromium import CHROMIUM, Chromium
from tests.support.hub import Browser, HubSupervisor, RealHub

pytestmark = [pytest.mark.sshd, pytest.mark.browser]

ADMIN_PASSWORD = "pale-otter-87-lantern"


async def test_the_admin_sets_a_hub_password_in_chromium_and_is_the_hubs_admin(
    classroom, example, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (CI does)")
    tljh_root = classroom.target.sandbox / "opt" / "tljh"
    hub = RealHub(tmp_path / "hub", tljh_root / "state" / "jupyterhub.sqlite", tljh_root)
    try:
        with HubSupervisor(hub, classroom.target.sandbox / "control") as supervisor:
            sha = classroom.commit(ssh_course_files(classroom.target))  # hub.admins: [alice]
            await classroom.push(example, sha)
            await classroom.settle()
        assert supervisor.errors == []
        assert not Browser(hub).login("alice", ADMIN_PASSWORD)  # no usable password yet
        public = classroom.services.settings.public_url

        async with Chromium(tmp_path / "chromium-profile") as browser:
            await browser.send("Page.enable")
            await browser.open(public + "/")
            await browser.evaluate("document.getElementById('sign-in').click()")
            await browser.wait_for("location.pathname === '/courses'", "signed in")
            await browser.open(f"{public}/courses/{COURSE_REPO}")
            await browser.wait_for("!!document.getElementById('own-password')", "the form")
            await browser.evaluate(
                f"document.getElementById('password-input').value = '{ADMIN_PASSWORD}';"
                f"document.getElementById('again-input').value = '{ADMIN_PASSWORD}';"
                "document.getElementById('set-password').click()"
            )
            # A job in the course's queue sets it; the page follows it to its end.
            await browser.wait_for(
                "(() => { const row = document.querySelector('#job-table tbody tr[data-job]');"
                " return !!row && row.cells[1].textContent === 'hub-password'"
                " && row.dataset.done === 'yes'"
                " && row.querySelector('.conclusion').textContent === 'success'; })()",
                "the password job succeeded",
            )
            page = await browser.evaluate("document.documentElement.outerHTML")
        assert ADMIN_PASSWORD not in page

        alice = Browser(hub)
        assert alice.login("alice", ADMIN_PASSWORD)
        assert alice.is_admin()
    finally:
        hub.stop()
