"""Shared folders on the hub: ``~/shared/<name>`` for everyone, from ``shared:``.

Pure: the plan's steps and the shell scripts they run, built only from validated,
quoted values.

Layout on the server:

- ``/srv/shared`` (root, 0755) holds one entry per folder. A read-only folder is a link
  to its folder in ``/srv/classroom/shared-source``, a sparse, partial (``blob:none``)
  git clone of the course repository that holds only the ``from`` folders, checked out at
  the pushed commit. ``git checkout`` writes only the files that changed, and the fetch
  brings only the blobs the clone lacks, so one changed file in a 1 GB folder moves
  about one file. Files are root's, 0644 (folders 0755): nobody else can change them.
- A writable folder is a directory of group ``jupyterhub-admins`` (TLJH puts hub admins
  in it when their server starts), mode 2775: admins write, students read. With
  ``storage`` it lives on the course's volume (``/mnt/classroom-home/shared/<name>``,
  linked from ``/srv/shared``), so volume snapshots and ``/restore --all`` carry it.
- ``~/shared``: nothing under ``/home`` is written by the service. ``/etc/skel/shared``
  links to ``/srv/shared`` for every home TLJH creates from now on, and for homes that
  already exist the student's own server adds the same link when it starts (a few lines
  in the user environment's ``jupyter_server_config.py``, run as the student).

The fetch uses a short-lived installation token (contents: read, this repository only).
It reaches the server on the script's stdin, lives in a shell variable, and is handed to
git only through the environment of the git process, read by a credential helper whose
text names the variable, not the token: never in a file, a command line or a log.
"""

from __future__ import annotations

import base64
import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from deploy.host import tljh
from deploy.model import CourseConfig, Observed, SharedFolder, Step
from deploy.volumes import homevolume

SHARED_ROOT = "/srv/shared"
SOURCE_DIR = "/srv/classroom/shared-source"
ADMIN_GROUP = "jupyterhub-admins"
SKEL_LINK = "/etc/skel/shared"
HOME_LINK = "~/shared"
VOLUME_FOLDER = f"{homevolume.MOUNT_POINT}/shared"
USER_SERVER_CONFIG = f"{tljh.USER_PREFIX}/etc/jupyter/jupyter_server_config.py"
STATE_KEY = "shared"
MARKER = "# Written by Littlest Classroom: ~/shared"
LAYOUT_TIMEOUT = 120.0
FETCH_TIMEOUT = 3600.0
TOKEN_VARIABLE = "CLASSROOM_GIT_TOKEN"  # noqa: S105 (the variable's name, not a token)

COMMIT = re.compile(r"[0-9a-f]{40}")
# Where the server clones from: GitHub's (or GitHub Enterprise's) https URL of this
# repository; http only for a loopback test server.
CLONE_URL = re.compile(
    r"(?:https://[a-z0-9.-]{1,253}(?::[0-9]{1,5})?|http://127\.0\.0\.1:[0-9]{1,5})"
    r"(?:/[A-Za-z0-9._-]{1,100}){0,4}"
    r"/[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\.git"
)

LAID_OUT = "shared-laid-out"
# What the observer prints: whether /srv/shared is there, and the clone's commit. A new
# droplet (after /recover) has neither, whatever the state file on the volume says.
OBSERVE_COMMAND = (
    f"if [ -d {SHARED_ROOT} ]; then echo {LAID_OUT}; fi; "
    f"git -C {SOURCE_DIR} rev-parse -q --verify HEAD"
)


def parse_observed(text: str) -> tuple[bool, str]:
    """(whether /srv/shared exists, the commit the clone has checked out or "")."""
    lines = [line.strip() for line in text.splitlines()]
    commits = [line for line in lines if COMMIT.fullmatch(line)]
    return LAID_OUT in lines, commits[0] if commits else ""


# Runs in the student's own Jupyter server, as the student, when it starts.
USER_SERVER_LINK = f"""\
{MARKER} links to the course's shared folders.
import os as _os

_link = _os.path.expanduser({HOME_LINK!r})
if _os.path.isdir({SHARED_ROOT!r}) and not _os.path.lexists(_link):
    try:
        _os.symlink({SHARED_ROOT!r}, _link)
    except OSError:
        pass
"""


@dataclass(frozen=True)
class SharedSource:
    """Where the server fetches the read-only folders: the repository at one commit.

    ``token`` makes a new installation token, read-only and for this repository alone,
    each time it is called.
    """

    clone_url: str
    commit: str
    token: Callable[[], Awaitable[str]]

    def __post_init__(self) -> None:
        if not CLONE_URL.fullmatch(self.clone_url):
            raise ValueError(f"{self.clone_url[:80]!r} is not a repository URL to clone")
        if not COMMIT.fullmatch(self.commit):
            raise ValueError(f"{self.commit[:80]!r} is not a commit id")


def read_only(config: CourseConfig) -> tuple[SharedFolder, ...]:
    return tuple(folder for folder in config.shared if not folder.writable)


def on_volume(config: CourseConfig) -> bool:
    """Writable folders go on the course's volume when the course has one."""
    return config.storage is not None and config.server.provider == "digitalocean"


def layout_record(config: CourseConfig) -> dict[str, Any]:
    """What the layout step makes, as the state file remembers it."""
    return {
        "folders": [[folder.name, folder.source] for folder in config.shared],
        "on_volume": on_volume(config),
    }


def state_record(config: CourseConfig, commit: str | None, seen: Observed) -> dict[str, Any] | None:
    """The ``shared`` entry of the state file after a deploy; None without shared folders."""
    if not config.shared:
        return None
    record = layout_record(config)
    previous = seen.state.get(STATE_KEY)
    if read_only(config):
        if commit is None and isinstance(previous, dict):
            commit = previous.get("commit")
        record["commit"] = commit
    return record


def plan_steps(config: CourseConfig, seen: Observed, commit: str | None) -> list[Step]:
    """The layout step when the folders changed (or the server has none), the fetch when
    the commit differs from the one the server's clone has checked out."""
    previous = seen.state.get(STATE_KEY)
    previous = previous if isinstance(previous, dict) else None
    if not config.shared and previous is None:
        return []
    if not seen.shared_laid_out:
        # The state file (on the volume) remembers a layout this server does not have:
        # a new droplet. Everything is laid out and fetched again.
        previous = None
    wanted = layout_record(config)
    steps: list[Step] = []
    layout_changed = previous is None or any(previous.get(k) != v for k, v in wanted.items())
    if layout_changed:
        names = ", ".join(f.name for f in config.shared)
        steps.append(
            Step(
                "shared-folders",
                f"shared: lay out ~/shared ({names})"
                if config.shared
                else "shared: is gone: remove the links under ~/shared (writable folders kept)",
                layout_script(config),
                timeout=LAYOUT_TIMEOUT,
            )
        )
    folders = read_only(config)
    fetched = seen.shared_commit or None
    if folders and (layout_changed or (commit is not None and commit != fetched)):
        at = f"commit {commit[:7]}" if commit else "the pushed commit"
        listing = ", ".join(f"{f.source}/" for f in folders)
        steps.append(
            Step(
                "shared-fetch",
                f"shared: fetch {listing} at {at} (only changed files are written)",
                "",
                timeout=FETCH_TIMEOUT,
            )
        )
    return steps


def _link_folder(name: str) -> str:
    return f"{SHARED_ROOT}/{name}"


def layout_script(config: CourseConfig) -> str:
    """Make ``/srv/shared`` match ``shared:``: links, writable folders, ``~/shared``.

    Never removes a directory: only the links this step made. A writable folder that is
    no longer listed stays, with its files.
    """
    root = shlex.quote(SHARED_ROOT)
    lines = ["umask 022", f"mkdir -p {root}", f"chown root:root {root}", f"chmod 0755 {root}"]
    names = [folder.name for folder in config.shared]
    lines += [
        f"for entry in {root}/* {root}/.[!.]*; do",
        '  [ -L "$entry" ] || continue',
        '  case "${entry##*/}" in',
        *([f"    {'|'.join(shlex.quote(n) for n in names)}) ;;"] if names else []),
        '    *) rm -f "$entry" ;;',
        "  esac",
        "done",
    ]
    if any(folder.writable for folder in config.shared):
        lines += [
            f"groupadd --force {ADMIN_GROUP}",
            f"gid=$(getent group {ADMIN_GROUP} | cut -d: -f3)",
            'if [ -z "$gid" ]; then echo "no group ' + ADMIN_GROUP + '" >&2; exit 1; fi',
        ]
    if read_only(config):
        # git fetches the folders; git-lfs brings their Git LFS files.
        install = "; ".join(tljh.apt_install(["git", "git-lfs"]))
        lines.append(
            f"if ! command -v git >/dev/null || ! command -v git-lfs >/dev/null; then {install}; fi"
        )
    for folder in config.shared:
        link = shlex.quote(_link_folder(folder.name))
        if folder.writable:
            if on_volume(config):
                place = shlex.quote(f"{VOLUME_FOLDER}/{folder.name}")
                lines += [
                    f"if [ ! -f {shlex.quote(homevolume.MARKER)} ]; then",
                    "  echo 'the course volume is not mounted; writable shared folders wait "
                    "for it' >&2",
                    "  exit 1",
                    "fi",
                    f"mkdir -p {shlex.quote(VOLUME_FOLDER)}",
                    f"chmod 0755 {shlex.quote(VOLUME_FOLDER)}",
                    *_replace_link(link, place),
                ]
            else:
                place = link
                lines += [
                    f"if [ -L {link} ]; then rm -f {link}; fi",
                ]
            lines += [
                f"mkdir -p {place}",
                f'chown root:"$gid" {place}',
                f"chmod 2775 {place}",
            ]
        else:
            assert folder.source is not None
            lines += _replace_link(link, shlex.quote(f"{SOURCE_DIR}/{folder.source}"))
    skel = shlex.quote(SKEL_LINK)
    config_file = shlex.quote(USER_SERVER_CONFIG)
    ours = f"grep -qsF {shlex.quote(MARKER)} {config_file}"
    if config.shared:
        encoded = base64.b64encode(USER_SERVER_LINK.encode()).decode()
        lines += [
            f"mkdir -p {shlex.quote(SKEL_LINK.rsplit('/', 1)[0])}",
            f"if [ -L {skel} ] || [ ! -e {skel} ]; then ln -sfn {root} {skel}; fi",
            f"mkdir -p {shlex.quote(USER_SERVER_CONFIG.rsplit('/', 1)[0])}",
            f"if [ ! -e {config_file} ] || {ours}; then",
            f"  printf '%s' {encoded} | base64 -d > {config_file}.tmp",
            f"  chmod 0644 {config_file}.tmp",
            f"  mv {config_file}.tmp {config_file}",
            "else",
            f"  echo '{USER_SERVER_CONFIG} is not ours: left as it is; students whose home "
            f"predates shared: find the folders at {SHARED_ROOT}'",
            "fi",
        ]
    else:
        lines += [
            f"if [ -L {skel} ]; then rm -f {skel}; fi",
            f"if {ours}; then rm -f {config_file}; fi",
        ]
    return tljh.script(*lines)


def _replace_link(link: str, target: str) -> list[str]:
    """Point ``link`` at ``target``; a real folder in its place is left alone, and stops."""
    return [
        f"if [ -e {link} ] && [ ! -L {link} ]; then",
        f"  echo {link}' is a folder on the server, not a link; it is left alone' >&2",
        "  exit 1",
        "fi",
        f"ln -sfn {target} {link}",
    ]


def fetch_script(source: SharedSource, folders: tuple[SharedFolder, ...]) -> str:
    """Fetch the ``from`` folders at ``source.commit``; the token arrives on stdin.

    Sparse, partial clone: only the listed folders are checked out, and only blobs the
    clone lacks are downloaded. Git LFS files come through git-lfs's smudge filter (the
    layout step installs git-lfs).
    """
    if not CLONE_URL.fullmatch(source.clone_url) or not COMMIT.fullmatch(source.commit):
        raise ValueError("the source was not checked")
    src = shlex.quote(SOURCE_DIR)
    commit = shlex.quote(source.commit)
    patterns = "".join(f"/{folder.source}/\\n" for folder in folders if folder.source)
    sources = tljh.words(f"{folder.source}/" for folder in folders if folder.source)
    # The helper's text names the variable; only the helper's shell expands it.
    helper = (
        f'!f() {{ if [ "$1" = get ]; then printf "username=x-access-token\\npassword=%s\\n" '
        f'"${TOKEN_VARIABLE}"; fi; }}; f'
    )
    lines = [
        "IFS= read -r token || true",
        'if [ -z "$token" ]; then echo "no token on stdin" >&2; exit 1; fi',
        "umask 022",
        f"src={src}",
        f"mkdir -p {shlex.quote(SOURCE_DIR.rsplit('/', 1)[0])}",
        f"chmod 0755 {shlex.quote(SOURCE_DIR.rsplit('/', 1)[0])}",
        'git init -q "$src"',
        'chmod 0700 "$src/.git"',
        f'git -C "$src" config remote.origin.url {shlex.quote(source.clone_url)}',
        'git -C "$src" config remote.origin.promisor true',
        'git -C "$src" config remote.origin.partialclonefilter blob:none',
        'git -C "$src" config core.sparseCheckout true',
        'git -C "$src" config gc.auto 0',
        f"printf '{patterns}' > \"$src/.git/info/sparse-checkout\"",
        "if command -v git-lfs >/dev/null 2>&1; then",
        '  git -C "$src" lfs install --local >/dev/null',
        "fi",
        f"helper={shlex.quote(helper)}",
        # The token is in git's environment only, for this one command (and the git and
        # git-lfs processes it starts): no export, no argument, no file. The server's
        # system-wide git settings (another credential helper) do not apply.
        "g() {",
        f'  {TOKEN_VARIABLE}="$token" GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1 '
        "GIT_CONFIG_COUNT=2 "
        "GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0= "
        'GIT_CONFIG_KEY_1=credential.helper GIT_CONFIG_VALUE_1="$helper" '
        'git -C "$src" "$@"',
        "}",
        'before=$(git -C "$src" rev-parse -q --verify HEAD 2>/dev/null || true)',
        f"g fetch -q --no-tags --filter=blob:none --depth=1 origin {commit}",
        f"g -c advice.detachedHead=false checkout -q --force --detach {commit}",
        'if [ -n "$before" ]; then',
        f'  changed=$(git -C "$src" diff --name-only "$before" {commit} -- {sources} | wc -l)',
        f'  echo "shared folders at {source.commit[:7]}: $changed file(s) changed"',
        "else",
        f'  echo "shared folders fetched at {source.commit[:7]}"',
        "fi",
    ]
    return tljh.script(*lines)


__all__ = [
    "SharedSource",
    "fetch_script",
    "layout_script",
    "plan_steps",
    "state_record",
]
