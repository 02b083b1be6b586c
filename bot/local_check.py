"""``python -m bot check [PATH]``: validate a local course checkout as the service would.

The same functions the service runs on a pushed commit read the same files here
(``deploy.course.config.is_course_file`` picks them, ``deploy.course.config.load_course``
checks them), and the plan for a fresh server is printed as the check run would show it.
Nothing here touches the network or needs the service's settings, so an instructor can run
it before pushing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from deploy.course.config import is_course_file, load_course
from deploy.model import CONFIG_PATH, ConfigError, ConfigErrors, CourseConfig
from deploy.planning.planner import plan
from deploy.planning.render import render_plan
from deploy.providers import kubernetes_course
from deploy.providers.chart_values import CHART_VERSION, ValuesInvalid
from deploy.providers.clusters import cluster_name

DEFAULT_OWNER = "course"

# What `git remote get-url origin` prints for a GitHub repository: https, ssh:// or scp-like.
_GITHUB_REMOTE = re.compile(
    r"(?:https?://(?:[^/@]+@)?github\.com/|ssh://git@github\.com(?::\d+)?/|git@github\.com:)"
    r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<repo>[A-Za-z0-9._-]{1,100}?)(?:\.git)?/?"
)
# A file larger than any the engine accepts is still read, so the engine's own size check
# reports it; this only bounds the memory a stray notebook can take.
_MAX_FILE_BYTES = 16 * 1024 * 1024


def github_course(remote_url: str) -> tuple[str, str] | None:
    """``(owner, repo)`` when ``remote_url`` is a github.com repository URL, else None."""
    match = _GITHUB_REMOTE.fullmatch(remote_url.strip())
    if match is None:
        return None
    return match["owner"], match["repo"]


def _git(path: Path, *args: str) -> str | None:
    """``git -C path args…``'s output, or None when git is missing or says no."""
    try:
        answer = subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return answer.stdout.strip() if answer.returncode == 0 else None


def origin_url(path: Path) -> str | None:
    """The ``origin`` URL of the repository whose top folder is ``path``, else None.

    A folder inside some other repository (``examples/course`` in this one) is not that
    repository's course, so its origin is not used.
    """
    top = _git(path, "rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != path.resolve():
        return None
    return _git(path, "remote", "get-url", "origin")


def course_name(path: Path, remote_url: str | None) -> tuple[str, str]:
    """The ``(owner, repo)`` a checkout is checked as: its GitHub origin, else its folder name."""
    found = github_course(remote_url) if remote_url else None
    if found is not None:
        return found
    return DEFAULT_OWNER, path.resolve().name or DEFAULT_OWNER


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """Each regular file under ``root`` as (repository path with ``/``, file), skipping ``.git``."""
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name != ".git")
        for name in sorted(names):
            file = Path(folder, name)
            # A link could point anywhere; the service never reads one from GitHub either.
            if file.is_symlink() or not file.is_file():
                continue
            yield file.relative_to(root).as_posix(), file


def read_course_files(root: Path) -> dict[str, bytes]:
    """The files under ``root`` the engine reads, keyed by their path in the repository."""
    files: dict[str, bytes] = {}
    for repo_path, file in _walk(root):
        if is_course_file(repo_path):
            with file.open("rb") as handle:
                files[repo_path] = handle.read(_MAX_FILE_BYTES)
    return files


def check_course(files: dict[str, bytes], owner: str, repo: str) -> tuple[CourseConfig, str]:
    """The validated course and its fresh-server plan as Markdown; raises ``ConfigErrors``."""
    config = load_course(files, owner, repo)
    if config.server.provider == "kubernetes":
        try:
            return config, kubernetes_course.fresh_plan(config)
        except ValuesInvalid as exc:
            raise ConfigErrors(
                [
                    ConfigError(CONFIG_PATH, None, "", f"{message} (the chart's schema)")
                    for message in exc.messages
                ]
            ) from None
    fresh = plan(config, None, droplet_exists=False)
    return config, render_plan(fresh)


def report(config: CourseConfig, plan_markdown: str) -> str:
    """What ``check`` prints for a valid course: a summary, then the plan."""
    server = config.server
    where = (
        f"droplet {server.name} ({server.size} in {server.region})"
        if server.provider == "digitalocean"
        else f"{server.user}@{server.host}:{server.port} over SSH"
    )
    software = f"TLJH {config.hub.tljh_version}"
    if server.provider == "kubernetes" and server.nodes is not None:
        nodes = server.nodes
        where = (
            f"Kubernetes cluster {server.cluster or cluster_name(server.name)} in "
            f"{server.region}, nodes {nodes.size}, {nodes.min} to {nodes.max}"
        )
        software = (
            f"Zero to JupyterHub {CHART_VERSION}, image {config.hub.image or 'the chart sample'}"
        )
    packages = config.packages
    lines = [
        f"{config.owner}/{config.repo}: the course configuration is valid.",
        f"Server: {where}; {software}.",
    ]
    for kind, names in (
        ("conda", packages.conda),
        ("pip", packages.pip),
        ("apt", packages.apt),
    ):
        if names:
            source = packages.sources.get(kind, "")
            lines.append(f"{kind} packages ({source}): {', '.join(names)}")
    for ignored in packages.ignored:
        lines.append(f"Not read: {ignored} (a file read instead takes its place)")
    for folder in config.shared:
        lines.append(
            f"~/shared/{folder.name}: writable by hub admins, read-only for students"
            if folder.writable
            else f"~/shared/{folder.name}: {folder.source}/ of the repository, read-only"
        )
    lines += ["", "Plan for a fresh server:", "", plan_markdown.rstrip("\n")]
    return "\n".join(lines) + "\n"


def run_check(path: Path, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Check the course checkout at ``path``: 0 and the plan when valid, 1 and every error not."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if not path.is_dir():
        print(f"error: {path}: not a folder (give the course repository's checkout)", file=err)
        return 1
    owner, repo = course_name(path, origin_url(path))
    try:
        config, plan_markdown = check_course(read_course_files(path), owner, repo)
    except ConfigErrors as found:
        count = len(found.errors)
        for error in found.errors:
            print(error, file=err)
        print(
            f"{owner}/{repo}: {count} error{'' if count == 1 else 's'}; nothing would run.",
            file=err,
        )
        return 1
    out.write(report(config, plan_markdown))
    for folder in config.shared:
        if folder.source is not None and not (path / folder.source).is_dir():
            print(
                f"warning: shared: {folder.source}/ is not a folder of this checkout; "
                f"~/shared/{folder.name} would be empty",
                file=err,
            )
    return 0
