"""The instructor console through the real app: sign-in with GitHub's OAuth web flow (the
fake GitHub), sessions, CSRF, who sees what, and the buttons' jobs."""

from __future__ import annotations

import asyncio
import gc
import html
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from bot.app import make_app
from bot.backup_schedule import due_key
from bot.jobs import registry
from bot.jobs.course import ProgressLog
from bot.store import RUNNING, Job, MonitorState, NewJob
from bot.web.access import ACCESS
from bot.web.console import job_view
from bot.web.sessions import IDLE_SECONDS, SESSION_COOKIE, SESSION_KEY_FILE
from deploy.model import Observed, OperationResult, ServerRecord
from tests.console_support import csrf_of, follow_authorize, local, sign_in
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID

pytestmark = pytest.mark.sshd

XSS = "<img src=x onerror=alert(1)>"


async def known_course(classroom) -> None:
    await classroom.services.store.add_courses(INSTALLATION_ID, [(COURSE_REPO, None)])


def set_session_cookie(client, value: str) -> None:
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: value}, client.make_url("/"))


def session_cookie(client) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return cookie.value
    return None


async def signed_out(client) -> bool:
    answer = await client.get("/courses", allow_redirects=False)
    return answer.status == 302 and answer.headers["Location"] == "/login"


# -- signing in --------------------------------------------------------------------------------


async def test_login_sends_the_browser_to_github_with_a_state_bound_to_it(classroom):
    answer = await classroom.client.get("/login", allow_redirects=False)
    assert answer.status == 302
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == (
        f"{classroom.github.url}/login/oauth/authorize"
    )
    query = parse_qs(target.query)
    assert query["client_id"] == [classroom.github.app.client_id]
    public = classroom.services.settings.public_url
    assert query["redirect_uri"] == [f"{public}/login/callback"]
    assert len(query["state"][0]) >= 32
    again = await classroom.client.get("/login", allow_redirects=False)
    assert parse_qs(urlsplit(again.headers["Location"]).query)["state"] != query["state"]


async def test_sign_in_round_trip_lists_the_writers_course(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github, "alice")
    page = await classroom.client.get("/courses")
    assert page.status == 200
    text = await page.text()
    assert f'href="/courses/{COURSE_REPO}"' in text
    assert 'id="login">alice<' in text
    assert classroom.github.oauth_count("authorization_code") == 1


async def test_a_changed_state_is_refused_and_signs_nobody_in(classroom):
    started = await classroom.client.get("/login", allow_redirects=False)
    back = await follow_authorize(started.headers["Location"])
    parts = urlsplit(back)
    query = parse_qs(parts.query)
    forged = f"{parts.path}?code={query['code'][0]}&state={query['state'][0]}x"
    answer = await classroom.client.get(forged, allow_redirects=False)
    assert answer.status == 400
    assert "does not match" in await answer.text()
    assert classroom.github.oauth_count("authorization_code") == 0
    assert await signed_out(classroom.client)
    # The state is used up: the genuine link cannot be replayed afterwards either.
    replay = await classroom.client.get(local(back), allow_redirects=False)
    assert replay.status == 400


async def test_cancelling_on_github_signs_nobody_in_and_says_why(classroom):
    started = await classroom.client.get("/login", allow_redirects=False)
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    answer = await classroom.client.get(
        "/login/callback",
        params={
            "error": "access_denied",
            "error_description": "The user has denied your application access.",
            "state": state,
        },
    )
    assert answer.status == 400
    assert "The user has denied your application access." in await answer.text()
    assert classroom.github.oauth_count("authorization_code") == 0
    assert await signed_out(classroom.client)


async def test_sign_out_ends_the_session(classroom):
    await sign_in(classroom.client, classroom.github)
    page = await (await classroom.client.get("/courses")).text()
    answer = await classroom.client.post(
        "/logout", data={"csrf_token": csrf_of(page)}, allow_redirects=False
    )
    assert answer.status == 303
    assert await signed_out(classroom.client)


# -- who sees what -----------------------------------------------------------------------------


async def test_a_reader_gets_404_and_their_post_creates_no_job(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github, "bob")
    listing = await (await classroom.client.get("/courses")).text()
    assert f"/courses/{COURSE_REPO}" not in listing
    page = await classroom.client.get(f"/courses/{COURSE_REPO}")
    unknown = await classroom.client.get("/courses/octo-org/no-such-course")
    assert page.status == unknown.status == 404
    assert await page.text() == await unknown.text()
    answer = await classroom.client.post(
        f"/courses/{COURSE_REPO}/run/restart",
        data={"csrf_token": csrf_of(listing)},
        allow_redirects=False,
    )
    assert answer.status == 404
    assert await classroom.services.store.jobs() == []


async def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github, "alice")
    for data in ({}, {"csrf_token": "forged"}):
        answer = await classroom.client.post(
            f"/courses/{COURSE_REPO}/run/restart", data=data, allow_redirects=False
        )
        assert answer.status == 403
    assert await classroom.services.store.jobs() == []


async def test_a_writer_presses_restart_and_the_command_job_runs(classroom, example):
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    await sign_in(classroom.client, classroom.github, "carol")
    page = await classroom.client.get(f"/courses/{COURSE_REPO}")
    assert page.status == 200
    text = await page.text()
    assert 'id="run-restart"' in text and 'id="run-rebuild"' in text
    assert 'id="hub-version">TLJH 2.0.0<' in text
    answer = await classroom.client.post(
        f"/courses/{COURSE_REPO}/run/restart",
        data={"csrf_token": csrf_of(text)},
        allow_redirects=False,
    )
    assert answer.status == 303
    await classroom.settle()
    job = (await classroom.services.store.jobs())[-1]
    assert (job.kind, job.coalesce_key) == ("command", "command:restart")
    assert job.payload == {
        "name": "restart",
        "args": [],
        "user": "carol",
        "source": "console",
        "default_branch": "main",
    }
    assert job.state == "done" and job.result["conclusion"] == "success"
    progress = await (await classroom.client.get(f"/courses/{COURSE_REPO}/jobs.json")).json()
    assert progress["jobs"][0]["operation"] == "restart"
    assert progress["jobs"][0]["conclusion"] == "success"


# -- sessions ----------------------------------------------------------------------------------


async def test_a_tampered_cookie_signs_the_user_out(classroom):
    await sign_in(classroom.client, classroom.github)
    value = session_cookie(classroom.client)
    assert value
    set_session_cookie(classroom.client, value)
    assert not await signed_out(classroom.client)  # the cookie as issued still works
    flipped = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    set_session_cookie(classroom.client, flipped)
    assert await signed_out(classroom.client)


async def test_an_idle_cookie_signs_the_user_out(classroom):
    await sign_in(classroom.client, classroom.github)
    key = (classroom.services.settings.data_dir / SESSION_KEY_FILE).read_bytes().strip()
    fernet = Fernet(key)
    data = fernet.decrypt(session_cookie(classroom.client).encode())
    recent = fernet.encrypt_at_time(data, int(time.time()) - IDLE_SECONDS + 600).decode()
    set_session_cookie(classroom.client, recent)
    assert not await signed_out(classroom.client)  # idle for less than 8 hours
    stale = fernet.encrypt_at_time(data, int(time.time()) - IDLE_SECONDS - 60).decode()
    set_session_cookie(classroom.client, stale)
    assert await signed_out(classroom.client)


async def test_the_session_key_is_private_and_the_cookie_strict(classroom):
    started = await classroom.client.get("/login", allow_redirects=False)
    cookie = started.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    key_file = classroom.services.settings.data_dir / SESSION_KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_an_expired_user_token_is_refreshed_once(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github)
    classroom.github.expire_user_tokens("alice")
    classroom.client.app[ACCESS].clear()
    assert (await classroom.client.get("/courses")).status == 200
    classroom.client.app[ACCESS].clear()
    assert (await classroom.client.get("/courses")).status == 200
    assert classroom.github.oauth_count("refresh_token") == 1


async def test_requests_racing_to_refresh_share_one_refresh(classroom):
    await sign_in(classroom.client, classroom.github)
    classroom.github.expire_user_tokens("alice")
    classroom.client.app[ACCESS].clear()
    answers = await asyncio.gather(*(classroom.client.get("/courses") for _ in range(3)))
    assert [a.status for a in answers] == [200, 200, 200]
    assert classroom.github.oauth_count("refresh_token") == 1
    assert not await signed_out(classroom.client)


async def test_github_failing_is_a_502_not_a_sign_out(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github)
    classroom.github.queue("repos/get-collaborator-permission-level", 500)
    answer = await classroom.client.get(f"/courses/{COURSE_REPO}")
    assert answer.status == 502
    assert (await classroom.client.get(f"/courses/{COURSE_REPO}")).status == 200


async def test_a_token_past_its_expiry_time_is_refreshed_before_use(classroom):
    from datetime import timedelta

    classroom.github.user_token_lifetime = timedelta(seconds=30)  # inside the margin
    await sign_in(classroom.client, classroom.github)
    classroom.github.user_token_lifetime = timedelta(hours=8)
    assert (await classroom.client.get("/courses")).status == 200
    assert (await classroom.client.get("/courses")).status == 200
    assert classroom.github.oauth_count("refresh_token") == 1


async def test_a_revoked_token_signs_the_user_out(classroom):
    await sign_in(classroom.client, classroom.github)
    classroom.github.revoke_user_tokens("alice")
    classroom.client.app[ACCESS].clear()
    assert await signed_out(classroom.client)
    assert await signed_out(classroom.client)


# -- escaping ----------------------------------------------------------------------------------


async def test_a_job_log_with_markup_is_shown_as_text(classroom):
    await known_course(classroom)
    store = classroom.services.store
    await store.save_server(
        COURSE_REPO, ServerRecord(provider="ssh", address=XSS, size=XSS, region=XSS)
    )
    await store.save_course_facts(COURSE_REPO, {"hub_url": "javascript:alert(1)"})
    await store.save_monitor_state(
        MonitorState(COURSE_REPO, state="down", detail={"probes": [XSS]})
    )
    added = await store.enqueue(NewJob(COURSE_REPO, "command", {"name": "status", "user": XSS}))
    assert added is not None
    await store.finish_job(
        added[0], "done", result={"conclusion": "success", "title": XSS, "log": XSS}
    )
    await sign_in(classroom.client, classroom.github)
    text = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    assert XSS not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "javascript:" not in text  # a hub URL is a link only when it is http(s)
    assert 'id="hub-health">down (&lt;img src=x onerror=alert(1)&gt;)<' in text
    listing = await (await classroom.client.get("/courses")).text()
    assert XSS not in listing and "&lt;img src=x onerror=alert(1)&gt;" in listing
    data = await (await classroom.client.get(f"/courses/{COURSE_REPO}/jobs.json")).json()
    assert data["jobs"][0]["log"] == XSS  # JSON for textContent, never parsed as markup


async def test_pages_send_a_strict_content_security_policy(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github)
    for path in ("/", "/courses", f"/courses/{COURSE_REPO}"):
        answer = await classroom.client.get(path)
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert answer.headers["X-Frame-Options"] == "DENY"


async def test_the_landing_page_links_to_installing_and_signing_in(classroom):
    text = await (await classroom.client.get("/")).text()
    slug = classroom.github.app.slug
    assert f'href="{classroom.github.url}/apps/{slug}/installations/new"' in text
    assert 'href="/login"' in text


async def test_a_resize_button_asks_for_the_resize_command_with_a_valid_size(classroom):
    await known_course(classroom)
    classroom.services.runner.pause()  # only what is asked for matters here
    try:
        await asks_for_resize(classroom)
    finally:
        classroom.services.runner.resume()


async def asks_for_resize(classroom) -> None:
    await sign_in(classroom.client, classroom.github, "alice")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    for size, problem in (
        ("s-4vcpu-8gb; reboot", "Resize: Size: `s-4vcpu-8gb; reboot` is not a DigitalOcean size"),
        ("", "`/resize` needs a size slug, or `--nodes MIN:MAX`"),
        ("S-4VCPU", "Resize: Size: `S-4VCPU` is not a DigitalOcean size slug: lower-case"),
    ):
        refused = await classroom.client.post(
            f"/courses/{COURSE_REPO}/run/resize",
            data={"csrf_token": csrf_of(page), "size": size},
            allow_redirects=False,
        )
        assert refused.status == 400
        assert problem in html.unescape(await refused.text())
    nodes = await classroom.client.post(
        f"/courses/{COURSE_REPO}/run/resize",
        data={"csrf_token": csrf_of(page), "nodes": "9:2"},
        allow_redirects=False,
    )
    assert nodes.status == 400 and "Nodes: `9:2` is not a node range" in html.unescape(
        await nodes.text()
    )
    unknown = await classroom.client.post(
        f"/courses/{COURSE_REPO}/run/destroy",
        data={"csrf_token": csrf_of(page)},
        allow_redirects=False,
    )
    assert unknown.status == 404
    assert await classroom.services.store.jobs() == []
    answer = await classroom.client.post(
        f"/courses/{COURSE_REPO}/run/resize",
        data={"csrf_token": csrf_of(page), "size": "s-4vcpu-8gb", "disk": "on", "nodes": ""},
        allow_redirects=False,
    )
    assert answer.status == 303
    [job] = await classroom.services.store.jobs()
    assert (job.payload["name"], job.payload["args"]) == ("resize", ["s-4vcpu-8gb", "--disk"])
    assert job.coalesce_key == "command:resize s-4vcpu-8gb --disk"
    assert job.installation_id == INSTALLATION_ID


async def test_the_cookie_is_secure_when_the_service_is_https(aiohttp_client, make_settings):
    settings = make_settings(
        BOT_PUBLIC_URL="https://classroom.example.edu",
        GITHUB_CLIENT_ID="Iv1.0123456789abcdef",
        GITHUB_CLIENT_SECRET="0123456789abcdef0123456789abcdef01234567",
    )
    client = await aiohttp_client(make_app(settings, monitoring=False))
    answer = await client.get("/login", allow_redirects=False)
    assert answer.status == 302
    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


async def test_a_running_jobs_view_shows_its_log_so_far():
    class QuietReporter:
        async def job_progress(self, *args: object) -> None:
            return None

    job = Job(
        id=987654, course=COURSE_REPO, kind="command", payload={"name": "rebuild"},
        state=RUNNING, attempts=1, not_before=0, coalesce_key=None, installation_id=1,
        delivery_id=None, created_at=0, started_at=1, finished_at=None, error=None, result=None,
    )  # fmt: skip
    progress = ProgressLog(QuietReporter(), job, "/rebuild")  # type: ignore[arg-type]
    await progress.line("step apt: installing graphviz")
    view = job_view(job)
    assert view["log"] == "step apt: installing graphviz"
    assert view["title"] == "/rebuild: 1 lines so far" and not view["done"]
    del progress
    gc.collect()
    assert job_view(job)["log"] == ""


async def test_the_page_has_a_form_per_button_entry_with_fields_from_its_grammar(classroom):
    await known_course(classroom)
    await sign_in(classroom.client, classroom.github, "alice")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    forms = re.findall(r'<form method="post" action="/courses/[^"]+/run/([a-z-]+)"', page)
    # Operations, then Storage; no Assignments section without assignments.
    assert forms == [
        op.name
        for section in ("operations", "storage")
        for op in registry.buttons()
        if op.button.section == section
    ]
    assert len(forms) > registry.MAX_CHECK_RUN_BUTTONS
    # /resize SIZE [--disk] | --nodes MIN:MAX: a size (no sizes known here: typed), a
    # checkbox, a node range, each with its kind's pattern and help.
    assert re.search(
        r'<input type="text" name="size" id="resize-size" title="A DigitalOcean size slug'
        r'[^>]*pattern="\[a-z0-9\]\+',
        page,
    )
    assert '<input type="checkbox" name="disk" id="resize-disk"' in page
    assert re.search(r'name="nodes" id="resize-nodes"[^>]*pattern="\[0-9\]\{1,3\}:', page)
    assert re.search(r'name="student" id="restore-student"[^>]*pattern=', page)
    assert 'id="run-status"' in page and 'id="run-backup"' in page


async def test_the_storage_section_shows_the_volume_and_its_backups(classroom):
    await known_course(classroom)
    store = classroom.services.store
    await store.save_observation(
        COURSE_REPO,
        Observed(home_volume="physics101-hub-home", home_on_volume=True, disk_used_percent=38.0,
                 disk_free_bytes=31 * 2**30),
    )  # fmt: skip
    await store.save_course_facts(COURSE_REPO, {"backup_every": 86400})
    await store.set_meta(due_key(COURSE_REPO), "2026-12-07T02:00:00+00:00")
    added = await store.enqueue(
        NewJob(COURSE_REPO, "command", {"name": "backup", "source": "schedule"})
    )
    assert added is not None
    await store.finish_job(
        added[0], "done", result={"conclusion": "success", "title": "Snapshot home-1"}
    )
    await sign_in(classroom.client, classroom.github, "alice")
    page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
    section = page[
        page.index('<section id="storage">') : page.index(
            "</section>", page.index('<section id="storage">')
        )
    ]
    assert '<dd id="storage-volume">physics101-hub-home</dd>' in section
    assert '<dd id="storage-home">on the volume (seen ' in section
    assert '<dd id="storage-disk">38% used, 31.0 GiB free</dd>' in section
    assert "snapshots of the volume every day; next 2026-12-07 02:00 UTC" in section
    assert f"job {added[0]}: Snapshot home-1" in section
    for name in ("backup", "restore", "move-home", "recover"):
        assert f'id="run-{name}"' in section


@pytest.fixture
def admin_button():
    """A button entry only admins may run, beside the others (the console has no limit)."""
    registry.operations()
    saved = dict(registry.OPERATIONS)

    async def run(op, args) -> OperationResult:
        return OperationResult("success", "Hub locked", "Locked.")

    registry.operation(
        "lock-hub",
        summary="Close the hub to sign-ups.",
        permission=registry.ADMIN,
        button=registry.Button("Lock hub", "Close sign-ups"),
        needs_config=False,
    )(run)
    yield "lock-hub"
    registry.OPERATIONS.clear()
    registry.OPERATIONS.update(saved)


async def test_a_button_keeps_its_entrys_permission(classroom, admin_button):
    await known_course(classroom)
    classroom.github.repositories[COURSE_REPO].collaborators["carol"] = "write"
    classroom.services.runner.pause()
    try:
        for login, status in (("carol", 403), ("alice", 303)):
            classroom.client.session.cookie_jar.clear()
            await sign_in(classroom.client, classroom.github, login)
            page = await (await classroom.client.get(f"/courses/{COURSE_REPO}")).text()
            assert f'id="run-{admin_button}"' in page
            answer = await classroom.client.post(
                f"/courses/{COURSE_REPO}/run/{admin_button}",
                data={"csrf_token": csrf_of(page)},
                allow_redirects=False,
            )
            assert answer.status == status, login
            if login == "carol":
                assert await classroom.services.store.jobs() == []
        [job] = await classroom.services.store.jobs()
        assert (job.payload["name"], job.payload["user"]) == (admin_button, "alice")
    finally:
        classroom.services.runner.resume()
