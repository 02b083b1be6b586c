"""The README's badge block: render it, and splice it between the classroom markers.

The block lives between ``<!-- classroom-badges:start -->`` and
``<!-- classroom-badges:end -->``; everything outside them is kept byte for byte.

Design choice: the Launch badge *is* the live status image the service serves
(``{BOT_PUBLIC_URL}/badges/{owner}/{repo}/status.svg``), linked to the nbgitpuller
launch link, so one picture tells students both where to click and whether the hub is
up. The other entries (Sign up, Authorize students, per-notebook launches) are plain
Markdown links. No third-party image service is involved: nothing outside the hub and
the service learns who reads the README, and the README never shows a stale badge
from someone else's cache rules.
"""

from __future__ import annotations

import re

README = "README.md"  # the file the block lives in, at the repository's root
START_MARKER = "<!-- classroom-badges:start -->"
END_MARKER = "<!-- classroom-badges:end -->"

_START = re.compile(r"<!--\s*classroom-badges:start\s*-->")
_END = re.compile(r"<!--\s*classroom-badges:end\s*-->")
_ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_NEEDS_ANGLE_BRACKETS = re.compile(r"[()\\]")
_NOT_IN_DESTINATION = re.compile(r"[\s<>]")


def hub_links(hub_url: str, course_page_url: str) -> tuple[str, str]:
    """(sign-up URL, authorize-students URL): students sign up on the hub's own page;
    instructors approve them on the console's course page, not on NativeAuthenticator's
    ``/hub/authorize``, whose links change state on a GET and toggle when clicked twice."""
    return f"{hub_url.rstrip('/')}/hub/signup", course_page_url


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown inline text (also safe inside a table cell).

    Every ASCII punctuation mark is backslash-escaped (CommonMark allows it for all of
    them): besides emphasis, links and ``|``, that is meant to stop GitHub's extras, such as
    ``@mentions``, ``:emoji:`` and ``$math$``, in a notebook's file name.
    """
    one_line = " ".join(text.split())
    return _ASCII_PUNCTUATION.sub(r"\\\1", one_line)


def markdown_destination(url: str) -> str:
    """``url`` as a Markdown link destination, unchanged unless brackets are needed."""
    if not url or _NOT_IN_DESTINATION.search(url):
        raise ValueError(f"URL {url!r} cannot be a Markdown link (empty, whitespace, < or >)")
    # Parentheses (kept by encodeURIComponent) could close the link early; the
    # <…> form takes them literally, so the URL stays the exact generated string.
    return f"<{url}>" if _NEEDS_ANGLE_BRACKETS.search(url) else url


def _link(text: str, url: str) -> str:
    return f"[{markdown_text(text)}]({markdown_destination(url)})"


def render_badge_block(
    hub_url: str,
    launch_url: str,
    status_badge_url: str,
    signup_url: str,
    authorize_url: str,
    notebooks: list[tuple[str, str]] | None = None,
) -> str:
    """The Markdown that goes between the markers (without the markers themselves).

    ``notebooks`` is a list of (path in the repository, launch link) pairs; when given,
    a table lists each with its own launch link.
    """
    launch = markdown_destination(launch_url)
    image = markdown_destination(status_badge_url)
    lines = [
        f"[![Launch the course hub]({image})]({launch})",
        "",
        " · ".join(
            [
                f"**{_link('Launch', launch_url)}**",
                _link("Sign up", signup_url),
                _link("Authorize students", authorize_url) + " (admins)",
                _link("Hub", hub_url),
            ]
        ),
    ]
    if notebooks:
        lines += ["", "| Notebook | |", "|---|---|"]
        lines += [f"| {markdown_text(path)} | {_link('Launch', url)} |" for path, url in notebooks]
    return "\n".join(lines)


def markers_reason(text: str) -> str | None:
    """Why ``text`` has no usable marker pair, or None when it has exactly one, in order."""
    starts = list(_START.finditer(text))
    ends = list(_END.finditer(text))
    if not starts and not ends:
        return f"no {START_MARKER} / {END_MARKER} markers"
    if not starts:
        return f"{END_MARKER} without {START_MARKER}"
    if not ends:
        return f"{START_MARKER} without {END_MARKER}"
    if len(starts) > 1 or len(ends) > 1:
        return (
            f"{len(starts)} start and {len(ends)} end markers; keep exactly one pair "
            "so the bot knows which text it may replace"
        )
    if ends[0].start() < starts[0].end():
        return f"{END_MARKER} comes before {START_MARKER}"
    return None


def has_markers(text: str) -> bool:
    """Whether ``text`` holds exactly one start marker followed by one end marker."""
    return markers_reason(text) is None


def _newline_of(text: str, at: int) -> str:
    # Follow the README's own line ending: the one after the start marker, else the first.
    after = text[at : at + 2]
    if after.startswith("\r\n"):
        return "\r\n"
    if after.startswith("\n"):
        return "\n"
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def update_readme(text: str, block: str) -> str | None:
    """``text`` with ``block`` between the markers, or None when nothing would change.

    None too when the markers are missing or unusable (see ``markers_reason``).
    """
    if _START.search(block) or _END.search(block):
        raise ValueError("the block must not contain the classroom-badges markers")
    if markers_reason(text) is not None:
        return None
    start = _START.search(text)
    end = _END.search(text)
    assert start is not None and end is not None
    newline = _newline_of(text, start.end())
    body = block.replace("\r\n", "\n").strip("\n").replace("\n", newline)
    inner = f"{newline}{body}{newline}" if body else newline
    if text[start.end() : end.start()] == inner:
        return None
    return text[: start.end()] + inner + text[end.start() :]
