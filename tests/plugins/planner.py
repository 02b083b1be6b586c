"""Fixtures for the planner's tests and anyone else's: course configs and matching servers."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from packaging.requirements import Requirement

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
from deploy.planner import (
    ADMIN_KEY,
    DOMAINS_KEY,
    apt_name,
    desired_settings,
    parse_conda_spec,
    pip_name,
    state_record,
)
from deploy.tljh import API_SERVICE_CONFIG


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


def _version_meeting(spec_version: str) -> str:
    """A version that an installer would pick for a constraint like '==1.2', '=1.2', '>=1.2'."""
    match = re.search(r"[0-9][0-9A-Za-z.]*", spec_version)
    return match[0].rstrip(".") if match else "1.0"


def pip_version_meeting(spec: str) -> str:
    for specifier in Requirement(spec).specifier:
        if specifier.operator in ("==", "===", ">=", "~=", "<="):
            return specifier.version.removesuffix(".*")
    return "1.0"


def _set(config: dict, key: str, value: object) -> None:
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def server_matching(desired: CourseConfig, *, extra_installed: bool = True) -> Observed:
    """An Observed as a real server reports it once ``desired`` has been applied.

    Built from the desired state, not from any plan, so it checks the planner against an
    independent idea of "done". tljh-config stores booleans and numbers as YAML scalars.
    """
    config: dict = {}
    for key, value in desired_settings(desired).items():
        if value is not None:
            _set(config, key, value)
    _set(config, ADMIN_KEY, list(dict.fromkeys(desired.hub.admins)))
    if desired.hub.hostname:
        _set(config, DOMAINS_KEY, [desired.hub.hostname])
    apt = {"python3": "3.12.3-0ubuntu1"} if extra_installed else {}
    for spec in desired.packages.apt:
        apt[apt_name(spec)] = spec.partition("=")[2] or "1.0-1"
    conda = {"python": "3.12.7"} if extra_installed else {}
    for spec in desired.packages.conda:
        parsed = parse_conda_spec(spec)
        conda[parsed.name] = _version_meeting(parsed.constraint)
    pip = {"jupyterlab": "4.2.5"} if extra_installed else {}
    for spec in desired.packages.pip:
        pip[pip_name(spec)] = pip_version_meeting(spec)
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
        state=state_record(desired, desired_settings(desired), {}, "2025-01-01T00:00:00Z"),
        api_service=API_SERVICE_CONFIG,
        accounts=HubAccounts(
            True,
            tuple(HubAccount(name, True) for name in desired.hub.admins),
            frozenset(desired.hub.admins),
        ),
    )


@pytest.fixture
def course() -> Callable[..., CourseConfig]:
    return make_course


@pytest.fixture
def matching_server() -> Callable[..., Observed]:
    return server_matching
