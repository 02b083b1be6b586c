"""Fixtures for the planner's tests and anyone else's: course configs, the server a course
describes once deployed, and a check that a server has reached it.

What a deployed course looks like is written here by hand from the config, by the rules
the instructors' guide and TLJH document (sign-up modes, limits, HTTPS, Debian, conda
and pip version specs), never with the planner's own helpers: the idempotency tests
hold the planner against an independent idea of "done", not against itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from packaging.version import InvalidVersion, Version

from deploy.host.tljh import API_SERVICE_CONFIG
from deploy.model import (
    ContentSpec,
    CourseConfig,
    HubAccount,
    HubAccounts,
    HubSpec,
    MonitorSpec,
    Observed,
    Packages,
    ServerSpec,
)

NATIVE_AUTHENTICATOR = "nativeauthenticator.NativeAuthenticator"
# The tljh-config keys a deploy owns: set when the course sets them, unset when it drops
# them. HTTPS keys are owned only while the course names a hostname.
OWNED_KEYS = (
    "auth.type",
    "auth.NativeAuthenticator.open_signup",
    "auth.NativeAuthenticator.enable_signup",
    "auth.NativeAuthenticator.allow_all",
    "user_environment.default_app",
    "limits.memory",
    "limits.cpu",
    "services.cull.timeout",
    "users.admin",
)
HTTPS_KEYS = ("https.enabled", "https.letsencrypt.email", "https.letsencrypt.domains")
APPLIED_AT = "2025-01-01T00:00:00Z"


def make_course(
    *,
    provider: str = "ssh",
    apt: tuple[str, ...] = (),
    conda: tuple[str, ...] = (),
    conda_channels: tuple[str, ...] = (),
    pip: tuple[str, ...] = (),
    prune: bool = False,
    **hub: object,
) -> CourseConfig:
    """A valid CourseConfig with hub settings overridable by keyword."""
    hub.setdefault("admins", ("alice",))
    server = (
        ServerSpec(provider="ssh", host="hub.example.edu")
        if provider == "ssh"
        else ServerSpec(provider="digitalocean", name="physics101-hub")
    )
    return CourseConfig(
        owner="physics",
        repo="physics101",
        server=server,
        hub=HubSpec(**hub),  # type: ignore[arg-type]
        content=ContentSpec(),
        monitor=MonitorSpec(),
        packages=Packages(apt=apt, conda_channels=conda_channels, conda=conda, pip=pip),
        prune=prune,
    )


# ----- the course's server, by hand ------------------------------------------------------


def expected_settings(desired: CourseConfig) -> dict[str, object]:
    """Each tljh-config key (dotted) a deployed course sets, and its value.

    Sign-up (instructors' guide): ``approval`` lets anyone sign up for an admin to
    approve, ``open`` needs no approval, ``closed`` takes no new sign-ups.
    """
    hub = desired.hub
    settings: dict[str, object] = {
        "auth.type": NATIVE_AUTHENTICATOR,
        "auth.NativeAuthenticator.open_signup": hub.signup == "open",
        "auth.NativeAuthenticator.enable_signup": hub.signup in ("approval", "open"),
        "auth.NativeAuthenticator.allow_all": True,
        "user_environment.default_app": hub.default_app,
        "services.cull.timeout": hub.idle_timeout,
        "users.admin": sorted(set(hub.admins)),
    }
    if hub.memory_limit is not None:
        settings["limits.memory"] = hub.memory_limit
    if hub.cpu_limit is not None:
        settings["limits.cpu"] = hub.cpu_limit
    if hub.hostname:
        settings["https.enabled"] = True
        settings["https.letsencrypt.domains"] = [hub.hostname]
        if hub.letsencrypt_email:
            settings["https.letsencrypt.email"] = hub.letsencrypt_email
    return settings


def apt_spec(spec: str) -> tuple[str, str | None]:
    """Debian's ``name=version``: the package and the exact version pinned (or None)."""
    name, pinned, version = spec.partition("=")
    return name, version if pinned else None


def conda_spec(spec: str) -> tuple[str, str]:
    """conda's ``[channel::]name[constraint]``: the lower-cased name and the constraint."""
    bare = spec.rpartition("::")[2]
    match = re.match(r"[A-Za-z0-9_.-]+", bare)
    assert match, spec
    return match[0].lower(), bare[match.end() :].strip()


def pip_spec(spec: str) -> tuple[str, str]:
    """PEP 508's ``name[extras]specifier``: the PEP 503 name and the specifier text."""
    match = re.match(r"[A-Za-z0-9._-]+", spec)
    assert match, spec
    rest = re.sub(r"^\[[^\]]*\]", "", spec[match.end() :]).strip()
    return re.sub(r"[-_.]+", "-", match[0]).lower(), rest


def _first_version(text: str) -> str:
    match = re.search(r"[0-9][0-9A-Za-z.]*", text)
    return match[0].rstrip(".") if match else "1.0"


def pip_version_meeting(spec: str) -> str:
    """The version pip would install for ``spec``: the one its specifier names, or 1.0."""
    match = re.search(r"(?:===|==|>=|~=|<=)\s*([0-9][0-9A-Za-z.*]*)", pip_spec(spec)[1])
    return match[1].removesuffix(".*") if match else "1.0"


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _meets(installed: str, operator: str, wanted: str) -> bool:
    """``installed`` against one ``operator wanted`` clause, as pip and conda read it."""
    have, want = _version(installed), _version(wanted.rstrip(".*"))
    if have is None or want is None:
        return True  # not a version either tool compares: being installed is enough
    if operator == "=" or wanted.endswith("*"):  # conda's fuzzy pin: 1.26 is any 1.26.x
        size = len(want.release)
        return have.release[:size] == want.release
    if operator == "~=":  # PEP 440: >= wanted and the same release but for its last part
        return have >= want and have.release[: len(want.release) - 1] == want.release[:-1]
    return {
        "==": have == want,
        "===": installed == wanted,
        ">=": have >= want,
        "<=": have <= want,
        ">": have > want,
        "<": have < want,
        "!=": have != want,
    }[operator]


def meets_constraint(installed: str, constraint: str) -> bool:
    """Whether ``installed`` meets a comma-separated constraint (a bare version: exactly)."""
    for clause in filter(None, (c.strip() for c in constraint.split(","))):
        match = re.fullmatch(r"(===|==|>=|<=|~=|!=|=|>|<)?\s*(\S+)(?:\s+\S+)?", clause)
        assert match, clause
        if not _meets(installed, match[1] or "==", match[2].split("=")[0]):
            return False
    return True


def server_matching(desired: CourseConfig, *, extra_installed: bool = True) -> Observed:
    """An Observed as a real server reports it once ``desired`` has been applied.

    Written from the config by the rules above, not from any plan or planner helper.
    tljh-config stores booleans and numbers as YAML scalars.
    """
    settings = expected_settings(desired)
    settings["users.admin"] = list(dict.fromkeys(desired.hub.admins))  # in the course's order
    config: dict = {}
    for key, value in settings.items():
        _set(config, key, value)
    apt = {"python3": "3.12.3-0ubuntu1"} if extra_installed else {}
    for spec in desired.packages.apt:
        name, pinned = apt_spec(spec)
        apt[name] = pinned or "1.0-1"
    conda = {"python": "3.12.7"} if extra_installed else {}
    for spec in desired.packages.conda:
        name, constraint = conda_spec(spec)
        conda[name] = _first_version(constraint)
    pip = {"jupyterlab": "4.2.5"} if extra_installed else {}
    for spec in desired.packages.pip:
        pip[pip_spec(spec)[0]] = pip_version_meeting(spec)
    packages = desired.packages
    return Observed(
        os_id="ubuntu",
        os_version="24.04",
        tljh_installed=True,
        tljh_version=desired.hub.tljh_version,
        tljh_config=config,
        apt=apt,
        conda=conda,
        pip=pip,
        services={"jupyterhub": "active", "traefik": "active"},
        # What the state file records: the settings and the package specs applied.
        state={
            "engine": "littlest-classroom",
            "tljh_version": desired.hub.tljh_version,
            "config": expected_settings(desired),
            "apt": list(packages.apt),
            "conda": list(packages.conda),
            "pip": list(packages.pip),
            "applied_at": APPLIED_AT,
        },
        api_service=API_SERVICE_CONFIG,
        accounts=HubAccounts(
            True,
            tuple(HubAccount(name, True) for name in desired.hub.admins),
            frozenset(desired.hub.admins),
        ),
    )


def _set(config: dict, key: str, value: object) -> None:
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def flat_config(config: dict, prefix: str = "") -> dict[str, object]:
    """tljh-config's nested YAML as dotted keys to leaf values (empty sections dropped)."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _stored(value: object) -> object:
    # tljh-config reads "1" as 1 and "1.0" as 1.0; a course's 1.0 and a stored 1 agree.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return float(value)


# ----- has the server reached it? -----------------------------------------------------


def assert_server_reached(desired: CourseConfig, before: Observed, after: Observed) -> None:
    """``after`` (``before`` once a plan was applied) is the server ``desired`` describes.

    TLJH is installed at the course's version; every key the course sets has its value,
    each admin once; a key the course dropped is unset, HTTPS keys without a hostname and
    keys no deploy owns are as they were. Every package the files list is installed at a
    version meeting its spec; one the files dropped that a deploy had installed is gone
    with prune on and kept (and still remembered) with it off; nothing else changed.
    """
    assert after.tljh_installed
    wanted_version, have_version = (
        _version(desired.hub.tljh_version),
        _version(after.tljh_version or ""),
    )
    assert have_version == wanted_version, (after.tljh_version, desired.hub.tljh_version)

    settings = expected_settings(desired)
    was, now = flat_config(before.tljh_config), flat_config(after.tljh_config)
    if not before.tljh_installed:
        was = {}
    admins = now.get("users.admin", [])
    assert isinstance(admins, list)
    assert sorted(str(a) for a in admins) == settings["users.admin"], admins
    owned = OWNED_KEYS + (HTTPS_KEYS if desired.hub.hostname else ())
    for key in sorted(set(was) | set(now) | set(settings)):
        if key == "users.admin":
            continue
        if key in settings:
            assert _stored(now.get(key)) == _stored(settings[key]), (key, now.get(key))
        elif key in owned:
            assert key not in now, f"{key} is no longer set by the course: unset it"
        else:
            assert now.get(key) == was.get(key), f"{key} is not the course's: leave it"

    packages = desired.packages
    kinds = {
        "apt": (packages.apt, lambda s: apt_spec(s)[0], before.apt, after.apt),
        "conda": (packages.conda, lambda s: conda_spec(s)[0], before.conda, after.conda),
        "pip": (packages.pip, lambda s: pip_spec(s)[0], before.pip, after.pip),
    }
    for kind, (specs, name_of, had, has) in kinds.items():
        for spec in specs:
            name = name_of(spec)
            assert name in has, f"{kind}: {spec} is not installed"
            if kind == "apt":
                pinned = apt_spec(spec)[1]
                assert pinned is None or has[name] == pinned, (spec, has[name])
            else:
                constraint = conda_spec(spec)[1] if kind == "conda" else pip_spec(spec)[1]
                assert meets_constraint(has[name], constraint), (spec, has[name])
        wanted = {name_of(spec) for spec in specs}
        recorded = before.state.get(kind, []) if before.tljh_installed else []
        dropped = {name_of(spec) for spec in recorded} - wanted
        for name in sorted(set(had) | set(has)):
            if name in wanted:
                continue
            if name in dropped and name in had and desired.prune:
                assert name not in has, f"{kind}: {name} was dropped and prune is on"
            else:
                assert has.get(name) == had.get(name), f"{kind}: {name} is not the course's"
        remembered = {name_of(spec) for spec in after.state.get(kind, [])}
        if after.state != before.state:
            # A deploy that changed something records what the files list.
            assert wanted <= remembered, (kind, after.state.get(kind))
        if not desired.prune:
            kept = {name for name in dropped if name in had}
            assert kept <= remembered, f"{kind}: what prune kept is forgotten"


@pytest.fixture
def course() -> Callable[..., CourseConfig]:
    return make_course


@pytest.fixture
def matching_server() -> Callable[..., Observed]:
    return server_matching
