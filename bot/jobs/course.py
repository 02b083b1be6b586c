"""The course's job kinds, each running an entry of the operation registry
(``bot.jobs.registry``): ``deploy`` and ``plan`` (a commit's check run) run the ``deploy``
entry; ``command`` runs any entry asked for by a slash command, a button, the console or
the service itself. Also what entries share: reading the course's files, the live log,
and keeping the README's badges current."""

from __future__ import annotations

import logging
import weakref
from typing import Any

from bot.github.commit_files import (
    CommitFiles,
    FileTooLarge,
    folders_of,
    read_commit_files,
)
from bot.github.readme import (
    README,
    has_markers,
    hub_links,
    markers_reason,
    render_badge_block,
    update_readme,
)
from bot.github.reporting import Reporter, split_course
from bot.jobs import registry, texts
from bot.jobs.registry import (
    SERVICE_SOURCES,
    WRITE,
    CommandError,
    Operation,
    OperationContext,
    has_role,
)
from bot.jobs.results import JobResult
from bot.jobs.runner import JobContext, JobKinds
from bot.services import Services
from bot.store import Job
from deploy.course.config import CONFIG_FILES, is_course_file, load_course
from deploy.course.links import launch_link
from deploy.host.assignments import names_in
from deploy.model import ConfigError, ConfigErrors, CourseConfig, Observed
from deploy.redact import redact

logger = logging.getLogger(__name__)

LOG_LIMIT_LINES = 2000
# Where the engine's files can be: the root, .github/, binder/, .binder/.
COURSE_FOLDERS = folders_of(CONFIG_FILES)


class ProgressLog:
    """Collects a job's progress lines and passes them on to its check run, throttled."""

    def __init__(self, reporter: Reporter, job: Job, title: str) -> None:
        self.reporter = reporter
        self.job = job
        self.title = title
        self.lines: list[str] = []
        LIVE_LOGS[job.id] = self

    async def line(self, text: str) -> None:
        self.lines.append(redact(text))
        del self.lines[:-LOG_LIMIT_LINES]
        await self.reporter.job_progress(
            self.job, self.title, f"{self.title}: {len(self.lines)} lines so far.", self.text
        )

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# The log of each running job so far, for the console's live view; an entry goes away
# with its job's ProgressLog.
LIVE_LOGS: weakref.WeakValueDictionary[int, ProgressLog] = weakref.WeakValueDictionary()


def is_notebook(path: str) -> bool:
    return path.endswith(".ipynb")


def read_by_blob(path: str) -> bool:
    """Whether a job reads the file's contents: the engine's files; notebooks are only listed."""
    return is_course_file(path) and not is_notebook(path)


async def course_files(services: Services, job: Job, ref: str) -> CommitFiles:
    """The files the engine reads at ``ref`` (path -> bytes); ``.listed``: the notebooks.

    One tree request and the blobs not read before, so data files cost nothing; a course
    file over the size limit is a configuration error that names it.
    """
    owner, repo = split_course(job.course)
    assert job.installation_id is not None
    try:
        return await read_commit_files(
            services.require_github(),
            job.installation_id,
            owner,
            repo,
            ref,
            wanted=read_by_blob,
            listed=is_notebook,
            folders=COURSE_FOLDERS,
        )
    except FileTooLarge as exc:
        raise ConfigErrors([ConfigError(exc.path, None, "", exc.detail)]) from None


def repo_url(services: Services, course: str) -> str:
    return f"{services.settings.github_url}/{course}"


def launch_url(
    services: Services, course: str, config: CourseConfig, hub_url: str, branch: str
) -> str:
    return launch_link(
        hub_url,
        repo_url(services, course),
        config.content.branch or branch,
        config.content.open,
        config.hub.default_app,
    )


def badge_block(
    services: Services,
    course: str,
    config: CourseConfig,
    hub_url: str,
    branch: str,
    files: CommitFiles,
) -> str:
    signup, authorize = hub_links(hub_url, services.settings.course_page_url(course))
    notebooks = sorted(p for p in files.listed if is_notebook(p) and not p.startswith("."))
    table = [
        (
            path,
            launch_link(
                hub_url,
                repo_url(services, course),
                config.content.branch or branch,
                path,
                config.hub.default_app,
            ),
        )
        for path in notebooks[:50]
    ]
    return render_badge_block(
        hub_url,
        launch_url(services, course, config, hub_url, branch),
        f"{services.settings.public_url}/badges/{course}/status.svg",
        signup,
        authorize,
        table or None,
    )


async def keep_badges_current(
    services: Services,
    job: Job,
    config: CourseConfig,
    hub_url: str,
    branch: str,
    files: CommitFiles,
) -> str:
    """Write the README's badge block when it changed; say what happened, for the summary."""
    block = badge_block(services, job.course, config, hub_url, branch, files)
    readme = files.get(README)
    text = readme.decode("utf-8", "replace") if readme is not None else ""
    if readme is None or not has_markers(text):
        reason = "there is no README.md" if readme is None else markers_reason(text)
        return texts.paste_block(block, reason or "no markers")
    new_text = update_readme(text, block)
    if new_text is None:
        return "README badges are current."
    assert job.installation_id is not None
    written = await services.reporter.write_readme(
        job.installation_id, job.course, branch, new_text.encode(), files.shas[README]
    )
    if not written:
        return "README badges not written: README.md changed meanwhile; the next run retries."
    return "README badges updated."


async def course_repo_id(services: Services, job: Job) -> int | None:
    """The course repository's id (GitHub's ``repository.id``): as recorded, else asked of
    GitHub once and recorded. Its cloud resources are tagged and named by it."""
    known = await services.store.course(job.course)
    if known is not None and known.repo_id is not None:
        return known.repo_id
    if job.installation_id is None:
        return None
    owner, repo = split_course(job.course)
    api = await services.require_github().installation_api(job.installation_id)
    answer = await api.getitem("/repos/{owner}/{repo}", {"owner": owner, "repo": repo})
    repo_id = answer.get("id") if isinstance(answer, dict) else None
    if not isinstance(repo_id, int):
        return None
    await services.store.add_courses(job.installation_id, [(job.course, repo_id)])
    return repo_id


async def load_config(services: Services, job: Job, ref: str) -> tuple[CourseConfig, CommitFiles]:
    files = await course_files(services, job, ref)
    owner, repo = split_course(job.course)
    return load_course(files, owner, repo, await course_repo_id(services, job)), files


def config_ref(job: Job) -> str:
    """Where a job reads the course's configuration.

    A commit's own run reads that commit. An operation asked for by name (a command, a
    button, the console, the service) reads the default branch: a button on a pull
    request's check run must not deploy the pull request's configuration.
    """
    if job.kind in ("deploy", "plan"):
        return job.payload.get("head_sha") or job.payload.get("default_branch") or "main"
    return job.payload.get("default_branch") or "main"


def assignments_facts(config: CourseConfig, files: CommitFiles | None) -> dict[str, Any] | None:
    """What the console's Assignments section needs: the course id, the assignments found
    in ``assignments.source`` (for its picker) and their due times."""
    spec = config.assignments
    if spec is None:
        return None
    listed = files.listed if files is not None else ()
    return {
        "course_id": spec.course_id,
        "names": names_in(listed, spec.source),
        "due": dict(spec.due),
    }


async def remember_course(
    services: Services,
    job: Job,
    config: CourseConfig,
    hub_url: str,
    branch: str,
    files: CommitFiles | None = None,
) -> None:
    """What the monitor needs between deploys, without reading the repository again."""
    assert job.installation_id is not None
    await services.store.add_courses(job.installation_id, [(job.course, None)])
    await services.store.save_course_facts(
        job.course,
        {
            "hub_url": hub_url,
            "monitor_every": config.monitor.every_seconds,
            "monitor_issue": config.monitor.issue,
            "tljh_version": config.hub.tljh_version,
            "branch": branch,
            # Scheduled snapshots of the course's volume (bot.backup_schedule); None: none.
            "backup_every": config.backup.every_seconds if config.storage else None,
            "monitor_signups": config.monitor.signups,
            # The console offers these people their own hub password form.
            "hub_admins": list(config.hub.admins),
            # The droplet's name: the monitor looks for it when the hub stops answering.
            "server_name": config.server.name if config.server.provider == "digitalocean" else None,
            "assignments": assignments_facts(config, files),
            # Its tag (deploy.ownership): the monitor looks only among the course's droplets.
            "repo_id": config.repo_id,
        },
    )


async def remember_course_if_forgotten(
    services: Services, job: Job, config: CourseConfig, hub_url: str | None
) -> None:
    """The database is a cache: an operation that found the course's server puts back
    what the monitor needs, should the database have been lost since the last deploy."""
    if hub_url and not await services.store.course_facts(job.course):
        branch = job.payload.get("default_branch") or "main"
        await remember_course(services, job, config, hub_url, branch)


async def run_entry(
    ctx: JobContext[Services],
    op: Operation,
    args: Any,
    *,
    user: str | None,
    source: str,
    title: str,
) -> JobResult:
    """Run a registry entry in its job: read the course's configuration if the entry needs
    it (at the job's commit, else the default branch), then call it with a live log."""
    services = ctx.services
    job = ctx.job
    config, files = None, CommitFiles()
    if op.needs_config:
        try:
            config, files = await load_config(services, job, config_ref(job))
        except ConfigErrors as errors:
            return texts.config_failure(errors)
        ctx.checkpoint()
    progress = ProgressLog(services.reporter, job, title)
    context = OperationContext(
        services=services,
        job=job,
        course=job.course,
        config=config,
        engine=services.engine,
        progress=progress.line,
        user=user,
        source=source,
        files=files,
        on_checkpoint=ctx.checkpoint,
    )
    result = await op.run(context, args)
    observed = result.details.get("observed")
    if isinstance(observed, Observed):
        # Kept for the plans that may not look at the server (pull requests, branches).
        await services.store.save_observation(job.course, observed)
    if config is not None and source != "commit":
        # A commit's deploy remembers the course itself, and only when it applies.
        await remember_course_if_forgotten(services, job, config, result.hub_url)
    return JobResult.of(result, log=progress.text)


# The product's job kinds: the course's, registered below.
JOB_KINDS: JobKinds[Services] = JobKinds()


def _entry(name: str) -> Operation:
    op = registry.get(name)
    if op is None:
        raise LookupError(f"no operation {name!r} is registered")
    return op


@JOB_KINDS.kind("deploy")
@JOB_KINDS.kind("plan")
async def run_commit(ctx: JobContext[Services]) -> JobResult:
    """A commit's ``classroom`` run: plan it, and on the default branch apply it."""
    services = ctx.services
    job, payload = ctx.job, ctx.job.payload
    mode = payload.get("mode", "plan")
    if mode == "apply" and job.installation_id is not None:
        # A plan changes nothing the store remembers of the course (invariant 12).
        await services.store.add_courses(job.installation_id, [(job.course, None)])
    refused = await token_refusal(services, job.course)
    if refused is not None:
        return refused
    op = _entry("deploy")
    args = op.args(mode=mode, rebuild=bool(payload.get("rebuild")))
    title = "Deploying" if mode == "apply" else "Planning"
    return await run_entry(ctx, op, args, user=None, source="commit", title=title)


@JOB_KINDS.kind("command")
async def run_command(ctx: JobContext[Services]) -> JobResult:
    """An operation asked for by a slash command, a check-run button, the console or the
    service itself. People must hold the role the entry asks for; the service need not."""
    services = ctx.services
    job, payload = ctx.job, ctx.job.payload
    name = str(payload.get("name") or "")
    words = [str(w) for w in payload.get("args") or []]
    user = payload.get("user") or ""
    source = payload.get("source") or "comment"
    # Only commands (and the console's own entries, asked for there): the deploy entry
    # runs as a commit's job, never by name.
    op = registry.runnable(name, source) if name != "invalid" else None
    problem: str | None = payload.get("problem") or None
    args: Any = None
    if op is None and problem is None:
        problem = f"`/{registry.code(name)}` is not a command. Comment `/help` for the list."
    elif op is not None:
        try:
            args = op.parse(words)
        except CommandError as exc:
            problem = str(exc)
    required = op.required_role(args) if op is not None and problem is None else WRITE
    if source not in SERVICE_SOURCES:
        assert job.installation_id is not None
        reporter = services.reporter
        permission = (
            await reporter.cached_permission(job.installation_id, job.course, user)
            if user
            else None
        )
        if not has_role(required, permission):
            refusal = texts.refusal(user, permission, required)
            await finish_command(services, job, refusal, ok=False)
            return JobResult("neutral", "Not permitted", refusal)
    if problem is not None or op is None:
        reply = problem or "Comment `/help` for the commands."
        await finish_command(services, job, reply, ok=False)
        return JobResult("neutral", f"/{registry.code(name)}", reply)
    refused = await token_refusal(services, job.course)
    if refused is not None:
        await finish_command(services, job, refused.summary, ok=False)
        return refused
    result = await run_entry(ctx, op, args, user=user or None, source=source, title=f"/{name}")
    reply = texts.command_reply(name, words, result, op.note)
    await finish_command(services, job, reply, ok=result.ok)
    return result


async def token_refusal(services: Services, course: str) -> JobResult | None:
    """With ``BOT_REQUIRE_COURSE_TOKEN=1``, the result for a course without its own token."""
    if not services.settings.require_course_token:
        return None
    if await services.store.course_token(course) is not None:
        return None
    return texts.refusal_without_token(f"{services.settings.public_url}/courses/{course}")


async def finish_command(services: Services, job: Job, reply: str, *, ok: bool) -> None:
    payload = job.payload
    assert job.installation_id is not None
    reporter = services.reporter
    if payload.get("comment_id") is not None:
        await reporter.react(
            job.installation_id, job.course, payload["comment_id"], "rocket" if ok else "confused"
        )
    if payload.get("issue_number") is not None:
        user = payload.get("user")
        await reporter.reply(
            job.installation_id,
            job.course,
            payload["issue_number"],
            f"@{user} {reply}" if user else reply[:1].upper() + reply[1:],
        )
