"""Homes to move and how to compare them: the move-home tests' canary homes, a manifest
of every entry, and the server's observation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from deploy import operations
from deploy.host.observe import observe_script, parse_observation
from tests.support.volume_course import COURSE, course


def manifest(root: Path) -> list[tuple]:
    """Every entry under ``root``: type, mode, owner, group, links, size, mtime, content."""
    found = []
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        link = os.readlink(path) if path.is_symlink() else ""
        found.append(
            (
                str(path.relative_to(root)),
                info.st_mode,
                info.st_uid,
                info.st_gid,
                info.st_nlink,
                info.st_size if not path.is_dir() else 0,
                info.st_mtime_ns,
                digest,
                link,
            )
        )
    return found


def plant_homes(home: Path) -> None:
    for uid, name in ((1001, "jupyter-alice"), (1002, "jupyter-bob")):
        folder = home / name
        folder.mkdir()
        (folder / "work.ipynb").write_bytes(os.urandom(5000))
        (folder / "private.txt").write_text(f"{name}'s notes")
        (folder / "private.txt").chmod(0o600)
        (folder / ".hidden").mkdir()
        os.utime(folder / "work.ipynb", (1_600_000_000, 1_600_000_000))
        for path in (folder, *folder.rglob("*")):
            os.chown(path, uid, uid, follow_symlinks=False)
    os.link(home / "jupyter-alice" / "work.ipynb", home / "jupyter-alice" / "same.ipynb")
    (home / "jupyter-bob" / "link").symlink_to("work.ipynb")


async def observed(droplet):
    target = await operations.server_target(
        droplet, COURSE, course(), droplet.records.records[COURSE]
    )
    _, out, _ = await droplet.ssh.run_script(target, observe_script())
    return parse_observation(out)
