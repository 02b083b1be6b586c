"""A real JupyterHub 5.5 with NativeAuthenticator 1.3.0, standing in for TLJH's hub.

It runs from its own virtualenv (``.venv-hub``, made by ``scripts/test`` from
``tests/hub/requirements.txt``) behind configurable-http-proxy (``tests/hub/npm``), on a
free loopback port. Its database is the file the loopback SSH server's commands see as
``/opt/tljh/state/jupyterhub.sqlite``, so the service's own code over SSH and the hub
share one database, as on a TLJH server.

``settings_from_tljh_config`` turns tljh-config's keys into the hub's settings the way
TLJH's ``tljh/configurer.py`` does for the keys the deploy writes. ``Browser`` signs up
and logs in through the hub's own pages, ``_xsrf`` cookie and field included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
HUB_VENV = ROOT / ".venv-hub"
JUPYTERHUB = HUB_VENV / "bin" / "jupyterhub"
PROXY = ROOT / "tests" / "hub" / "npm" / "node_modules" / ".bin" / "configurable-http-proxy"
NATIVE_AUTHENTICATOR = "nativeauthenticator.NativeAuthenticator"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class HubSettings:
    """What the deploy decides about the hub's accounts."""

    enable_signup: bool = True
    open_signup: bool = False
    allow_all: bool = True
    admins: tuple[str, ...] = ()


def settings_from_tljh_config(config: dict) -> HubSettings:
    """The hub settings TLJH derives from these tljh-config values (its defaults otherwise)."""
    auth = config.get("auth", {}) if isinstance(config.get("auth"), dict) else {}
    native = auth.get("NativeAuthenticator", {})
    native = native if isinstance(native, dict) else {}
    users = config.get("users", {}) if isinstance(config.get("users"), dict) else {}
    return HubSettings(
        enable_signup=bool(native.get("enable_signup", True)),
        open_signup=bool(native.get("open_signup", False)),
        allow_all=bool(native.get("allow_all", False)),
        admins=tuple(str(a) for a in users.get("admin", []) or []),
    )


def missing_parts() -> list[str]:
    return [str(p) for p in (JUPYTERHUB, PROXY) if not p.exists()]


class RealHub:
    """One JupyterHub process at a time; ``start(settings)``, ``stop()``, again."""

    def __init__(self, workdir: Path, database: Path, tljh_root: Path | None = None) -> None:
        missing = missing_parts()
        if missing:
            raise RuntimeError(
                f"the test hub is not installed ({', '.join(missing)} missing): run scripts/test, "
                "which creates .venv-hub and tests/hub/npm/node_modules"
            )
        self.workdir = workdir
        self.database = database
        self.tljh_root = tljh_root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        database.parent.mkdir(parents=True, exist_ok=True)

    @property
    def log(self) -> Path:
        return self.workdir / "hub.log"

    def start(self, settings: HubSettings, timeout: float = 60.0) -> None:
        self.stop()
        config = self.workdir / "jupyterhub_config.py"
        config.write_text(self._config(settings))
        env = {
            **os.environ,
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16),
            "PATH": f"{PROXY.parent}:{HUB_VENV / 'bin'}:{os.environ.get('PATH', '')}",
        }
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"--- start {self.starts}: {settings}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [str(JUPYTERHUB), "-f", str(config)],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the hub exited at start:\n{self.log.read_text()[-4000:]}")
            try:
                if requests.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub did not answer:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._process is None:
            return
        # The hub stops its proxy when it gets TERM; the group catches a straggler.
        self._process.terminate()
        try:
            self._process.wait(20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _config(self, settings: HubSettings) -> str:
        return "\n".join(
            [
                "c.JupyterHub.ip = '127.0.0.1'",
                f"c.JupyterHub.port = {self.port}",
                f"c.JupyterHub.hub_port = {free_port()}",
                f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'",
                f"c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]",
                f"c.JupyterHub.db_url = 'sqlite:///{self.database}'",
                f"c.JupyterHub.cookie_secret_file = {str(self.workdir / 'cookie_secret')!r}",
                f"c.JupyterHub.pid_file = {str(self.workdir / 'jupyterhub.pid')!r}",
                f"c.JupyterHub.authenticator_class = {NATIVE_AUTHENTICATOR!r}",
                f"c.NativeAuthenticator.enable_signup = {settings.enable_signup!r}",
                f"c.NativeAuthenticator.open_signup = {settings.open_signup!r}",
                f"c.NativeAuthenticator.allow_all = {settings.allow_all!r}",
                f"c.Authenticator.admin_users = {set(settings.admins)!r}",
                "c.JupyterHub.cleanup_servers = True",
                *self._config_d(),
                "",
            ]
        )

    def _config_d(self) -> list[str]:
        """Load ``jupyterhub_config.d`` as TLJH does, after its own settings, with TLJH's
        paths read inside the sandbox."""
        if self.tljh_root is None:
            return []
        return [
            "import glob, os",
            f"_root = {str(self.tljh_root)!r}",
            "c.JupyterHub.services = []",
            "c.JupyterHub.load_roles = []",
            "for _path in sorted(glob.glob(os.path.join(_root, 'config', "
            "'jupyterhub_config.d', '*.py'))):",
            "    _text = open(_path).read().replace('/opt/tljh', _root)",
            "    exec(compile(_text, _path, 'exec'), {'c': c})",
        ]


_XSRF_FIELD = re.compile(r'name="_xsrf" value="([^"]+)"')


@dataclass
class Browser:
    """A person at the hub's pages: their own cookies, the hub's ``_xsrf`` protection."""

    hub: RealHub
    session: requests.Session = field(default_factory=requests.Session)

    def _form(self, path: str) -> str | None:
        page = self.session.get(f"{self.hub.url}{path}", timeout=10)
        if page.status_code != 200:
            return None
        found = _XSRF_FIELD.search(page.text)
        return found[1] if found else self.session.cookies.get("_xsrf")

    def signup(self, name: str, password: str, email: str = "") -> str:
        """The message the sign-up page answers with ("closed" when it is not open)."""
        xsrf = self._form("/hub/signup")
        if xsrf is None:
            return "closed"
        answer = self.session.post(
            f"{self.hub.url}/hub/signup",
            data={
                "_xsrf": xsrf,
                "username": name,
                "email": email,
                "signup_password": password,
                "signup_password_confirmation": password,
            },
            timeout=30,
        )
        if answer.status_code == 404:
            return "closed"
        found = re.search(r'<div class="alert[^"]*"[^>]*>\s*(.*?)\s*</div>', answer.text, re.S)
        text = found[1] if found else answer.text[-500:]
        return " ".join(re.sub(r"<[^>]+>", " ", text).split())

    def login(self, name: str, password: str) -> bool:
        """Whether the hub's login page let this person in."""
        xsrf = self._form("/hub/login")
        assert xsrf, "the login page has no _xsrf field"
        answer = self.session.post(
            f"{self.hub.url}/hub/login",
            data={"_xsrf": xsrf, "username": name, "password": password},
            allow_redirects=False,
            timeout=30,
        )
        return answer.status_code == 302 and "jupyterhub-hub-login" in self.session.cookies

    def home(self) -> int:
        """Open the hub's home page, as a signed-in person does after logging in."""
        return self.session.get(f"{self.hub.url}/hub/home", timeout=10).status_code

    def is_admin(self) -> bool:
        """Whether the signed-in person may open the hub's admin page."""
        page = self.session.get(f"{self.hub.url}/hub/admin", allow_redirects=False, timeout=10)
        return page.status_code == 200


class HubSupervisor:
    """Plays systemd for the real hub: starts it whenever the sandbox's TLJH would.

    The stand-ins hand each hub start (TLJH's installer, ``tljh-config reload hub``) to
    ``control/hub-start-N.json`` with tljh-config's settings; this thread (re)starts the
    real hub with them and answers ``control/hub-started-N``.
    """

    def __init__(self, hub: RealHub, control: Path) -> None:
        self.hub = hub
        self.control = control
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-supervisor", daemon=True)

    def __enter__(self) -> HubSupervisor:
        (self.control / "real-hub").write_text("")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        number = 1
        while not self._stop.is_set():
            request = self.control / f"hub-start-{number}.json"
            if not request.exists():
                time.sleep(0.05)
                continue
            try:
                self.hub.start(settings_from_tljh_config(json.loads(request.read_text())))
            except Exception as exc:  # reported by the test, which reads .errors
                self.errors.append(f"start {number}: {exc}")
            (self.control / f"hub-started-{number}").write_text("")
            number += 1


class Stranger:
    """Somebody who keeps signing up under one name while the hub answers, and logs it."""

    def __init__(self, hub: RealHub, name: str, password: str) -> None:
        self.hub = hub
        self.name = name
        self.password = password
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stranger", daemon=True)

    def __enter__(self) -> Stranger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(Browser(self.hub).signup(self.name, self.password))
            except requests.RequestException:
                time.sleep(0.05)  # the hub is down or restarting
