"""Tests of bot/github/commit_files.py: pure helpers, and reading against the fake GitHub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import gidgethub
import pytest

from bot.github.client import GitHubApp, GitHubError
from bot.github.commit_files import (
    CommitFiles,
    FileTooLarge,
    files_in_listing,
    folders_of,
    git_blob_sha,
    read_commit_files,
)
from tests.fakes.github import FakeGitHub, Symlink, VirtualFile, blob_sha
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID

TREES, BLOBS = "git/get-tree", "git/get-blob"
SHA = "a" * 40


def entry(path: str, mode: str = "100644", kind: str = "blob", size: int | None = 3) -> dict:
    found = {"path": path, "mode": mode, "type": kind, "sha": SHA}
    if size is not None:
        found["size"] = size
    return found


def test_files_in_listing_keeps_regular_files_only() -> None:
    listing = [
        entry("README.md"),
        entry("run.sh", mode="100755"),
        entry("binder", mode="040000", kind="tree", size=None),
        entry("latest", mode="120000"),  # a link: its blob is a path that could point anywhere
        entry("vendor/lib", mode="160000", kind="commit", size=None),  # a submodule
    ]
    assert sorted(files_in_listing(listing)) == ["README.md", "run.sh"]
    assert sorted(files_in_listing([entry("apt.txt")], "binder/")) == ["binder/apt.txt"]


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a//b", "a/./b", "a\\b", ""])
def test_files_in_listing_refuses_paths_outside_the_repository(path: str) -> None:
    with pytest.raises(GitHubError, match="not a path inside a repository"):
        files_in_listing([entry(path)])


@pytest.mark.parametrize(
    ("bad", "message"),
    [({"sha": "xyz"}, "not a blob id"), ({"size": -1}, "no size"), ({"size": True}, "no size")],
)
def test_files_in_listing_refuses_entries_github_does_not_document(bad: dict, message: str) -> None:
    with pytest.raises(GitHubError, match=message):
        files_in_listing([{**entry("README.md"), **bad}])
    with pytest.raises(GitHubError, match="not a list"):
        files_in_listing({"tree": []})


def test_folders_of_lists_parents_first() -> None:
    assert folders_of(["README.md", ".github/classroom.yml", "a/b/c.txt"]) == (
        "",
        ".github",
        "a",
        "a/b",
    )


@pytest.mark.parametrize("data", [b"", b"# Physics\n", bytes(range(256)) * 5])
def test_git_blob_sha_is_gits(data: bytes) -> None:
    assert git_blob_sha(data) == blob_sha(data)
    assert git_blob_sha(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


@pytest.fixture
async def app(github_fake: FakeGitHub) -> AsyncIterator[GitHubApp]:
    async with aiohttp.ClientSession() as session:
        yield GitHubApp(
            session, github_fake.app.id, github_fake.app.private_key_pem, github_fake.url
        )


async def read(app: GitHubApp, ref: str = "main", **options) -> CommitFiles:
    options.setdefault("wanted", lambda path: not path.endswith((".ipynb", ".csv")))
    options.setdefault("listed", lambda path: path.endswith(".ipynb"))
    return await read_commit_files(app, INSTALLATION_ID, "octo-org", "physics101", ref, **options)


COMMIT = {
    "README.md": b"# Physics\n",
    ".github/classroom.yml": b"hub:\n  admins: [alice]\n",
    "binder/apt.txt": b"graphviz\n",
    "week1/Intro.ipynb": VirtualFile(5 * 10**6, "notebook"),
    "data/huge.csv": VirtualFile(10**9, "huge"),
    "latest.csv": Symlink("data/huge.csv"),
}


async def test_reads_the_tree_once_and_only_the_wanted_blobs(
    app: GitHubApp, github_fake: FakeGitHub
) -> None:
    github_fake.put_commit(COURSE_REPO, COMMIT, branch="main")
    files = await read(app)
    assert dict(files) == {
        ".github/classroom.yml": b"hub:\n  admins: [alice]\n",
        "README.md": b"# Physics\n",
        "binder/apt.txt": b"graphviz\n",
    }
    assert files.listed == ("week1/Intro.ipynb",)
    assert files.shas["README.md"] == blob_sha(b"# Physics\n")
    assert (github_fake.count(TREES), github_fake.count(BLOBS)) == (1, 3)
    # The gigabyte and the 5 MB notebook were listed, never sent.
    assert sum(r.sent_bytes for r in github_fake.requests) < 10_000


async def test_a_blob_is_never_fetched_twice(app: GitHubApp, github_fake: FakeGitHub) -> None:
    github_fake.put_commit(COURSE_REPO, COMMIT, branch="main")
    await read(app)
    changed = {**COMMIT, "notes.md": b"new\n"}
    github_fake.put_commit(COURSE_REPO, changed, branch="main")
    files = await read(app)
    assert files["notes.md"] == b"new\n"
    assert github_fake.count(BLOBS) == 4  # three, then only the new one
    # The same commit again: the tree answers 304 from the ETag cache, no blob is asked for.
    before = github_fake.not_modified
    assert await read(app) == files
    assert (github_fake.not_modified, github_fake.count(BLOBS)) == (before + 1, 4)


async def test_a_wanted_file_over_the_limit_is_refused_by_name_before_any_fetch(
    app: GitHubApp, github_fake: FakeGitHub
) -> None:
    github_fake.put_commit(
        COURSE_REPO,
        {**COMMIT, "binder/apt.txt": VirtualFile(2 * 1024 * 1024, "apt")},
        branch="main",
    )
    with pytest.raises(FileTooLarge, match=r"binder/apt.txt is 2,097,152 bytes") as caught:
        await read(app)
    assert caught.value.path == "binder/apt.txt"
    assert github_fake.count(BLOBS) == 0


async def test_a_truncated_tree_is_walked_folder_by_folder(
    app: GitHubApp, github_fake: FakeGitHub
) -> None:
    data = {f"data/part-{i:03}.csv": VirtualFile(10**6, str(i)) for i in range(50)}
    github_fake.put_commit(COURSE_REPO, {**COMMIT, **data}, branch="main")
    # The recursive listing stops after .github/: README.md and binder/ are not in it.
    github_fake.tree_entry_limit = 2
    files = await read(app, folders=("", ".github", "binder", ".binder"))
    assert sorted(files) == [".github/classroom.yml", "README.md", "binder/apt.txt"]
    # One recursive listing, then the root, .github and binder (.binder does not exist).
    trees = [r for r in github_fake.requests if r.operation_id == TREES]
    assert [("recursive" in r.query) for r in trees] == [True, False, False, False]
    assert github_fake.count(BLOBS) == 3


async def test_an_unknown_ref_and_odd_names(app: GitHubApp, github_fake: FakeGitHub) -> None:
    with pytest.raises(gidgethub.BadRequest):
        await read(app, "no-such-branch")
    with pytest.raises(GitHubError, match="read_commit_files: ref"):
        await read(app, "../x")
    github_fake.validation_errors.clear()
