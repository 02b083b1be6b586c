"""What makes a delivery one request, whatever its ``X-GitHub-Delivery`` id says.

The delivery id is not covered by the signature: a captured signed body (a public trial
relay channel shows every body) could be sent again under a new id. Each delivery that asks
for work is also known by what it carries; the second delivery carrying the same thing is a
duplicate, answered 200, and runs nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gidgethub import sansio


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _key(*parts: Any) -> str | None:
    if any(part is None or isinstance(part, dict | list) for part in parts):
        return None
    return ":".join(str(part) for part in parts)


def content_key(event: sansio.Event) -> str | None:
    """The request a delivery carries, as a short stable key; None for the kinds that are
    not deduplicated by content (installation events, ping, anything unknown)."""
    data = event.data
    action = data.get("action")
    repository = _get(data, "repository", "id")
    name = event.event
    if name == "issue_comment":
        key = _key(name, action, _get(data, "comment", "id"))
    elif name == "check_run" and action == "requested_action":
        key = _key(
            name,
            action,
            _get(data, "check_run", "id"),
            _get(data, "requested_action", "identifier"),
        )
    elif name == "check_run":
        key = _key(name, action, _get(data, "check_run", "id"))
    elif name == "check_suite":
        suite = data.get("check_suite")
        key = _key(name, action, _get(suite, "id"), _get(suite, "updated_at"))
    elif name == "push":
        # ``before`` too: a branch moved back to an earlier commit is a new push.
        key = _key(name, repository, data.get("ref"), data.get("before"), data.get("after"))
    elif name == "pull_request":
        pull = data.get("pull_request")
        key = _key(name, action, _get(pull, "id"), _get(pull, "head", "sha"))
    else:
        key = None
    if key is None:
        return None
    return "content:" + hashlib.sha256(key.encode("utf-8", "backslashreplace")).hexdigest()[:40]
