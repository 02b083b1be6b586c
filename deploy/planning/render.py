"""Render plans, their results and a server's status as Markdown for check runs and comments.

Pure. Reasons quote repository values (package names, hostnames), so every piece of text
is escaped before it reaches Markdown: a value cannot break the table, add a link, a
mention's formatting, or raw HTML. Step output is redacted before it is shown.
"""

from __future__ import annotations

import re

from deploy.model import Observed, Plan, StepResult
from deploy.redact import redact

NOTHING_TO_DO = "Nothing to do: the server already matches the repository."

# Characters that give Markdown meaning mid-line; "(" only matters after "]", escaped too.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_OUTPUT_TAIL_CHARS = 2000


def escape(text: object) -> str:
    """``text`` as literal Markdown on one line (safe in a table cell)."""
    flat = " ".join(str(text).split())
    flat = "".join(_HTML.get(c, c) for c in flat)
    # "@name" would notify a person or team; a zero-width joiner keeps it plain text.
    flat = flat.replace("@", "@\u2060")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _fence(text: str) -> str:
    """A fenced code block that no run of backticks inside ``text`` can close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _kept_line(plan: Plan) -> str:
    return "Kept installed (prune is off): " + ", ".join(escape(k) for k in plan.kept)


def render_plan(plan: Plan, *, results: list[StepResult] | None = None) -> str:
    """The plan as a Markdown table; with ``results``, each step's outcome and duration."""
    lines: list[str] = []
    if plan.empty:
        lines.append(NOTHING_TO_DO)
    else:
        by_index = _match_results(plan, results or [])
        if results is None:
            lines += ["| # | step | why |", "|---|---|---|"]
        else:
            lines += ["| # | step | why | result | duration |", "|---|---|---|---|---|"]
        for number, step in enumerate(plan.steps, start=1):
            row = f"| {number} | {escape(step.name)} | {escape(step.reason)} |"
            if results is not None:
                result = by_index.get(number - 1)
                if result is None:
                    row += " not run | |"
                else:
                    outcome = "✅ done" if result.ok else "❌ failed"
                    row += f" {outcome} | {format_duration(result.seconds)} |"
            lines.append(row)
        for result in results or []:
            if not result.ok and result.output_tail:
                tail = redact(result.output_tail)[-_OUTPUT_TAIL_CHARS:]
                lines += [
                    "",
                    f"Output of the failed step {escape(result.step.name)}:",
                    _fence(tail),
                ]
    if plan.kept:
        lines += ["", _kept_line(plan)]
    for note in plan.notes:
        lines += ["", f"⚠️ {escape(note)}"]
    return "\n".join(lines) + "\n"


def _match_results(plan: Plan, results: list[StepResult]) -> dict[int, StepResult]:
    """Pair each result with its step: the executor runs steps in order and stops at a failure."""
    matched: dict[int, StepResult] = {}
    position = 0
    for result in results:
        for index in range(position, len(plan.steps)):
            if plan.steps[index] == result.step:
                matched[index] = result
                position = index + 1
                break
    return matched


def render_status(
    observed: Observed | None,
    *,
    hub_url: str | None = None,
    plan: Plan | None = None,
) -> str:
    """What /status answers: the server, TLJH, services, resources, packages and drift."""
    if observed is None or not observed.reachable:
        return "The server could not be reached over SSH.\n"
    rows: list[tuple[str, str]] = []
    if hub_url:
        rows.append(("hub", escape(hub_url)))
    os_name = " ".join(p for p in (observed.os_id, observed.os_version) if p)
    rows.append(("operating system", escape(os_name or "unknown")))
    if observed.tljh_installed:
        rows.append(("TLJH", escape(observed.tljh_version or "installed, version unknown")))
    else:
        rows.append(("TLJH", "not installed"))
    for unit, answer in observed.services.items():
        rows.append((escape(unit), escape(answer)))
    if observed.disk_used_percent is not None:
        free = (
            f", {format_bytes(observed.disk_free_bytes)} free"
            if observed.disk_free_bytes is not None
            else ""
        )
        rows.append(("disk (/home)", f"{observed.disk_used_percent:g}% used{free}"))
    if observed.memory_total_bytes is not None:
        available = (
            f"{format_bytes(observed.memory_available_bytes)} available of "
            if observed.memory_available_bytes is not None
            else ""
        )
        rows.append(("memory", f"{available}{format_bytes(observed.memory_total_bytes)}"))
    rows.append(
        (
            "packages",
            f"{len(observed.apt)} apt, {len(observed.conda)} conda, {len(observed.pip)} pip",
        )
    )
    applied_at = observed.state.get("applied_at")
    if isinstance(applied_at, str):
        rows.append(("last applied", escape(applied_at)))
    lines = ["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in rows]
    if plan is not None:
        lines.append("")
        if plan.empty:
            lines.append("The server matches the repository.")
        else:
            changing = [s for s in plan.steps if s.changes_server]
            lines.append(
                f"The server differs from the repository: {len(changing)} step(s) would "
                "change it (`/plan` shows them)."
            )
        if plan.kept:
            lines.append(_kept_line(plan))
    return "\n".join(lines) + "\n"
