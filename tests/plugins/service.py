"""Fixtures that run the service in-process: settings, a signed-delivery helper, the app."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.settings import Settings, load_settings

WEBHOOK_SECRET = "test-webhook-secret-1f2e3d4c"
EXAMPLES = (
    Path(__file__).resolve().parents[1]
    / "data/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
)


@pytest.fixture(scope="session")
def app_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="session")
def webhook_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every example payload GitHub publishes, as (event name, payload)."""
    catalogue = json.loads(EXAMPLES.read_text())
    return [(entry["name"], example) for entry in catalogue for example in entry["examples"]]


@pytest.fixture
def example(webhook_examples) -> Callable[..., dict[str, Any]]:
    """The first published example of an event (and action, when given)."""

    def find(event: str, action: str | None = None) -> dict[str, Any]:
        for name, payload in webhook_examples:
            if name == event and (action is None or payload.get("action") == action):
                return json.loads(json.dumps(payload))
        raise LookupError(f"no published example of {event} {action or ''}")

    return find


@pytest.fixture
def make_settings(tmp_path: Path, app_private_key: str) -> Callable[..., Settings]:
    def make(registered: bool = True, **extra: str) -> Settings:
        env = {
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "BOT_PUBLIC_URL": "http://127.0.0.1:3000",
            "GITHUB_API_URL": extra.pop("GITHUB_API_URL", "http://127.0.0.1:9"),
            "GITHUB_URL": extra.pop("GITHUB_URL", "http://127.0.0.1:9"),
        }
        if registered:
            env.update(
                GITHUB_APP_ID="1",
                GITHUB_PRIVATE_KEY=app_private_key,
                GITHUB_WEBHOOK_SECRET=WEBHOOK_SECRET,
            )
        env.update(extra)
        return load_settings(env, env_file=tmp_path / ".env")

    return make


def signed_headers(
    body: bytes,
    event: str,
    delivery: str | None = None,
    secret: str = WEBHOOK_SECRET,
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


async def deliver(client, event: str, payload: Any, delivery: str | None = None, **kw: Any):
    """POST one signed delivery to the service's /webhook, as GitHub does."""
    body = json.dumps(payload).encode()
    return await client.post(
        "/webhook", data=body, headers=signed_headers(body, event, delivery, **kw)
    )
