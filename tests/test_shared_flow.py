"""Shared folders through /webhook: a push to the default branch makes the hub's server
fetch ``data/`` at that commit with a read-only token for this repository, and the token
is in no check run, log line, file on the server or process's arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO
from tests.support.shared_folders import files_holding, git

pytestmark = pytest.mark.sshd

SHARED = "shared:\n  - from: data/\n    to: data\n  - writable: notes\n"


def real_commit(work: Path, files: dict[str, bytes]) -> str:
    """The course's files as a real git commit (the fake GitHub stores it under its id)."""
    if not work.exists():
        work.mkdir()
        git(work, "init", "-q", "-b", "main")
    for path, data in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(data)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "course")
    return git(work, "rev-parse", "HEAD")


async def test_a_push_fetches_the_shared_folder_at_its_commit(classroom, example, tmp_path, caplog):
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    served = classroom.github.serve_git(COURSE_REPO, bare)
    assert classroom.github.git is not None
    processes: list[str] = []
    classroom.github.git.on_request = lambda _request: processes.append(
        subprocess.run(["ps", "-eo", "args"], capture_output=True).stdout.decode()
    )
    work = tmp_path / "course"
    files = ssh_course_files(classroom.target, extra=SHARED)
    files.update({f"data/table{n}.csv": os.urandom(2048) for n in range(3)})
    shas = []
    for round_ in range(2):
        if round_:
            files["data/table1.csv"] = b"changed\n"
        sha = real_commit(work, files)
        git(work, "push", "-q", str(served), "main")
        classroom.github.put_commit(COURSE_REPO, files, sha=sha, branch="main")
        await classroom.push(example, sha)
        await classroom.settle()
        [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
        assert run["conclusion"] == "success", run["output"]
        shas.append(sha)

    data = classroom.target.sandbox / "classroom" / "shared-source" / "data"
    assert (data / "table1.csv").read_bytes() == b"changed\n"
    assert sorted(p.name for p in data.iterdir()) == ["table0.csv", "table1.csv", "table2.csv"]
    made = [t for t in classroom.github.tokens.values() if t.repositories is not None]
    assert [(t.repositories, t.permissions) for t in made] == [
        (["physics101"], {"contents": "read"})
    ] * 2
    texts = [str(r["output"]) for r in classroom.runs()] + [caplog.text]
    for token in made:
        assert not files_holding(classroom.target.sandbox, token.value.encode())
        assert all(token.value not in text for text in texts + processes)
    assert processes
    assert classroom.target.canary.intact()
