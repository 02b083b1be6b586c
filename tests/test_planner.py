"""Tests for the pure planner: table-driven cases, script contents, and idempotence."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.host import tljh
from deploy.model import STATE_FILE, HubAccount, HubAccounts, Observed, Plan, Reload
from deploy.planning.planner import (
    TLJH_CONFIG_FILE,
    conda_satisfied,
    parse_conda_spec,
    pip_name,
    pip_satisfied,
    plan,
)
from deploy.planning.render import render_plan
from tests.plugins.planner import (
    assert_server_reached,
    make_course,
    pip_version_meeting,
    server_matching,
)

NOW = "2025-03-01T12:00:00Z"


def names(result: Plan) -> list[str]:
    return [step.name for step in result.steps]


def step(result: Plan, name: str):
    (found,) = [s for s in result.steps if s.name == name]
    return found


def commands(script: str) -> list[list[str]]:
    """The script's command lines as argv lists, without the shared preamble."""
    assert script.startswith(tljh.PREAMBLE)
    return [shlex.split(line) for line in script[len(tljh.PREAMBLE) :].splitlines() if line]


def config_calls(script: str) -> list[list[str]]:
    return [argv[1:] for argv in commands(script) if argv and argv[0] == tljh.TLJH_CONFIG]


def with_config(observed: Observed, **changes: object) -> Observed:
    return dataclasses.replace(observed, **changes)


# --- the simulated server: runs the plan's commands the way the real tools would -----------


def _parse_value(text: str) -> object:
    # What tljh-config does with a value on the command line.
    if text.isdigit():
        return int(text)
    if text.replace(".", "", 1).isdigit():
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _node(config: dict, key: str, create: bool) -> tuple[dict | None, str]:
    *parents, last = key.split(".")
    node = config
    for part in parents:
        if part not in node:
            if not create:
                return None, last
            node[part] = {}
        node = node[part]
    return node, last


def run_on_server(observed: Observed, result: Plan) -> Observed:
    """Apply each step's commands to a copy of ``observed`` as TLJH, apt, conda and pip would."""
    config = json.loads(json.dumps(observed.tljh_config))
    apt, conda, pip = dict(observed.apt), dict(observed.conda), dict(observed.pip)
    state, installed, version = dict(observed.state), observed.tljh_installed, observed.tljh_version
    accounts, api_service = observed.accounts, observed.api_service
    for planned in result.steps:
        if planned.name == "api-service":
            # Writes the service's config file (base64 in the script) and its token.
            api_service = tljh.API_SERVICE_CONFIG
            continue
        if planned.name == "accounts":
            # The engine step: the hub's first start made the database; admins get rows.
            rows = accounts.rows + tuple(HubAccount(n, True) for n in planned.names)
            accounts = HubAccounts(True, rows, accounts.seeded | set(planned.names))
        lines = planned.script[len(tljh.PREAMBLE) :].splitlines() if planned.script else []
        for line in lines:
            if "bootstrap.py" in line:
                argv = shlex.split(line.split("|", 1)[1])
                version = argv[argv.index("--version") + 1]
                admins = [argv[i + 1] for i, word in enumerate(argv) if word == "--admin"]
                if not installed:
                    config.setdefault("users", {})["admin"] = admins
                installed = True
                continue
            if line.strip().startswith("printf") and TLJH_CONFIG_FILE in line:
                if not installed and not config:
                    config = json.loads(shlex.split(line)[2])
                continue
            if line.startswith("printf"):
                state = json.loads(shlex.split(line)[2])
                continue
            argv = shlex.split(line)
            if not argv:
                continue
            if argv[0] == tljh.TLJH_CONFIG:
                action, key, *rest = argv[1:]
                if action == "reload":
                    continue
                node, last = _node(config, key, create=action in ("set", "add-item"))
                if action == "set":
                    node[last] = _parse_value(rest[0])
                elif action == "unset":
                    del node[last]
                elif action == "add-item":
                    node.setdefault(last, []).append(_parse_value(rest[0]))
                elif action == "remove-item":
                    node[last].remove(_parse_value(rest[0]))
            elif argv[:2] == ["DEBIAN_FRONTEND=noninteractive", "apt-get"] and "install" in argv:
                for spec in argv[argv.index("--no-install-recommends") + 1 :]:
                    name, _, pinned = spec.partition("=")
                    apt[name] = pinned or "1.0-1"
            elif argv[:2] == ["DEBIAN_FRONTEND=noninteractive", "apt-get"] and "remove" in argv:
                for name in argv[argv.index("-y") + 1 :]:
                    apt.pop(name, None)
            elif argv[:2] == [tljh.USER_CONDA, "install"]:
                last_channel = max(i for i, word in enumerate(argv) if word == "-c")
                for spec in argv[last_channel + 2 :]:
                    parsed = parse_conda_spec(spec)
                    digits = parsed.constraint.lstrip("=<>!~").split(",")[0].rstrip(".*")
                    conda[parsed.name] = digits or "1.0"
            elif argv[:3] == [tljh.USER_CONDA, "remove", "-y"]:
                for name in argv[3:]:
                    conda.pop(name, None)
            elif argv[:3] == [tljh.USER_PIP, "install", "--no-input"]:
                for spec in argv[3:]:
                    pip[pip_name(spec)] = pip_version_meeting(spec)
            elif argv[:3] == [tljh.USER_PIP, "uninstall", "-y"]:
                for name in argv[3:]:
                    pip.pop(name, None)
    return dataclasses.replace(
        observed,
        tljh_installed=installed,
        tljh_version=version,
        tljh_config=config,
        apt=apt,
        conda=conda,
        pip=pip,
        state=state,
        accounts=accounts,
        api_service=api_service,
    )


# --- table-driven cases -------------------------------------------------------------------


def test_nothing_to_do_gives_an_empty_plan() -> None:
    desired = make_course(apt=("graphviz",), pip=("numpy>=1.20",), conda=("scipy=1.11",))
    result = plan(desired, server_matching(desired), applied_at=NOW)
    assert result.steps == ()
    assert result.empty


def test_fresh_server_installs_tljh_with_each_admin_and_the_version() -> None:
    desired = make_course(admins=("alice", "bob"), tljh_version="2.0.0", apt=("graphviz",))
    result = plan(desired, Observed(), applied_at=NOW)
    assert names(result) == [
        "tljh-install",
        "accounts",
        "signup",
        "api-service",
        "hub-settings",
        "apt",
        "reload",
        "verify",
        "state",
    ]
    install = step(result, "tljh-install").script
    assert "mkdir -p /opt/tljh/state\n" in install
    assert (
        "curl -fsSL https://tljh.jupyter.org/bootstrap.py | python3 - --version 2.0.0 "
        "--admin alice --admin bob"
    ) in install
    assert install.index("mkdir -p /opt/tljh/state") < install.index("bootstrap.py")
    # TLJH's installer starts the hub with the config it finds: sign-up closed.
    assert install.index(TLJH_CONFIG_FILE) < install.index("bootstrap.py")
    first = first_config_written(install)
    assert first["auth"]["NativeAuthenticator"]["enable_signup"] is False
    assert first["auth"]["type"] == "nativeauthenticator.NativeAuthenticator"
    assert step(result, "accounts").names == ("alice", "bob")
    assert config_calls(step(result, "signup").script) == [
        ["set", "auth.NativeAuthenticator.enable_signup", "true"]
    ]


def first_config_written(script: str) -> dict:
    (line,) = [
        x for x in script.splitlines() if x.strip().startswith("printf") and TLJH_CONFIG_FILE in x
    ]
    return json.loads(shlex.split(line)[2])


def test_fresh_install_does_not_add_the_admins_a_second_time() -> None:
    desired = make_course(admins=("alice", "bob"))
    result = plan(desired, Observed(), applied_at=NOW)
    assert "admins" not in names(result)
    after = run_on_server(Observed(), result)
    assert after.tljh_config["users"]["admin"] == ["alice", "bob"]


def test_unknown_server_waits_for_ssh_first() -> None:
    desired = make_course()
    result = plan(desired, None, applied_at=NOW)
    assert names(result)[:2] == ["wait-ssh", "tljh-install"]
    assert not step(result, "wait-ssh").changes_server


def test_new_droplet_is_provisioned_then_waited_for() -> None:
    desired = make_course(provider="digitalocean")
    result = plan(desired, None, droplet_exists=False, applied_at=NOW)
    assert names(result)[:3] == ["provision", "wait-ssh", "tljh-install"]
    assert step(result, "provision").script == ""
    assert step(result, "provision").changes_server


def test_existing_droplet_is_not_provisioned() -> None:
    desired = make_course(provider="digitalocean")
    assert plan(desired, server_matching(desired), droplet_exists=True).steps == ()


def test_ssh_provider_is_never_provisioned() -> None:
    desired = make_course(provider="ssh")
    assert "provision" not in names(plan(desired, None, droplet_exists=False, applied_at=NOW))


def test_one_apt_package_added() -> None:
    before = make_course(apt=("graphviz",))
    desired = make_course(apt=("graphviz", "jq"))
    result = plan(desired, server_matching(before), applied_at=NOW)
    assert names(result) == ["apt", "verify", "state"]
    apt = step(result, "apt")
    assert apt.reason == "apt.txt adds jq"
    assert commands(apt.script) == [
        ["apt-get", "update"],
        [
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "--no-install-recommends",
            "jq",
        ],
    ]


def test_pinned_apt_package_with_another_version_is_installed_again() -> None:
    desired = make_course(apt=("graphviz=2.42.2-6",))
    observed = with_config(server_matching(desired), apt={"graphviz": "2.40.1-1"})
    apt = step(plan(desired, observed, applied_at=NOW), "apt")
    assert "graphviz=2.42.2-6 (installed 2.40.1-1)" in apt.reason
    assert commands(apt.script)[-1][-1] == "graphviz=2.42.2-6"


def test_reason_names_the_file_the_packages_came_from() -> None:
    desired = make_course(apt=("jq",))
    desired = dataclasses.replace(
        desired,
        packages=dataclasses.replace(desired.packages, sources={"apt": "binder/apt.txt"}),
    )
    observed = with_config(server_matching(desired), apt={})
    assert step(plan(desired, observed, applied_at=NOW), "apt").reason == "binder/apt.txt adds jq"


def test_admin_removed() -> None:
    desired = make_course(admins=("alice",))
    observed = server_matching(make_course(admins=("alice", "mallory")))
    result = plan(desired, observed, applied_at=NOW)
    admins = step(result, "admins")
    assert config_calls(admins.script) == [["remove-item", "users.admin", "mallory"]]
    assert admins.reason == "hub.admins no longer lists mallory"
    assert admins.reload == Reload.HUB
    assert names(result) == ["admins", "reload", "verify", "state"]
    assert config_calls(step(result, "reload").script) == [["reload", "hub"]]


def test_admin_added() -> None:
    desired = make_course(admins=("alice", "bob"))
    observed = server_matching(make_course(admins=("alice",)))
    admins = step(plan(desired, observed, applied_at=NOW), "admins")
    assert config_calls(admins.script) == [["add-item", "users.admin", "bob"]]
    assert admins.reason == "hub.admins adds bob"


def test_duplicate_admin_in_observed_is_removed_then_added_once() -> None:
    desired = make_course(admins=("alice",))
    observed = server_matching(desired)
    observed.tljh_config["users"]["admin"] = ["alice", "alice", "alice"]
    admins = step(plan(desired, observed, applied_at=NOW), "admins")
    assert config_calls(admins.script) == [
        ["remove-item", "users.admin", "alice"],
        ["remove-item", "users.admin", "alice"],
        ["remove-item", "users.admin", "alice"],
        ["add-item", "users.admin", "alice"],
    ]
    after = run_on_server(observed, plan(desired, observed, applied_at=NOW))
    assert after.tljh_config["users"]["admin"] == ["alice"]


def test_numeric_admin_name_matches_what_tljh_config_stored() -> None:
    desired = make_course(admins=("007",))
    observed = server_matching(desired)
    observed.tljh_config["users"]["admin"] = [7]  # tljh-config read "007" as a number
    assert plan(desired, observed, applied_at=NOW).steps == ()


def test_hostname_turns_on_https_and_reloads_the_proxy() -> None:
    desired = make_course(hostname="hub.example.edu", letsencrypt_email="you@example.edu")
    observed = server_matching(make_course())
    result = plan(desired, observed, applied_at=NOW)
    https = step(result, "https")
    assert config_calls(https.script) == [
        ["set", "https.enabled", "true"],
        ["set", "https.letsencrypt.email", "you@example.edu"],
        ["add-item", "https.letsencrypt.domains", "hub.example.edu"],
    ]
    assert https.reload == Reload.PROXY
    assert config_calls(step(result, "reload").script) == [["reload", "proxy"]]
    assert "dns" not in names(result)  # provider ssh: no DNS record to make


def test_hostname_added_twice_never_duplicates_domains() -> None:
    desired = make_course(hostname="hub.example.edu", letsencrypt_email="you@example.edu")
    observed = server_matching(make_course())
    first = plan(desired, observed, applied_at=NOW)
    after = run_on_server(observed, first)
    assert after.tljh_config["https"]["letsencrypt"]["domains"] == ["hub.example.edu"]
    assert plan(desired, after, applied_at=NOW).steps == ()
    # Even applying the same plan twice (a retried job) leaves one entry.
    again = run_on_server(after, plan(desired, after, applied_at=NOW))
    assert again.tljh_config["https"]["letsencrypt"]["domains"] == ["hub.example.edu"]


def test_dns_step_for_digitalocean_hostname_comes_before_https() -> None:
    desired = make_course(provider="digitalocean", hostname="hub.example.edu")
    observed = server_matching(make_course(provider="digitalocean"))
    result = plan(desired, observed, applied_at=NOW)
    assert names(result).index("dns") < names(result).index("https")
    assert step(result, "dns").script == ""
    assert "hub.example.edu" in step(result, "dns").reason


def test_version_bump_upgrades_in_place_without_admins() -> None:
    desired = make_course(tljh_version="2.0.1")
    observed = server_matching(make_course(tljh_version="2.0.0"))
    result = plan(desired, observed, applied_at=NOW)
    assert names(result) == ["tljh-upgrade", "verify", "state"]
    upgrade = step(result, "tljh-upgrade")
    assert "python3 - --version 2.0.1\n" in upgrade.script
    assert "--admin" not in upgrade.script
    assert "2.0.0" in upgrade.reason and "2.0.1" in upgrade.reason


def test_same_version_spelled_differently_is_not_an_upgrade() -> None:
    desired = make_course(tljh_version="2.0")
    observed = with_config(server_matching(desired), tljh_version="2.0.0")
    assert plan(desired, observed).steps == ()


def test_rebuild_upgrades_in_place_even_when_versions_match() -> None:
    desired = make_course()
    result = plan(desired, server_matching(desired), rebuild=True, applied_at=NOW)
    assert names(result) == ["tljh-upgrade", "verify", "state"]
    assert step(result, "tljh-upgrade").reason.startswith("rebuild asked for")


@pytest.mark.parametrize(
    ("signup", "open_signup", "enable_signup"),
    [("approval", "false", "true"), ("open", "true", "true"), ("closed", "false", "false")],
)
def test_signup_modes(signup: str, open_signup: str, enable_signup: str) -> None:
    desired = make_course(signup=signup)
    result = plan(desired, with_config(server_matching(desired), tljh_config={}), applied_at=NOW)
    assert config_calls(step(result, "auth").script) == [
        ["set", "auth.type", "nativeauthenticator.NativeAuthenticator"],
        ["set", "auth.NativeAuthenticator.open_signup", open_signup],
        ["set", "auth.NativeAuthenticator.allow_all", "true"],
    ]
    # Sign-up is set apart, after the admins' accounts and admin rights.
    assert config_calls(step(result, "signup").script) == [
        ["set", "auth.NativeAuthenticator.enable_signup", enable_signup]
    ]
    assert names(result).index("signup") > names(result).index("admins")


def test_changing_signup_sets_only_the_keys_that_differ() -> None:
    desired = make_course(signup="open")
    observed = server_matching(make_course(signup="approval"))
    auth = step(plan(desired, observed, applied_at=NOW), "auth")
    assert config_calls(auth.script) == [["set", "auth.NativeAuthenticator.open_signup", "true"]]
    assert auth.reason.startswith("hub.signup is open")


@pytest.mark.parametrize("default_app", ["classic", "jupyterlab"])
def test_default_app(default_app: str) -> None:
    other = "jupyterlab" if default_app == "classic" else "classic"
    desired = make_course(default_app=default_app)
    observed = server_matching(make_course(default_app=other))
    settings_step = step(plan(desired, observed, applied_at=NOW), "hub-settings")
    assert config_calls(settings_step.script) == [
        ["set", "user_environment.default_app", default_app]
    ]


def test_limits_and_cull_timeout() -> None:
    desired = make_course(memory_limit="2G", cpu_limit=1.5, idle_timeout=7200)
    observed = server_matching(make_course())
    settings_step = step(plan(desired, observed, applied_at=NOW), "hub-settings")
    assert config_calls(settings_step.script) == [
        ["set", "limits.memory", "2G"],
        ["set", "limits.cpu", "1.5"],
        ["set", "services.cull.timeout", "7200"],
    ]


def test_whole_cpu_limit_matches_the_integer_tljh_config_stores() -> None:
    desired = make_course(cpu_limit=1.0)
    observed = server_matching(desired)
    observed.tljh_config["limits"]["cpu"] = 1
    assert plan(desired, observed).steps == ()


def test_dropped_limit_is_unset() -> None:
    desired = make_course()
    observed = server_matching(make_course(memory_limit="1G"))
    settings_step = step(plan(desired, observed, applied_at=NOW), "hub-settings")
    assert config_calls(settings_step.script) == [["unset", "limits.memory"]]


def test_prune_off_keeps_dropped_packages_and_says_so() -> None:
    before = make_course(apt=("graphviz", "jq"), pip=("requests",))
    desired = make_course(apt=("graphviz",))
    result = plan(desired, server_matching(before), applied_at=NOW)
    assert not any(s.name.startswith("prune") for s in result.steps)
    assert set(result.kept) == {"jq (apt)", "requests (pip)"}


def test_prune_off_keeps_remembering_what_it_kept() -> None:
    before = make_course(apt=("jq",))
    kept_once = make_course(apt=("graphviz",))
    after = run_on_server(
        server_matching(before), plan(kept_once, server_matching(before), applied_at=NOW)
    )
    assert "jq" in after.state["apt"]
    pruning = make_course(apt=("graphviz",), prune=True)
    result = plan(pruning, after, applied_at=NOW)
    assert commands(step(result, "prune-apt").script)[-1][-1] == "jq"


def test_prune_on_removes_what_the_files_dropped() -> None:
    before = make_course(apt=("graphviz", "jq"), conda=("scipy",), pip=("requests==2.32.3",))
    desired = make_course(apt=("graphviz",), prune=True)
    result = plan(desired, server_matching(before), applied_at=NOW)
    assert names(result) == ["prune-apt", "prune-conda", "prune-pip", "verify", "state"]
    assert commands(step(result, "prune-apt").script) == [
        ["DEBIAN_FRONTEND=noninteractive", "apt-get", "remove", "-y", "jq"]
    ]
    assert commands(step(result, "prune-conda").script) == [
        [tljh.USER_CONDA, "remove", "-y", "scipy"]
    ]
    assert commands(step(result, "prune-pip").script) == [
        [tljh.USER_PIP, "uninstall", "-y", "requests"]
    ]
    assert result.kept == ()


def test_prune_never_touches_packages_the_bot_did_not_install() -> None:
    desired = make_course(prune=True)
    observed = server_matching(desired)  # python3, python, jupyterlab installed, not by us
    assert plan(desired, observed).steps == ()


def test_prune_skips_what_is_already_gone() -> None:
    before = make_course(apt=("jq",))
    desired = make_course(prune=True)
    observed = with_config(server_matching(before), apt={})
    assert plan(desired, observed).steps == ()


def test_conda_uses_the_files_channels_or_conda_forge() -> None:
    observed = server_matching(make_course())
    default = step(plan(make_course(conda=("scipy",)), observed, applied_at=NOW), "conda")
    assert commands(default.script) == [
        [tljh.USER_CONDA, "install", "-y", "--override-channels", "-c", "conda-forge", "scipy"]
    ]
    chosen = make_course(conda=("scipy",), conda_channels=("bioconda", "defaults"))
    assert commands(step(plan(chosen, observed, applied_at=NOW), "conda").script) == [
        [
            tljh.USER_CONDA,
            "install",
            "-y",
            "--override-channels",
            "-c",
            "bioconda",
            "-c",
            "defaults",
            "scipy",
        ]
    ]


def test_pip_names_compare_per_pep_503() -> None:
    desired = make_course(pip=("Scikit_Learn>=1.3",))
    observed = with_config(server_matching(make_course()), pip={"scikit-learn": "1.5.2"})
    assert plan(desired, observed).steps == ()


def test_pip_version_outside_the_specifier_is_reinstalled() -> None:
    desired = make_course(pip=("numpy<2",))
    observed = with_config(server_matching(make_course()), pip={"numpy": "2.1.0"})
    pip = step(plan(desired, observed, applied_at=NOW), "pip")
    assert commands(pip.script) == [[tljh.USER_PIP, "install", "--no-input", "numpy<2"]]
    assert "numpy<2 (installed 2.1.0)" in pip.reason


@pytest.mark.parametrize(
    ("spec", "installed", "expected"),
    [
        ("numpy", "1.26.4", True),
        ("numpy=1.26", "1.26.4", True),
        ("numpy=1.26", "1.25.0", False),
        ("numpy==1.26.4", "1.26.4", True),
        ("numpy==1.26", "1.26.4", False),
        ("numpy 1.26.4 py311_0", "1.26.4", True),
        ("numpy=1.26.4=py311_0", "1.26.4", True),
        ("numpy>=1.20,<2", "1.26.4", True),
        ("numpy>=1.20,<2", "2.0.0", False),
        ("numpy=1.26.*", "1.26.1", True),
        ("conda-forge::numpy=1.26", "1.26.0", True),
        ("numpy>=weird", "1.0", True),  # unparseable range: installed is enough
    ],
)
def test_conda_spec_satisfaction(spec: str, installed: str, expected: bool) -> None:
    assert conda_satisfied(spec, {"numpy": installed}) is expected


def test_conda_missing_package_is_not_satisfied() -> None:
    assert not conda_satisfied("numpy", {})


@pytest.mark.parametrize(
    ("spec", "installed", "expected"),
    [
        ("requests", "2.32.3", True),
        ("requests==2.32.3", "2.32.3", True),
        ("requests==2.31.0", "2.32.3", False),
        ("requests[socks]>=2", "2.32.3", True),
        ("requests @ https://example.org/requests.whl", "2.32.3", True),
    ],
)
def test_pip_spec_satisfaction(spec: str, installed: str, expected: bool) -> None:
    assert pip_satisfied(spec, {"Requests": installed}) is expected


def test_values_reach_the_script_only_as_single_quoted_words() -> None:
    # Validation refuses these long before; the quoting must hold even if it did not.
    hostile = "x'; rm -rf / #"
    desired = make_course(admins=(hostile,), apt=(hostile,), pip=("a<2 $(reboot)",))
    result = plan(desired, server_matching(make_course()), applied_at=NOW)
    admins = step(result, "admins")
    assert ["add-item", "users.admin", hostile] in config_calls(admins.script)
    assert commands(step(result, "apt").script)[-1][-1] == hostile
    assert commands(step(result, "pip").script)[-1][-1] == "a<2 $(reboot)"


def test_state_step_writes_the_record_atomically() -> None:
    desired = make_course(apt=("graphviz",), hostname="hub.example.edu")
    result = plan(desired, server_matching(make_course()), applied_at=NOW)
    assert names(result)[-2:] == ["verify", "state"]
    lines = commands(step(result, "state").script)
    assert lines[0] == ["mkdir", "-p", "/opt/tljh/state"]
    assert lines[1][0] == "printf" and lines[1][3:] == [">", STATE_FILE + ".tmp"]
    assert lines[2] == ["mv", STATE_FILE + ".tmp", STATE_FILE]
    record = json.loads(lines[1][2])
    assert record["engine"] == "littlest-classroom"
    assert record["tljh_version"] == "2.0.0"
    assert record["apt"] == ["graphviz"]
    assert record["applied_at"] == NOW
    assert record["config"]["https.letsencrypt.domains"] == ["hub.example.edu"]
    assert record["config"]["users.admin"] == ["alice"]


def test_verify_asks_the_hub_api_and_changes_nothing() -> None:
    desired = make_course(apt=("jq",))
    verify = step(plan(desired, server_matching(make_course()), applied_at=NOW), "verify")
    assert "curl -fsS --max-time 10 http://127.0.0.1/hub/api" in verify.script
    assert not verify.changes_server


def test_one_reload_for_hub_and_proxy_at_the_end() -> None:
    desired = make_course(admins=("bob",), hostname="hub.example.edu")
    result = plan(desired, server_matching(make_course()), applied_at=NOW)
    assert [s.name for s in result.steps].count("reload") == 1
    reload = step(result, "reload")
    assert config_calls(reload.script) == [["reload", "hub"], ["reload", "proxy"]]
    assert names(result)[-3:] == ["reload", "verify", "state"]


def test_every_step_has_a_reason_and_a_timeout() -> None:
    desired = make_course(
        provider="digitalocean", hostname="hub.example.edu", apt=("jq",), pip=("numpy",)
    )
    result = plan(desired, None, droplet_exists=False, applied_at=NOW)
    for planned in result.steps:
        assert planned.reason and planned.timeout > 0
        if planned.name not in ("provision", "wait-ssh", "dns", "accounts"):
            assert planned.script.startswith(tljh.PREAMBLE)


def test_applying_a_fresh_plan_then_planning_again_is_empty() -> None:
    desired = make_course(
        admins=("alice", "bob"),
        hostname="hub.example.edu",
        letsencrypt_email="you@example.edu",
        memory_limit="1G",
        cpu_limit=1.0,
        apt=("graphviz", "jq=1.7.1-3"),
        conda=("scipy=1.11", "numpy>=1.20,<2"),
        pip=("requests==2.32.3", "Pillow"),
    )
    fresh = Observed()
    after = run_on_server(fresh, plan(desired, fresh, applied_at=NOW))
    assert_server_reached(desired, fresh, after)
    assert plan(desired, after, applied_at=NOW).steps == ()


# --- property: after applying, nothing is left to do --------------------------------------

_names = st.sampled_from(["numpy", "scipy", "pandas", "graphviz", "jq", "git", "requests"])
_versions = st.sampled_from(["1.0", "1.26.4", "2.1", "0.9.3"])
_admins = st.sampled_from(["alice", "bob", "carol", "dave"])


@st.composite
def _apt_specs(draw: st.DrawFn) -> tuple[str, ...]:
    chosen = draw(st.lists(_names, unique=True, max_size=4))
    return tuple(f"{n}={draw(_versions)}" if draw(st.booleans()) else n for n in chosen)


@st.composite
def _conda_specs(draw: st.DrawFn) -> tuple[str, ...]:
    chosen = draw(st.lists(_names, unique=True, max_size=4))
    ops = st.sampled_from(["", "=", "==", ">="])
    specs = []
    for name in chosen:
        op = draw(ops)
        specs.append(name + (f"{op}{draw(_versions)}" if op else ""))
    return tuple(specs)


@st.composite
def _pip_specs(draw: st.DrawFn) -> tuple[str, ...]:
    chosen = draw(st.lists(_names, unique=True, max_size=4))
    ops = st.sampled_from(["", "==", ">=", "~="])
    specs = []
    for name in chosen:
        op = draw(ops)
        specs.append(name + (f"{op}{draw(_versions)}" if op else ""))
    return tuple(specs)


@st.composite
def _desired(draw: st.DrawFn):
    return make_course(
        admins=tuple(draw(st.lists(_admins, unique=True, max_size=3))),
        signup=draw(st.sampled_from(["approval", "open", "closed"])),
        default_app=draw(st.sampled_from(["jupyterlab", "classic"])),
        hostname=draw(st.sampled_from([None, "hub.example.edu"])),
        memory_limit=draw(st.sampled_from([None, "1G", "512M"])),
        cpu_limit=draw(st.sampled_from([None, 1.0, 0.5, 2.0])),
        apt=draw(_apt_specs()),
        conda=draw(_conda_specs()),
        pip=draw(_pip_specs()),
        prune=draw(st.booleans()),
    )


@st.composite
def _observed(draw: st.DrawFn) -> Observed:
    if draw(st.booleans()):
        return Observed()
    base = server_matching(draw(_desired()))
    admins = draw(st.lists(_admins, max_size=4))  # duplicates allowed, as on a real server
    base.tljh_config.setdefault("users", {})["admin"] = admins
    return dataclasses.replace(base, tljh_version=draw(st.sampled_from(["1.0.0", "2.0.0"])))


@settings(max_examples=200, deadline=None)
@given(desired=_desired(), observed=_observed())
def test_property_server_matching_desired_needs_no_plan(desired, observed: Observed) -> None:
    # Whatever the server was, once it is the server the course describes (written out by
    # hand in tests/plugins/planner.py) nothing is left to do.
    assert plan(desired, server_matching(desired)).steps == ()
    # And applying the plan computed from any observed state reaches exactly that server,
    # by the same hand-written rules, after which nothing is left to do either.
    after = run_on_server(observed, plan(desired, observed, applied_at=NOW))
    assert_server_reached(desired, observed, after)
    assert plan(desired, after, applied_at=NOW).steps == ()


# --- hub accounts: admins exist before sign-up opens ---------------------------------------


def with_accounts(observed: Observed, rows: dict[str, bool], seeded: set[str]) -> Observed:
    listed = tuple(HubAccount(name, authorized) for name, authorized in rows.items())
    return with_config(observed, accounts=HubAccounts(True, listed, frozenset(seeded)))


def test_a_new_admin_gets_an_account_before_admin_rights() -> None:
    desired = make_course(admins=("alice", "bob"))
    observed = with_accounts(
        server_matching(make_course(admins=("alice",))), {"alice": True}, {"alice"}
    )
    result = plan(desired, observed, applied_at=NOW)
    assert step(result, "accounts").names == ("bob",)
    assert names(result).index("accounts") < names(result).index("admins")
    assert "bob" in step(result, "accounts").reason
    assert result.notes == ()


def test_an_admin_name_a_sign_up_holds_is_reported_and_not_made_admin() -> None:
    desired = make_course(admins=("alice", "mallory"))
    observed = with_accounts(
        server_matching(make_course(admins=("alice",))),
        {"alice": True, "mallory": False},
        {"alice"},
    )
    result = plan(desired, observed, applied_at=NOW)
    assert "accounts" not in names(result)
    assert "admins" not in names(result)  # mallory is not added to users.admin
    (note,) = result.notes
    assert "mallory" in note and "left alone" in note
    assert "mallory" in render_plan(result)


def test_an_admin_already_listed_keeps_admin_rights_even_on_a_signed_up_account() -> None:
    desired = make_course(admins=("alice",))
    observed = with_accounts(server_matching(desired), {"alice": True}, set())
    result = plan(desired, observed, applied_at=NOW)
    assert result.steps == ()
    assert len(result.notes) == 1


def test_a_removed_admin_loses_admin_rights_and_keeps_the_account() -> None:
    desired = make_course(admins=("alice",))
    observed = with_accounts(
        server_matching(make_course(admins=("alice", "bob"))),
        {"alice": True, "bob": True},
        {"alice", "bob"},
    )
    result = plan(desired, observed, applied_at=NOW)
    assert config_calls(step(result, "admins").script) == [["remove-item", "users.admin", "bob"]]
    assert "accounts" not in names(result)
    assert not any("users_info" in s.script or "sqlite" in s.script for s in result.steps)


def test_sign_up_opens_only_after_every_admin_account_is_made() -> None:
    desired = make_course(admins=("alice",), signup="open")
    observed = with_accounts(
        with_config(server_matching(make_course(admins=("alice",), signup="closed"))),
        {},
        set(),
    )
    result = plan(desired, observed, applied_at=NOW)
    order = names(result)
    assert order.index("accounts") < order.index("signup") < order.index("reload")
