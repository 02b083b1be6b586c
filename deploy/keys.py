"""SSH keys: the service's own key (in the data directory), and each course's own key.

A course's key pair is what its server trusts: the public half goes onto its droplet
(a DigitalOcean account key named for the course) and into the ``authorized_keys`` of a
``provider: ssh`` server; one course's key opens no other course's server. The service's
own key is only what servers made before per-course keys still trust, until their next
deploy moves them to their course's key. No private half ever leaves ``BOT_DATA_DIR``
(the service's key file; courses' keys encrypted in the database).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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


def public_line_of(key: asyncssh.SSHKey, comment: str = KEY_COMMENT) -> str:
    """The OpenSSH public key line of ``key`` with ``comment`` (the service's by default)."""
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {blob} {comment}"


@dataclass(frozen=True)
class CourseKey:
    """One course's ed25519 key pair; ``name`` (``lc-course-<repository id>``) is also the
    public line's comment and the DigitalOcean account key's name."""

    private: asyncssh.SSHKey
    public_line: str  # "ssh-ed25519 AAAA… lc-course-<repository id>"
    name: str


COURSE_KEY_PREFIX = "lc-course-"


def course_key_name(repo_id: int) -> str:
    return f"{COURSE_KEY_PREFIX}{repo_id}"


def derive_course_key(secret: bytes, repo_id: int) -> CourseKey:
    """The course's key pair, derived from the service's secret and the repository's id.

    Deriving (HKDF-SHA256, one info string per repository) rather than drawing at random
    means a lost database costs no server: with ``BOT_DATA_DIR``'s key file kept, the same
    course gets the same key again (safety invariant 10).
    """
    seed = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"littlest-classroom course ssh key {repo_id}".encode(),
    ).derive(secret)
    pem = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return course_key_of(pem, repo_id)


def course_key_of(private_openssh: bytes, repo_id: int) -> CourseKey:
    """The ``CourseKey`` of an OpenSSH private key (as kept, decrypted) for a repository."""
    key = asyncssh.import_private_key(private_openssh)
    name = course_key_name(repo_id)
    return CourseKey(private=key, public_line=public_line_of(key, name), name=name)


KEY_BLOB = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
AUTHORIZED_KEYS = '"$HOME/.ssh/authorized_keys"'


def _blob(line: str) -> str:
    """The base64 part of a public key line, validated: it goes into a shell script."""
    parts = line.split()
    if len(parts) < 2 or not KEY_BLOB.fullmatch(parts[1]):
        raise ValueError(f"not an OpenSSH public key line: {line[:40]!r}")
    return parts[1]


def trust_key_script(public_line: str) -> str:
    """Add ``public_line`` to the login user's ``authorized_keys`` unless its key is there."""
    blob = _blob(public_line)
    return f"""set -eu
umask 077
mkdir -p "$HOME/.ssh"
f={AUTHORIZED_KEYS}
touch "$f"
grep -qF {shlex.quote(blob)} "$f" && exit 0
if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >> "$f"; fi
printf '%s\n' {shlex.quote(public_line)} >> "$f"
"""


def forget_key_script(kept_line: str, forgotten_line: str) -> str:
    """Remove ``forgotten_line``'s key from ``authorized_keys``, never ``kept_line``'s.

    The file is replaced in one rename (mode and owner kept), and only if the kept key
    is in the new one: the server is never left without a key that opens it.
    """
    kept, gone = shlex.quote(_blob(kept_line)), shlex.quote(_blob(forgotten_line))
    return f"""set -eu
f={AUTHORIZED_KEYS}
grep -qF {kept} "$f"
grep -qF {gone} "$f" || exit 0
tmp=$(mktemp "$f.XXXXXX")
grep -vF {gone} "$f" > "$tmp" || true
grep -qF {kept} "$tmp" || {{ rm -f "$tmp"; exit 1; }}
chmod --reference="$f" "$tmp"
chown --reference="$f" "$tmp" 2>/dev/null || true
mv -f "$tmp" "$f"
"""
