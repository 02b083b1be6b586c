"""Plan: compare the desired state of a course's hub with what its server reports.

Pure: no I/O. ``plan`` returns the ordered steps that bring the server to the desired
state, each with the sentence that explains it, and nothing when the two already agree,
so applying a plan and planning again gives an empty plan.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from deploy.host import assignments, shared, tljh
from deploy.model import STATE_FILE, CourseConfig, HubAccounts, Observed, Plan, Reload, Step
from deploy.volumes import homevolume

ENGINE = "littlest-classroom"
ENGINE_VERSION = "0.1.0"

NATIVE_AUTHENTICATOR = "nativeauthenticator.NativeAuthenticator"
ADMIN_KEY = "users.admin"
SIGNUP_KEY = "auth.NativeAuthenticator.enable_signup"
TLJH_CONFIG_FILE = "/opt/tljh/config/config.yaml"
DOMAINS_KEY = "https.letsencrypt.domains"

# Step timeouts, in seconds: the installer and package managers download a lot; a config
# change is quick.
INSTALL_TIMEOUT = 1800.0
PACKAGES_TIMEOUT = 1800.0
CONFIG_TIMEOUT = 120.0
ENGINE_TIMEOUT = 900.0
VERIFY_TIMEOUT = 180.0

_MISSING = object()


# --- package specs ------------------------------------------------------------------------


def _versions_equal(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def apt_name(spec: str) -> str:
    return spec.partition("=")[0]


def apt_satisfied(spec: str, installed: dict[str, str]) -> bool:
    """``graphviz`` wants it installed; ``graphviz=2.42`` wants exactly that version."""
    name, pinned, version = spec.partition("=")
    if name not in installed:
        return False
    return not pinned or installed[name] == version


@dataclass(frozen=True)
class CondaSpec:
    name: str
    constraint: str  # the version part, operators included ("" for any version)


_CONDA_SPLIT = re.compile(r"(?P<name>[^=<>!~ ]+)(?P<rest>.*)")


def parse_conda_spec(spec: str) -> CondaSpec:
    """Split ``channel::name=1.26=build`` into its name and version constraint."""
    bare = spec.split("::", 1)[-1]
    match = _CONDA_SPLIT.fullmatch(bare)
    if not match:
        return CondaSpec(bare.lower(), "")
    rest = match["rest"].strip()
    if rest.startswith("==") or rest.startswith("="):
        # A build string may follow the version: "=1.26=py311_0" or "==1.26 py311_0".
        operator = "==" if rest.startswith("==") else "="
        version = re.split(r"[= ]", rest[len(operator) :], maxsplit=1)[0]
        return CondaSpec(match["name"].lower(), operator + version)
    # "name 1.26 build": the version is the first word, the build string the second.
    return CondaSpec(match["name"].lower(), rest.split(" ", 1)[0] if rest else "")


def _conda_prefix_match(pattern: str, installed: str) -> bool:
    prefix = pattern.rstrip("*").rstrip(".")
    return _versions_equal(installed, prefix) or installed.startswith(prefix + ".")


def conda_satisfied(spec: str, installed: dict[str, str]) -> bool:
    """Whether what conda lists meets ``spec``, by conda's own reading of its version part.

    ``=1.26`` is conda's fuzzy pin (any 1.26.x); ``==1.26`` and a bare ``1.26`` are exact;
    a range is checked with PEP 440 specifiers when it parses as one, and otherwise the
    package being there is taken as enough rather than reinstalling it on every push.
    """
    parsed = parse_conda_spec(spec)
    have = {name.lower(): version for name, version in installed.items()}
    if parsed.name not in have:
        return False
    version, constraint = have[parsed.name], parsed.constraint
    if not constraint:
        return True
    if constraint.startswith("=="):
        wanted = constraint[2:]
        return (
            _conda_prefix_match(wanted, version)
            if "*" in wanted
            else _versions_equal(version, wanted)
        )
    if constraint.startswith("="):
        return _conda_prefix_match(constraint[1:], version)
    if not re.match(r"[<>!~]", constraint):
        return (
            _conda_prefix_match(constraint, version)
            if "*" in constraint
            else _versions_equal(version, constraint)
        )
    try:
        return SpecifierSet(constraint).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True


def pip_name(spec: str) -> str:
    try:
        return canonicalize_name(Requirement(spec).name)
    except InvalidRequirement:
        return canonicalize_name(re.split(r"[^A-Za-z0-9._-]", spec, maxsplit=1)[0])


def pip_satisfied(spec: str, installed: dict[str, str]) -> bool:
    """Whether an installed distribution (PEP 503 name) meets the requirement's specifier."""
    have = {canonicalize_name(name): version for name, version in installed.items()}
    try:
        requirement = Requirement(spec)
    except InvalidRequirement:
        return pip_name(spec) in have
    version = have.get(canonicalize_name(requirement.name))
    if version is None:
        return False
    if not requirement.specifier:
        return True
    try:
        return requirement.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return True


# --- tljh-config values -------------------------------------------------------------------


def config_get(config: dict[str, Any], key: str) -> object:
    """The value at a dotted key of the observed tljh config, or ``_MISSING``."""
    node: object = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _canonical(value: object) -> str:
    """The form tljh-config would store, so ``1``, ``1.0`` and ``"1"`` compare equal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format(float(value), "g")
    text = str(value)
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        return format(float(text), "g")
    except ValueError:
        return text


def _same(observed: object, desired: object) -> bool:
    if observed is _MISSING or observed is None:
        return False
    return _canonical(observed) == _canonical(desired)


def _config_list(config: dict[str, Any], key: str) -> list[str]:
    value = config_get(config, key)
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def desired_settings(desired: CourseConfig) -> dict[str, object]:
    """Every single-valued tljh-config key the course sets, in the order they are applied."""
    hub = desired.hub
    settings: dict[str, object] = {
        "auth.type": NATIVE_AUTHENTICATOR,
        "auth.NativeAuthenticator.open_signup": hub.signup == "open",
        "auth.NativeAuthenticator.enable_signup": hub.signup != "closed",
        "auth.NativeAuthenticator.allow_all": True,
    }
    if hub.hostname:
        settings["https.enabled"] = True
        if hub.letsencrypt_email:
            settings["https.letsencrypt.email"] = hub.letsencrypt_email
    settings["user_environment.default_app"] = hub.default_app
    settings["limits.memory"] = hub.memory_limit
    settings["limits.cpu"] = hub.cpu_limit
    settings["services.cull.timeout"] = hub.idle_timeout
    return settings


def _hub_settings_step(
    name: str, keys: list[str], settings: dict[str, object], config: dict[str, Any], signup: str
) -> list[Step]:
    """The step that brings the authenticator's ``keys`` to what ``hub.signup`` asks, if any."""
    commands, reasons = _settings_changes(keys, settings, config)
    if not commands:
        return []
    return [
        Step(
            name,
            f"hub.signup is {signup}: " + ", ".join(reasons),
            tljh.script(*commands),
            reload=Reload.HUB,
            timeout=CONFIG_TIMEOUT,
        )
    ]


def _settings_changes(
    keys: Iterable[str], settings: dict[str, object], config: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Commands and reason fragments for the keys whose observed value differs."""
    commands: list[str] = []
    reasons: list[str] = []
    for key in keys:
        wanted = settings.get(key)
        have = config_get(config, key)
        if wanted is None:
            # The course no longer sets it (e.g. limits removed): TLJH's default applies.
            if have is not _MISSING:
                commands.append(tljh.config_unset(key))
                reasons.append(f"{key} unset")
            continue
        if not _same(have, wanted):
            commands.append(tljh.config_set(key, wanted))
            reasons.append(f"{key} {tljh.config_value(wanted)}")
    return commands, reasons


# --- the plan -----------------------------------------------------------------------------


def _source(desired: CourseConfig, kind: str, fallback: str) -> str:
    return desired.packages.sources.get(kind) or fallback


def _listing(names: Iterable[str]) -> str:
    return ", ".join(names)


def _package_reason(source: str, missing: list[str], changed: list[tuple[str, str]]) -> str:
    parts = []
    if missing:
        parts.append(f"{source} adds {_listing(missing)}")
    if changed:
        pinned = _listing(f"{spec} (installed {version})" for spec, version in changed)
        parts.append(f"{source} wants {pinned}")
    return "; ".join(parts)


def _version_differs(observed_version: str | None, wanted: str) -> bool:
    if observed_version is None:
        return True
    return not _versions_equal(observed_version, wanted)


def _previous(state: dict[str, Any], kind: str) -> list[str]:
    value = state.get(kind)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def plan(
    desired: CourseConfig,
    observed: Observed | None,
    *,
    rebuild: bool = False,
    droplet_needed: bool = False,
    droplet_exists: bool = True,
    applied_at: str | None = None,
    commit: str | None = None,
) -> Plan:
    """The ordered, explained steps that bring the server from ``observed`` to ``desired``.

    ``observed`` is None (or unreachable) for a server not yet seen: everything is planned
    as for a fresh one. ``applied_at`` is the time recorded in the state file (now, UTC,
    when not given; tests pass it to stay deterministic). ``commit`` is the pushed commit
    the shared folders come from (None: a plan from config alone).

    Each numbered section is a planner of its own, below; this one puts them in order.
    """
    known = observed is not None and observed.reachable
    seen = observed if observed is not None and observed.reachable else Observed()
    provisioning = needs_droplet(
        desired, droplet_needed=droplet_needed, droplet_exists=droplet_exists
    )
    settings = desired_settings(desired)
    # 1. The server itself.
    steps = server_steps(desired, provisioning=provisioning, known=known)
    # 1b. The course's volume, before TLJH is installed, so /home and the hub's state
    # are on it from the start.
    steps += homevolume.plan_steps(desired, seen)
    # 2. TLJH itself.
    tljh_install, config = tljh_steps(desired, seen, rebuild=rebuild)
    steps += tljh_install
    # 3. Authentication; sign-up itself opens only once every admin has an account (5).
    steps += auth_steps(desired, settings, config)
    # 4. Admin accounts, and users.admin.
    admin_steps, notes = account_steps(desired, seen, config)
    steps += admin_steps
    # 5. Sign-up, now that every admin name is claimed.
    steps += _hub_settings_step("signup", [SIGNUP_KEY], settings, config, desired.hub.signup)
    # The service's API access to the hub, for the console's list of students.
    steps += api_service_steps(seen)
    # 6. HTTPS, and the DNS record it needs first.
    steps += https_steps(desired, settings, config, provisioning=provisioning)
    # 7. Hub settings.
    steps += hub_settings_steps(settings, config)
    # 7-9. Packages.
    steps += package_steps(desired, seen)
    # Assignments: nbgrader in the user environment, its exchange and gradebook.
    steps += assignments.plan_steps(desired, seen, seen.pip)
    # 10. What the files dropped: removed when prune is on, otherwise kept and reported.
    prune_steps, kept, kept_specs = _prune(desired, seen)
    steps += prune_steps
    # 10b. Shared folders: their layout, and the repository's folders at the commit.
    steps += shared.plan_steps(desired, seen, commit)
    # 11-12. One reload, then verify and record, only when something changed.
    if any(s.changes_server for s in steps):
        state = state_record(desired, settings, kept_specs, applied_at)
        shared_state = shared.state_record(desired, commit, seen)
        if shared_state is not None:
            state[shared.STATE_KEY] = shared_state
        steps += closing_steps(steps, state)
    return Plan(steps=tuple(steps), kept=tuple(kept), notes=notes)


def needs_droplet(desired: CourseConfig, *, droplet_needed: bool, droplet_exists: bool) -> bool:
    """Whether the plan makes the course's droplet (asked for, or none exists yet)."""
    return desired.server.provider == "digitalocean" and (droplet_needed or not droplet_exists)


def server_steps(desired: CourseConfig, *, provisioning: bool, known: bool) -> list[Step]:
    """1. The server itself: its droplet made if needed, then SSH awaited if not seen."""
    steps: list[Step] = []
    if provisioning:
        steps.append(
            Step(
                "provision",
                f"no droplet yet: create {desired.server.name or 'one'} "
                f"({desired.server.size} in {desired.server.region})",
                "",
                timeout=ENGINE_TIMEOUT,
            )
        )
    if provisioning or not known:
        steps.append(
            Step(
                "wait-ssh",
                "wait until the server answers over SSH",
                "",
                timeout=ENGINE_TIMEOUT,
                changes_server=False,
            )
        )
    return steps


def tljh_steps(
    desired: CourseConfig, seen: Observed, *, rebuild: bool
) -> tuple[list[Step], dict[str, Any]]:
    """2. TLJH installed (sign-up closed at first start), or upgraded in place; and the
    tljh-config the rest of the plan starts from. After a fresh install the installer has
    set users.admin to the admins it was given."""
    hub = desired.hub
    config = seen.tljh_config
    steps: list[Step] = []
    if not seen.tljh_installed:
        first_config = closed_signup_config(desired)
        steps.append(
            Step(
                "tljh-install",
                f"TLJH is not installed: install TLJH {hub.tljh_version}, its hub first "
                "started with sign-up closed",
                tljh.script(
                    f"mkdir -p {tljh.STATE_DIR}",
                    *write_first_config(first_config),
                    tljh.bootstrap(hub.tljh_version, hub.admins),
                ),
                timeout=INSTALL_TIMEOUT,
            )
        )
        config = first_config
        if hub.admins:
            config = {**config, "users": {"admin": list(hub.admins)}}
    elif rebuild or _version_differs(seen.tljh_version, hub.tljh_version):
        why = (
            "rebuild asked for"
            if rebuild and not _version_differs(seen.tljh_version, hub.tljh_version)
            else f"hub.tljh_version is {hub.tljh_version}, the server runs "
            f"{seen.tljh_version or 'an unknown version'}"
        )
        steps.extend(
            homevolume.snapshot_before_change(
                desired,
                seen,
                "TLJH is upgraded"
                if _version_differs(seen.tljh_version, hub.tljh_version)
                else "TLJH is reinstalled",
            )
        )
        steps.append(
            Step(
                "tljh-upgrade",
                f"{why}: upgrade TLJH in place to {hub.tljh_version} (home folders stay)",
                tljh.script(f"mkdir -p {tljh.STATE_DIR}", tljh.bootstrap(hub.tljh_version)),
                timeout=INSTALL_TIMEOUT,
            )
        )
    return steps, config


def auth_steps(
    desired: CourseConfig, settings: dict[str, object], config: dict[str, Any]
) -> list[Step]:
    """3. Authentication settings, all but sign-up itself (that waits for the admins)."""
    auth_keys = [k for k in settings if k.startswith("auth.") and k != SIGNUP_KEY]
    return _hub_settings_step("auth", auth_keys, settings, config, desired.hub.signup)


def account_steps(
    desired: CourseConfig, seen: Observed, config: dict[str, Any]
) -> tuple[list[Step], tuple[str, ...]]:
    """4. Admin accounts, before any name becomes an admin: a name is an admin only once
    its account is the service's, never a stranger's sign-up. Then users.admin made equal
    to hub.admins, each name exactly once; a name a sign-up holds is not made an admin,
    and a note says so."""
    hub = desired.hub
    steps: list[Step] = []
    accounts = seen.accounts if seen.tljh_installed else HubAccounts()
    existing = accounts.names()
    taken = [n for n in hub.admins if n in existing and n not in accounts.seeded]
    missing = [n for n in hub.admins if n not in existing]
    if missing:
        steps.append(
            Step(
                "accounts",
                f"hub.admins: create the hub account{'s' if len(missing) > 1 else ''} "
                f"{_listing(missing)} before sign-up opens (no password works until its "
                "owner sets one on the console)",
                "",
                timeout=CONFIG_TIMEOUT,
                names=tuple(missing),
            )
        )
    notes = tuple(
        f"hub.admins lists {name}, but {name} is an account somebody made by signing up; "
        "it is left alone: check who it is, then approve, remove or rename it on the hub"
        for name in taken
    )
    observed_admins = _config_list(config, ADMIN_KEY)
    granted = tuple(
        n for n in hub.admins if n not in taken or _canonical(n) in map(_canonical, observed_admins)
    )
    steps.extend(_admin_steps(granted, observed_admins))
    return steps, notes


def api_service_steps(seen: Observed) -> list[Step]:
    """The hub service the console reads students' activity through, if not as wanted."""
    if seen.api_service.strip() == tljh.API_SERVICE_CONFIG.strip():
        return []
    return [
        Step(
            "api-service",
            f"the console reads students' last activity through a hub service: write "
            f"{tljh.API_SERVICE_FILE} and its token (made on the server, kept there)",
            tljh.script(*tljh.install_api_service()),
            reload=Reload.HUB,
            timeout=CONFIG_TIMEOUT,
        )
    ]


def https_steps(
    desired: CourseConfig,
    settings: dict[str, object],
    config: dict[str, Any],
    *,
    provisioning: bool,
) -> list[Step]:
    """6. HTTPS for hub.hostname, and (on a droplet) the DNS record it needs first."""
    hub = desired.hub
    if not hub.hostname:
        return []
    steps: list[Step] = []
    domains = _config_list(config, DOMAINS_KEY)
    if desired.server.provider == "digitalocean" and (provisioning or hub.hostname not in domains):
        steps.append(
            Step(
                "dns",
                f"hub.hostname is {hub.hostname}: point its DNS A record at the droplet",
                "",
                timeout=CONFIG_TIMEOUT,
            )
        )
    https_keys = [k for k in settings if k.startswith("https.")]
    commands, reasons = _settings_changes(https_keys, settings, config)
    if hub.hostname not in domains:
        commands.append(tljh.config_add_item(DOMAINS_KEY, hub.hostname))
        reasons.append(f"{DOMAINS_KEY} adds {hub.hostname}")
    if commands:
        steps.append(
            Step(
                "https",
                f"hub.hostname is {hub.hostname}: " + ", ".join(reasons),
                tljh.script(*commands),
                reload=Reload.PROXY,
                timeout=CONFIG_TIMEOUT,
            )
        )
    return steps


def hub_settings_steps(settings: dict[str, object], config: dict[str, Any]) -> list[Step]:
    """7. The hub's other settings (neither auth nor https) that differ from the server's."""
    hub_keys = [k for k in settings if not k.startswith(("auth.", "https."))]
    commands, reasons = _settings_changes(hub_keys, settings, config)
    if not commands:
        return []
    return [
        Step(
            "hub-settings",
            ", ".join(reasons),
            tljh.script(*commands),
            reload=Reload.HUB,
            timeout=CONFIG_TIMEOUT,
        )
    ]


def package_steps(desired: CourseConfig, seen: Observed) -> list[Step]:
    """7-9. apt, conda and pip packages the course's files list and the server lacks."""
    packages = desired.packages
    return [
        *_package_step(
            "apt",
            _source(desired, "apt", "apt.txt"),
            packages.apt,
            seen.apt,
            apt_satisfied,
            apt_name,
            lambda specs: tljh.script(*tljh.apt_install(specs)),
        ),
        *_package_step(
            "conda",
            _source(desired, "conda", "environment.yml"),
            packages.conda,
            seen.conda,
            conda_satisfied,
            lambda spec: parse_conda_spec(spec).name,
            lambda specs: tljh.script(tljh.conda_install(specs, packages.conda_channels)),
        ),
        *_package_step(
            "pip",
            _source(desired, "pip", "requirements.txt"),
            packages.pip,
            seen.pip,
            pip_satisfied,
            pip_name,
            lambda specs: tljh.script(tljh.pip_install(specs)),
        ),
    ]


def closing_steps(steps: list[Step], state: dict[str, Any]) -> list[Step]:
    """11-12. After ``steps`` change the server: one reload of what they need reloaded,
    then verify the hub answers and record ``state``."""
    needs = Reload.NONE
    for step in steps:
        needs |= step.reload
    reloading = [
        name for flag, name in ((Reload.HUB, "hub"), (Reload.PROXY, "proxy")) if flag in needs
    ]
    closing: list[Step] = []
    if reloading:
        closing.append(
            Step(
                "reload",
                f"reload the {' and '.join(reloading)} so the new settings take effect",
                tljh.script(*(tljh.config_reload(name) for name in reloading)),
                timeout=CONFIG_TIMEOUT,
            )
        )
    closing.append(
        Step(
            "verify",
            "check that the hub answers on http://127.0.0.1/hub/api",
            tljh.script(*tljh.wait_for_hub()),
            timeout=VERIFY_TIMEOUT,
            changes_server=False,
        )
    )
    closing.append(
        Step(
            "state",
            f"record what was applied in {STATE_FILE}",
            tljh.script(*tljh.write_state(state, STATE_FILE)),
            timeout=CONFIG_TIMEOUT,
        )
    )
    return closing


def closed_signup_config(desired: CourseConfig) -> dict[str, Any]:
    """What TLJH's installer finds before it first starts the hub: sign-up closed."""
    native = {
        key.rsplit(".", 1)[1]: value
        for key, value in desired_settings(desired).items()
        if key.startswith("auth.NativeAuthenticator.")
    }
    native["enable_signup"] = False
    return {"auth": {"type": NATIVE_AUTHENTICATOR, "NativeAuthenticator": native}}


def write_first_config(config: dict[str, Any]) -> list[str]:
    """Write TLJH's config file unless one exists; JSON is YAML, which TLJH reads."""
    path = shlex.quote(TLJH_CONFIG_FILE)
    return [
        f"if [ ! -e {path} ]; then",
        f"  mkdir -p {shlex.quote(TLJH_CONFIG_FILE.rsplit('/', 1)[0])}",
        f"  printf '%s\\n' {shlex.quote(json.dumps(config, sort_keys=True))} > {path}",
        "fi",
    ]


def _admin_steps(admins: tuple[str, ...], observed_admins: list[str]) -> list[Step]:
    # Names compare as tljh-config stores them: it reads "007" as the number 7.
    counts = Counter(_canonical(name) for name in observed_admins)
    spelled = {_canonical(name): name for name in observed_admins}
    wanted = {_canonical(name): name for name in admins}
    commands: list[str] = []
    added, removed, deduplicated = [], [], []
    for key, name in spelled.items():
        if key not in wanted:
            # remove-item takes out one occurrence, so once per copy.
            commands.extend(tljh.config_remove_item(ADMIN_KEY, name) for _ in range(counts[key]))
            removed.append(name)
        elif counts[key] > 1:
            commands.extend(tljh.config_remove_item(ADMIN_KEY, name) for _ in range(counts[key]))
            commands.append(tljh.config_add_item(ADMIN_KEY, wanted[key]))
            deduplicated.append(name)
    for key, name in wanted.items():
        if key not in counts:
            commands.append(tljh.config_add_item(ADMIN_KEY, name))
            added.append(name)
    if not commands:
        return []
    reasons = []
    if added:
        reasons.append(f"hub.admins adds {_listing(added)}")
    if removed:
        reasons.append(f"hub.admins no longer lists {_listing(removed)}")
    if deduplicated:
        reasons.append(f"{ADMIN_KEY} lists {_listing(deduplicated)} more than once")
    return [
        Step(
            "admins",
            "; ".join(reasons),
            tljh.script(*commands),
            reload=Reload.HUB,
            timeout=CONFIG_TIMEOUT,
        )
    ]


def _package_step(
    kind: str,
    source: str,
    specs: tuple[str, ...],
    installed: dict[str, str],
    satisfied: Callable[[str, dict[str, str]], bool],
    name_of: Callable[[str], str],
    build_script: Callable[[list[str]], str],
) -> list[Step]:
    needed = [spec for spec in dict.fromkeys(specs) if not satisfied(spec, installed)]
    if not needed:
        return []
    have = {_normal(kind, name): version for name, version in installed.items()}
    missing = [spec for spec in needed if _normal(kind, name_of(spec)) not in have]
    changed = [
        (spec, have[_normal(kind, name_of(spec))])
        for spec in needed
        if _normal(kind, name_of(spec)) in have
    ]
    return [
        Step(
            kind,
            _package_reason(source, missing, changed),
            build_script(needed),
            timeout=PACKAGES_TIMEOUT,
        )
    ]


def _normal(kind: str, name: str) -> str:
    if kind == "pip":
        return canonicalize_name(name)
    return name.lower()


_NAME_OF = {
    "apt": apt_name,
    "conda": lambda spec: parse_conda_spec(spec).name,
    "pip": pip_name,
}


def _prune(desired: CourseConfig, seen: Observed) -> tuple[list[Step], list[str], dict[str, Any]]:
    """Steps removing what the files dropped (prune on), or the list of what stays."""
    packages = desired.packages
    wanted = {"apt": packages.apt, "conda": packages.conda, "pip": packages.pip}
    installed = {"apt": seen.apt, "conda": seen.conda, "pip": seen.pip}
    steps: list[Step] = []
    kept: list[str] = []
    kept_specs: dict[str, list[str]] = {}
    for kind in ("apt", "conda", "pip"):
        name_of = _NAME_OF[kind]
        still_wanted = {_normal(kind, name_of(spec)) for spec in wanted[kind]}
        present = {_normal(kind, name) for name in installed[kind]}
        dropped: dict[str, str] = {}
        for spec in _previous(seen.state, kind):
            name = _normal(kind, name_of(spec))
            if name not in still_wanted and name in present:
                dropped.setdefault(name, spec)
        if not dropped:
            continue
        names = list(dropped)
        if desired.prune:
            source = _source(
                desired,
                kind,
                {"apt": "apt.txt", "conda": "environment.yml", "pip": "requirements.txt"}[kind],
            )
            remove = {
                "apt": tljh.apt_remove,
                "conda": tljh.conda_remove,
                "pip": tljh.pip_uninstall,
            }[kind]
            steps.append(
                Step(
                    f"prune-{kind}",
                    f"{source} no longer lists {_listing(names)} and prune is on: remove",
                    tljh.script(remove(names)),
                    timeout=PACKAGES_TIMEOUT,
                )
            )
        else:
            kept.extend(f"{name} ({kind})" for name in names)
            # Remembered in the state file so turning prune on later still removes them.
            kept_specs[kind] = list(dropped.values())
    return steps, kept, kept_specs


def state_record(
    desired: CourseConfig,
    settings: dict[str, object],
    kept_specs: dict[str, Any],
    applied_at: str | None = None,
) -> dict[str, Any]:
    """What the state file says was applied; prune compares the next push against it."""
    config: dict[str, object] = {k: v for k, v in settings.items() if v is not None}
    config[ADMIN_KEY] = list(dict.fromkeys(desired.hub.admins))
    if desired.hub.hostname:
        config[DOMAINS_KEY] = [desired.hub.hostname]
    packages = desired.packages
    return {
        "engine": ENGINE,
        "engine_version": ENGINE_VERSION,
        "tljh_version": desired.hub.tljh_version,
        "config": config,
        "apt": list(packages.apt) + kept_specs.get("apt", []),
        "conda": list(packages.conda) + kept_specs.get("conda", []),
        "pip": list(packages.pip) + kept_specs.get("pip", []),
        "applied_at": applied_at
        or datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        **(
            {homevolume.STORAGE_STATE_KEY: desired.storage.size_gib}
            if desired.storage is not None and desired.server.provider == "digitalocean"
            else {}
        ),
    }
