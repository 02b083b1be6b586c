"""Bytes moved when one file changes in a large shared folder.

A course repository whose ``data/`` holds ``--size-mb`` MB of random files (made here, in
a temporary folder, never committed) is served by the fake GitHub's git endpoint (the
real ``git http-backend``); the loopback SSH target plays the hub's server, which fetches
``data/`` itself as a deploy does. Then one file changes in a new commit and the deploy
runs again. Printed: bytes the git endpoint sent, files written on the server (a new
inode or modification time), SSH commands and seconds, for both deploys.

    .venv/bin/python bench/shared.py [--size-mb 1024] [--files 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _service
import aiohttp

from bot.github.client import GitHubApp
from deploy import operations
from deploy.course.config import load_course
from deploy.host.shared import SharedSource
from deploy.keys import ServiceKey
from deploy.ssh import SSHPool
from tests.fakes.github import FakeGitHub
from tests.support.engine import MemoryRecords, noop
from tests.support.shared_folders import git

COURSE = "octo-org/physics101"
INSTALLATION = 1001


def written(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


async def run(base: Path, size_mb: int, files: int) -> None:
    [target] = _service.start_ssh_targets(base, ("target",))
    fake = FakeGitHub()
    fake.add_installation(INSTALLATION, "octo-org")
    fake.add_repository(COURSE, {"README.md": b"# Physics 101\n"}, installation_id=INSTALLATION)
    await fake.start()
    try:
        config_text = (
            f"server:\n  provider: ssh\n  host: {target.host}\n  port: {target.port}\n"
            "shared:\n  - from: data/\n    to: data\n"
        )
        work = base / "course"
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
        git(work, "config", "core.compression", "0")
        (work / ".github").mkdir()
        (work / ".github" / "classroom.yml").write_text(config_text)
        (work / "data").mkdir()
        each = size_mb * 1024 * 1024 // files
        started = time.perf_counter()
        for index in range(files):
            (work / "data" / f"part{index:05}.bin").write_bytes(os.urandom(each))
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "data")
        bare = base / "bare.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        served = fake.serve_git(COURSE, bare)
        git(work, "push", "-q", str(served), "main")
        print(f"made {size_mb} MB in {files} files in {time.perf_counter() - started:.1f} s")
        assert fake.git is not None

        records = MemoryRecords()
        ssh = SSHPool()
        key = ServiceKey(target.client_key, "", "", "", base / "key")
        engine = operations.Engine(records=records, ssh=ssh, service_key=key)
        config = load_course({".github/classroom.yml": config_text.encode()}, "octo-org", "p")
        clone_url = f"{fake.url}/{COURSE}.git"
        source_dir = target.sandbox / "classroom" / "shared-source" / "data"
        async with aiohttp.ClientSession() as session:
            app = GitHubApp(session, fake.app.id, fake.app.private_key_pem, fake.url)

            async def token() -> str:
                return await app.repository_read_token(INSTALLATION, "physics101")

            async def deploy(label: str, commit: str) -> None:
                asked, commands = len(fake.git.requests), ssh.commands_run
                before = written(source_dir) if source_dir.exists() else {}
                started = time.perf_counter()
                result = await operations.deploy(
                    engine,
                    COURSE,
                    config,
                    mode="apply",
                    progress=noop,
                    source=SharedSource(clone_url, commit, token),
                )
                seconds = time.perf_counter() - started
                assert result.conclusion == "success", result.summary
                after = written(source_dir)
                changed = sum(1 for name in after if before.get(name) != after[name])
                sent = sum(r.sent_bytes for r in fake.git.requests[asked:])
                print(
                    f"| {label} | {sent:,} | {changed} | {ssh.commands_run - commands} "
                    f"| {seconds:.1f} |"
                )

            print("| deploy | bytes sent by git | files written | SSH commands | seconds |")
            print("|---|---|---|---|---|")
            await deploy("first (whole folder)", git(work, "rev-parse", "HEAD"))
            (work / "data" / f"part{min(42, files - 1):05}.bin").write_bytes(os.urandom(each))
            git(work, "commit", "-q", "-am", "one file")
            git(work, "push", "-q", str(served), "main")
            await deploy("one file changed", git(work, "rev-parse", "HEAD"))
        await engine.close()
    finally:
        await fake.close()
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=1024)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shared-") as folder:
        asyncio.run(run(Path(folder), options.size_mb, options.files))


if __name__ == "__main__":
    main()
