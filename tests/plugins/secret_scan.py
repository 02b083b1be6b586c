"""Session-wide secret scan: nothing the service wrote during the tests may hold a secret.

It gathers, for the whole test session, what production would let out of the service:

- every log record, formatted as ``bot.logs.configure_logging`` does in production (the
  ``RedactingFilter`` then the text formatter), applied to a copy so the records other
  handlers (pytest's capture) receive are left as they were;
- every request body the fake GitHub received (check-run outputs, comments, issues,
  README commits, deployments and their statuses), with file contents Base64-decoded;
- pages a test hands over with ``SCANNER.add_text`` (``tests/security/test_secret_scan.py``).

The secrets to look for are registered as the fixtures that make them are set up: the
webhook secret the settings use, the App's private key, the fake GitHub's App key,
client secret and webhook secret, every installation token it issued, and the fake
DigitalOcean's token. Anything shaped like a token or a private key
(``deploy.redact.SECRET_SHAPES``) counts too. At the end of the session every text is scanned,
and a finding fails the session (exit status 1) with a summary of where it was found.

Under pytest-xdist each worker scans what its own tests gathered and hands its count of
texts and its findings to the controller (``workeroutput``), which adds them up: the
summary line and the exit status are the whole session's.
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from bot.logs import RedactingFilter, TextFormatter
from deploy.redact import SECRET_SHAPES
from tests.fakes.digitalocean import FAKE_TOKEN, DigitalOceanFake
from tests.fakes.github import FakeGitHub
from tests.plugins.service import WEBHOOK_SECRET

# A PEM's Base64 lines are checked one by one as well as whole, so a key that leaks with
# its newlines escaped (or only in part) is still found; short lines (the last) are too
# likely to occur by chance to count alone.
MIN_SECRET_PART = 40
MIN_SECRET = 6


@dataclass(frozen=True)
class Finding:
    """One secret (or secret-shaped string) found in one gathered text."""

    source: str
    what: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.source}: {self.what}: …{self.excerpt}…"


def secret_parts(value: str) -> list[str]:
    """The strings that betray ``value``: itself, escaped, and each long line of it."""
    parts = {value, value.replace("\n", "\\n")}
    for line in value.splitlines():
        line = line.strip()
        if len(line) >= MIN_SECRET_PART and "-----" not in line:
            parts.add(line)
    return [p for p in parts if len(p) >= MIN_SECRET]


def _masked(secret: str) -> str:
    # A report must not itself print the secret it found.
    return f"{secret[:4]}…({len(secret)} chars)"


def _excerpt(text: str, start: int, end: int) -> str:
    before = text[max(0, start - 30) : start]
    after = text[end : end + 30]
    return (before + "<SECRET>" + after).replace("\n", "\\n")


@dataclass
class SecretScanner:
    """Collects secrets and texts; ``findings()`` says where any secret showed up."""

    secrets: dict[str, str] = field(default_factory=dict)  # part -> what it is
    texts: list[tuple[str, str]] = field(default_factory=list)  # (source, text)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_secret(self, value: str | None, what: str) -> None:
        if not value or len(value) < MIN_SECRET:
            return
        with self._lock:
            for part in secret_parts(value):
                self.secrets.setdefault(part, what)

    def add_text(self, source: str, text: str) -> None:
        if text:
            with self._lock:
                self.texts.append((source, text))

    def findings(self) -> list[Finding]:
        with self._lock:
            secrets = dict(self.secrets)
            texts = list(self.texts)
        index = _SecretIndex(secrets)
        found: list[Finding] = []
        for source, text in texts:
            # One finding per text and kind of secret is enough to say where to look.
            reported: set[str] = set()
            for secret in index.search(text):
                if secrets[secret] in reported:
                    continue
                reported.add(secrets[secret])
                at = text.find(secret)
                what = f"{secrets[secret]} {_masked(secret)}"
                found.append(Finding(source, what, _excerpt(text, at, at + len(secret))))
            for match in SECRET_SHAPES.finditer(text):
                found.append(
                    Finding(
                        source,
                        f"secret-shaped string {_masked(match[0])}",
                        _excerpt(text, match.start(), match.end()),
                    )
                )
        return found

    # -- what the fakes received --------------------------------------------------------

    def add_github_fake(self, fake: FakeGitHub) -> None:
        """Register the fake's secrets and gather every request body the service sent it."""
        self.add_github_secrets(fake)
        for request in fake.requests:
            if request.json is None:
                continue
            source = f"GitHub {request.method} {request.path}"
            self.add_text(source, "\n".join(strings_in(request.json)))

    def add_github_secrets(self, fake: FakeGitHub) -> None:
        self.add_secret(fake.app.private_key_pem, "the fake App's private key")
        self.add_secret(fake.app.client_secret, "the fake App's client secret")
        self.add_secret(fake.app.webhook_secret, "the fake App's webhook secret")
        for token in fake.tokens:
            self.add_secret(token, "an installation token")
        for user_token in fake.user_tokens.values():
            self.add_secret(user_token.value, "a user access token")
            self.add_secret(user_token.refresh_token, "a user refresh token")


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included; Base64 ``content`` decoded as well."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            if key == "content" and isinstance(item, str):
                yield _decoded(item)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def _decoded(text: str) -> str:
    try:
        return base64.b64decode(text, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


class _SecretIndex:
    """Finds many secrets in many texts quickly.

    Thousands of secrets (each fake GitHub makes its own key) times tens of thousands of
    texts is too many ``str.find`` calls. Nearly every secret is one run of token
    characters, so a text is cut into such runs (deduplicated across the session) and
    each run's windows are looked up by a secret's first ``WINDOW`` characters. The few
    secrets that are not one run are searched for directly.
    """

    WINDOW = 16
    RUN = re.compile(r"[A-Za-z0-9+/=_.-]{16,}")

    def __init__(self, secrets: Iterable[str]) -> None:
        self.by_prefix: dict[str, list[str]] = {}
        self.others: list[str] = []
        for secret in secrets:
            if len(secret) >= self.WINDOW and self.RUN.fullmatch(secret):
                self.by_prefix.setdefault(secret[: self.WINDOW], []).append(secret)
            else:
                self.others.append(secret)
        self.runs: dict[str, list[str]] = {}

    def search(self, text: str) -> list[str]:
        hits = [secret for secret in self.others if secret in text]
        for run in set(self.RUN.findall(text)):
            found = self.runs.get(run)
            if found is None:
                found = self.runs[run] = self._in_run(run)
            hits.extend(found)
        return hits

    def _in_run(self, run: str) -> list[str]:
        hits = []
        for start in range(len(run) - self.WINDOW + 1):
            for secret in self.by_prefix.get(run[start : start + self.WINDOW], ()):
                if run.startswith(secret, start):
                    hits.append(secret)
        return hits


class ProductionLogHandler(logging.Handler):
    """Formats each record as the service's production handler would, into a scanner."""

    def __init__(self, scanner: SecretScanner) -> None:
        super().__init__(logging.NOTSET)
        self.scanner = scanner
        self.redacting = RedactingFilter()
        self.setFormatter(TextFormatter())

    def handle(self, record: logging.LogRecord) -> bool:
        # RedactingFilter rewrites the record it is given; work on a copy so pytest's own
        # capture (and any caplog assertions) see the record untouched.
        record = copy.copy(record)
        if not self.redacting.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.scanner.add_text(f"log {record.name}", self.format(record))
        except Exception:
            self.handleError(record)


SCANNER = SecretScanner()
_HANDLER = ProductionLogHandler(SCANNER)
# Loggers whose level configure_logging sets, and to what.
_PRODUCTION_LEVELS = {
    "": logging.INFO,
    "aiohttp.access": logging.WARNING,
    "asyncssh": logging.WARNING,
}


def pytest_configure(config: pytest.Config) -> None:
    SCANNER.add_secret(WEBHOOK_SECRET, "the tests' webhook secret")
    SCANNER.add_secret(FAKE_TOKEN, "the fake DigitalOcean token")
    _attach()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A test of configure_logging replaces the root logger's handlers (this one too).
    _attach()


def _attach() -> None:
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    # Production logs at INFO (configure_logging); without this the service's INFO
    # lines would never be formatted, and never scanned.
    for name, level in _PRODUCTION_LEVELS.items():
        logging.getLogger(name or None).setLevel(level)


def _register(value: Any) -> None:
    if isinstance(value, FakeGitHub):
        SCANNER.add_github_secrets(value)
    elif isinstance(value, DigitalOceanFake):
        SCANNER.add_secret(value.token, "the fake DigitalOcean token")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> Any:
    value = yield
    if fixturedef.argname == "app_private_key" and isinstance(value, str):
        SCANNER.add_secret(value, "the tests' App private key")
    _register(value)
    return value


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest
) -> None:
    cached = fixturedef.cached_result
    if cached is None:
        return
    value = cached[0]
    if isinstance(value, FakeGitHub):
        # The tokens it issued are known only now, after the test.
        SCANNER.add_github_fake(value)
    elif isinstance(value, DigitalOceanFake):
        _register(value)


_FINDINGS_KEY = pytest.StashKey[list[Finding]]()
_TEXTS_KEY = pytest.StashKey[int]()
_WORKER_OUTPUT = "secret_scan"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: add up what a finished worker scanned and found."""
    scanned = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if scanned is None:
        return
    config = node.config
    config.stash[_TEXTS_KEY] = config.stash.get(_TEXTS_KEY, 0) + scanned["texts"]
    found = config.stash.get(_FINDINGS_KEY, [])
    config.stash[_FINDINGS_KEY] = found + [Finding(**f) for f in scanned["findings"]]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_HANDLER)
    config = session.config
    findings = config.stash.get(_FINDINGS_KEY, []) + SCANNER.findings()
    texts = config.stash.get(_TEXTS_KEY, 0) + len(SCANNER.texts)
    config.stash[_FINDINGS_KEY] = findings
    config.stash[_TEXTS_KEY] = texts
    if _is_worker(config):
        config.workeroutput[_WORKER_OUTPUT] = {  # type: ignore[attr-defined]
            "texts": texts,
            "findings": [asdict(f) for f in findings],
        }
    elif findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    findings = config.stash.get(_FINDINGS_KEY, [])
    texts = config.stash.get(_TEXTS_KEY, 0)
    if not findings:
        terminalreporter.write_line(
            f"secret scan: {texts} texts the service wrote, no secret found"
        )
        return
    terminalreporter.section("secret scan: secrets in what the service wrote", red=True)
    for finding in _first(findings, 50):
        terminalreporter.write_line(str(finding), red=True)
    terminalreporter.write_line(f"{len(findings)} finding(s) in {texts} texts", red=True)


def _first(items: Iterable[Finding], count: int) -> list[Finding]:
    return list(items)[:count]
