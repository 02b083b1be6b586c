"""A course's own DigitalOcean token: checked, kept encrypted, and used for its droplets.

An admin of the course's repository sets it on the console. It is checked with
``GET /v2/account`` before it is saved (a wrong token is refused with DigitalOcean's own
message), encrypted with Fernet under a key in ``BOT_DATA_DIR`` (``course-tokens.key``,
mode 0600), and afterwards shown only by its last four characters. ``CourseDroplets`` is
the engine's resolver: a course with a token gets a driver with that token, others the
operator's. With ``BOT_REQUIRE_COURSE_TOKEN=1`` a course without one is not served.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import digitalocean
from cryptography.fernet import Fernet, InvalidToken

from bot.secret_keys import secret_key_file
from bot.store import CourseToken, Store
from deploy.model import ServerRecord
from deploy.providers.digitalocean_api import (
    DigitalOceanAPI,
    DigitalOceanError,
    Gone,
    Refused,
    WrongToken,
)
from deploy.providers.droplets import DropletDriver
from deploy.redact import add_secrets

KEY_FILE = "course-tokens.key"
# DigitalOcean's personal access tokens: dop_v1_ and 64 hex digits (older ones: the hex only).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_]{32,128}")
REQUEST_TIMEOUT = 20.0


class TokenRefused(ValueError):
    """The token cannot be used for this course; the message says why, for the page."""


@dataclass(frozen=True)
class AccountInfo:
    uuid: str
    email: str


class TokenVault:
    """Encrypts and decrypts course tokens with the key in ``BOT_DATA_DIR``."""

    def __init__(self, data_dir: Path) -> None:
        self._fernet = Fernet(secret_key_file(data_dir, KEY_FILE))

    def encrypt(self, token: str) -> bytes:
        return self._fernet.encrypt(token.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            token = self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise TokenRefused(
                "the saved token cannot be decrypted (was course-tokens.key replaced?); "
                "set it again"
            ) from None
        add_secrets([token])
        return token


def _account(api: DigitalOceanAPI) -> AccountInfo:
    account = api.new(digitalocean.Account)
    account.load()
    return AccountInfo(str(account.uuid), str(getattr(account, "email", "")))


def _droplet_reachable(api: DigitalOceanAPI, droplet_id: int) -> bool:
    try:
        api.new(digitalocean.Droplet, id=droplet_id).load()
    except Gone:
        return False
    return True


async def check_token(token: str, record: ServerRecord | None) -> AccountInfo:
    """The account the token opens, or ``TokenRefused`` with DigitalOcean's own reason.

    A course whose droplet already exists keeps it: a token of an account that does not
    hold that droplet is refused.
    """
    if not TOKEN_PATTERN.fullmatch(token):
        raise TokenRefused(
            "that is not a DigitalOcean personal access token (letters, digits and _; "
            "it starts with dop_v1_)"
        )
    # The engine's one request path: its timeout, and DigitalOcean's answers mapped the same.
    api = DigitalOceanAPI(token, request_timeout=REQUEST_TIMEOUT)
    try:
        account = await asyncio.to_thread(_account, api)
        droplet_id = record.droplet_id if record and record.provider == "digitalocean" else None
        if droplet_id and not await asyncio.to_thread(_droplet_reachable, api, droplet_id):
            raise TokenRefused(
                f"the course's droplet (id {droplet_id}) lives in another DigitalOcean "
                f"account than this token's ({account.email}); a course keeps its droplet, "
                "so only a token of the account that holds it can be used"
            )
    except WrongToken as exc:
        raise TokenRefused(exc.message) from None
    except (Refused, Gone) as exc:
        raise TokenRefused(f"DigitalOcean refused the token: {exc.message}") from None
    except DigitalOceanError as exc:
        raise TokenRefused(f"DigitalOcean could not be asked: {exc.message}") from None
    return account


def last_four(token: str) -> str:
    return token[-4:]


class CourseDroplets:
    """The engine's per-course driver resolver, backed by the store and the vault."""

    def __init__(
        self,
        store: Store,
        vault: TokenVault,
        make_driver: Callable[[str], DropletDriver] = DropletDriver,
    ) -> None:
        self.store = store
        self.vault = vault
        self.make_driver = make_driver
        self._drivers: dict[str, tuple[bytes, DropletDriver]] = {}

    async def __call__(self, course: str) -> DropletDriver | None:
        saved = await self.store.course_token(course)
        if saved is None:
            self._drivers.pop(course, None)
            return None
        cached = self._drivers.get(course)
        if cached is not None and cached[0] == saved.ciphertext:
            return cached[1]
        driver = self.make_driver(self.vault.decrypt(saved.ciphertext))
        self._drivers[course] = (saved.ciphertext, driver)
        return driver

    async def save(self, course: str, token: str, account: AccountInfo) -> CourseToken:
        saved = CourseToken(
            course, self.vault.encrypt(token), last_four(token), account.uuid, account.email
        )
        await self.store.save_course_token(saved)
        return saved
