"""The setup page: registering the service as a GitHub App through GitHub's manifest flow,
against the fake GitHub's form and conversion endpoint, and once in a real browser."""

from __future__ import annotations

import json
import os
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from dotenv import dotenv_values

from bot.app import RELAY, make_app
from bot.services import SERVICES
from bot.web.setup import APP_MANIFEST, build_manifest, unreachable_by_github
from tests.fakes.github import FakeGitHub
from tests.plugins.github_fake import INSTALLATION_ID
from tests.plugins.service import WEBHOOK_SECRET, deliver
from tests.support.chromium import CHROMIUM, Chromium
from tests.support.service_process import free_port

PUBLIC_URL = "https://classroom.example.edu"
CONVERSION = "apps/create-from-manifest"
CREDENTIALS = (
    "GITHUB_APP_ID",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
)


class FormReader(HTMLParser):
    """The forms of a page: each one's method, action and input values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"method": values.get("method"), "action": values.get("action")})
            self.forms[-1]["inputs"] = {}
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"][values.get("name")] = values.get("value")
        elif tag == "button" and self.forms:
            self.forms[-1]["button"] = values.get("id")


def forms_of(page: str) -> list[dict[str, Any]]:
    reader = FormReader()
    reader.feed(page)
    return reader.forms


def app_yml() -> dict[str, Any]:
    return yaml.safe_load(APP_MANIFEST.read_text())


@pytest.fixture
async def setup_client(aiohttp_client, make_settings, github_fake: FakeGitHub):
    """The service, not yet registered, pointed at the fake GitHub."""
    settings = make_settings(
        registered=False,
        GITHUB_URL=github_fake.url,
        GITHUB_API_URL=github_fake.url,
        BOT_PUBLIC_URL=PUBLIC_URL,
    )
    server = TestServer(make_app(settings, monitoring=False))
    await server.start_server()
    # The browser reaches the service at its https public URL, through a proxy: its
    # Secure cookies come back, as they do here over the test's plain loopback http.
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[server.make_url("/").origin()])
    return await aiohttp_client(server, cookie_jar=jar)


async def register_form(client, query: str = "") -> dict[str, Any]:
    response = await client.get("/" + query)
    assert response.status == 200
    forms = forms_of(await response.text())
    assert len(forms) == 1, forms
    return forms[0]


async def post_to_github(form: dict[str, Any]) -> str:
    """Submit the setup form as the browser would; the URL GitHub sends the person back to."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(form["action"], data=form["inputs"], allow_redirects=False) as response,
    ):
        assert response.status == 302, await response.text()
        return response.headers["Location"]


def callback_path(location: str, **replace: str | None) -> str:
    """GitHub's redirect, as the path on this service, with query values replaced or dropped."""
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in replace.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return parts.path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


# -- app.yml and the manifest ---------------------------------------------------------------


def test_app_yml_asks_for_exactly_what_the_app_needs() -> None:
    manifest = app_yml()
    assert manifest["default_permissions"] == {
        "checks": "write",
        "contents": "write",
        "issues": "write",
        "deployments": "write",
        "pull_requests": "read",
        "metadata": "read",
    }
    assert sorted(manifest["default_events"]) == sorted(
        ["push", "pull_request", "issue_comment", "check_suite", "check_run", "repository"]
    )


def test_manifest_is_app_yml_plus_the_services_own_urls() -> None:
    assert build_manifest(PUBLIC_URL) == {
        **app_yml(),
        "url": PUBLIC_URL,
        "hook_attributes": {"url": f"{PUBLIC_URL}/webhook", "active": True},
        "redirect_url": f"{PUBLIC_URL}/setup/callback",
        "callback_urls": [f"{PUBLIC_URL}/login/callback"],
        "request_oauth_on_install": False,
    }


async def test_setup_page_posts_the_manifest_to_github(setup_client, github_fake) -> None:
    form = await register_form(setup_client)
    action = urlsplit(form["action"])
    assert form["method"] == "post"
    assert f"{action.scheme}://{action.netloc}{action.path}" == (
        f"{github_fake.url}/settings/apps/new"
    )
    assert parse_qs(action.query)["state"][0]
    manifest = json.loads(form["inputs"]["manifest"])
    assert manifest == {
        **app_yml(),
        "url": PUBLIC_URL,
        "hook_attributes": {"url": f"{PUBLIC_URL}/webhook", "active": True},
        "redirect_url": f"{PUBLIC_URL}/setup/callback",
        "callback_urls": [f"{PUBLIC_URL}/login/callback"],
        "request_oauth_on_install": False,
    }
    assert form["button"] == "register"


async def test_each_visit_gets_its_own_state(setup_client) -> None:
    first = parse_qs(urlsplit((await register_form(setup_client))["action"]).query)["state"]
    second = parse_qs(urlsplit((await register_form(setup_client))["action"]).query)["state"]
    assert first != second


async def test_org_query_targets_the_organizations_new_app_form(setup_client, github_fake) -> None:
    form = await register_form(setup_client, "?org=octo-org")
    action = urlsplit(form["action"])
    assert f"{action.scheme}://{action.netloc}{action.path}" == (
        f"{github_fake.url}/organizations/octo-org/settings/apps/new"
    )
    location = await post_to_github(form)
    assert github_fake.manifests[-1]["organization"] == "octo-org"
    assert urlsplit(location).path == "/setup/callback"


@pytest.mark.parametrize(
    "org",
    ["-octo", "octo org", "octo/../evil", "x" * 40, "octo.org", "<script>", "octo%2Fevil"],
)
async def test_bad_org_name_is_refused(setup_client, github_fake, org: str) -> None:
    response = await setup_client.get("/", params={"org": org})
    assert response.status == 400
    text = await response.text()
    assert "not a GitHub organization name" in text
    assert forms_of(text) == []


# -- the callback -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["wrong-state", "", None])
async def test_wrong_or_missing_state_saves_nothing(
    setup_client, github_fake, tmp_path: Path, state: str | None
) -> None:
    location = await post_to_github(await register_form(setup_client))
    response = await setup_client.get(callback_path(location, state=state), allow_redirects=False)
    assert response.status == 400
    assert "Nothing was saved" in await response.text()
    assert not (tmp_path / ".env").exists()
    assert github_fake.count(CONVERSION) == 0
    assert not setup_client.app[SERVICES].settings.registered
    assert (await setup_client.get("/readyz")).status == 503


async def test_a_callback_from_another_browser_registers_nothing(
    setup_client, github_fake, tmp_path: Path
) -> None:
    """Someone else's browser (no cookie, or its own) with the right state and code is
    refused, the state stays the first browser's, and that browser still registers."""
    location = await post_to_github(await register_form(setup_client))
    url = setup_client.make_url(callback_path(location))
    async with aiohttp.ClientSession() as stranger:
        refused = await stranger.get(url, allow_redirects=False)
        assert refused.status == 400
        assert "another browser" in await refused.text()
        # A browser that started a setup of its own holds its own cookie: refused too.
        cookie = {"classroom_setup": "A" * 32}
        refused = await stranger.get(url, allow_redirects=False, cookies=cookie)
        assert refused.status == 400
    assert github_fake.count(CONVERSION) == 0
    assert not (tmp_path / ".env").exists()
    assert not setup_client.app[SERVICES].settings.registered
    response = await setup_client.get(callback_path(location), allow_redirects=False)
    assert response.status == 302
    assert setup_client.app[SERVICES].settings.registered


async def test_the_setup_cookie_is_http_only_lax_and_secure_behind_https(setup_client) -> None:
    response = await setup_client.get("/")
    header = response.headers["Set-Cookie"]
    assert header.startswith("classroom_setup=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/setup"):
        assert attribute in header, header


async def test_wrong_state_leaves_an_existing_env_file_unchanged(
    setup_client, github_fake, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('LOG_FORMAT="text"\n')
    before = env_file.read_bytes()
    location = await post_to_github(await register_form(setup_client))
    response = await setup_client.get(callback_path(location, state="forged"))
    assert response.status == 400
    assert env_file.read_bytes() == before
    assert github_fake.count(CONVERSION) == 0


async def test_a_state_from_another_visit_cannot_be_used_twice(setup_client, github_fake) -> None:
    location = await post_to_github(await register_form(setup_client))
    # GitHub refuses a code it does not know; the state is spent all the same.
    response = await setup_client.get(callback_path(location, code="0123456789abcdef"))
    assert response.status == 400
    assert "refused the code" in await response.text()
    again = await setup_client.get(callback_path(location))
    assert again.status == 400
    assert "Nothing was saved" in await again.text()
    assert github_fake.count(CONVERSION) == 1


async def test_a_conversion_answer_without_credentials_saves_nothing(
    setup_client, github_fake: FakeGitHub, tmp_path: Path, monkeypatch
) -> None:
    """The callback checks GitHub's answer as the client's ``convert_manifest`` does."""

    async def answer_without_credentials(request, params, body):
        github_fake.conversions.pop(params["code"], None)
        return web.json_response({"id": github_fake.app.id, "slug": "x"}, status=201)

    monkeypatch.setattr(github_fake, "_op_apps_create_from_manifest", answer_without_credentials)
    location = await post_to_github(await register_form(setup_client))
    response = await setup_client.get(callback_path(location), allow_redirects=False)
    assert response.status == 502
    assert "Nothing was saved" in await response.text()
    assert not (tmp_path / ".env").exists()
    assert not setup_client.app[SERVICES].settings.registered


async def test_registration_saves_credentials_and_uses_them_at_once(
    setup_client, github_fake: FakeGitHub, tmp_path: Path, example
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('EXISTING_SETTING="kept"\nGITHUB_CLIENT_ID="stale"\n')
    env_file.chmod(0o644)
    assert (await setup_client.get("/readyz")).status == 503

    location = await post_to_github(await register_form(setup_client))
    # A wrong state first: it must not spend GitHub's code, which still works afterwards.
    assert (await setup_client.get(callback_path(location, state="forged"))).status == 400
    response = await setup_client.get(callback_path(location), allow_redirects=False)

    assert response.status == 302
    assert response.headers["Location"] == (
        f"{github_fake.url}/apps/{github_fake.app.slug}/installations/new"
    )
    assert github_fake.count(CONVERSION) == 1
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    saved = dotenv_values(env_file)
    assert saved["EXISTING_SETTING"] == "kept"
    assert saved["GITHUB_APP_ID"] == str(github_fake.app.id)
    assert saved["GITHUB_PRIVATE_KEY"].strip() == github_fake.app.private_key_pem.strip()
    assert saved["GITHUB_WEBHOOK_SECRET"] == github_fake.app.webhook_secret
    assert saved["GITHUB_CLIENT_ID"] == github_fake.app.client_id
    assert saved["GITHUB_CLIENT_SECRET"] == github_fake.app.client_secret
    assert set(CREDENTIALS) <= set(saved)
    # No secret in what the browser was shown.
    shown = await response.text()
    for secret in (github_fake.app.webhook_secret, github_fake.app.client_secret):
        assert secret not in shown and secret not in response.headers["Location"]

    # Used at once, without a restart: ready, the new secret verifies deliveries (an old
    # one does not), and the new private key gets installation tokens from GitHub.
    assert (await setup_client.get("/readyz")).status == 200
    ping = example("ping")
    assert (
        await deliver(setup_client, "ping", ping, secret=github_fake.app.webhook_secret)
    ).status == 200
    assert (await deliver(setup_client, "ping", ping, secret=WEBHOOK_SECRET)).status == 401
    services = setup_client.app[SERVICES]
    await services.github.installation_api(INSTALLATION_ID)
    assert github_fake.count("apps/create-installation-access-token") == 1
    assert services.app_slug == github_fake.app.slug

    # Nobody can register it again: the callback is gone and / is the landing page.
    assert (await setup_client.get(callback_path(location))).status == 404
    landing = await setup_client.get("/")
    assert landing.status == 200
    page = await landing.text()
    assert forms_of(page) == [] and 'id="register"' not in page
    assert f"/apps/{github_fake.app.slug}/installations/new" in page
    assert github_fake.count(CONVERSION) == 1


# -- as a person would, in a browser -------------------------------------------------------------


@pytest.mark.browser
async def test_a_person_registers_the_app_in_chromium(
    github_fake: FakeGitHub, service_process, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (CI does) to run the "
            "browser test"
        )
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    env_file = tmp_path / ".env"
    service = service_process(
        {
            "BOT_ENV_FILE": str(env_file),
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "BOT_PUBLIC_URL": public_url,
            "GITHUB_URL": github_fake.url,
            "GITHUB_API_URL": github_fake.url,
        },
        port=port,
    )
    await service.wait_until_serving("/")

    async with Chromium(tmp_path / "chromium-profile") as browser:
        await browser.open(public_url + "/")
        assert await browser.evaluate("document.title") == "Set up Littlest Classroom"
        screenshot = await browser.screenshot()
        (tmp_path / "setup-page.png").write_bytes(screenshot)
        assert screenshot.startswith(b"\x89PNG\r\n\x1a\n")

        await browser.evaluate("document.getElementById('register').click()")
        await browser.wait_for(
            "location.href.endsWith('/installations/new')", "the browser lands on GitHub"
        )
        landed = await browser.evaluate("location.href")
        text = await browser.evaluate("document.body.innerText")

    assert landed == f"{github_fake.url}/apps/{github_fake.app.slug}/installations/new"
    assert "The GitHub App Littlest Classroom is registered." in text
    assert github_fake.manifests[-1]["manifest"]["redirect_url"] == public_url + "/setup/callback"
    assert github_fake.count(CONVERSION) == 1
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert dotenv_values(env_file)["GITHUB_APP_ID"] == str(github_fake.app.id)
    async with aiohttp.ClientSession() as session:
        async with session.get(public_url + "/readyz") as ready:
            assert ready.status == 200
        async with session.get(public_url + "/setup/callback") as closed:
            assert closed.status == 404


# -- a trial on a laptop ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "unreachable"),
    [
        ("http://127.0.0.1:3000", True),
        ("http://localhost:3000", True),
        ("http://192.168.1.20:3000", True),
        ("http://10.0.0.5", True),
        ("http://[::1]:3000", True),
        ("http://my-laptop.local:3000", True),
        ("https://classroom.example.edu", False),
        ("http://140.82.112.3:3000", False),
    ],
)
def test_loopback_and_private_addresses_are_unreachable_by_github(url, unreachable):
    assert unreachable_by_github(url) is unreachable


async def test_the_setup_page_says_github_cannot_reach_a_loopback_url(
    aiohttp_client, make_settings, github_fake: FakeGitHub
):
    settings = make_settings(
        registered=False, GITHUB_URL=github_fake.url, BOT_PUBLIC_URL="http://127.0.0.1:3000"
    )
    client = await aiohttp_client(make_app(settings, monitoring=False))
    page = await (await client.get("/")).text()
    assert "id=unreachable" in page and "WEBHOOK_PROXY_URL" in page
    public = await aiohttp_client(
        make_app(make_settings(registered=False, BOT_PUBLIC_URL=PUBLIC_URL), monitoring=False)
    )
    assert "id=unreachable" not in await (await public.get("/")).text()


async def test_with_a_relay_channel_github_sends_deliveries_to_it(
    aiohttp_client, make_settings, github_fake: FakeGitHub
):
    channel = "https://smee.io/aBcD1234efGH"
    settings = make_settings(
        registered=False, GITHUB_URL=github_fake.url, WEBHOOK_PROXY_URL=channel
    )
    client = await aiohttp_client(make_app(settings, monitoring=False))
    relay = client.app[RELAY]
    await relay.stop()  # the channel is not reachable from the tests
    page = await (await client.get("/")).text()
    assert "id=relay" in page and "id=unreachable" not in page
    manifest = json.loads(forms_of(page)[0]["inputs"]["manifest"])
    assert manifest["hook_attributes"] == {"url": channel, "active": True}
