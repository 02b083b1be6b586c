"""The session's secret scan (``tests/plugins/secret_scan.py``) works, and the pages are clean.

The scan itself runs at the end of the session over every log line and every body the
fake GitHub received. Here: proof that it catches planted secrets in each kind of text it
gathers; that every fixture's secrets are registered as the fixture is made; that a
whole pytest session (run in a subprocess with the plugin) fails when a log line or a
body sent to the fake GitHub holds a secret, names what leaked without printing it, and
passes when nothing did; and the service's pages, fetched after a real deploy, handed
to it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.app import make_app
from deploy.redact import add_secrets
from tests.console_support import sign_in
from tests.fakes.digitalocean import FAKE_TOKEN, DigitalOceanFake
from tests.fakes.github import FakeGitHub
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.plugins.secret_scan import (
    SCANNER,
    ProductionLogHandler,
    SecretScanner,
    strings_in,
)
from tests.plugins.service import WEBHOOK_SECRET

PLANTED = "planted-secret-0f9e8d7c6b5a4321"


def test_the_scanner_finds_a_planted_secret_and_nothing_in_clean_text() -> None:
    scanner = SecretScanner()
    scanner.add_secret(PLANTED, "a planted secret")
    scanner.add_text("clean", "deployed physics101 in 42 s; token [REDACTED]")
    scanner.add_text("leaky", f"connecting with {PLANTED} now")
    findings = scanner.findings()
    assert [f.source for f in findings] == ["leaky"]
    assert "a planted secret" in findings[0].what
    assert PLANTED not in str(findings[0]), "a report must not print the secret itself"


def test_the_scanner_finds_secret_shapes_it_was_never_told_of() -> None:
    scanner = SecretScanner()
    scanner.add_text("token", "Authorization: token ghs_" + "A1b2C3d4" * 5)
    scanner.add_text("do", "dop_v1_" + "ab12" * 16)
    scanner.add_text("jwt", "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiI0MjQyIn0.c2lnbmF0dXJlLXBhcnQ")
    scanner.add_text("pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----")
    assert sorted(f.source for f in scanner.findings()) == ["do", "jwt", "pem", "token"]


def test_the_scanner_finds_a_private_key_by_its_lines_even_escaped(app_private_key: str) -> None:
    scanner = SecretScanner()
    scanner.add_secret(app_private_key, "the App key")
    middle = app_private_key.splitlines()[5]
    scanner.add_text("one line", f"key material: {middle}")
    scanner.add_text("escaped", "GITHUB_PRIVATE_KEY=" + app_private_key.replace("\n", "\\n"))
    assert sorted({f.source for f in scanner.findings()}) == ["escaped", "one line"]


def test_the_scanner_reads_file_contents_inside_github_bodies() -> None:
    encoded = base64.b64encode(f"# README\n{PLANTED}\n".encode()).decode()
    body = {"message": "Update README", "content": encoded, "sha": "abc"}
    scanner = SecretScanner()
    scanner.add_secret(PLANTED, "a planted secret")
    scanner.add_text("README commit", "\n".join(strings_in(body)))
    assert len(scanner.findings()) == 1


def test_log_lines_are_scanned_as_production_writes_them() -> None:
    scanner = SecretScanner()
    known = "known-to-redaction-5a4b3c2d1e"
    unknown = "unknown-to-redaction-9z8y7x6w"
    add_secrets([known])
    scanner.add_secret(known, "a secret the service knows")
    scanner.add_secret(unknown, "a secret the service was never told of")
    handler = ProductionLogHandler(scanner)
    logger = logging.getLogger("bot.security-test")
    logger.addHandler(handler)
    try:
        logger.warning("using %s", known)  # redacted, as production would
        logger.warning("using %s", unknown)  # not redacted: the scan must see it
        logger.warning("token ghs_%s", "Z9" * 15)  # a shape: redacted
    finally:
        logger.removeHandler(handler)
    findings = scanner.findings()
    assert len(findings) == 1 and "never told of" in findings[0].what
    assert any("[REDACTED]" in text for _, text in scanner.texts)


def test_log_records_reach_other_handlers_unchanged(caplog: pytest.LogCaptureFixture) -> None:
    # The scan formats a copy: pytest's capture (and caplog assertions) keep the original.
    caplog.set_level(logging.INFO)
    logging.getLogger("bot.security-test").info("value %s", "plain-value")
    assert caplog.records[-1].args == ("plain-value",)


def test_every_fixture_secret_is_registered_as_the_fixture_is_made(
    github_fake: FakeGitHub, do_fake: DigitalOceanFake, app_private_key: str
) -> None:
    # The very values this test's fixtures hold, each under what it is.
    expected = {
        WEBHOOK_SECRET: "the tests' webhook secret",
        FAKE_TOKEN: "the fake DigitalOcean token",
        do_fake.token: "the fake DigitalOcean token",
        app_private_key: "the tests' App private key",
        github_fake.app.private_key_pem: "the fake App's private key",
        github_fake.app.client_secret: "the fake App's client secret",
        github_fake.app.webhook_secret: "the fake App's webhook secret",
    }
    for secret, what in expected.items():
        assert SCANNER.secrets.get(secret) == what, what
    # A key is also looked for line by line, so a part of it that leaks is found too.
    line = app_private_key.splitlines()[3]
    assert SCANNER.secrets.get(line) == "the tests' App private key"


def test_log_lines_reach_the_session_scan() -> None:
    marker = "session-scan-marker-7d3f"
    logging.getLogger("bot.security-test").info("deployed physics101 (%s)", marker)
    assert any(marker in text and source.startswith("log ") for source, text in SCANNER.texts)


# ----- a whole session with the plugin, in a subprocess --------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
SESSION_TEST = """
import logging
import time

import aiohttp
import jwt

from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.plugins.service import WEBHOOK_SECRET

LEAK = {leak!r}


async def test_the_service_comments_and_logs(github_fake):
    now = int(time.time())
    assertion = jwt.encode(
        {{"iat": now - 30, "exp": now + 300, "iss": str(github_fake.app.id)}},
        github_fake.app.private_key_pem,
        algorithm="RS256",
    )
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{{github_fake.url}}/app/installations/{{INSTALLATION_ID}}/access_tokens",
            headers={{"Authorization": f"Bearer {{assertion}}"}},
        ) as response:
            token = (await response.json())["token"]
        body = f"deployed with {{token}}" if LEAK == "token" else "deployed"
        async with session.post(
            f"{{github_fake.url}}/repos/{{COURSE_REPO}}/issues",
            json={{"title": "Running the course hub", "body": body}},
            headers={{"Authorization": f"token {{token}}"}},
        ) as response:
            assert response.status == 201
    shown = WEBHOOK_SECRET if LEAK == "log" else "[none]"
    logging.getLogger("bot.session-test").warning("webhook secret: %s", shown)
"""


def run_session(tmp_path: Path, leak: str, *, workers: int = 0) -> subprocess.CompletedProcess[str]:
    """The session test in a pytest of its own; with ``workers``, two copies of it (one
    clean) shared among that many pytest-xdist workers."""
    (tmp_path / "test_session.py").write_text(textwrap.dedent(SESSION_TEST.format(leak=leak)))
    if workers:
        clean = textwrap.dedent(SESSION_TEST.format(leak="none"))
        (tmp_path / "test_session_clean.py").write_text(clean)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.plugins.secret_scan",
            "-p",
            "tests.plugins.github_fake",
            "-o",
            "asyncio_mode=auto",
            *(["-n", str(workers), "."] if workers else ["test_session.py"]),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_session_whose_texts_hold_no_secret_passes(tmp_path: Path) -> None:
    done = run_session(tmp_path, "none")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no secret found" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("leak", "what", "where"),
    [
        ("log", "the tests' webhook secret", "log bot.session-test"),
        ("token", "an installation token", "GitHub POST /repos/octo-org/physics101/issues"),
    ],
)
def test_a_session_that_leaks_a_secret_fails_naming_it(
    tmp_path: Path, leak: str, what: str, where: str
) -> None:
    done = run_session(tmp_path, leak)
    # The test itself passed; the scan at the end of the session failed it.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout
    assert "secret scan: secrets in what the service wrote" in done.stdout, done.stdout
    findings = [line for line in done.stdout.splitlines() if line.startswith(f"{where}: ")]
    assert any(what in line for line in findings), done.stdout
    assert WEBHOOK_SECRET not in done.stdout, "the report must not print the secret"
    assert "ghs_" not in done.stdout.replace("ghs_…", ""), "nor the token"


def scanned_texts(stdout: str) -> int:
    [count] = re.findall(r"secret scan: (\d+) texts the service wrote", stdout)
    return int(count)


def test_under_xdist_the_summary_adds_up_every_workers_texts(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    alone = run_session(tmp_path / "one", "none")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    shared = run_session(tmp_path / "two", "none", workers=2)
    assert shared.returncode == 0, shared.stdout + shared.stderr
    assert "2 passed" in shared.stdout and "no secret found" in shared.stdout, shared.stdout
    # Two workers, one test file each: twice what one test wrote, counted once each.
    assert scanned_texts(shared.stdout) == 2 * scanned_texts(alone.stdout) > 0, shared.stdout


def test_under_xdist_a_leak_on_one_worker_fails_the_session(tmp_path: Path) -> None:
    done = run_session(tmp_path, "log", workers=2)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
    assert "secret scan: secrets in what the service wrote" in done.stdout, done.stdout
    assert any(
        line.startswith("log bot.session-test: ") and "the tests' webhook secret" in line
        for line in done.stdout.splitlines()
    ), done.stdout
    assert WEBHOOK_SECRET not in done.stdout


@pytest.mark.sshd
async def test_the_service_pages_hold_no_secret(classroom, example, app_private_key) -> None:
    sha = classroom.commit(ssh_course_files(classroom.target))
    await classroom.push(example, sha)
    await classroom.settle()
    assert classroom.runs()[-1]["conclusion"] == "success"

    owner, repo = COURSE_REPO.split("/")
    pages = {}
    for path in (
        "/",
        "/metrics",
        "/healthz",
        "/readyz",
        "/ssh-key.pub",
        f"/badges/{owner}/{repo}/status.svg",
        "/badges/nobody/nothing/status.svg",
    ):
        response = await classroom.client.get(path)
        assert response.status < 500, path
        pages[path] = await response.text()
    # The console, signed in: the course list, the course page and its jobs.
    await sign_in(classroom.client, classroom.github, "alice")
    for path in ("/", "/courses", f"/courses/{COURSE_REPO}", f"/courses/{COURSE_REPO}/jobs.json"):
        response = await classroom.client.get(path)
        assert response.status == 200, path
        pages[f"console {path}"] = await response.text()
    assert pages["/ssh-key.pub"].startswith("ssh-ed25519 ")

    local = SecretScanner()
    local.add_github_secrets(classroom.github)
    local.add_secret(app_private_key, "the tests' App private key")
    local.add_secret(classroom.services.settings.webhook_secret, "the webhook secret")
    for path, text in pages.items():
        SCANNER.add_text(f"page {path}", text)
        local.add_text(f"page {path}", text)
    assert local.findings() == []
    # The key the service shows is its public half only.
    assert "PRIVATE" not in pages["/ssh-key.pub"]


async def test_the_setup_page_holds_no_secret(aiohttp_client, make_settings) -> None:
    client = await aiohttp_client(make_app(make_settings(registered=False), monitoring=False))
    for path in ("/", "/healthz", "/readyz", "/metrics"):
        response = await client.get(path)
        # Not ready (503) is /readyz's answer while no App is registered.
        assert response.status < 500 or path == "/readyz", path
        SCANNER.add_text(f"setup page {path}", await response.text())
