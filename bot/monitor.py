"""Monitoring: probe every course's hub on its schedule, keep the status badge true, and
open one issue when a hub is down (closing it when the hub is back).

A hub is up only when ``GET {hub}/hub/api`` answers 200 with JSON holding a version: a
redirect, a 502 or a timeout is down. An SSH look at the services and the disk adds what
a person needs to act; when the hub's service is inactive, one restart is asked for.

When the course's droplet is gone (DigitalOcean answers 404 for it, or no droplet has the
course's name and tag), the issue says so and names ``/recover``, and no restart is asked
for: there is nothing to restart.

The monitor changes nothing itself: a restart is a ``restart`` job of the course's queue
(source ``monitor``), so it waits for a deploy or resize under way instead of cutting into
it. While a job of the course runs, the hub may be down on purpose: a failed probe that
overlaps a job does not count towards an outage, so no issue opens during a deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot import store as st
from bot.backup_schedule import BackupSchedule
from bot.bounded import BodyTooLarge, read_capped
from bot.jobs.registry import enqueue_operation
from bot.services import Services
from deploy import operations
from deploy.ownership import course_tag
from deploy.volumes.recover import lost_droplet

logger = logging.getLogger(__name__)

ISSUE_TITLE = "Classroom server is down"
SIGNUPS_TITLE = "Students waiting for approval"
FAILURES_BEFORE_ISSUE = 2
DISK_WARNING_PERCENT = 90.0
RESTART_ASKED = "was asked for; its result is posted here"
# The hub's /hub/api answer is a few dozen bytes; more is not a hub.
PROBE_LIMIT = 64 * 1024


@dataclass
class HubProbe:
    up: bool
    detail: str
    version: str | None = None


async def probe_hub(session: aiohttp.ClientSession, hub_url: str, timeout: float) -> HubProbe:
    """Ask the hub's API for its version, as a browser would reach it."""
    url = f"{hub_url.rstrip('/')}/hub/api"
    try:
        async with session.get(
            url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.status != 200:
                return HubProbe(False, f"{url} answered HTTP {response.status}")
            try:
                data = json.loads(await read_capped(response, PROBE_LIMIT, f"{url}'s answer"))
            except BodyTooLarge as exc:
                return HubProbe(False, str(exc))
            except ValueError:
                return HubProbe(False, f"{url} answered 200 but not with JSON")
            version = data.get("version") if isinstance(data, dict) else None
            if not isinstance(version, str):
                return HubProbe(False, f"{url} answered JSON without a version")
            return HubProbe(True, f"{url} answered: JupyterHub {version}", version)
    except TimeoutError:
        return HubProbe(False, f"{url} did not answer within {timeout:.0f} s")
    except aiohttp.ClientError as exc:
        return HubProbe(False, f"{url} could not be reached: {type(exc).__name__}")


def lost_droplet_body(hub_url: str, probes: list[str], lost: str) -> str:
    """The outage issue when the droplet itself is gone: what to comment to get it back."""
    return "\n".join(
        [
            f"The course hub at {hub_url} did not answer {FAILURES_BEFORE_ISSUE} checks in a "
            "row, and its droplet is gone.",
            "",
            "What was seen:",
            *[f"- {p}" for p in probes],
            f"- {lost}",
            "",
            "The students' homes and the hub's accounts are on the course's volume, which is "
            "kept. A person with write access can comment `/recover` to make a new droplet "
            "with that volume, the students' accounts and the course's address; students "
            "then log in with their old passwords and find their files.",
            "",
            "This issue closes by itself when the hub answers again.",
        ]
    )


def issue_body(hub_url: str, probes: list[str], look: dict[str, Any], restarted: str | None) -> str:
    lines = [
        f"The course hub at {hub_url} did not answer {FAILURES_BEFORE_ISSUE} checks in a row.",
        "",
        "What was seen:",
        *[f"- {p}" for p in probes],
    ]
    if look:
        services = ", ".join(f"{k}: {v}" for k, v in look.get("services", {}).items())
        if services:
            lines.append(f"- services: {services}")
        if look.get("disk_used_percent") is not None:
            lines.append(f"- disk {look['disk_used_percent']:.0f}% full")
        if look.get("error"):
            lines.append(f"- SSH: {look['error']}")
    if restarted:
        lines += ["", f"An automatic restart of the hub {restarted}."]
    lines += [
        "",
        "This issue closes by itself when the hub answers again. Comment `/status` for "
        "details or `/restart` to restart the hub.",
    ]
    return "\n".join(lines)


def signups_issue_body(waiting: int, console_url: str) -> str:
    """How many students wait, and where to approve them; no names (the repo may be public)."""
    people = "1 student is" if waiting == 1 else f"{waiting} students are"
    return (
        f"{people} waiting for approval on the hub.\n\n"
        f"Approve or discard them on the console: {console_url}\n\n"
        "This issue follows the number and closes by itself when nobody is waiting. "
        "Names are shown only on the console, to people with write access."
    )


class Monitor:
    def __init__(
        self,
        services: Services,
        *,
        tick: float = 15.0,
        http_timeout: float = 10.0,
        concurrency: int = 20,
    ) -> None:
        self.services = services
        self.tick = tick
        self.http_timeout = http_timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._next_due: dict[str, float] = {}
        self._states: dict[str, st.MonitorState] | None = None
        self._courses: list[tuple[st.Course, dict[str, Any]]] = []
        self._courses_read_at = 0.0
        self.rounds = 0
        self.backups = BackupSchedule(services.store, self._ask_backup)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_round()
            except Exception:
                logger.exception("monitoring round failed")
            # Wake for the next course due (so probes stay spread out, not batched per
            # tick), and at least every tick to notice new courses.
            soonest = min(self._next_due.values(), default=time.time() + self.tick)
            await asyncio.sleep(max(0.5, min(self.tick, soonest - time.time())))

    async def run_round(self, *, force: bool = False) -> int:
        """Probe every course that is due; returns how many were probed."""
        if self._states is None:
            self._states = await self.services.store.monitor_states()
        now = time.time()
        if force or now - self._courses_read_at >= self.tick:
            # Re-read the courses once a tick; between reads the loop only compares times.
            self._courses = await self.services.store.monitored_courses()
            self._courses_read_at = now
            try:
                await self.backups.run(self._courses, datetime.now(UTC))
            except Exception:
                logger.exception("scheduling backups failed")
        due = []
        for course, facts in self._courses:
            if not facts.get("hub_url") or not facts.get("monitor", True):
                continue
            every = float(facts.get("monitor_every", 300))
            if course.full_name not in self._next_due:
                # A course seen for the first time (a start, a new course) gets a random
                # place in its interval, so a thousand courses are spread over it instead of
                # probed in one burst that would compete with webhook intake.
                self._next_due[course.full_name] = now + random.uniform(0, every)
            if force or self._next_due[course.full_name] <= now:
                # Jitter keeps them spread from one round to the next.
                self._next_due[course.full_name] = now + every * random.uniform(0.9, 1.1)
                due.append((course, facts))
        await asyncio.gather(*(self._guarded(c, f) for c, f in due))
        self.rounds += 1
        return len(due)

    async def _guarded(self, course: st.Course, facts: dict[str, Any]) -> None:
        async with self._limit:
            try:
                await self.probe_course(course, facts)
            except Exception:
                logger.exception("probe failed", extra={"course": course.full_name})

    async def probe_course(self, course: st.Course, facts: dict[str, Any]) -> st.MonitorState:
        if self._states is None:
            self._states = await self.services.store.monitor_states()
        state = self._states.setdefault(course.full_name, st.MonitorState(course.full_name))
        recorded = (
            state.state,
            state.failures,
            state.issue_number,
            state.detail.get("signups_issue"),
            state.detail.get("waiting"),
        )
        runner = self.services.runner
        course_name = course.full_name
        activity = runner.activity(course_name)
        busy = course_name in runner.busy_courses
        probe = await probe_hub(self.services.session, facts["hub_url"], self.http_timeout)
        # A job of the course started, ran or ended around the probe: a deploy, resize or
        # restart may take the hub down on purpose, so a failure now is no evidence.
        busy = busy or runner.activity(course_name) != activity
        now = time.time()
        state.checked_at = now
        probes = [*list(state.detail.get("probes", []))[-4:], probe.detail]
        state.detail["probes"] = probes
        if probe.up:
            look = await self._look(course.full_name)
            state.detail["look"] = look
            disk = look.get("disk_used_percent")
            state.detail["disk_warning"] = bool(disk is not None and disk > DISK_WARNING_PERCENT)
            if state.state != "up":
                state.changed_at = now
            was_down = state.state == "down"
            state.state, state.failures = "up", 0
            state.detail["restart_tried"] = False
            if facts.get("monitor_signups", True):
                await self._follow_signups(course, state, look.get("waiting"))
            if state.issue_number is not None:
                await self._close_issue(course, state, probe.detail)
            elif was_down:
                logger.info("hub back up", extra={"course": course.full_name})
        elif busy:
            state.detail["probes"][-1] = f"{probe.detail} (during a job; not counted)"
        else:
            state.failures += 1
            if state.failures >= FAILURES_BEFORE_ISSUE:
                if state.state != "down":
                    state.changed_at = now
                state.state = "down"
                # Asked once, when the issue opens: a down course costs no API calls per probe.
                lost = None if state.issue_number else await self._lost(course.full_name, facts)
                look = {} if lost else await self._look(course.full_name)
                state.detail["look"] = look
                inactive = look.get("services", {}).get("jupyterhub") not in (None, "active")
                restart = inactive and not state.detail.get("restart_tried")
                if state.issue_number is None and facts.get("monitor_issue", True):
                    body = (
                        lost_droplet_body(facts["hub_url"], probes[-FAILURES_BEFORE_ISSUE:], lost)
                        if lost
                        else issue_body(
                            facts["hub_url"],
                            probes[-FAILURES_BEFORE_ISSUE:],
                            look,
                            RESTART_ASKED if restart else None,
                        )
                    )
                    state.issue_number = await self.services.reporter.open_issue(
                        course.installation_id, course.full_name, ISSUE_TITLE, body
                    )
                if restart:
                    state.detail["restart_tried"] = True
                    await self.request_restart(course, facts, state.issue_number)
        # Only changes are written: a thousand healthy hubs cost no disk writes per round.
        if (
            state.state,
            state.failures,
            state.issue_number,
            state.detail.get("signups_issue"),
            state.detail.get("waiting"),
        ) != recorded:
            await self.services.store.save_monitor_state(state)
        return state

    async def _follow_signups(
        self, course: st.Course, state: st.MonitorState, waiting: object
    ) -> None:
        """One issue while students wait: opened, its number kept current, closed at 0."""
        if not isinstance(waiting, int):
            return  # the look failed or the hub has no database: nothing known
        issue = state.detail.get("signups_issue")
        number = issue if isinstance(issue, int) else None
        if waiting == state.detail.get("waiting") and (number is not None) == (waiting > 0):
            return
        reporter = self.services.reporter
        body = signups_issue_body(waiting, self.services.settings.course_page_url(course.full_name))
        if waiting > 0 and number is None:
            state.detail["signups_issue"] = await reporter.open_issue(
                course.installation_id, course.full_name, SIGNUPS_TITLE, body
            )
        elif waiting > 0 and number is not None:
            await reporter.update_issue(course.installation_id, course.full_name, number, body)
        elif number is not None:
            await reporter.close_issue(
                course.installation_id,
                course.full_name,
                number,
                "Nobody is waiting for approval any more. Closing.",
            )
            state.detail["signups_issue"] = None
        state.detail["waiting"] = waiting

    async def _look(self, course: str) -> dict[str, Any]:
        engine = self.services.engine
        try:
            return await operations.look(engine, course)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    async def _lost(self, course: str, facts: dict[str, Any]) -> str | None:
        """Why the course's droplet counts as gone, or None (also when nobody can tell)."""
        engine = self.services.engine
        try:
            droplets = await engine.droplets_for(course)
            if droplets is None:
                return None
            record = await engine.records.get_server(course)
            repo_id = facts.get("repo_id")
            owner = course_tag(repo_id) if isinstance(repo_id, int) else None
            return await lost_droplet(droplets, record, facts.get("server_name"), owner)
        except Exception:
            logger.exception("could not tell whether the droplet is gone", extra={"course": course})
            return None

    async def request_restart(
        self, course: st.Course, facts: dict[str, Any], issue_number: int | None
    ) -> int | None:
        """Queue a restart of the course's hub, as ``/restart`` would; its result is posted
        on the outage issue, if one is open."""
        payload: dict[str, Any] = {"default_branch": facts.get("branch")}
        if issue_number is not None:
            payload["issue_number"] = issue_number
        return await enqueue_operation(
            self.services,
            course.full_name,
            "restart",
            installation_id=course.installation_id,
            user=None,
            source="monitor",
            payload=payload,
        )

    async def _ask_backup(self, course: st.Course, facts: dict[str, Any]) -> int | None:
        """Queue the course's scheduled snapshot, the job ``/backup`` asks for."""
        return await enqueue_operation(
            self.services,
            course.full_name,
            "backup",
            installation_id=course.installation_id,
            user=None,
            source="schedule",
            payload={"default_branch": facts.get("branch")},
        )

    async def note_up(self, course: str, detail: str) -> None:
        """The hub was seen answering outside a probe (the runner's ``on_hub_up`` hook: a
        deploy's own check): the badge says up at once instead of at the next probe, and
        the monitor's own copy stays true."""
        if self._states is None:
            self._states = await self.services.store.monitor_states()
        state = self._states.setdefault(course, st.MonitorState(course))
        await _mark_up(self.services, state, detail)

    async def _close_issue(self, course: st.Course, state: st.MonitorState, detail: str) -> None:
        assert state.issue_number is not None
        await self.services.reporter.close_issue(
            course.installation_id,
            course.full_name,
            state.issue_number,
            f"The hub answers again ({detail}). Closing.",
        )
        state.issue_number = None


async def _mark_up(services: Services, state: st.MonitorState, detail: str) -> None:
    # An open outage issue stays for the monitor's next probe to close, with its evidence.
    now = time.time()
    if state.state != "up":
        state.changed_at = now
    state.state, state.failures, state.checked_at = "up", 0, now
    state.detail["restart_tried"] = False
    state.detail["probes"] = [*list(state.detail.get("probes", []))[-4:], detail]
    await services.store.save_monitor_state(state)


async def badge_state(services: Services, course: str) -> str:
    """up, down, deploying or unknown: what the README's status badge shows."""
    running = await services.store.jobs(course=course, states=[st.RUNNING])
    if any(job.kind == "deploy" for job in running):
        return "deploying"
    state = await services.store.monitor_state(course)
    return state.state if state.state in ("up", "down") else "unknown"
