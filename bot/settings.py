"""Service settings from the environment and a ``.env`` file, validated at start-up.

A missing or malformed value is reported as one line naming the variable and what is
wrong (``SettingsError``), never as a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from dotenv import dotenv_values

from deploy.course.validate import Invalid, check_hostname
from deploy.redact import add_secrets

CREDENTIAL_VARIABLES = (
    "GITHUB_APP_ID",
    "GITHUB_PRIVATE_KEY",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
)


class SettingsError(ValueError):
    """One setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    app_id: int | None
    # Secrets stay out of repr(), so a traceback or debug print cannot show them.
    private_key: str | None = field(repr=False)
    webhook_secret: str | None = field(repr=False)
    client_id: str | None
    client_secret: str | None = field(repr=False)
    github_api_url: str
    github_url: str
    do_token: str | None = field(repr=False)
    do_end_point: str | None
    data_dir: Path
    public_url: str
    host: str
    port: int
    log_format: str
    env_file: Path
    # A webhook relay channel (smee.io style) for a trial on a laptop; None in production.
    webhook_proxy_url: str | None = None
    # Serve only courses that brought their own DigitalOcean token.
    require_course_token: bool = False
    # The only DNS domains hub.hostname may use (BOT_HUB_DOMAINS); empty: any.
    hub_domains: tuple[str, ...] = ()

    @property
    def registered(self) -> bool:
        """True once the App's credentials are known: the setup routes then close."""
        return self.app_id is not None and self.private_key is not None

    def course_page_url(self, course: str) -> str:
        """The console's page of one course (``owner/repo``): approvals, passwords."""
        return f"{self.public_url.rstrip('/')}/courses/{course}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(
            s
            for s in (self.private_key, self.webhook_secret, self.client_secret, self.do_token)
            if s
        )

    def with_credentials(self, values: Mapping[str, str]) -> Settings:
        """The same settings with freshly registered App credentials, validated."""
        merged = {
            "GITHUB_APP_ID": str(self.app_id or ""),
            "GITHUB_PRIVATE_KEY": self.private_key or "",
            "GITHUB_WEBHOOK_SECRET": self.webhook_secret or "",
            "GITHUB_CLIENT_ID": self.client_id or "",
            "GITHUB_CLIENT_SECRET": self.client_secret or "",
            **values,
        }
        fresh = _credentials(merged)
        add_secrets(s for s in fresh.values() if isinstance(s, str))
        return replace(self, **fresh)


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name}: {value!r} is not an http(s) URL")
    return value.rstrip("/")


def _flag(name: str, value: str | None) -> bool:
    if value in (None, "", "0"):
        return False
    if value == "1":
        return True
    raise SettingsError(f"{name}: {value!r} is not 0 or 1")


def _private_key(env: Mapping[str, str]) -> str | None:
    pem = env.get("GITHUB_PRIVATE_KEY", "")
    name = "GITHUB_PRIVATE_KEY"
    if not pem and env.get("GITHUB_PRIVATE_KEY_PATH"):
        name = "GITHUB_PRIVATE_KEY_PATH"
        path = Path(env["GITHUB_PRIVATE_KEY_PATH"]).expanduser()
        try:
            pem = path.read_text()
        except OSError as exc:
            raise SettingsError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not pem:
        return None
    pem = pem.replace("\\n", "\n").strip() + "\n"
    try:
        load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise SettingsError(f"{name}: not a PEM private key that can be read") from None
    return pem


def _credentials(env: Mapping[str, str]) -> dict[str, Any]:
    raw_id = env.get("GITHUB_APP_ID", "").strip()
    if raw_id and not raw_id.isdigit():
        raise SettingsError(f"GITHUB_APP_ID: {raw_id!r} is not a number")
    app_id = int(raw_id) if raw_id else None
    private_key = _private_key(env)
    secret = env.get("GITHUB_WEBHOOK_SECRET") or None
    if app_id is not None and private_key is None:
        raise SettingsError(
            "GITHUB_PRIVATE_KEY: missing (GITHUB_APP_ID is set; give the App's key "
            "or GITHUB_PRIVATE_KEY_PATH)"
        )
    if private_key is not None and app_id is None:
        raise SettingsError("GITHUB_APP_ID: missing (a private key is set)")
    if app_id is not None and not secret:
        raise SettingsError(
            "GITHUB_WEBHOOK_SECRET: missing; deliveries are never served without one"
        )
    return {
        "app_id": app_id,
        "private_key": private_key,
        "webhook_secret": secret,
        "client_id": env.get("GITHUB_CLIENT_ID") or None,
        "client_secret": env.get("GITHUB_CLIENT_SECRET") or None,
    }


def _domains(name: str, value: str) -> tuple[str, ...]:
    """A comma-separated list of DNS domains, each checked, lower-cased."""
    domains = []
    for part in value.split(","):
        part = part.strip().lower().rstrip(".")
        if not part:
            continue
        try:
            domains.append(check_hostname(part, "domain"))
        except Invalid as exc:
            raise SettingsError(f"{name}: {exc}") from None
    return tuple(domains)


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_file: Path | None = None,
    host: str | None = None,
    port: int | None = None,
) -> Settings:
    """Read settings; the process environment wins over ``.env``."""
    environ = os.environ if environ is None else environ
    env_file = env_file or Path(environ.get("BOT_ENV_FILE", ".env"))
    file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    env: dict[str, str] = {**file_values, **environ}

    raw_port = str(port) if port is not None else env.get("PORT", "3000")
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        raise SettingsError(f"PORT: {raw_port!r} is not a port number (1-65535)")
    listen_host = host or env.get("HOST", "127.0.0.1")
    log_format = env.get("LOG_FORMAT", "text")
    if log_format not in ("text", "json"):
        raise SettingsError(f"LOG_FORMAT: {log_format!r} is not one of text, json")
    public_url = env.get("BOT_PUBLIC_URL") or f"http://{listen_host}:{raw_port}"
    end_point = env.get("DIGITALOCEAN_END_POINT") or None
    proxy = env.get("WEBHOOK_PROXY_URL") or None
    settings = Settings(
        **_credentials(env),
        github_api_url=_url("GITHUB_API_URL", env.get("GITHUB_API_URL", "https://api.github.com")),
        github_url=_url("GITHUB_URL", env.get("GITHUB_URL", "https://github.com")),
        do_token=env.get("DIGITALOCEAN_ACCESS_TOKEN") or None,
        do_end_point=_url("DIGITALOCEAN_END_POINT", end_point) + "/" if end_point else None,
        data_dir=Path(env.get("BOT_DATA_DIR", "./data")),
        public_url=_url("BOT_PUBLIC_URL", public_url),
        host=listen_host,
        port=int(raw_port),
        log_format=log_format,
        env_file=env_file,
        webhook_proxy_url=_url("WEBHOOK_PROXY_URL", proxy) if proxy else None,
        require_course_token=_flag("BOT_REQUIRE_COURSE_TOKEN", env.get("BOT_REQUIRE_COURSE_TOKEN")),
        hub_domains=_domains("BOT_HUB_DOMAINS", env.get("BOT_HUB_DOMAINS") or ""),
    )
    add_secrets(settings.secrets)
    return settings


def write_env(path: Path, values: Mapping[str, str]) -> None:
    """Merge ``values`` into the ``.env`` file at ``path``, written with mode 0600.

    Values are double-quoted with newlines escaped, which python-dotenv reads back as-is.
    """
    existing = {k: v for k, v in dotenv_values(path).items() if v is not None}
    existing.update(values)
    lines = []
    for key, value in existing.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{key}="{escaped}"\n')
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(lines)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
