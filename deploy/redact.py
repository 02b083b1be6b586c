"""Redaction of secrets from any text that leaves the service (logs, check runs, comments).

Two layers: the exact values the service knows are secret, and anything shaped like a
GitHub token, a DigitalOcean token, a private key or a bcrypt password hash, so that a
secret the service does not know of is still caught.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

REDACTED = "[REDACTED]"

SECRET_SHAPES = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,255}\b"
    r"|\bgithub_pat_[A-Za-z0-9_]{20,255}\b"
    r"|\bv1\.[0-9a-f]{40}\b"
    r"|\bdo[pro]_v1_[a-f0-9]{64}\b"
    r"|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"
    # A bcrypt hash (a hub password's): never a secret to show, even hashed.
    r"|\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}",
    re.DOTALL,
)

_lock = threading.Lock()
_known: tuple[str, ...] = ()


def add_secrets(values: Iterable[str | None]) -> None:
    """Remember exact secret values (and their escaped forms) to remove from all output."""
    global _known
    found = set(_known)
    for value in values:
        if not value or len(value) < 6:
            continue
        found.add(value)
        found.add(value.replace("\n", "\\n"))
        for line in value.splitlines():
            if len(line.strip()) >= 16 and "-----" not in line:
                found.add(line.strip())
    with _lock:
        _known = tuple(sorted(found, key=len, reverse=True))


def redact(text: str) -> str:
    """Return ``text`` with every known secret and every secret-shaped string replaced."""
    if not text:
        return text
    for value in _known:
        if value in text:
            text = text.replace(value, REDACTED)
    return SECRET_SHAPES.sub(REDACTED, text)
