"""Tests for the Markdown rendering of plans, results and status."""

from __future__ import annotations

import re

from deploy.model import Observed, Plan, Step, StepResult
from deploy.planning.render import (
    NOTHING_TO_DO,
    escape,
    format_duration,
    render_plan,
    render_status,
)
from deploy.redact import add_secrets

APT = Step("apt", "apt.txt adds graphviz", "set -eu\napt-get update\n")
VERIFY = Step("verify", "check the hub answers", "curl ...", changes_server=False)
STATE = Step("state", "record what was applied", "printf ...")
PLAN = Plan(steps=(APT, VERIFY, STATE))


def table_rows(markdown: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            # Split on pipes that are not escaped.
            cells = re.split(r"(?<!\\)\|", line)[1:-1]
            rows.append([c.strip() for c in cells])
    return rows


def test_empty_plan_says_nothing_to_do() -> None:
    assert render_plan(Plan(steps=())).strip() == NOTHING_TO_DO


def test_plan_with_only_non_changing_steps_is_nothing_to_do() -> None:
    assert render_plan(Plan(steps=(VERIFY,))).startswith(NOTHING_TO_DO)


def test_plan_table_lists_steps_in_order_with_reasons() -> None:
    rows = table_rows(render_plan(PLAN))
    assert rows[0] == ["#", "step", "why"]
    assert rows[1] == ["1", "apt", "apt.txt adds graphviz"]
    assert [r[1] for r in rows[1:]] == ["apt", "verify", "state"]


def test_results_add_outcome_and_duration_and_mark_steps_not_run() -> None:
    results = [StepResult(APT, ok=False, seconds=75.2, output_tail="E: Unable to locate")]
    markdown = render_plan(PLAN, results=results)
    rows = table_rows(markdown)
    assert rows[0] == ["#", "step", "why", "result", "duration"]
    assert rows[1][3:] == ["❌ failed", "1 min 15 s"]
    assert rows[2][3:] == ["not run", ""]
    assert "```\nE: Unable to locate\n```" in markdown


def test_successful_results() -> None:
    results = [StepResult(APT, True, 3.25), StepResult(VERIFY, True, 0.5)]
    rows = table_rows(render_plan(PLAN, results=results))
    assert rows[1][3:] == ["✅ done", "3.2 s"]
    assert rows[2][3:] == ["✅ done", "0.5 s"]


def test_failed_output_is_redacted_and_cannot_close_its_fence() -> None:
    add_secrets(["hunter2-very-secret-password"])
    tail = "token hunter2-very-secret-password\n```\n# injected heading"
    markdown = render_plan(PLAN, results=[StepResult(APT, False, 1.0, tail)])
    assert "hunter2-very-secret-password" not in markdown
    assert "[REDACTED]" in markdown
    assert "````\n" in markdown  # a longer fence than the output's own backticks


def test_kept_packages_are_listed() -> None:
    markdown = render_plan(Plan(steps=(), kept=("jq (apt)", "requests (pip)")))
    assert NOTHING_TO_DO in markdown
    assert "Kept installed (prune is off): jq (apt), requests (pip)" in markdown


def test_repository_values_cannot_break_the_table_or_add_markup() -> None:
    hostile = Step("apt", "apt.txt adds a|b <img src=x> [link](http://x) *bold* `code`\nnext", "")
    markdown = render_plan(Plan(steps=(hostile,)))
    rows = table_rows(markdown)
    assert len(rows) == 2 and len(rows[1]) == 3
    assert "<img" not in markdown and "&lt;img" in markdown
    assert "\\|" in markdown and "\\[link\\]" in markdown and "\\*bold\\*" in markdown
    assert "\\`code\\`" in markdown
    assert len(markdown.strip().splitlines()) == 3  # the newline did not start a new row


def test_escape_defuses_mentions() -> None:
    assert "@org" not in escape("@org/team")


def test_format_duration() -> None:
    assert format_duration(0.04) == "0.0 s"
    assert format_duration(59.9) == "59.9 s"
    assert format_duration(125) == "2 min 5 s"
    assert format_duration(3 * 3600 + 60) == "3 h 1 min"


def test_status_of_a_running_hub() -> None:
    observed = Observed(
        os_id="ubuntu",
        os_version="24.04",
        tljh_installed=True,
        tljh_version="2.0.0",
        services={"jupyterhub": "active", "traefik": "failed"},
        disk_used_percent=25.0,
        disk_free_bytes=3 * 1024**3,
        memory_total_bytes=4 * 1024**3,
        memory_available_bytes=1024**3,
        apt={"jq": "1"},
        state={"applied_at": "2025-01-01T00:00:00Z"},
    )
    rows = dict(r for r in table_rows(render_status(observed, hub_url="https://hub.example.edu")))
    assert rows["TLJH"] == "2.0.0"
    assert rows["jupyterhub"] == "active" and rows["traefik"] == "failed"
    assert rows["disk (/home)"] == "25% used, 3.0 GiB free"
    assert rows["memory"] == "1.0 GiB available of 4.0 GiB"
    assert rows["packages"] == "1 apt, 0 conda, 0 pip"
    assert rows["operating system"] == "ubuntu 24.04"


def test_status_reports_drift_from_a_plan() -> None:
    observed = Observed(tljh_installed=False)
    assert "TLJH | not installed" in render_status(observed)
    assert "2 step(s) would change it" in render_status(observed, plan=PLAN)
    assert "matches the repository" in render_status(observed, plan=Plan(steps=()))


def test_status_of_an_unreachable_server() -> None:
    assert "could not be reached" in render_status(None)
    assert "could not be reached" in render_status(Observed(reachable=False))
