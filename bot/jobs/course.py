"""The course's job kinds: deploy or plan a commit, and run a slash command or a check-run
button. Each reads the course's files at the commit, calls an engine operation, and
reports through ``bot.github.reporting``."""

from __future__ import annotations

import base64
import dataclasses
import logging
from typing import Any

import gidgethub

from bot.github import texts
from bot.github.commit_files import (
    CommitFiles,
    FileTooLarge,
    folders_of,
    read_commit_files,
    remember_blob,
)
from bot.github.readme import (
    has_markers,
    hub_links,
    markers_reason,
    render_badge_block,
    update_readme,
)
from bot.github.reporting import Reporter, split_course
from bot.jobs.commands import help_text, may_run
from bot.jobs.runner import REGISTRY, JobContext
from bot.services import Services
from bot.store import Job
from deploy import operations
from deploy.config import CONFIG_FILES, is_course_file, load_course
from deploy.links import launch_link
from deploy.model import ConfigError, ConfigErrors, CourseConfig, OperationResult
from deploy.redact import redact

logger = logging.getLogger(__name__)

README = "README.md"
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

    async def line(self, text: str) -> None:
        self.lines.append(redact(text))
        del self.lines[:-LOG_LIMIT_LINES]
        await self.reporter.job_progress(
            self.job, self.title, f"{self.title}: {len(self.lines)} lines so far.", self.text
        )

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


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
            services.github,
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
    signup, authorize = hub_links(hub_url)
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
    owner, repo = split_course(job.course)
    assert job.installation_id is not None
    new_content = new_text.encode()
    gh = await services.reporter.api(job.installation_id)
    try:
        await gh.put(
            "/repos/{owner}/{repo}/contents/{path}",
            {"owner": owner, "repo": repo, "path": README},
            data={
                "message": "Update the classroom badges in README.md\n\n"
                "Written by Littlest Classroom: the hub's launch link and status badge.",
                "content": base64.b64encode(new_content).decode(),
                # The blob we read is the one we replace: GitHub refuses (409) if the README
                # moved on meanwhile, and the next run writes the block into the newer one.
                "sha": files.shas[README],
                "branch": branch,
            },
        )
    except gidgethub.BadRequest as exc:
        if exc.status_code.value not in (409, 422):
            raise
        return "README badges not written: README.md changed meanwhile; the next run retries."
    # The next push reads this README: its blob is known already, so it is not fetched.
    remember_blob(services.github, new_content)
    return "README badges updated."


def as_job_result(result: OperationResult, log: str, extra_summary: str = "") -> dict[str, Any]:
    summary = result.summary + (f"\n\n{extra_summary}" if extra_summary else "")
    return {
        "conclusion": result.conclusion,
        "title": result.title,
        "summary": summary,
        "log": log or result.log,
        "hub_url": result.hub_url,
    }


async def load_config(services: Services, job: Job, ref: str) -> tuple[CourseConfig, CommitFiles]:
    files = await course_files(services, job, ref)
    owner, repo = split_course(job.course)
    return load_course(files, owner, repo), files


@REGISTRY.kind("deploy")
@REGISTRY.kind("plan")
async def run_commit(ctx: JobContext) -> dict[str, Any]:
    """A commit's ``classroom`` run: plan it, and on the default branch apply it."""
    services: Services = ctx.services
    job, payload = ctx.job, ctx.job.payload
    reporter = services.reporter
    await services.store.add_courses(job.installation_id, [(job.course, None)])
    try:
        config, files = await load_config(services, job, payload["head_sha"])
    except ConfigErrors as errors:
        return texts.config_failure(errors)
    ctx.checkpoint()
    mode = payload.get("mode", "plan")
    progress = ProgressLog(reporter, job, "Deploying" if mode == "apply" else "Planning")
    deployment: dict[str, int] = {}

    async def before_apply(_plan: Any) -> None:
        ctx.checkpoint()
        deployment_id = await reporter.start_deployment(job, "Littlest Classroom deploy")
        if deployment_id is not None:
            deployment["id"] = deployment_id

    result = await operations.deploy(
        services.engine,
        job.course,
        config,
        mode=mode,
        rebuild=bool(payload.get("rebuild")),
        progress=progress.line,
        before_apply=before_apply,
        checkpoint=ctx.checkpoint,
    )
    extra = []
    if mode == "apply" and result.hub_url:
        await remember_course(services, job, config, result.hub_url)
    if result.hub_url:
        branch = payload.get("default_branch") or payload.get("branch") or "main"
        extra.append(
            texts.hub_lines(
                result.hub_url, launch_url(services, job.course, config, result.hub_url, branch)
            )
        )
        if mode == "apply" and config.badges and result.conclusion in ("success", "neutral"):
            extra.append(
                await keep_badges_current(services, job, config, result.hub_url, branch, files)
            )
    if "id" in deployment:
        await reporter.deployment_status(
            job,
            deployment["id"],
            "success" if result.conclusion == "success" else "failure",
            environment_url=result.hub_url,
            description=result.title,
        )
    return as_job_result(result, progress.text, "\n\n".join(extra))


@REGISTRY.kind("command")
async def run_command(ctx: JobContext) -> dict[str, Any]:
    """A slash command or a check-run button, by someone GitHub says may run it."""
    services: Services = ctx.services
    job, payload = ctx.job, ctx.job.payload
    reporter = services.reporter
    user = payload.get("user") or ""
    assert job.installation_id is not None
    permission = await reporter.permission(job.installation_id, job.course, user) if user else None
    if not may_run(permission):
        await finish_command(services, job, texts.refusal(user, permission), ok=False)
        return {
            "conclusion": "neutral",
            "title": "Not permitted",
            "summary": texts.refusal(user, permission),
        }
    name = payload["name"]
    if name == "invalid":
        reply, ok = payload.get("problem") or "Comment `/help` for the commands.", False
        result = None
    elif name == "help":
        reply, ok, result = help_text(), True, None
    else:
        result = await run_operation(ctx, name, payload.get("args", []))
        ok = result.conclusion in ("success", "neutral")
        reply = texts.command_reply(name, payload.get("args", []), result)
    await finish_command(services, job, reply, ok=ok)
    if result is None:
        return {
            "conclusion": "neutral" if not ok else "success",
            "title": f"/{name}",
            "summary": reply,
        }
    return as_job_result(result, result.log)


async def run_operation(ctx: JobContext, name: str, args: list[str]) -> OperationResult:
    services: Services = ctx.services
    job = ctx.job
    progress = ProgressLog(services.reporter, job, f"/{name}")
    engine = services.engine
    if name == "status" and await engine.records.get_server(job.course) is not None:
        # What the last deploy remembered is enough: no need to read the repository. Only
        # a service that remembers no server (a new or lost database) reads the config, to
        # find the droplet by its name and tag.
        facts = await services.store.course_facts(job.course)
        return await operations.status(
            engine, job.course, None, progress=progress.line, hub=facts.get("hub_url")
        )
    ref = job.payload.get("head_sha") or job.payload.get("default_branch") or "main"
    try:
        config, _ = await load_config(services, job, ref)
    except ConfigErrors as errors:
        return OperationResult("failure", "The course configuration has errors", str(errors))
    result = await run_configured(ctx, name, args, config, progress)
    if not result.log:
        # The job's log: what was done on the way, e.g. a droplet found or a key pinned.
        result = dataclasses.replace(result, log=progress.text)
    if result.hub_url and not await services.store.course_facts(job.course):
        # The database is a cache: an answer that found the server puts back what the
        # monitor needs, should the database have been lost since the last deploy.
        await remember_course(services, job, config, result.hub_url)
    return result


async def remember_course(services: Services, job: Job, config: CourseConfig, hub_url: str) -> None:
    """What the monitor needs between deploys, without reading the repository again."""
    assert job.installation_id is not None
    await services.store.add_courses(job.installation_id, [(job.course, None)])
    await services.store.save_course_facts(
        job.course,
        {
            "hub_url": hub_url,
            "monitor_every": config.monitor.every_seconds,
            "monitor_issue": config.monitor.issue,
        },
    )


async def run_configured(
    ctx: JobContext, name: str, args: list[str], config: CourseConfig, progress: ProgressLog
) -> OperationResult:
    services: Services = ctx.services
    job = ctx.job
    engine = services.engine
    if name == "status":
        return await operations.status(engine, job.course, config, progress=progress.line)
    if name in ("plan", "rebuild"):
        return await operations.deploy(
            engine,
            job.course,
            config,
            mode="plan" if name == "plan" else "apply",
            rebuild=name == "rebuild",
            progress=progress.line,
            checkpoint=ctx.checkpoint,
        )
    if name == "restart":
        return await operations.restart(engine, job.course, config, progress=progress.line)
    if name == "snapshot":
        return await operations.snapshot(
            engine, job.course, config, args[0] if args else None, progress=progress.line
        )
    if name == "resize":
        return await operations.resize(
            engine, job.course, config, args[0], disk="--disk" in args, progress=progress.line
        )
    return OperationResult("neutral", f"/{name}", f"`/{name}` is not a command. Comment `/help`.")


async def finish_command(services: Services, job: Job, reply: str, *, ok: bool) -> None:
    payload = job.payload
    assert job.installation_id is not None
    reporter = services.reporter
    if payload.get("comment_id") is not None:
        await reporter.react(
            job.installation_id, job.course, payload["comment_id"], "rocket" if ok else "confused"
        )
    if payload.get("issue_number") is not None:
        user = payload.get("user") or ""
        await reporter.reply(
            job.installation_id, job.course, payload["issue_number"], f"@{user} {reply}"
        )
