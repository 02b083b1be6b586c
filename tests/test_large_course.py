"""A course repository that carries a gigabyte of data deploys like a small one, reading
only its tree and the few files the engine uses (through /webhook, the fake GitHub and the
loopback SSH server)."""

from __future__ import annotations

import pytest

from bot.github.commit_files import MAX_FILE_BYTES
from tests.fakes.github import FakeGitHub, VirtualFile, file_size
from tests.plugins.classroom import NOTEBOOK, ssh_course_files
from tests.plugins.github_fake import COURSE_REPO

pytestmark = pytest.mark.sshd

GIGABYTE = 10**9
TREES, BLOBS = "git/get-tree", "git/get-blob"


def with_data(files: dict, total: int) -> dict:
    """``files`` plus ``total`` bytes of data in 100 files, and a notebook in a folder."""
    data = {f"data/run-{i:03}.h5": VirtualFile(total // 100, f"run{i}") for i in range(100)}
    return {**files, **data, "week1/Intro.ipynb": NOTEBOOK} if total else {**files}


def read_bytes(github: FakeGitHub, since: int, operation: str) -> int:
    return sum(r.sent_bytes for r in github.requests[since:] if r.operation_id == operation)


@pytest.mark.parametrize("data_bytes", [0, GIGABYTE], ids=["small", "with-1GB-of-data"])
async def test_a_course_with_a_gigabyte_of_data_deploys_like_a_small_one(
    classroom, example, data_bytes
):
    course = ssh_course_files(classroom.target)
    files = with_data(course, data_bytes)
    assert sum(file_size(data) for data in files.values()) >= data_bytes
    before = len(classroom.github.requests)
    sha = classroom.commit(files)
    assert (await classroom.push(example, sha)).status == 202
    await classroom.settle()

    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert (run["status"], run["conclusion"]) == ("completed", "success"), run["output"]
    [deployment] = [d for d in classroom.github.deployments.values() if d["sha"] == sha]
    statuses = classroom.github.deployment_statuses[deployment["id"]]
    assert [s["state"] for s in statuses] == ["in_progress", "success"]
    readme = classroom.github.files(COURSE_REPO, "main")["README.md"].decode()
    assert "StartHere.ipynb" in readme
    # Notebooks come from the tree: listed in the badge table, their contents never read.
    assert ("week1%2FIntro.ipynb" in readme) == bool(data_bytes)
    assert classroom.target.canary.intact()

    # What the service read: one tree, and one blob per file the engine uses.
    assert classroom.github.count(TREES) == 1
    engine_files = [p for p in course if not p.endswith(".ipynb")]
    assert classroom.github.count(BLOBS) == len(engine_files)
    blob_bytes = read_bytes(classroom.github, before, BLOBS)
    # Base64 is 4/3 of the bytes, plus a few hundred bytes of JSON around each.
    assert blob_bytes <= sum(len(course[p]) * 4 // 3 + 500 for p in engine_files)
    tree_bytes = read_bytes(classroom.github, before, TREES)
    assert tree_bytes <= 300 * (len(files) + 10)  # about 200 bytes of JSON an entry
    assert blob_bytes + tree_bytes < 100_000  # against the gigabyte in the repository


async def test_a_push_that_changes_nothing_reads_the_tree_and_no_blob(classroom, example):
    files = with_data(ssh_course_files(classroom.target), GIGABYTE)
    await classroom.push(example, classroom.commit(files))
    await classroom.settle()
    before = len(classroom.github.requests)
    # The next commit carries the README the service wrote: its blob is known already.
    files = dict(classroom.github.files(COURSE_REPO, "main"))
    assert files["README.md"] != ssh_course_files(classroom.target)["README.md"]
    second = classroom.commit({**files, "notes.md": b"Nothing the server needs.\n"})
    await classroom.push(example, second)
    await classroom.settle()
    requests = [r for r in classroom.github.requests[before:] if r.operation_id]
    operations = [r.operation_id for r in requests]
    assert len(operations) <= 6, operations  # the goal in bench/RESULTS.md
    assert operations.count(TREES) == 1 and BLOBS not in operations
    [run] = [r for r in classroom.runs() if r["head_sha"] == second]
    assert run["conclusion"] == "neutral", run["output"]


async def test_a_course_file_over_the_limit_is_a_configuration_error_naming_it(classroom, example):
    files = ssh_course_files(classroom.target)
    files["apt.txt"] = VirtualFile(MAX_FILE_BYTES + 1, "apt")
    sha = classroom.commit(files)
    await classroom.push(example, sha)
    await classroom.settle()
    [run] = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert run["conclusion"] == "failure"
    assert "`apt.txt`: is 1,048,577 bytes" in run["output"]["summary"]
    assert "Nothing ran on the server" in run["output"]["summary"]
    assert classroom.github.count(BLOBS) == 0  # refused by the size the tree gave
    assert not [d for d in classroom.github.deployments.values() if d["sha"] == sha]
