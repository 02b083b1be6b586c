"""Each section planner of ``deploy.planning.planner`` alone: small pure functions, each asked the
one question of its section (the composed plan is tested in test_planner.py)."""

from __future__ import annotations

from deploy.model import HubAccount, HubAccounts, Observed, Reload, Step
from deploy.planning import planner
from tests.plugins.planner import make_course


def names(steps: list[Step]) -> list[str]:
    return [step.name for step in steps]


def test_a_droplet_is_made_only_for_digitalocean_when_none_exists() -> None:
    droplet = make_course(provider="digitalocean")
    assert planner.needs_droplet(droplet, droplet_needed=False, droplet_exists=False)
    assert not planner.needs_droplet(droplet, droplet_needed=False, droplet_exists=True)
    assert planner.needs_droplet(droplet, droplet_needed=True, droplet_exists=True)
    own = make_course(provider="ssh")
    assert not planner.needs_droplet(own, droplet_needed=True, droplet_exists=False)


def test_server_steps_wait_for_ssh_after_provisioning_or_when_unseen() -> None:
    course = make_course(provider="digitalocean")
    assert names(planner.server_steps(course, provisioning=True, known=True)) == [
        "provision",
        "wait-ssh",
    ]
    assert names(planner.server_steps(course, provisioning=False, known=False)) == ["wait-ssh"]
    assert planner.server_steps(course, provisioning=False, known=True) == []


def test_a_fresh_install_starts_from_closed_signup_with_the_admins() -> None:
    course = make_course(admins=("alice", "bob"), signup="approval")
    steps, config = planner.tljh_steps(course, Observed(reachable=True), rebuild=False)
    assert names(steps) == ["tljh-install"]
    assert config["users"] == {"admin": ["alice", "bob"]}
    assert planner.config_get(config, planner.SIGNUP_KEY) is False


def test_an_installed_hub_of_the_wanted_version_is_left_as_it_is() -> None:
    course = make_course()
    seen = Observed(
        reachable=True,
        tljh_installed=True,
        tljh_version=course.hub.tljh_version,
        tljh_config={"x": 1},
    )
    assert planner.tljh_steps(course, seen, rebuild=False) == ([], {"x": 1})
    steps, _ = planner.tljh_steps(course, seen, rebuild=True)
    assert names(steps)[-1] == "tljh-upgrade"


def test_accounts_are_made_for_missing_admins_and_a_signup_squatter_is_not_an_admin() -> None:
    course = make_course(admins=("alice", "mallory"))
    seen = Observed(
        reachable=True,
        tljh_installed=True,
        accounts=HubAccounts(database=True, rows=(HubAccount("mallory", authorized=True),)),
    )
    steps, notes = planner.account_steps(course, seen, {})
    (accounts,) = [s for s in steps if s.name == "accounts"]
    assert accounts.names == ("alice",)
    assert len(notes) == 1 and "mallory" in notes[0]
    granted = " ".join(s.script for s in steps if s.name != "accounts")
    assert "alice" in granted and "mallory" not in granted


def test_https_asks_for_dns_first_on_a_droplet_only() -> None:
    droplet = make_course(provider="digitalocean", hostname="hub.example.edu")
    settings = planner.desired_settings(droplet)
    assert names(planner.https_steps(droplet, settings, {}, provisioning=False)) == [
        "dns",
        "https",
    ]
    own = make_course(provider="ssh", hostname="hub.example.edu")
    assert names(planner.https_steps(own, settings, {}, provisioning=False)) == ["https"]
    assert planner.https_steps(make_course(), settings, {}, provisioning=True) == []


def test_hub_settings_step_only_for_what_differs() -> None:
    course = make_course()
    settings = planner.desired_settings(course)
    [step] = planner.hub_settings_steps(settings, {})
    assert step.reload is Reload.HUB
    assert "auth." not in step.reason and "https." not in step.reason


def test_packages_are_planned_per_manager_for_what_is_missing() -> None:
    course = make_course(apt=("graphviz",), pip=("numpy==2.0",))
    seen = Observed(reachable=True, apt={"graphviz": "2.42"}, pip={})
    assert names(planner.package_steps(course, seen)) == ["pip"]


def test_closing_steps_reload_what_the_steps_need_once_then_verify_and_record() -> None:
    changed = [
        Step("a", "a", "true", reload=Reload.PROXY),
        Step("b", "b", "true", reload=Reload.HUB),
        Step("c", "c", "true", reload=Reload.HUB),
    ]
    closing = planner.closing_steps(changed, {"k": "v"})
    assert names(closing) == ["reload", "verify", "state"]
    assert "hub and proxy" in closing[0].reason
    quiet = planner.closing_steps([Step("a", "a", "true")], {})
    assert names(quiet) == ["verify", "state"]


def test_the_api_service_is_written_only_when_it_differs() -> None:
    from deploy.host import tljh

    assert names(planner.api_service_steps(Observed(reachable=True))) == ["api-service"]
    same = Observed(reachable=True, api_service=tljh.API_SERVICE_CONFIG)
    assert planner.api_service_steps(same) == []
