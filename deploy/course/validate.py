"""Strict checks for every repository-controlled value, and the quoting that follows them.

Nothing a course repository says reaches a shell or an API until one of these functions
has accepted it.  Each checker takes the raw text and returns the value to use (sometimes
normalised, e.g. lower-cased) or raises ``Invalid`` with a sentence saying what is
allowed; ``deploy.course.config`` turns that into a ``ConfigError`` naming file, line and key.

The patterns are deliberately narrower than the formats they guard: a value that a real
course needs and these refuse is a one-line fix here, while a value they wrongly accept
could run on a server.  No accepted value can start with ``-`` (so none is read as a
command-line option), and none holds a newline, NUL or shell metacharacter unless its
grammar needs it (version constraints need ``<>=!,``; pip extras need ``[]``); those
values are only ever used through ``quote``.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import shlex
import struct
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from deploy.model import ConfigError, ConfigErrors

T = TypeVar("T")
R = TypeVar("R")

MAX_VALUE_LENGTH = 200
MAX_PACKAGES_PER_FILE = 200
MAX_ADMINS = 50

SHELL_METACHARACTERS = frozenset("`;&|$<>()\\\"'*?[]{}~#!")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Invalid(ValueError):
    """A value does not match its pattern; the message says what is allowed."""


# Patterns.  ASCII classes are spelled out rather than using re.IGNORECASE or \d, which
# in Python also match non-ASCII letters and digits (the Kelvin sign matches [a-z] under
# IGNORECASE).  All are used with re.fullmatch, never re.match with a trailing $, which
# accepts a final newline.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62})")
# Size slugs have their own rule, the one place it lives: DigitalOcean lists sizes with an
# underscore (so1_5-2vcpu-16gb) beside s-2vcpu-4gb, gd-2vcpu-8gb, m3-2vcpu-16gb and
# c2-4vcpu-8gb-intel. Words of letters and digits joined by single '-' or '_'.
SIZE_SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
MAX_SIZE_SLUG = 64
DROPLET_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
EMAIL = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9._+-]{{0,63}})@{_LABEL}(?:\.{_LABEL})+")
HUB_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,38}")
UNIX_USERNAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
APT_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]{1,99}")
APT_VERSION = re.compile(r"(?:[0-9]{1,5}:)?[0-9][A-Za-z0-9.+~-]{0,99}")
CONDA_CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}(?:/label/[a-z0-9_.-]{1,64})?")
_CONDA_NAME = r"[a-z0-9_][a-z0-9_.-]{0,99}"
_CONDA_VERSION = r"[0-9A-Za-z_.*+]{1,64}"
_CONDA_OP = r"(?:==|>=|<=|!=|~=|=|<|>)"
CONDA_SPEC = re.compile(
    rf"(?:[a-z0-9][a-z0-9_.-]{{0,62}}::)?{_CONDA_NAME}"
    rf"(?:(?:{_CONDA_OP}| {_CONDA_OP}?){_CONDA_VERSION}(?:,{_CONDA_OP}?{_CONDA_VERSION}){{0,7}}"
    rf"(?:[ =][0-9A-Za-z_.*]{{1,64}})?)?"
)
_HTTPS_URL = re.compile(
    r"https://(?P<host>[a-z0-9.-]{1,253})(?::[0-9]{1,5})?(?:/[A-Za-z0-9._/%+=@-]*)?"
)
PIP_ALLOWED = re.compile(r"[A-Za-z0-9._\-\[\],<>=!~ @:/+*%]+")
TLJH_VERSION = re.compile(
    r"[0-9]{1,4}(?:\.[0-9]{1,4}){0,3}(?:(?:a|b|rc)[0-9]{1,4})?(?:\.post[0-9]{1,4})?"
    r"(?:\.dev[0-9]{1,4})?"
)
MEMORY = re.compile(r"[1-9][0-9]{0,14}[KMGT]?")
BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
CONTENT_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._ +/-]{0,199}")
# A folder name under ~/shared: one path part, no spaces (it is a link or folder name on
# the server that people type in terminals).
SHARED_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_HOST_KEY = re.compile(
    r"(?P<type>ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)"
    r"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" (?P<blob>[A-Za-z0-9+/]{16,1400}={0,2})(?: (?P<comment>[A-Za-z0-9@._:+-]{1,100}))?"
)
# A container image reference with a tag or a digest (docker's reference grammar, narrowed):
# an optional registry host[:port], lower-case path parts, then :tag and/or @sha256:digest.
_IMAGE_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    rf"(?:(?P<registry>{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?)/)?"
    rf"(?P<path>{_IMAGE_PART}(?:/{_IMAGE_PART}){{0,6}})"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)
_DURATION = re.compile(r"(?P<amount>[0-9]{1,6}) ?(?P<unit>s|m|h|d)")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def quote(value: str) -> str:
    """Return ``value`` as exactly one POSIX shell word."""
    return shlex.quote(value)


def _text(value: str, what: str, limit: int = MAX_VALUE_LENGTH) -> str:
    """Refuse what no checked value may be: too long, or holding control characters."""
    if not isinstance(value, str):
        raise Invalid(f"{what} must be text")
    if not value:
        raise Invalid(f"{what} must not be empty")
    if len(value) > limit:
        raise Invalid(f"{what} is {len(value)} characters long; at most {limit} are allowed")
    if _CONTROL.search(value):
        raise Invalid(f"{what} must not contain newlines, tabs or other control characters")
    return value


def _shown(value: str) -> str:
    """The value for an error message, cut short so one bad line stays one line."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def check_slug(value: str, what: str = "slug") -> str:
    """A DigitalOcean slug (region, size or image), e.g. ``syd1``, ``s-2vcpu-4gb``."""
    _text(value, what, 64)
    if not SLUG.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a DigitalOcean {what} slug: use lowercase letters, digits "
            "and '-', starting with a letter or digit, at most 64 characters (e.g. "
            "'syd1', 's-2vcpu-4gb', 'ubuntu-24-04-x64')"
        )
    return value


def check_size_slug(value: str) -> str:
    """A DigitalOcean size slug, e.g. ``s-2vcpu-4gb`` or ``so1_5-2vcpu-16gb``."""
    _text(value, "size", MAX_SIZE_SLUG)
    if not SIZE_SLUG.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a DigitalOcean size slug: use lowercase letters and digits "
            "joined by single '-' or '_', at most 64 characters (e.g. 's-2vcpu-4gb', "
            "'so1_5-2vcpu-16gb')"
        )
    return value


def check_droplet_name(value: str) -> str:
    """A droplet name: hostname-like, lowercase, at most 253 characters."""
    _text(value, "name", 253)
    if not DROPLET_NAME.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a valid droplet name: use lowercase letters, digits, '-' "
            "and '.', each dot-separated part 1-63 characters, starting and ending with a "
            "letter or digit (e.g. 'physics101-hub')"
        )
    return value


def droplet_name_for(owner: str, repo: str) -> str:
    """The default droplet name ``<owner>-<repo>``, lower-cased and made valid."""
    wanted = f"{owner}-{repo}".lower()
    name = re.sub(r"[^a-z0-9]+", "-", wanted).strip("-")[:63].rstrip("-")
    return name or "classroom"


def check_hostname(value: str, what: str = "hostname") -> str:
    """A DNS name with at least one dot (RFC 1123 labels), returned lower-cased."""
    _text(value, what, 253)
    lowered = value.lower() if value.isascii() else value
    if not HOSTNAME.fullmatch(lowered) or lowered.rsplit(".", 1)[-1].isdigit():
        raise Invalid(
            f"{_shown(value)} is not a valid {what}: use a DNS name with at least one dot, "
            "made of letters, digits and '-', each part 1-63 characters and not starting or "
            "ending with '-' (e.g. 'hub.example.edu')"
        )
    return lowered


def check_host(value: str) -> str:
    """An SSH server address: a DNS name (see ``check_hostname``) or an IP address."""
    _text(value, "host", 253)
    try:
        address = str(ipaddress.ip_address(value))
    except ValueError:
        pass
    else:
        # ip_address also takes IPv6 scope ids ("fe80::1%eth0"), which may hold anything.
        if re.fullmatch(r"[0-9a-f:.]{2,45}", address):
            return address
    try:
        return check_hostname(value, "host")
    except Invalid:
        raise Invalid(
            f"{_shown(value)} is not a valid host: use a DNS name such as 'hub.example.edu' "
            "or an IPv4/IPv6 address"
        ) from None


def check_email(value: str) -> str:
    """A conservative e-mail address, e.g. ``you@example.edu``."""
    _text(value, "e-mail address", 254)
    if not EMAIL.fullmatch(value) or ".." in value:
        raise Invalid(
            f"{_shown(value)} is not an e-mail address this accepts: use letters, digits and "
            "'.', '_', '+', '-' before the '@' and a DNS name after it (e.g. 'you@example.edu')"
        )
    return value


def check_hub_username(value: str) -> str:
    """A hub user name, GitHub-style, returned lower-cased as JupyterHub stores it."""
    _text(value, "user name", 39)
    lowered = value.lower() if value.isascii() else value
    if not HUB_USERNAME.fullmatch(lowered):
        raise Invalid(
            f"{_shown(value)} is not a valid hub user name: use letters, digits, '.', '_' and "
            "'-', starting with a letter or digit, at most 39 characters (no spaces, commas "
            "or slashes)"
        )
    return lowered


def check_unix_username(value: str) -> str:
    """The login name on an SSH server, e.g. ``root`` or ``ubuntu``."""
    _text(value, "user", 32)
    if not UNIX_USERNAME.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a valid login name: use lowercase letters, digits, '_' "
            "and '-', starting with a letter or '_', at most 32 characters"
        )
    return value


def check_port(value: int) -> int:
    """A TCP port number."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise Invalid(f"{value!r} is not a port: use a whole number from 1 to 65535")
    return value


def check_host_key(value: str) -> str:
    """An OpenSSH public key line: type, base64 key and an optional comment."""
    _text(value, "host key", 1600)
    match = _HOST_KEY.fullmatch(value.strip())
    if not match:
        raise Invalid(
            "not an OpenSSH public key line: use the key type (ssh-ed25519, ssh-rsa, "
            "ecdsa-sha2-nistp256/384/521), one space, the base64 key and optionally a "
            "comment, as in /etc/ssh/ssh_host_ed25519_key.pub"
        )
    try:
        blob = base64.b64decode(match["blob"], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        named = blob[4 : 4 + length].decode("ascii")
    except (ValueError, struct.error, UnicodeDecodeError):
        raise Invalid("the host key's base64 part does not decode to an SSH key") from None
    if named != match["type"]:
        raise Invalid(f"the host key says {match['type']!r} but its key data is {named!r}")
    return match.group(0)


def check_apt_package(value: str) -> str:
    """A Debian package name, optionally pinned: ``graphviz`` or ``graphviz=2.42.2-6``."""
    _text(value, "apt package")
    name, has_version, version = value.partition("=")
    if not APT_NAME.fullmatch(name):
        raise Invalid(
            f"{_shown(value)} is not a Debian package name: use lowercase letters, digits, "
            "'+', '-' and '.', starting with a letter or digit, at least 2 characters, "
            "optionally followed by '=version'"
        )
    if has_version and not APT_VERSION.fullmatch(version):
        raise Invalid(
            f"{_shown(value)} has a version this does not accept: after '=' use a Debian "
            "version such as '2.42.2-6' or '1:9.0.1-1ubuntu1~22.04' (letters, digits, "
            "'.', '+', '~', '-', optional 'epoch:')"
        )
    return value


def check_conda_spec(value: str) -> str:
    """A conda match spec: ``numpy``, ``numpy=1.26``, ``numpy>=1.20,<2``, ``conda-forge::numpy``."""
    _text(value, "conda package")
    if not CONDA_SPEC.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a conda package spec this accepts: use 'name', "
            "'name=1.26', 'name>=1.20,<2', 'name 1.26 build' or 'channel::name' (lowercase "
            "name; versions of letters, digits, '.', '_', '+', '*')"
        )
    return value


def check_conda_channel(value: str) -> str:
    """A conda channel: a name like ``conda-forge`` or an https URL."""
    _text(value, "conda channel")
    if CONDA_CHANNEL_NAME.fullmatch(value):
        return value
    url = _HTTPS_URL.fullmatch(value)
    if url and HOSTNAME.fullmatch(url["host"]):
        return value
    raise Invalid(
        f"{_shown(value)} is not a conda channel this accepts: use a channel name such as "
        "'conda-forge' (lowercase letters, digits, '-', '_', '.') or an https:// URL"
    )


def check_pip_requirement(value: str) -> str:
    """A PEP 508 requirement without markers; URLs only over https.

    Returns the requirement in ``packaging``'s canonical spelling, which pip reads the
    same way and which holds no stray whitespace.
    """
    _text(value, "pip requirement")
    if re.search(r"(?:^|\s)-", value):
        raise Invalid(
            f"{_shown(value)} is a pip option; options such as -r, -e, -c, --index-url and "
            "--hash are not supported: list one requirement per line"
        )
    if ";" in value:
        raise Invalid(
            f"{_shown(value)} has an environment marker (';'); markers are not supported, "
            "the hub has one known platform: list only what it should install"
        )
    bad = sorted({c for c in value if not PIP_ALLOWED.fullmatch(c)})
    if bad:
        raise Invalid(
            f"{_shown(value)} contains {''.join(bad)!r}, which a pip requirement here may not "
            "hold: use 'name', 'name[extra]', 'name>=1.2,<2' or 'name @ https://...'"
        )
    try:
        requirement = Requirement(value)
    except InvalidRequirement as error:
        first_line = str(error).splitlines()[0]
        raise Invalid(
            f"{_shown(value)} is not a valid pip requirement ({first_line}): use 'name', "
            "'name[extra]', 'name>=1.2,<2' or 'name @ https://...'"
        ) from None
    if requirement.url is not None:
        url = _HTTPS_URL.fullmatch(requirement.url)
        if not url or not HOSTNAME.fullmatch(url["host"]) or urlsplit(requirement.url).username:
            raise Invalid(
                f"{_shown(value)} names a URL this does not accept: only plain https:// URLs "
                "to a DNS name are allowed (no git+, file:, http:, or user@)"
            )
    # The person's own spelling is kept (str(requirement) would reorder specifiers), with
    # whitespace runs folded so that plan reasons read cleanly.
    return " ".join(value.split())


def check_tljh_version(value: str) -> str:
    """A TLJH release, a PEP 440 version such as ``2.0.0``."""
    _text(value, "tljh_version", 40)
    if not TLJH_VERSION.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a TLJH version: use a release number such as '2.0.0' "
            "(digits and dots, optionally a1/b1/rc1)"
        )
    try:
        Version(value)
    except InvalidVersion:
        raise Invalid(f"{_shown(value)} is not a PEP 440 version") from None
    return value


def check_image(value: str) -> str:
    """A container image with a tag or a digest, e.g. ``quay.io/jupyter/scipy-notebook:2025-06-02``.

    A tag (or digest) is required: an image without one is whatever ``latest`` is that day.
    """
    _text(value, "image", 255)
    match = IMAGE.fullmatch(value)
    if not match or not (match["tag"] or match["digest"]):
        raise Invalid(
            f"{_shown(value)} is not an image reference this accepts: use "
            "[registry/]name:tag or name@sha256:digest with a tag or digest always given "
            "(e.g. 'quay.io/jupyter/scipy-notebook:2025-06-02')"
        )
    return value


def check_memory(value: str) -> str:
    """A memory limit: a whole number with an optional K, M, G or T suffix (``1G``, ``512M``)."""
    _text(value, "memory", 16)
    if not MEMORY.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a memory limit: use a whole number with an optional "
            "suffix K, M, G or T, e.g. '1G' or '512M'"
        )
    return value


def check_cpu(value: float) -> float:
    """A CPU limit: a positive number of cores."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1024:
        raise Invalid(f"{value!r} is not a CPU limit: use a number of cores above 0, e.g. 1 or 0.5")
    return float(value)


def check_branch(value: str) -> str:
    """A git branch name (git check-ref-format rules, more conservative)."""
    _text(value, "branch")
    if (
        not BRANCH.fullmatch(value)
        or ".." in value
        or "//" in value
        or value.endswith(("/", ".", ".lock"))
        or "/." in value
        or "/-" in value
        or ".lock/" in value
    ):
        raise Invalid(
            f"{_shown(value)} is not a branch name this accepts: use letters, digits, '.', "
            "'_', '-' and '/', no '..' or '//', not starting with '-', '.' or '/', not ending "
            "with '/', '.' or '.lock'"
        )
    return value


def check_content_path(value: str) -> str:
    """A notebook or folder inside the repository, e.g. ``StartHere.ipynb`` or ``week1/``.

    A trailing '/' is dropped; the path may not leave the repository.
    """
    _text(value, "open")
    path = value[:-1] if value.endswith("/") and len(value) > 1 else value
    parts = path.split("/")
    if (
        not CONTENT_PATH.fullmatch(path)
        or any(part in ("", ".", "..") for part in parts)
        or any(part != part.strip() or part.startswith("-") for part in parts)
    ):
        raise Invalid(
            f"{_shown(value)} is not a path this accepts: name a notebook or folder inside the "
            "repository, relative to its root (no leading '/', no '..'), using letters, "
            "digits, spaces and '.', '_', '+', '-', '/'"
        )
    return path


def check_shared_name(value: str) -> str:
    """A folder name under ``~/shared`` (``data``, ``notes``): one part, no '/', no '..'."""
    _text(value, "folder name", 64)
    if not SHARED_NAME.fullmatch(value) or ".." in value:
        raise Invalid(
            f"{_shown(value)} is not a folder name this accepts: use one name (no '/', no "
            "'..', no spaces) of letters, digits, '.', '_' and '-', starting with a letter, "
            "digit or '_', at most 64 characters (e.g. 'data')"
        )
    return value


def check_repository_folder(value: str) -> str:
    """A folder of the repository, relative to its root (``data/``), returned without '/'.

    No leading '/', no '.' or '..' parts, nothing starting with '-'; not ``.git``.
    """
    if isinstance(value, str) and value.startswith("/"):
        raise Invalid(
            f"{_shown(value)} is an absolute path: name a folder of the repository relative "
            "to its root, e.g. 'data/'"
        )
    try:
        path = check_content_path(value)
    except Invalid:
        raise Invalid(
            f"{_shown(value)} is not a repository folder this accepts: name a folder "
            "relative to the repository's root (no leading '/', no '..'), using letters, "
            "digits, spaces and '.', '_', '+', '-', '/', e.g. 'data/'"
        ) from None
    if path.split("/")[0] == ".git":
        raise Invalid(f"{_shown(value)} is git's own folder, not a folder of the repository")
    return path


def parse_duration(value: str | int, *, minimum: int = 60, maximum: int = 86400) -> int:
    """Seconds from ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a whole number of seconds."""
    if isinstance(value, bool):
        raise Invalid(f"{value!r} is not a duration: use e.g. '5m', '30s', '1h'")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.fullmatch(value) if isinstance(value, str) else None
        if not match:
            raise Invalid(
                f"{_shown(str(value))} is not a duration: use a whole number followed by s, m, "
                "h or d, e.g. '5m', '30s', '1h'"
            )
        seconds = int(match["amount"]) * _DURATION_UNITS[match["unit"]]
    if not minimum <= seconds <= maximum:
        raise Invalid(
            f"{value!r} is {seconds} seconds; use between {minimum} and {maximum} seconds "
            f"({minimum // 60} minute(s) to {maximum // 3600} hours)"
        )
    return seconds


# Reading untrusted YAML.  Repository YAML is read as nodes (yaml.compose with the safe
# loader) rather than Python values, so every error can name the line it is on.

MAX_YAML_BYTES = 64 * 1024
MAX_YAML_DEPTH = 16

_YAML_TEXT_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_YAML_NULL = "tag:yaml.org,2002:null"
_YAML_BOOL = "tag:yaml.org,2002:bool"
# Turns single scalar nodes into Python values by the safe loader's rules.
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def decode_text(content: bytes, file: str) -> str:
    """Repository file bytes as text, or ``ConfigErrors`` naming the line of a bad byte."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise ConfigErrors(
            [ConfigError(file, line, "", "is not UTF-8 text; save the file as UTF-8")]
        ) from None


def parse_yaml(content: bytes, file: str) -> yaml.Node | None:
    """The single YAML document in ``content`` as a node tree (``None`` when empty).

    Refuses, as ``ConfigErrors``: files over 64 KiB, anchors and aliases (the way to a
    "billion laughs" file), nesting deeper than 16, more than one document, bad syntax.
    """
    if len(content) > MAX_YAML_BYTES:
        raise ConfigErrors(
            [ConfigError(file, None, "", f"is {len(content)} bytes; at most 64 KiB is allowed")]
        )
    text = decode_text(content, file)
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            assert event.start_mark is not None  # the parser marks every event it makes
            at = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ConfigErrors(
                    [ConfigError(file, at, "", "YAML anchors and aliases (& and *) are refused")]
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ConfigErrors(
                        [ConfigError(file, at, "", f"nests deeper than {MAX_YAML_DEPTH} levels")]
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        problem = " ".join(part for part in (error.context, error.problem) if part)
        raise ConfigErrors([ConfigError(file, line, "", f"is not valid YAML: {problem}")]) from None
    except yaml.YAMLError as error:
        raise ConfigErrors([ConfigError(file, None, "", f"is not valid YAML: {error}")]) from None


def line_of(node: yaml.Node) -> int:
    """The 1-based line a node starts on."""
    return node.start_mark.line + 1


class YamlReader:
    """Reads typed values out of one file's YAML nodes, collecting every error on the way.

    Each method returns ``None`` (after recording an error) for a value of the wrong
    shape, so one read reports everything wrong with a file.  A YAML ``null`` (an empty
    value) also reads as ``None``: the key's default applies.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ConfigError] = []

    def error(self, node: yaml.Node | int | None, key: str, message: str) -> None:
        line = line_of(node) if isinstance(node, yaml.Node) else node
        self.errors.append(ConfigError(self.file, line, key, message))

    def mapping(
        self, node: yaml.Node | None, key: str, allowed: Iterable[str]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys to (key node, value node); unknown, duplicate and non-text keys are errors."""
        if node is None or _is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, key, f"must be a mapping of keys to values, not {_kind(node)}")
            return {}
        allowed = tuple(allowed)
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, key, "keys must be plain words")
                continue
            name = key_node.value
            where = f"{key}.{name}" if key else name
            if name in found:
                self.error(
                    key_node, where, f"is given twice (first on line {line_of(found[name][0])})"
                )
            elif name not in allowed:
                self.error(
                    key_node, where, f"is not a known key; allowed here: {', '.join(allowed)}"
                )
            else:
                found[name] = (key_node, value_node)
        return found

    def sequence(self, node: yaml.Node, key: str, limit: int) -> list[yaml.Node]:
        """The items of a YAML list of at most ``limit`` items."""
        if _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, key, f"must be a list (e.g. [a, b] or '- a' lines), not {_kind(node)}")
            return []
        if len(node.value) > limit:
            self.error(node, key, f"has {len(node.value)} entries; at most {limit} are allowed")
            return []
        return list(node.value)

    def text(self, node: yaml.Node, key: str) -> str | None:
        """A scalar as the text written in the file (so ``2.0`` stays ``"2.0"``)."""
        if _is_null(node):
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag in _YAML_TEXT_TAGS:
            return str(node.value)
        if isinstance(node, yaml.ScalarNode) and node.tag == _YAML_BOOL:
            self.error(node, key, f"must be text, not the boolean {node.value!r}; quote it")
        else:
            self.error(node, key, f"must be text, not {_kind(node)}")
        return None

    def boolean(self, node: yaml.Node, key: str) -> bool | None:
        if _is_null(node):
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag == _YAML_BOOL:
            return bool(_CONSTRUCTOR.construct_yaml_bool(node))
        self.error(node, key, f"must be true or false, not {_kind(node)}")
        return None

    def integer(self, node: yaml.Node, key: str) -> int | None:
        if _is_null(node):
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int":
            return int(_CONSTRUCTOR.construct_yaml_int(node))
        self.error(node, key, f"must be a whole number, not {_kind(node)}")
        return None

    def number(self, node: yaml.Node, key: str) -> float | int | None:
        if _is_null(node):
            return None
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:float":
            return float(_CONSTRUCTOR.construct_yaml_float(node))
        return self.integer(node, key)

    def check(self, node: yaml.Node, key: str, checker: Callable[[T], R], value: T) -> R | None:
        """``checker(value)``, or ``None`` after recording its complaint at ``node``'s line."""
        try:
            return checker(value)
        except Invalid as error:
            self.error(node, key, str(error))
            return None

    def checked_text(self, node: yaml.Node, key: str, checker: Callable[[str], R]) -> R | None:
        """A text scalar passed through ``checker``; ``None`` if empty or refused."""
        value = self.text(node, key)
        return None if value is None else self.check(node, key, checker, value)

    def choice(self, node: yaml.Node, key: str, allowed: Iterable[str]) -> str | None:
        """One of ``allowed``; compared as written, so ``yes`` is not read as a boolean."""
        allowed = tuple(allowed)
        if _is_null(node):
            return None
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, key, f"must be one of: {', '.join(allowed)}; not {_kind(node)}")
            return None
        if node.value not in allowed:
            self.error(node, key, f"{_shown(node.value)} is not one of: {', '.join(allowed)}")
            return None
        return str(node.value)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _YAML_NULL


def _kind(node: yaml.Node) -> str:
    """How a node reads to a person, for error messages."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    kinds = {
        "tag:yaml.org,2002:str": "text",
        "tag:yaml.org,2002:int": "a number",
        "tag:yaml.org,2002:float": "a number",
        _YAML_BOOL: "true/false",
        _YAML_NULL: "empty",
        "tag:yaml.org,2002:timestamp": "a date",
    }
    return kinds.get(node.tag, f"a value tagged {node.tag}")


# Assignments (nbgrader).  Course and assignment ids name folders on the server and
# words on nbgrader's command line; nbgrader itself splits a submission's folder name
# on '+', so the patterns allow neither that nor anything a shell reads.
COURSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ASSIGNMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
GITHUB_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
GITHUB_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_DUE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<time>[0-9]{2}:[0-9]{2}(?::[0-9]{2})?)"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})"
)


def check_course_id(value: str) -> str:
    """An nbgrader course id, e.g. ``physics101``: a folder name on the server."""
    _text(value, "course_id", 64)
    if not COURSE_ID.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not a course id this accepts: use letters, digits, '_' and "
            "'-', starting with a letter or digit, at most 64 characters (e.g. 'physics101')"
        )
    return value


def course_id_for(repo: str) -> str:
    """The default course id: the repository's name, made a valid one."""
    made = re.sub(r"[^A-Za-z0-9_-]+", "-", repo).strip("-_")[:64]
    return made or "course"


def check_assignment_name(value: str) -> str:
    """An assignment's name: its folder under ``assignments.source``, e.g. ``hw1``."""
    _text(value, "assignment name", 64)
    if not ASSIGNMENT_NAME.fullmatch(value):
        raise Invalid(
            f"{_shown(value)} is not an assignment name this accepts: use letters, digits, "
            "'_' and '-', starting with a letter or digit, at most 64 characters (e.g. 'hw1')"
        )
    return value


def check_repository(value: str) -> str:
    """A GitHub repository ``OWNER/REPO``."""
    _text(value, "repository", 140)
    owner, slash, repo = value.partition("/")
    if (
        not slash
        or not GITHUB_OWNER.fullmatch(owner)
        or not GITHUB_REPO.fullmatch(repo)
        or repo in (".", "..")
        or repo.endswith(".git")
    ):
        raise Invalid(
            f"{_shown(value)} is not a repository: write OWNER/REPO as on GitHub (e.g. "
            "'physics-dept/physics101-submissions')"
        )
    return value


def parse_due(value: str) -> str:
    """A due time such as ``2027-02-01T17:00Z`` or ``2027-02-01T17:00+10:00``, as UTC ISO."""
    _text(value, "due time", 40)
    match = _DUE.fullmatch(value)
    if not match:
        raise Invalid(
            f"{_shown(value)} is not a due time: write date, 'T', hours:minutes and a time "
            "zone, e.g. '2027-02-01T17:00Z' or '2027-02-01T17:00+10:00'"
        )
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    try:
        when = datetime.fromisoformat(f"{match['date']}T{match['time']}{zone}")
    except ValueError:
        raise Invalid(f"{_shown(value)} is not a date and time that exists") from None
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
