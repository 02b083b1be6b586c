"""The session's secret scan (``tests/plugins/secret_scan.py``) works, and the pages are clean.

The scan itself runs at the end of the session over every log line and every body the
fake GitHub received. Here: proof that it catches planted secrets in each kind of text it
gathers, and the service's pages, fetched after a real deploy, handed to it.
"""

from __future__ import annotations

import base64
import logging

import pytest

from bot.app import make_app
from deploy.redact import add_secrets
from tests.console_support import sign_in
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.plugins.secret_scan import (
    SCANNER,
    ProductionLogHandler,
    SecretScanner,
    strings_in,
)

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


def test_the_session_scan_is_collecting() -> None:
    # By this point the session has registered the tests' own secrets.
    assert any("webhook secret" in what for what in SCANNER.secrets.values())
    assert any("DigitalOcean" in what for what in SCANNER.secrets.values())


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
