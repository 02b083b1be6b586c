"""A commit's files, read through Git's database API: the tree once, then only the blobs wanted.

``read_commit_files`` asks for the commit's tree in one conditional request
(``git/trees/{ref}?recursive=1``; the same commit read again costs a 304), keeps its
regular files, fetches the blob of each file ``wanted`` accepts, and lists the paths
``listed`` accepts without reading them. So a repository that carries gigabytes of data
costs its tree listing plus the few files the engine reads, never the data.

Blobs are content-addressed: each is fetched at most once into ``GitHubApp.blobs`` and
served from there after. A wanted file over ``max_file_bytes`` is refused, by its size in
the tree, before anything is fetched (``FileTooLarge`` names it). Above 100,000 entries or
7 MB GitHub truncates a recursive listing and says so; then the ``folders`` the wanted
files can be in are read one level at a time. Links and submodules are never read: a
link's blob is a path that could point anywhere (``python -m bot check`` skips them too).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.github.client import GitHubApp, GitHubError, InstallationAPI, check_repository_names

MAX_FILE_BYTES = 1024 * 1024
# 100644 is a file, 100755 an executable one; 120000 (a link) and 160000 (a submodule)
# are left out on purpose.
REGULAR_FILE_MODES = frozenset({"100644", "100755"})
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

TREE_URL = "/repos/{owner}/{repo}/git/trees/{+tree_sha}{?recursive}"
BLOB_URL = "/repos/{owner}/{repo}/git/blobs/{file_sha}"


class FileTooLarge(GitHubError):
    """A file the engine reads is bigger than a course file may be."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        self.path = path
        self.size = size
        self.limit = limit
        self.detail = (
            f"is {size:,} bytes; a file the service reads may be at most {limit:,} bytes"
            " (keep data in other files: the service never reads those)"
        )
        super().__init__(f"{path} {self.detail}")


@dataclass(frozen=True)
class TreeFile:
    """A regular file as a tree lists it: its path, blob sha and size."""

    path: str
    sha: str
    size: int


class CommitFiles(dict[str, bytes]):
    """The files read at a commit (path -> bytes), plus what the tree said without reading.

    ``listed``: the paths ``listed`` accepted, sorted, their contents not read.
    ``shas``: the blob sha of each file read (what the contents API calls its ``sha``).
    """

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        listed: Iterable[str] = (),
        shas: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(files or {})
        self.listed: tuple[str, ...] = tuple(sorted(listed))
        self.shas: dict[str, str] = dict(shas or {})


def check_tree_path(path: str) -> None:
    """Raise ``GitHubError`` for a tree path that is absolute or climbs out with ``..``."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or "\\" in path
        or "\0" in path
    ):
        raise GitHubError(f"the tree lists {path!r}, which is not a path inside a repository")


def files_in_listing(entries: Any, prefix: str = "") -> dict[str, TreeFile]:
    """The regular files of a tree listing, their paths put under ``prefix``.

    Folders, links and submodules are left out; an entry that is not what GitHub
    documents makes the whole listing refused.
    """
    if not isinstance(entries, list):
        raise GitHubError("the tree's listing is not a list")
    files: dict[str, TreeFile] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise GitHubError("the tree lists an entry that is not an object")
        if entry.get("type") != "blob" or entry.get("mode") not in REGULAR_FILE_MODES:
            continue
        path, sha, size = entry.get("path"), entry.get("sha"), entry.get("size")
        if not isinstance(path, str):
            raise GitHubError("the tree lists a file without a path")
        path = prefix + path
        check_tree_path(path)
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise GitHubError(f"the tree gives {path} the sha {sha!r}, which is not a blob id")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise GitHubError(f"the tree gives {path} no size")
        files[path] = TreeFile(path, sha, size)
    return files


def folders_of(paths: Iterable[str]) -> tuple[str, ...]:
    """The folders holding ``paths`` and their parents, shallowest first (``""``: the root)."""
    folders = {""}
    for path in paths:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return tuple(sorted(folders, key=lambda folder: (folder.count("/") + bool(folder), folder)))


def git_blob_sha(data: bytes) -> str:
    """The blob id git (and so the tree and the contents API) gives ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def remember_blob(app: GitHubApp, data: bytes) -> str:
    """Cache a blob the service wrote itself (the README), so no push fetches it; its sha."""
    sha = git_blob_sha(data)
    if len(data) <= app.blobs.maxsize:
        app.blobs[sha] = data
    return sha


async def _tree(
    gh: InstallationAPI, owner: str, repo: str, ref: str, recursive: bool
) -> dict[str, Any]:
    url_vars = {"owner": owner, "repo": repo, "tree_sha": ref}
    if recursive:
        url_vars["recursive"] = "1"  # GitHub reads any value, even "false", as yes
    answer = await gh.getitem(TREE_URL, url_vars)
    if not isinstance(answer, dict):
        raise GitHubError(f"the tree of {owner}/{repo}@{ref} is not an object")
    return answer


async def _walk(
    gh: InstallationAPI, owner: str, repo: str, ref: str, folders: Iterable[str]
) -> dict[str, TreeFile]:
    """The files directly inside ``folders``, each folder's tree read on its own."""
    listings: dict[str, Any] = {"": (await _tree(gh, owner, repo, ref, False)).get("tree")}
    # folders_of a path inside each folder: the folder and its parents, parents first.
    for folder in folders_of(f"{folder}/-" for folder in folders if folder):
        if folder in listings:
            continue
        parent, _, name = folder.rpartition("/")
        above = listings.get(parent)
        if not isinstance(above, list):
            continue  # the parent folder is not in this commit
        entry = next(
            (e for e in above if isinstance(e, dict) and e.get("path") == name),
            None,
        )
        if entry is None or entry.get("type") != "tree" or not _SHA.match(str(entry.get("sha"))):
            continue
        listings[folder] = (await _tree(gh, owner, repo, entry["sha"], False)).get("tree")
    files: dict[str, TreeFile] = {}
    for folder, listing in listings.items():
        files.update(files_in_listing(listing, f"{folder}/" if folder else ""))
    return files


async def _blob(gh: InstallationAPI, owner: str, repo: str, file: TreeFile, limit: int) -> bytes:
    answer = await gh.getitem(BLOB_URL, {"owner": owner, "repo": repo, "file_sha": file.sha})
    if not isinstance(answer, dict) or answer.get("encoding") != "base64":
        raise GitHubError(f"the blob of {file.path} did not come base64-encoded")
    content = answer.get("content")
    if not isinstance(content, str) or len(content) > 2 * limit:
        raise GitHubError(f"the blob of {file.path} has no content GitHub documents")
    try:
        data = base64.b64decode(content)
    except (binascii.Error, ValueError):
        raise GitHubError(f"the blob of {file.path} is not valid base64") from None
    if len(data) > limit:
        raise FileTooLarge(file.path, len(data), limit)
    if len(data) != file.size:
        raise GitHubError(
            f"the blob of {file.path} is {len(data)} bytes; the tree said {file.size}"
        )
    return data


async def read_commit_files(
    app: GitHubApp,
    installation_id: int,
    owner: str,
    repo: str,
    ref: str,
    *,
    wanted: Callable[[str], bool],
    listed: Callable[[str], bool] = lambda _path: False,
    folders: Iterable[str] = ("",),
    max_file_bytes: int = MAX_FILE_BYTES,
) -> CommitFiles:
    """The files ``wanted`` accepts at ``ref`` (a commit sha or branch), and the paths
    ``listed`` accepts; ``folders`` are where wanted files can be, for a truncated tree."""
    check_repository_names("read_commit_files", owner, repo, ref)
    gh = await app.installation_api(installation_id)
    tree = await _tree(gh, owner, repo, ref, True)
    files = files_in_listing(tree.get("tree"))
    if tree.get("truncated") is True:
        files.update(await _walk(gh, owner, repo, ref, folders))
    chosen = sorted((f for f in files.values() if wanted(f.path)), key=lambda f: f.path)
    for file in chosen:
        if file.size > max_file_bytes:
            raise FileTooLarge(file.path, file.size, max_file_bytes)
    contents: dict[str, bytes] = {}
    for file in chosen:
        cached = app.blobs.get(file.sha)
        if cached is not None:
            contents[file.sha] = cached
    missing = list({f.sha: f for f in chosen if f.sha not in contents}.values())
    if missing:
        # Blobs never change: the ETag cache would only keep a second copy of each.
        blob_api = await app.installation_api(installation_id, etag_cache=False)
        fetched = await asyncio.gather(
            *(_blob(blob_api, owner, repo, file, max_file_bytes) for file in missing)
        )
        for file, data in zip(missing, fetched, strict=True):
            contents[file.sha] = data
            if len(data) <= app.blobs.maxsize:
                app.blobs[file.sha] = data
    return CommitFiles(
        {file.path: contents[file.sha] for file in chosen},
        (path for path in files if listed(path)),
        {file.path: file.sha for file in chosen},
    )
