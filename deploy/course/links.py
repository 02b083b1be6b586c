"""nbgitpuller launch links, character for character as nbgitpuller's link generator makes them.

The generator (``link_generator.js`` in nbgitpuller's documentation) builds
``{hub}/hub/user-redirect/git-pull?repo=…&urlpath=…&branch=…`` with JavaScript's
``encodeURIComponent`` on each value, and names the folder the repository is cloned
into after the last segment of the repository URL. Its ``.git``-stripping regular
expression is optional and unanchored, so it matches the empty string and strips
nothing: the folder keeps a ``.git`` ending, which is also what nbgitpuller's own
clone does (``repo.split('/')[-1]``). Matching both keeps the link opening the file
that nbgitpuller actually pulled.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from deploy.model import DefaultApp

# encodeURIComponent leaves A-Z a-z 0-9 and - _ . ! ~ * ' ( ) alone; quote() always
# keeps A-Z a-z 0-9 _ . - ~, so these are the rest.
_URI_COMPONENT_SAFE = "!*'()"

_APP_PREFIX: dict[str, str] = {"jupyterlab": "lab/tree/", "classic": "tree/"}


def encode_uri_component(value: str) -> str:
    """Percent-encode ``value`` exactly as JavaScript's ``encodeURIComponent`` does.

    UTF-8 bytes, upper-case hex. A lone surrogate has no UTF-8 form; JavaScript throws
    ``URIError`` and this raises ``ValueError``.
    """
    try:
        return quote(value, safe=_URI_COMPONENT_SAFE, encoding="utf-8", errors="strict")
    except UnicodeEncodeError as error:
        raise ValueError(f"cannot URI-encode a lone surrogate in {value!r}") from error


def clone_folder(repo_url: str) -> str:
    """The folder nbgitpuller clones ``repo_url`` into, as the link generator names it.

    The last ``/`` segment, then its last ``:`` part (for ``host:repo`` SSH forms);
    a ``.git`` ending is kept.
    """
    folder = repo_url.split("/")[-1].split(":")[-1]
    if not folder:
        raise ValueError(
            f"repository URL {repo_url!r} ends without a folder name "
            "(drop the trailing '/'): nbgitpuller would clone into the home folder itself"
        )
    return folder


def app_path(folder: str, open_path: str | None = None, app: DefaultApp = "jupyterlab") -> str:
    """The ``urlpath`` the hub opens after the pull: ``lab/tree/…`` or ``tree/…``."""
    try:
        prefix = _APP_PREFIX[app]
    except KeyError:
        allowed = ", ".join(sorted(_APP_PREFIX))
        raise ValueError(f"unknown app {app!r}; allowed: {allowed}") from None
    # A leading slash would make "folder//file"; the path is relative to the clone.
    relative = (open_path or "").lstrip("/")
    return f"{prefix}{folder}/{relative}" if relative else f"{prefix}{folder}"


def launch_link(
    hub_url: str,
    repo_url: str,
    branch: str,
    open_path: str | None = None,
    app: DefaultApp = "jupyterlab",
) -> str:
    """The nbgitpuller link that pulls ``repo_url`` at ``branch`` and opens ``open_path``.

    ``hub_url`` is the hub's base URL (``https://hub.example.edu``, with or without a
    trailing slash, possibly with a path prefix).
    """
    parts = urlsplit(hub_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"hub URL {hub_url!r} must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError(f"hub URL {hub_url!r} must not carry a query or fragment")
    if not branch:
        raise ValueError("branch must not be empty")
    urlpath = app_path(clone_folder(repo_url), open_path, app)
    return (
        f"{hub_url.rstrip('/')}/hub/user-redirect/git-pull"
        f"?repo={encode_uri_component(repo_url)}"
        f"&urlpath={encode_uri_component(urlpath)}"
        f"&branch={encode_uri_component(branch)}"
    )
