"""The instructor console: sign in with GitHub, see your courses, run their operations.

Routes: ``GET /login``, ``GET /login/callback``, ``POST /logout``, ``GET /courses``,
``GET /courses/{owner}/{repo}`` (with its ``jobs.json`` for live progress, its
``gradebook.csv``, and POSTs for
the operation buttons, the course's own DigitalOcean token and the hub's accounts:
approve or discard a waiting sign-up, an admin's own hub password, a student's reset).

Who sees what (``bot.web.access``): a course page, and every POST under it, is served only
to people who are admin, maintain or write on the repository. Everyone else gets the same
404 as for an unknown course, and their POSTs change nothing.

Every POST that changes a server asks for a registry entry's ``command`` job in the
course's queue (the buttons' forms come from the entries' grammars, ``bot.web.forms``; the
hub accounts' forms ask for ``approve``, ``discard``, ``hub-password`` and
``reset-password``) and answers 303 to the course page, which follows the job; the job
checks the permission again. A password typed here reaches its job by a handle to memory
(``bot.secret_handles``), never in the job's arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from cachetools import TTLCache

from bot import backup_schedule, course_tokens
from bot.github.oauth import OAuthError, TokenRejected
from bot.jobs import registry
from bot.jobs.course import LIVE_LOGS
from bot.store import FINAL_STATES, RUNNING, Course, Job
from bot.web import forms, sessions
from bot.web.access import (
    ACCESS,
    AccessState,
    SignedIn,
    course_for,
    fingerprint,
    is_admin,
    oauth_client,
    permission,
    permitted,
    services_of,
    signed_in,
    user_repositories,
)
from deploy import operations as engine_operations
from deploy.host import accounts as hub_accounts
from deploy.host import assignments
from deploy.host.assignments import AssignmentError, Submission
from deploy.model import HubAccounts
from deploy.operations import coursework
from deploy.redact import redact

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SIZES_TTL = 600.0
POWER_TTL = 30.0
CODE_LENGTH = 200
RECENT_JOBS = 10
HUB_ACCOUNTS_TIMEOUT = 5.0
GRADEBOOK_TIMEOUT = 10.0


def console_operation(name: str) -> registry.Operation | None:
    """The entry behind a console button: every registry entry with a button."""
    return next((op for op in registry.buttons() if op.name == name), None)


def operation_forms(
    sizes: list[Any], current_size: str | None, facts: dict[str, Any]
) -> list[forms.FormView]:
    """A form per entry with a button, with the lists its fields offer: the region's
    sizes and the course's assignments."""
    known = facts.get("assignments")
    names = known.get("names") if isinstance(known, dict) else None
    choices = {
        "sizes": [
            forms.Choice(
                s.slug,
                f"{s.slug}: {s.vcpus} vCPU, {s.memory / 1024:.1f} GiB, "
                f"${s.price_monthly:.2f}/month",
            )
            for s in sizes
        ],
        "assignments": [forms.Choice(n, n) for n in names or [] if isinstance(n, str)],
    }
    selected = {"sizes": current_size or ""}
    return [forms.form_view(op, choices, selected) for op in registry.buttons()]


class ConsoleState:
    """DigitalOcean facts the pages show, cached briefly."""

    def __init__(self) -> None:
        self.sizes: TTLCache[str, list[Any]] = TTLCache(100, SIZES_TTL)
        self.power: TTLCache[tuple[str, int], str] = TTLCache(10_000, POWER_TTL)

    def clear(self) -> None:
        self.sizes.clear()
        self.power.clear()


CONSOLE = web.AppKey("console", ConsoleState)


def page_headers(response: web.StreamResponse, github_url: str) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = sessions.content_security_policy(github_url)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def render(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    services = services_of(request)
    context = {"app_slug": services.app_slug or "littlest-classroom", **context}
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    page_headers(response, services.settings.github_url)
    return response


def message(request: web.Request, title: str, text: str, status: int) -> web.Response:
    return render(request, "message.html", {"title": title, "text": text}, status)


def not_found(request: web.Request) -> web.Response:
    # The same answer for an unknown course and for one the person may not see.
    return message(request, "Not found", "There is no course here that you can open.", 404)


def login_redirect() -> web.HTTPFound:
    return web.HTTPFound("/login")


CourseHandler = Callable[[web.Request, SignedIn, Course], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def course_route(*, admins_only: str | None = None) -> Callable[[CourseHandler], Handler]:
    """A handler under ``/courses/{owner}/{repo}``, called with the person and the course.

    Every such page and POST starts the same way: a signed-out person is sent to sign in,
    a course they may not see is the same 404 as an unknown one, and with ``admins_only``
    (what the handler does, as "can ...") anyone but a repository admin gets a 403 saying
    so. Only then does the handler run, so a refused request changes nothing.
    """

    def decorate(handler: CourseHandler) -> Handler:
        @functools.wraps(handler)
        async def route(request: web.Request) -> web.StreamResponse:
            user = await signed_in(request)
            if user is None:
                raise login_redirect()
            course = await course_for(request, user)
            if course is None:
                return not_found(request)
            if admins_only and not is_admin(await permission(request, course, user.login)):
                return message(
                    request,
                    "Admins only",
                    f"Only an admin of the repository {admins_only}.",
                    403,
                )
            return await handler(request, user, course)

        return route

    return decorate


# -- pages ---------------------------------------------------------------------------------------


async def landing(request: web.Request) -> web.Response:
    """``GET /`` once the service is registered: what it is, install it, sign in."""
    services = services_of(request)
    slug = services.app_slug or "littlest-classroom"
    session = await aiohttp_session.get_session(request)
    return render(
        request,
        "landing.html",
        {
            "install_url": f"{services.settings.github_url}/apps/{slug}/installations/new",
            "can_sign_in": bool(services.settings.client_id),
            "login": session.get("login"),
            "csrf": sessions.csrf_token(session) if "login" in session else "",
        },
    )


async def login(request: web.Request) -> web.Response:
    services = services_of(request)
    oauth = oauth_client(request)
    if oauth is None:
        return message(
            request,
            "Sign-in is not set up",
            "This service has no GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET; the operator adds "
            "them from the GitHub App's settings.",
            503,
        )
    session = await aiohttp_session.get_session(request)
    state = secrets.token_urlsafe(32)
    session["oauth_state"] = state
    raise web.HTTPFound(
        oauth.authorize_url(f"{services.settings.public_url}/login/callback", state)
    )


async def login_callback(request: web.Request) -> web.Response:
    services = services_of(request)
    oauth = oauth_client(request)
    if oauth is None:
        return not_found(request)
    session = await aiohttp_session.get_session(request)
    expected = session.pop("oauth_state", None)
    state = request.query.get("state", "")
    code = request.query.get("code", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, state):
        return message(
            request,
            "Sign-in refused",
            "This sign-in link does not belong to this browser (its state does not match). "
            "Nothing was signed in. Start again from the sign-in link.",
            400,
        )
    if request.query.get("error"):
        # The person pressed Cancel on GitHub's page, or GitHub refused (error=access_denied).
        reason = request.query.get("error_description") or request.query["error"]
        return message(request, "Not signed in", f"GitHub did not sign you in: {reason}", 400)
    if not code or len(code) > CODE_LENGTH or not code.isascii():
        return message(request, "Sign-in refused", "GitHub sent no usable code.", 400)
    try:
        token = await oauth.exchange(code, f"{services.settings.public_url}/login/callback")
        user = await oauth.user(token)
    except OAuthError as exc:
        return message(request, "Sign-in failed", f"GitHub refused the sign-in: {exc}.", 400)
    # A fresh session for the signed-in person: nothing from before sign-in carries over.
    session = await aiohttp_session.new_session(request)
    session.update({"login": str(user["login"]), **token.as_session()})
    sessions.touch(session)
    sessions.csrf_token(session)
    request.app[ACCESS].verified[fingerprint(token.access_token)] = str(user["login"])
    logger.info("%s signed in to the console", user["login"])
    raise web.HTTPFound("/courses")


async def logout(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session.invalidate()
    raise web.HTTPSeeOther("/")


async def course_list(request: web.Request) -> web.Response:
    user = await signed_in(request)
    if user is None:
        raise login_redirect()
    services = services_of(request)
    try:
        repositories = await user_repositories(request, user)
    except TokenRejected:
        (await aiohttp_session.get_session(request)).invalidate()
        raise login_redirect() from None
    except OAuthError as exc:
        return message(request, "GitHub is not answering", str(exc), 502)
    names = [r["full_name"] for r in repositories if isinstance(r.get("full_name"), str)]
    rows = await services.store.courses_with_servers(names)
    visible = [(c, server) for c, server in rows if await permitted(request, c, user.login)]
    return render(request, "courses.html", {"user": user, "courses": visible})


def job_view(job: Job) -> dict[str, Any]:
    result = job.result or {}
    duration = (
        round(job.finished_at - job.started_at, 1)
        if job.finished_at is not None and job.started_at is not None
        else None
    )
    payload = job.payload
    what = payload.get("name") if job.kind == "command" else job.kind
    view = {
        "id": job.id,
        "operation": str(what or job.kind),
        "state": job.state,
        "done": job.state in FINAL_STATES,
        "conclusion": result.get("conclusion") or ("failure" if job.error else None),
        "title": str(result.get("title") or ""),
        "duration": duration,
        "user": str(payload.get("user") or ""),
        "source": str(payload.get("source") or job.kind),
        "log": redact(str(result.get("log") or result.get("summary") or job.error or "")),
    }
    live = LIVE_LOGS.get(job.id) if job.state == RUNNING else None
    if live is not None:
        view["log"] = live.text
        view["title"] = f"{live.title}: {len(live.lines)} lines so far"
    return view


async def region_sizes(request: web.Request, course: str, region: str | None) -> list[Any]:
    """DigitalOcean's sizes in the course's region (cached), for the resize picker."""
    services = services_of(request)
    if not region or services.engine is None:
        return []
    driver = await services.engine.droplets_for(course)
    if driver is None:
        return []
    state = request.app[CONSOLE]
    key = f"{id(driver)}:{region}"
    if key not in state.sizes:
        sizes = await driver.list_sizes()
        state.sizes[key] = [s for s in sizes if s.available and region in s.regions]
    return state.sizes[key]


async def droplet_power(request: web.Request, course: str, droplet_id: int) -> str:
    """The droplet's status as DigitalOcean reports it (active, off, …), cached briefly."""
    state = request.app[CONSOLE]
    key = (course, droplet_id)
    if key not in state.power:
        driver = await services_of(request).engine.droplets_for(course)
        state.power[key] = (await driver.get(droplet_id)).status if driver else "unknown"
    return state.power[key]


@course_route()
async def course_page(request: web.Request, user: SignedIn, course: Course) -> web.Response:
    services = services_of(request)
    name = course.full_name
    record = await services.store.get_server(name)
    facts = await services.store.course_facts(name)
    monitor = await services.store.monitor_state(name)
    jobs = [job_view(job) for job in await services.store.recent_jobs(name, RECENT_JOBS)]
    sizes: list[Any] = []
    size_problem = ""
    power = None
    if record is not None and record.provider == "digitalocean":
        try:
            sizes = await region_sizes(request, name, record.region)
            if record.droplet_id:
                power = await droplet_power(request, name, record.droplet_id)
        except Exception as exc:  # the page still shows, without the picker
            size_problem = redact(str(exc))
    token = await services.store.course_token(name)
    ssh_key = None
    if course.repo_id is not None and services.course_keys is not None:
        ssh_key = (await services.course_keys.for_repository(course.repo_id)).public_line
    admin = is_admin(await permission(request, course, user.login))
    hub = await hub_accounts_view(services, name, record)
    # A student's new password, made by a job this person asked for: shown once, here.
    reveals = services.secret_handles.reveal(name, user.login)
    # hub.admins are GitHub logins, lower-cased as hub names; this page needs write.
    own_account = user.login.lower() if user.login.lower() in facts.get("hub_admins", []) else None
    return render(
        request,
        "course.html",
        {
            "user": user,
            "course": name,
            "record": record,
            "hub_url": facts.get("hub_url"),
            "monitor": monitor,
            "tljh_version": facts.get("tljh_version"),
            "last_probe": (monitor.detail.get("probes") or [""])[-1],
            "jobs": jobs,
            "forms": operation_forms(sizes, record.size if record else None, facts),
            "power": power,
            "size_problem": size_problem,
            "token": token,
            "ssh_key": ssh_key,
            "admin": admin,
            "require_token": services.settings.require_course_token,
            "reveals": reveals,
            "hub_accounts": hub,
            "own_account": own_account,
            "assignments": await assignments_view(services, name, record, facts),
            "storage": await storage_view(services, name, facts, jobs),
        },
    )


async def storage_view(
    services: Any, course: str, facts: dict[str, Any], jobs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Storage section: the course's volume and /home as the server last reported
    them, and its backups (how often, the next one, the last one among the recent jobs)."""
    observed, seen_at = await services.store.last_observation(course)
    every = facts.get("backup_every")
    due = await services.store.get_meta(backup_schedule.due_key(course)) if every else None
    last = next((job for job in jobs if job["operation"] == "backup" and job["done"]), None)
    disk = None
    if observed is not None and observed.disk_used_percent is not None:
        free = (observed.disk_free_bytes or 0) / 2**30
        disk = f"{observed.disk_used_percent:.0f}% used, {free:.1f} GiB free"
    return {
        "volume": observed.home_volume if observed is not None else "",
        "home_on_volume": bool(observed and observed.home_on_volume),
        "seen_at": seen_at,
        "disk": disk,
        "every": every_text(int(every)) if every else None,
        "due": due[:16].replace("T", " ") if isinstance(due, str) else None,
        "last": last,
    }


def every_text(seconds: int) -> str:
    """``backup.every`` for people: every day, every 6 hours, every 2 days."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"


async def assignments_view(
    services: Any, course: str, record: Any, facts: dict[str, Any]
) -> dict[str, Any] | None:
    """The Assignments section: the picker's names and, per assignment, who submitted,
    when, whether late, and the score; or why the gradebook cannot be read now."""
    known = facts.get("assignments")
    if not isinstance(known, dict):
        return None
    view: dict[str, Any] = {"names": known.get("names") or [], "problem": "", "by_assignment": {}}
    try:
        submissions = await read_gradebook(services, course, record, known)
    except GradebookUnavailable as exc:
        view["problem"] = str(exc)
        return view
    for submission in submissions:
        view["by_assignment"].setdefault(submission.assignment, []).append(submission)
    for name in view["names"]:
        view["by_assignment"].setdefault(name, [])
    view["due"] = known.get("due") or {}
    return view


class GradebookUnavailable(Exception):
    """The gradebook cannot be read now; the message says why, for the page."""


async def read_gradebook(
    services: Any, course: str, record: Any, known: dict[str, Any]
) -> list[Submission]:
    """The course's gradebook over SSH (one read-only round trip), bounded in time."""
    if record is None or services.engine is None:
        raise GradebookUnavailable("No hub yet.")
    try:
        async with asyncio.timeout(GRADEBOOK_TIMEOUT):
            return await coursework.gradebook(
                services.engine, course, str(known.get("course_id")), known.get("due") or {}
            )
    except AssignmentError as exc:
        raise GradebookUnavailable(redact(str(exc))) from None
    except TimeoutError:
        raise GradebookUnavailable(
            "The hub's server did not answer in time; reload to try again."
        ) from None


@course_route()
async def gradebook_csv(request: web.Request, user: SignedIn, course: Course) -> web.Response:
    """The course's gradebook as CSV (writers only, as every course page)."""
    services = services_of(request)
    name = course.full_name
    known = (await services.store.course_facts(name)).get("assignments")
    if not isinstance(known, dict):
        return not_found(request)
    record = await services.store.get_server(name)
    try:
        submissions = await read_gradebook(services, name, record, known)
    except GradebookUnavailable as exc:
        return message(request, "Gradebook unavailable", str(exc), 503)
    logger.info("%s downloaded the gradebook of %s", user.login, name)
    response = web.Response(
        text=assignments.gradebook_csv(submissions),
        content_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{known.get("course_id")}-grades.csv"'
        },
    )
    page_headers(response, services.settings.github_url)
    return response


async def hub_accounts_view(services: Any, course: str, record: Any) -> dict[str, Any]:
    """Waiting sign-ups and students with their last activity, or why they are unknown."""
    if record is None or services.engine is None:
        return {"problem": "No hub yet.", "waiting": [], "students": []}
    try:
        # A page never waits long on a server that does not answer.
        async with asyncio.timeout(HUB_ACCOUNTS_TIMEOUT):
            listed: HubAccounts = await engine_operations.hub_accounts(services.engine, course)
    except engine_operations.OperationError as exc:
        return {"problem": redact(str(exc)), "waiting": [], "students": []}
    except TimeoutError:
        return {
            "problem": "The hub's server did not answer in time; reload to try again.",
            "waiting": [],
            "students": [],
        }
    if not listed.database:
        return {"problem": "The hub has no accounts yet.", "waiting": [], "students": []}
    students = [r for r in listed.approved if r.name not in listed.seeded]
    return {"problem": "", "waiting": list(listed.waiting), "students": students}


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def refused(request: web.Request, title: str, problem: str, status: int = 400) -> web.Response:
    """A request that asks for nothing: the page says why; nothing is queued."""
    return message(request, title, problem, status)


async def enqueue_for(
    request: web.Request,
    user: SignedIn,
    course: Course,
    op: registry.Operation,
    words: list[str],
    args: Any,
) -> web.Response | None:
    """Queue ``op`` for the course as the signed-in person asked, after the entry's role
    (the one rule, ``registry.has_role``): None once queued, else the refusal to show."""
    if not registry.has_role(op.required_role(args), await permission(request, course, user.login)):
        return message(
            request, "Admins only", f"Only an admin of the repository can run {op.name}.", 403
        )
    services = services_of(request)
    branch = request.app[ACCESS].default_branches.get(course.full_name)
    if branch is None and op.needs_config:
        with contextlib.suppress(OAuthError):
            await user_repositories(request, user)
        branch = request.app[ACCESS].default_branches.get(course.full_name)
    # The same job the slash command asks for, in the course's queue; the job checks the
    # permission again.
    job_id = await registry.enqueue_operation(
        services,
        course.full_name,
        op.name,
        words,
        installation_id=course.installation_id,
        user=user.login,
        source="console",
        payload={"default_branch": branch or "main"},
    )
    logger.info(
        "%s asked for %s on %s from the console (job %s)",
        user.login,
        op.name,
        course.full_name,
        job_id,
    )
    return None


def to_course_page(course: Course) -> web.HTTPSeeOther:
    """Where a queued request goes: the course page, which follows the job to its end."""
    return web.HTTPSeeOther(f"/courses/{course.full_name}#jobs")


async def enqueue_words(
    request: web.Request, user: SignedIn, course: Course, name: str, words: list[str]
) -> web.Response | None:
    """Queue the console's entry ``name`` with ``words``, checked by its grammar first."""
    op = registry.runnable(name, "console")
    assert op is not None, name
    try:
        args = op.parse(words)
    except registry.CommandError as exc:
        return refused(request, "Not run", str(exc))
    return await enqueue_for(request, user, course, op, words, args)


@course_route()
async def approve_signup(
    request: web.Request, user: SignedIn, course: Course
) -> web.StreamResponse:
    """Approve one waiting sign-up: ``/approve NAME``'s job; approving twice changes nothing."""
    name = _field(await request.post(), "name")
    refusal = await enqueue_words(request, user, course, "approve", [name])
    if refusal is not None:
        return refusal
    raise to_course_page(course)


@course_route()
async def discard_signup(
    request: web.Request, user: SignedIn, course: Course
) -> web.StreamResponse:
    """Delete one waiting sign-up (the ``discard`` job); an approved account is kept."""
    name = _field(await request.post(), "name")
    refusal = await enqueue_words(request, user, course, "discard", [name])
    if refusal is not None:
        return refusal
    raise to_course_page(course)


@course_route()
async def set_own_password(
    request: web.Request, user: SignedIn, course: Course
) -> web.StreamResponse:
    """A hub admin (in hub.admins, with write) sets their own hub password: checked here,
    handed to the ``hub-password`` job in memory, erased when it ends."""
    form = await request.post()
    services = services_of(request)
    facts = await services.store.course_facts(course.full_name)
    if user.login.lower() not in facts.get("hub_admins", []):
        return message(request, "Not a hub admin", "Only the people in hub.admins set a hub "
                       "password here; students use the hub's own page.", 403)  # fmt: skip
    password = _field(form, "password")
    try:
        hub_accounts.check_new_password(password, _field(form, "again"))
    except hub_accounts.AccountError as exc:
        return refused(request, "Password not set", f"Password: {exc}.")
    handle = services_of(request).secret_handles.put(course.full_name, user.login, password)
    return await queue_with_handle(request, user, course, "hub-password", [handle], handle)


@course_route()
async def reset_student_password(
    request: web.Request, user: SignedIn, course: Course
) -> web.StreamResponse:
    """A repository admin gives a locked-out student a new password: the
    ``reset-password`` job makes it, and the course page shows it once to this person."""
    name = _field(await request.post(), "name")
    handle = services_of(request).secret_handles.put(course.full_name, user.login, label=name)
    return await queue_with_handle(request, user, course, "reset-password", [name, handle], handle)


async def queue_with_handle(
    request: web.Request,
    user: SignedIn,
    course: Course,
    name: str,
    words: list[str],
    handle: str,
) -> web.Response:
    """Queue a job that carries a secret's handle; a request refused, or failing on the
    way, erases the secret at once."""
    queued = False
    try:
        refusal = await enqueue_words(request, user, course, name, words)
        queued = refusal is None
    finally:
        if not queued:
            services_of(request).secret_handles.erase(handle)
    if refusal is not None:
        return refusal
    raise to_course_page(course)


async def course_jobs(request: web.Request) -> web.Response:
    """The course's last jobs as JSON: the page polls it to show progress without a reload."""
    user = await signed_in(request)
    if user is None:
        return web.json_response({"error": "signed out"}, status=401)
    course = await course_for(request, user)
    if course is None:
        return web.json_response({"error": "not found"}, status=404)
    services = services_of(request)
    jobs = [
        job_view(job) for job in await services.store.recent_jobs(course.full_name, RECENT_JOBS)
    ]
    # New passwords waiting for this person: the page reloads once to show them.
    reveals = services.secret_handles.waiting(course.full_name, user.login)
    response = web.json_response({"jobs": jobs, "reveals": reveals})
    response.headers["Cache-Control"] = "no-store"
    return response


@course_route()
async def run_operation(request: web.Request, user: SignedIn, course: Course) -> web.StreamResponse:
    """A button's form: its fields parsed by the entry's grammar, then its job queued."""
    op = console_operation(request.match_info["operation"])
    if op is None:
        return not_found(request)
    try:
        words, args = forms.parse_form(op, await request.post())
    except forms.FieldError as exc:
        return refused(request, "Not run", f"{op.button.label if op.button else op.name}: {exc}")
    except registry.CommandError as exc:
        return refused(request, "Not run", str(exc))
    refusal = await enqueue_for(request, user, course, op, words, args)
    if refusal is not None:
        return refusal
    raise to_course_page(course)


@course_route(admins_only="can set the course's DigitalOcean token")
async def set_course_token(request: web.Request, user: SignedIn, course: Course) -> web.Response:
    """An admin of the repository gives the course its own DigitalOcean token."""
    services = services_of(request)
    form = await request.post()
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    record = await services.store.get_server(course.full_name)
    try:
        account = await course_tokens.check_token(token, record)
    except course_tokens.TokenRefused as exc:
        return message(request, "Token not saved", f"Not saved: {exc}.", 400)
    await services.course_droplets.save(course.full_name, token, account)
    request.app[CONSOLE].sizes.clear()
    logger.info("%s set the DigitalOcean token of %s", user.login, course.full_name)
    raise web.HTTPSeeOther(f"/courses/{course.full_name}#do-token")


@course_route(admins_only="can remove the course's DigitalOcean token")
async def remove_course_token(request: web.Request, user: SignedIn, course: Course) -> web.Response:
    services = services_of(request)
    await services.store.remove_course_token(course.full_name)
    request.app[CONSOLE].sizes.clear()
    logger.info("%s removed the DigitalOcean token of %s", user.login, course.full_name)
    raise web.HTTPSeeOther(f"/courses/{course.full_name}#do-token")


def add_routes(app: web.Application) -> None:
    app[CONSOLE] = ConsoleState()
    app[ACCESS] = AccessState()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    app.router.add_static("/static", HERE / "static", append_version=True)
    app.router.add_get("/login", login)
    app.router.add_get("/login/callback", login_callback)
    app.router.add_post("/logout", logout)
    app.router.add_get("/courses", course_list)
    app.router.add_get(r"/courses/{owner}/{repo}", course_page)
    app.router.add_get(r"/courses/{owner}/{repo}/jobs.json", course_jobs)
    app.router.add_get(r"/courses/{owner}/{repo}/gradebook.csv", gradebook_csv)
    app.router.add_post(r"/courses/{owner}/{repo}/run/{operation}", run_operation)
    app.router.add_post(r"/courses/{owner}/{repo}/token", set_course_token)
    app.router.add_post(r"/courses/{owner}/{repo}/token/delete", remove_course_token)
    app.router.add_post(r"/courses/{owner}/{repo}/accounts/approve", approve_signup)
    app.router.add_post(r"/courses/{owner}/{repo}/accounts/discard", discard_signup)
    app.router.add_post(r"/courses/{owner}/{repo}/accounts/password", set_own_password)
    app.router.add_post(r"/courses/{owner}/{repo}/accounts/reset", reset_student_password)
