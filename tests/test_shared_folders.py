"""Shared folders end to end: the server fetches ``data/`` itself from the fake GitHub's
git endpoint (a real ``git http-backend``) with a read-only installation token, over the
real loopback sshd, and the Linux permissions hold for a student and an admin."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp
import pytest

from bot.github.client import GitHubApp
from bot.store import Store
from deploy import operations
from deploy.course.config import load_course
from deploy.host.shared import SharedSource
from deploy.keys import ServiceKey
from deploy.ssh import SSHPool, Target
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.support.shared_folders import files_holding, git

pytestmark = pytest.mark.sshd

FILES = 100
FILE_BYTES = 1024 * 1024  # 100 files of 1 MiB: a 100 MB data folder
STUDENT_UID, ADMIN_UID = 3101, 3102


def config_text(target) -> bytes:
    return (
        "server:\n"
        "  provider: ssh\n"
        f"  host: {target.host}\n"
        f"  port: {target.port}\n"
        "hub:\n"
        "  admins: [alice]\n"
        "shared:\n"
        "  - from: data/\n"
        "    to: data\n"
        "  - writable: notes\n"
    ).encode()


def make_course(work: Path, target, lfs_pointer: bytes) -> str:
    """A course repository with a 100 MB data/ folder and one Git LFS file in it;
    returns the first commit."""
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / ".github").mkdir()
    (work / ".github" / "classroom.yml").write_bytes(config_text(target))
    (work / "data").mkdir()
    for index in range(FILES):
        (work / "data" / f"part{index:03}.bin").write_bytes(os.urandom(FILE_BYTES))
    (work / "README.md").write_text("# Physics 101\n")
    (work / ".gitattributes").write_text("*.h5 filter=lfs diff=lfs merge=lfs -text\n")
    (work / "data" / "model.h5").write_bytes(lfs_pointer)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "course data")
    return git(work, "rev-parse", "HEAD")


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's (inode, mtime): a file written again has a new one."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            status = path.stat()
            found[str(path.relative_to(folder))] = (status.st_ino, status.st_mtime_ns)
    return found


@pytest.fixture
async def engine(tmp_path, ssh_target):
    store = await Store.open(tmp_path / "data")
    key = ServiceKey(ssh_target.client_key, "", "", "", tmp_path / "key")
    engine = operations.Engine(records=store, ssh=SSHPool(), service_key=key)
    yield engine
    await engine.close()
    await store.close()


async def as_user(engine, target, uid: int, groups: str, command: str) -> int:
    """Run ``command`` on the server as Linux user ``uid`` (a student or an admin)."""
    where = Target(target.host, target.port, "root", target.host_key, target.client_key)
    script = (
        f"setpriv --reuid {uid} --regid {uid} "
        f"{'--groups ' + groups if groups else '--clear-groups'} sh -c '{command}'"
    )
    status, _, _ = await engine.ssh.run_script(where, script)
    return status


async def test_one_changed_file_moves_one_file_and_the_token_leaves_no_trace(
    tmp_path, engine, ssh_target, github_fake, caplog
):
    ssh_target.keep_accounts()
    work = tmp_path / "course"
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    served = github_fake.serve_git(COURSE_REPO, bare)
    assert github_fake.git is not None
    model = os.urandom(64 * 1024)
    first = make_course(work, ssh_target, github_fake.git.add_lfs_object(model))
    git(work, "push", "-q", str(served), "main")
    processes: list[str] = []

    def during_fetch(_request) -> None:
        # While the server's git waits for this answer: every process's command line.
        processes.append(subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode())

    github_fake.git.on_request = during_fetch

    async with aiohttp.ClientSession() as session:
        app = GitHubApp(
            session, github_fake.app.id, github_fake.app.private_key_pem, github_fake.url
        )

        async def token() -> str:
            return await app.repository_read_token(INSTALLATION_ID, COURSE_REPO.split("/")[1])

        lines: list[str] = []

        async def progress(line: str) -> None:
            lines.append(line)

        config = load_course(
            {".github/classroom.yml": config_text(ssh_target)}, *COURSE_REPO.split("/")
        )
        clone_url = f"{github_fake.url}/{COURSE_REPO}.git"
        result = await operations.deploy(
            engine,
            COURSE_REPO,
            config,
            mode="apply",
            progress=progress,
            source=SharedSource(clone_url, first, token),
        )
        assert result.conclusion == "success", result.summary
        sandbox = ssh_target.sandbox
        source = sandbox / "classroom" / "shared-source" / "data"
        assert os.readlink(sandbox / "shared" / "data") == "/srv/classroom/shared-source/data"
        assert len(list(source.iterdir())) == FILES + 1
        # The Git LFS file came along: its contents, not its pointer.
        assert (source / "model.h5").read_bytes() == model
        first_bytes = sum(r.sent_bytes for r in github_fake.git.requests)
        assert first_bytes > FILES * FILE_BYTES * 0.9

        # One file changes in a new commit.
        (work / "data" / "part042.bin").write_bytes(os.urandom(FILE_BYTES))
        git(work, "commit", "-q", "-am", "one file")
        second = git(work, "rev-parse", "HEAD")
        git(work, "push", "-q", str(served), "main")
        before = snapshot(source)
        asked = len(github_fake.git.requests)
        result = await operations.deploy(
            engine,
            COURSE_REPO,
            config,
            mode="apply",
            progress=progress,
            source=SharedSource(clone_url, second, token),
        )
        assert result.conclusion == "success", result.summary
        assert [s.step.name for s in result.steps if s.step.name.startswith("shared")] == [
            "shared-fetch"
        ]
        after = snapshot(source)
        assert set(after) == set(before)
        assert [name for name in after if after[name] != before[name]] == ["part042.bin"]
        moved = sum(r.sent_bytes for r in github_fake.git.requests[asked:])
        assert FILE_BYTES <= moved < 1.2 * FILE_BYTES, moved
        assert (source / "part042.bin").read_bytes() == (work / "data" / "part042.bin").read_bytes()

        # A read-only token for this repository alone was asked for each fetch.
        made = [t for t in github_fake.tokens.values() if t.repositories is not None]
        assert len(made) == 2
        assert all(t.repositories == ["physics101"] for t in made)
        assert all(t.permissions == {"contents": "read"} for t in made)
        used = {r.token for r in github_fake.git.requests if r.status == 200}
        assert used == {t.value for t in made}

    # The token is nowhere: not in a file on the server, a process's arguments, the
    # commands the server ran, the service's log or what it reported.
    assert processes, "the fetch was watched"
    for value in used:
        assert value is not None
        assert not files_holding(sandbox, value.encode())
        assert not files_holding(ssh_target.sshd_dir, value.encode())
        assert all(value not in listing for listing in processes)
        assert value not in caplog.text
        assert all(value not in line for line in lines)
        assert value not in result.summary + result.log

    # Nothing under /home was written; new homes get ~/shared from /etc/skel.
    assert ssh_target.canary.intact()
    assert sorted(p.name for p in (sandbox / "home").iterdir()) == ["jupyter-student"]
    assert os.readlink(sandbox / "etc" / "skel" / "shared") == "/srv/shared"

    # A student cannot write to the repository's folder nor to the admins' one; an admin
    # (group jupyterhub-admins, as TLJH makes them) can write to the latter.
    admins = ssh_target.state("accounts")["group"]["jupyterhub-admins"]

    async def student(command: str) -> int:
        return await as_user(engine, ssh_target, STUDENT_UID, "", command)

    assert await student("cat /srv/shared/data/part001.bin > /dev/null") == 0
    assert await student("echo x > /srv/shared/data/new") != 0
    assert await student("echo x > /srv/shared/data/part001.bin") != 0
    assert await student("rm -f /srv/shared/data/part001.bin") != 0
    assert await student("echo x > /srv/shared/notes/s") != 0
    admin = "echo x > /srv/shared/notes/a"
    assert await as_user(engine, ssh_target, ADMIN_UID, str(admins), admin) == 0
    notes = sandbox / "shared" / "notes"
    assert (notes / "a").read_text() == "x\n" and not (notes / "s").exists()
    assert (notes / "a").stat().st_gid == admins  # setgid: the admins' group owns new files
