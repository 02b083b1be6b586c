"""The service's own SSH key: made once in the data directory, loaded on every start.

The public half goes onto droplets (DigitalOcean account key) and into the
``authorized_keys`` of adopted servers; the private half never leaves ``BOT_DATA_DIR``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh

KEY_FILE = "ssh_ed25519"
KEY_COMMENT = "littlest-classroom"


@dataclass(frozen=True)
class ServiceKey:
    """The service's ed25519 key pair."""

    private: asyncssh.SSHKey
    public_line: str  # "ssh-ed25519 AAAA… littlest-classroom"
    fingerprint_md5: str  # "aa:bb:…", as DigitalOcean names account keys
    fingerprint_sha256: str  # "SHA256:…", as OpenSSH shows keys
    path: Path


def ensure_service_key(data_dir: Path) -> ServiceKey:
    """Return the key in ``data_dir``, making the key (and the directory) on first use.

    The directory is kept at mode 0700 and the key file at 0600, whoever made them.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    path = data_dir / KEY_FILE
    if path.exists():
        path.chmod(0o600)
        try:
            key = asyncssh.read_private_key(path)
        except (OSError, asyncssh.KeyImportError) as exc:
            raise ValueError(f"{path}: not a readable OpenSSH private key ({exc})") from None
    else:
        key = asyncssh.generate_private_key("ssh-ed25519", comment=KEY_COMMENT)
        # O_EXCL: two processes starting at once must not both write a key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return ensure_service_key(data_dir)
        with os.fdopen(fd, "wb") as file:
            file.write(key.export_private_key("openssh"))
        (data_dir / f"{KEY_FILE}.pub").write_text(public_line_of(key) + "\n")
    return ServiceKey(
        private=key,
        public_line=public_line_of(key),
        fingerprint_md5=key.get_fingerprint("md5").removeprefix("MD5:"),
        fingerprint_sha256=key.get_fingerprint("sha256"),
        path=path,
    )


def public_line_of(key: asyncssh.SSHKey) -> str:
    """The OpenSSH public key line of ``key`` with the service's comment."""
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {blob} {KEY_COMMENT}"
