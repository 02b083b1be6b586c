"""``shared:`` in classroom.yml, and the plan's shared-folder steps and scripts (pure)."""

from __future__ import annotations

import pytest

from deploy.course.config import load_course
from deploy.host import shared
from deploy.model import ConfigErrors, Observed, SharedFolder
from deploy.planning import planner

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def course(shared_yaml: str, extra: str = "", provider: str = "digitalocean"):
    server = "server:\n  provider: ssh\n  host: hub.example.edu\n" if provider == "ssh" else ""
    text = f"{server}{extra}shared:\n{shared_yaml}"
    return load_course({".github/classroom.yml": text.encode()}, "octo-org", "physics101")


def errors(shared_yaml: str) -> str:
    with pytest.raises(ConfigErrors) as raised:
        course(shared_yaml)
    return str(raised.value)


def test_read_only_and_writable_folders_are_read():
    config = course("  - from: data/\n    to: data\n  - writable: notes\n")
    assert config.shared == (SharedFolder("data", "data"), SharedFolder("notes", None))


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("  - from: /etc\n    to: data\n", ":2: shared[0].from: '/etc' is an absolute path"),
        ("  - from: ../up\n    to: data\n", ":2: shared[0].from: '../up' is not a repository"),
        ("  - from: data/../..\n    to: d\n", "shared[0].from:"),
        ("  - from: .git\n    to: d\n", "'.git' is not a repository folder"),
        ("  - from: data/\n    to: a/b\n", "shared[0].to: 'a/b' is not a folder name"),
        ("  - from: data/\n    to: ..\n", "shared[0].to: '..' is not a folder name"),
        ("  - writable: ../notes\n", "shared[0].writable:"),
        ("  - from: data/\n", ":2: shared[0].to: is required"),
        ("  - to: data\n", ":2: shared[0].from: is required"),
        ("  - {from: data/, to: d, writable: n}\n", "not both"),
        ("  - {from: data/, into: d}\n", "shared[0].into: is not a known key; allowed here: from"),
        ("  - writable: notes\n  - writable: notes\n", ":3: shared[1]: 'notes' is named twice"),
        (
            "  - {from: a/, to: x}\n  - writable: x\n",
            "named twice under ~/shared (first on line 2)",
        ),
        ("  - data\n", "shared[0]: must be a mapping"),
    ],
)
def test_bad_entries_name_file_line_and_what_is_allowed(entry, says):
    found = errors(entry)
    assert found.startswith(".github/classroom.yml:")
    assert says in found


def test_shared_must_be_a_list():
    with pytest.raises(ConfigErrors, match=r"classroom.yml:1: shared: must be a list"):
        load_course({".github/classroom.yml": b"shared: data\n"}, "o", "r")


def installed(state: dict | None = None) -> Observed:
    """A server with TLJH; with ``state``, also the shared folders that state records."""
    record = (state or {}).get(shared.STATE_KEY) or {}
    return Observed(
        tljh_installed=True,
        tljh_version="2.0.0",
        tljh_config={},
        state=state or {},
        shared_laid_out=bool(record),
        shared_commit=record.get("commit") or "",
    )


def names(plan) -> list[str]:
    return [step.name for step in plan.steps]


def applied_state(config, commit, seen) -> dict:
    """The state file a deploy writes (what the next plan is compared with)."""
    plan = planner.plan(config, seen, commit=commit, applied_at="2026-01-01T00:00:00Z")
    state_step = next(s for s in plan.steps if s.name == "state")
    assert shared.STATE_KEY in state_step.script
    return {shared.STATE_KEY: shared.state_record(config, commit, seen)}


def test_first_deploy_lays_out_then_fetches_and_the_same_commit_needs_nothing():
    config = course("  - from: data/\n    to: data\n  - writable: notes\n", provider="ssh")
    seen = installed()
    first = names(planner.plan(config, seen, commit=COMMIT_A))
    assert first.index("shared-folders") < first.index("shared-fetch")
    state = applied_state(config, COMMIT_A, seen)
    again = planner.plan(config, installed(state), commit=COMMIT_A)
    assert not {"shared-folders", "shared-fetch"} & set(names(again))


def test_a_new_commit_fetches_only_and_a_plan_without_commit_fetches_nothing():
    config = course("  - from: data/\n    to: data\n", provider="ssh")
    state = applied_state(config, COMMIT_A, installed())
    steps = names(planner.plan(config, installed(state), commit=COMMIT_B))
    assert "shared-fetch" in steps and "shared-folders" not in steps
    assert "shared-fetch" not in names(planner.plan(config, installed(state)))


def test_removing_shared_removes_links_only():
    config = course("  - from: data/\n    to: data\n  - writable: notes\n", provider="ssh")
    state = applied_state(config, COMMIT_A, installed())
    bare = load_course(
        {".github/classroom.yml": b"server: {provider: ssh, host: h.example.edu}\n"}, "o", "r"
    )
    plan = planner.plan(bare, installed(state))
    step = next(s for s in plan.steps if s.name == "shared-folders")
    assert "rm -rf" not in step.script
    assert 'rm -f "$entry"' in step.script and '[ -L "$entry" ] || continue' in step.script


def test_writable_folders_are_on_the_volume_with_storage():
    config = course("  - writable: notes\n", extra="storage: {size: 20}\n")
    script = shared.layout_script(config)
    assert "/mnt/classroom-home/shared/notes" in script
    assert "chmod 2775 /mnt/classroom-home/shared/notes" in script
    without = shared.layout_script(course("  - writable: notes\n", provider="ssh"))
    assert "/mnt/classroom-home" not in without
    assert "chmod 2775 /srv/shared/notes" in without


def test_nothing_is_written_under_home():
    config = course("  - from: data/\n    to: data\n  - writable: notes\n", provider="ssh")
    script = shared.layout_script(config)
    assert "/home" not in script
    assert "/etc/skel/shared" in script


async def _no_token() -> str:
    raise AssertionError("not called")


def test_the_fetch_script_reads_the_token_from_stdin_and_never_holds_it():
    source = shared.SharedSource("https://github.com/octo-org/physics101.git", COMMIT_A, _no_token)
    config = course("  - from: data/\n    to: data\n", provider="ssh")
    script = shared.fetch_script(source, shared.read_only(config))
    assert "IFS= read -r token" in script
    assert "export" not in script
    # Only git's own environment carries it; the helper names the variable.
    assert f'{shared.TOKEN_VARIABLE}="$token" ' in script
    assert "x-access-token:" not in script


@pytest.mark.parametrize(
    ("url", "commit"),
    [
        ("https://github.com/octo-org/physics101.git; rm -rf /", COMMIT_A),
        ("http://example.com/octo-org/physics101.git", COMMIT_A),
        ("https://user:pw@github.com/o/r.git", COMMIT_A),
        ("https://github.com/octo-org/physics101.git", "main"),
        ("https://github.com/octo-org/physics101.git", COMMIT_A + "\n"),
    ],
)
def test_a_source_with_a_bad_url_or_commit_is_refused(url, commit):
    shared.SharedSource("https://github.com/octo-org/physics101.git", COMMIT_A, _no_token)
    with pytest.raises(ValueError):
        shared.SharedSource(url, commit, _no_token)


def test_a_new_droplet_under_a_remembered_layout_is_laid_out_and_fetched_again():
    config = course("  - from: data/\n    to: data\n  - writable: notes\n", provider="ssh")
    state = applied_state(config, COMMIT_A, installed())
    fresh = Observed(tljh_installed=True, tljh_version="2.0.0", state=state)
    steps = names(planner.plan(config, fresh, commit=COMMIT_A))
    assert "shared-folders" in steps and "shared-fetch" in steps


def test_the_observer_reads_the_layout_and_the_clones_commit():
    assert shared.parse_observed(f"shared-laid-out\n{COMMIT_A}\n") == (True, COMMIT_A)
    assert shared.parse_observed("") == (False, "")
    assert shared.parse_observed("fatal: not a git repository\n") == (False, "")
