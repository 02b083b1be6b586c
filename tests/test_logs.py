"""Every log line is redacted: configured secrets, installation tokens, PEM keys."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.logs import JsonFormatter, RedactingFilter, TextFormatter
from deploy.redact import add_secrets


@pytest.fixture
def capture():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def use(formatter: logging.Formatter):
        handler.setFormatter(formatter)
        return logger, stream

    return use


def test_configured_secret_token_and_pem_are_redacted(capture, app_private_key):
    secret = "webhook-secret-value-42"
    add_secrets([secret, app_private_key])
    token = "ghs_" + "A1b2C3d4" * 5
    do_token = "dop_v1_" + "ab12" * 16
    logger, stream = capture(TextFormatter())
    logger.info("secret=%s token=%s do=%s", secret, token, do_token, extra={"delivery": "d1"})
    logger.info("key follows\n%s", app_private_key)
    try:
        raise RuntimeError(f"failed with {token}")
    except RuntimeError:
        logger.exception("boom")
    out = stream.getvalue()
    for leaked in (
        secret,
        token,
        do_token,
        "BEGIN RSA PRIVATE KEY",
        app_private_key.splitlines()[1],
    ):
        assert leaked not in out
    assert out.count("[REDACTED]") >= 5
    assert "delivery=d1" in out


def test_json_lines_are_redacted_too(capture):
    add_secrets(["another-secret-xyz"])
    logger, stream = capture(JsonFormatter())
    logger.info("value another-secret-xyz", extra={"repository": "o/r", "job": "7"})
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "value [REDACTED]"
    assert entry["repository"] == "o/r" and entry["job"] == "7"
