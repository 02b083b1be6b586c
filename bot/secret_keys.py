"""Fernet keys the service keeps in ``BOT_DATA_DIR``: made once, mode 0600, never logged.

``session.key`` encrypts the console's session cookies; ``course-tokens.key`` encrypts
courses' own DigitalOcean tokens. Losing a key signs everyone out, or means the saved
tokens must be set again; nothing else depends on them.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet


def secret_key_file(data_dir: Path, name: str) -> bytes:
    """A Fernet key kept in ``data_dir/name``, created once with mode 0600, never logged."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    return key
