"""The course operations, one registry entry each (see ``bot.jobs.registry``): what a push
deploys, and what ``/status``, ``/plan``, ``/rebuild``, ``/resize``, ``/restart``,
``/snapshot``, ``/approve`` and ``/help`` do. Each function decides what to report; the engine
(``deploy.operations``) does the work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bot.github.commit_files import CommitFiles
from bot.github.reporting import split_course
from bot.jobs import texts
from bot.jobs.course import (
    config_ref,
    keep_badges_current,
    launch_url,
    load_config,
    remember_course,
    remember_course_if_forgotten,
)
from bot.jobs.registry import (
    WRITE,
    Button,
    CommandError,
    Flag,
    NoArgs,
    OperationContext,
    Option,
    Positional,
    Words,
    help_text,
    operation,
    parse_hub_user,
    parse_node_range,
    parse_size_slug,
    parse_snapshot_name,
)
from deploy import operations as engine
from deploy.host.shared import COMMIT, SharedSource, read_only
from deploy.model import ConfigErrors, OperationResult


def shared_source(op: OperationContext) -> SharedSource | None:
    """The job's commit for the shared folders, with a read-only token for this repository.

    None when the course has no folder from the repository, or the job names no commit
    (a command on a branch): then a plan says a push fetches them.
    """
    config, job = op.config, op.job
    commit = job.payload.get("head_sha")
    if config is None or not read_only(config) or job.installation_id is None:
        return None
    if not isinstance(commit, str) or not COMMIT.fullmatch(commit):
        return None
    installation_id = job.installation_id
    _, repo = split_course(op.course)

    async def token() -> str:
        return await op.services.require_github().repository_read_token(installation_id, repo)

    return SharedSource(f"{op.services.settings.github_url}/{op.course}.git", commit, token)


@dataclass(frozen=True)
class DeployArgs:
    mode: str = "plan"  # plan | apply (the default branch)
    rebuild: bool = False


@operation(
    "deploy",
    summary="Plan a commit; on the default branch, apply the plan.",
    args=DeployArgs,
    command=False,
)
async def deploy(op: OperationContext, args: DeployArgs) -> OperationResult:
    services, job, config = op.services, op.job, op.config
    assert config is not None
    reporter = services.reporter
    payload = job.payload
    deployment: dict[str, int] = {}

    async def before_apply(_plan: object) -> None:
        op.checkpoint()
        deployment_id = await reporter.start_deployment(job, "Littlest Classroom deploy")
        if deployment_id is not None:
            deployment["id"] = deployment_id

    if args.mode == "apply":
        result = await engine.deploy(
            op.engine,
            op.course,
            config,
            mode="apply",
            rebuild=args.rebuild,
            progress=op.progress,
            before_apply=before_apply,
            checkpoint=op.checkpoint,
            source=shared_source(op),
        )
    else:
        # A pull request's or another branch's commit: its configuration alone, compared
        # with what was last recorded. Whoever wrote it, nothing is contacted or changed.
        last_seen, seen_at = await services.store.last_observation(op.course)
        result = await engine.plan_from_config(
            op.engine, op.course, config, last_seen, seen_at=seen_at
        )
    branch = payload.get("default_branch") or payload.get("branch") or "main"
    extra = []
    if args.mode == "apply" and result.hub_url:
        files = op.files if isinstance(op.files, CommitFiles) else None
        await remember_course(services, job, config, result.hub_url, branch, files)
        if hub_verified(result):
            await services.runner.hub_up(op.course, "the deploy's check of the hub passed")
    if result.hub_url:
        extra.append(
            texts.hub_lines(
                result.hub_url, launch_url(services, op.course, config, result.hub_url, branch)
            )
        )
        if args.mode == "apply" and config.badges and result.conclusion in ("success", "neutral"):
            read = op.files
            assert isinstance(read, CommitFiles)
            extra.append(
                await keep_badges_current(services, job, config, result.hub_url, branch, read)
            )
    if "id" not in deployment and args.mode == "apply":
        # An attempt killed after its last step leaves nothing to apply on the re-run, so
        # before_apply never runs; the deployment that attempt opened is concluded here.
        recorded = await reporter.recorded_deployment(job)
        if recorded is not None:
            deployment["id"] = recorded
    if "id" in deployment:
        await reporter.deployment_status(
            job,
            deployment["id"],
            "success" if result.conclusion in ("success", "neutral") else "failure",
            environment_url=result.hub_url,
            description=result.title,
        )
    summary = "\n\n".join([result.summary, *extra]) if extra else result.summary
    return dataclasses.replace(result, summary=summary)


def hub_verified(result: OperationResult) -> bool:
    """Whether an applied deploy ended with the hub answering its own check."""
    return result.conclusion == "success" and any(
        step.step.name == "verify" and step.ok for step in result.steps
    )


@operation(
    "status",
    summary="Report the hub's health, versions and disk use.",
    button=Button("Status", "Hub health, versions and disk use"),
    needs_config=False,
)
async def status(op: OperationContext, args: NoArgs) -> OperationResult:
    if await op.engine.records.get_server(op.course) is not None:
        # What the last deploy remembered is enough: no need to read the repository.
        facts = await op.services.store.course_facts(op.course)
        return await engine.status(
            op.engine, op.course, None, progress=op.progress, hub=facts.get("hub_url")
        )
    # Nothing remembered (a new service, or its database lost): the config names the
    # droplet, found by its name and the service's tag.
    try:
        config, _ = await load_config(op.services, op.job, config_ref(op.job))
    except ConfigErrors as errors:
        return OperationResult("failure", "The course configuration has errors", str(errors))
    result = await engine.status(op.engine, op.course, config, progress=op.progress)
    await remember_course_if_forgotten(op.services, op.job, config, result.hub_url)
    return result


@operation(
    "plan",
    summary="Show what a deploy would change, without changing it.",
    button=Button("Plan", "What a deploy would change"),
)
async def plan(op: OperationContext, args: NoArgs) -> OperationResult:
    assert op.config is not None
    return await engine.deploy(
        op.engine,
        op.course,
        op.config,
        mode="plan",
        progress=op.progress,
        checkpoint=op.checkpoint,
    )


@operation(
    "rebuild",
    summary="Re-apply TLJH and the packages in place; students' files stay.",
    button=Button("Rebuild", "Re-apply everything; files kept"),
    check_run=True,
    note="Students' files in /home are kept: a rebuild re-applies the software in place.",
)
async def rebuild(op: OperationContext, args: NoArgs) -> OperationResult:
    assert op.config is not None
    return await engine.deploy(
        op.engine,
        op.course,
        op.config,
        mode="apply",
        rebuild=True,
        progress=op.progress,
        checkpoint=op.checkpoint,
        source=shared_source(op),
    )


@dataclass(frozen=True)
class ResizeArgs:
    size: str | None = None
    disk: bool = False
    nodes: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if (self.size is None) == (self.nodes is None):
            given = "both a size and `--nodes`" if self.size else "neither"
            raise CommandError(
                "`/resize` needs a size slug, or `--nodes MIN:MAX` for a Kubernetes node pool; "
                f"{given} given. Usage: `/resize SIZE [--disk] | --nodes MIN:MAX`, "
                "e.g. `/resize s-4vcpu-8gb`."
            )


@operation(
    "resize",
    usage="/resize SIZE [--disk] | --nodes MIN:MAX",
    summary="Change the droplet's CPU and memory; `--disk` also grows the disk "
    "(a disk cannot shrink back). On Kubernetes: the nodes' size, or with `--nodes` "
    "how far the node pool autoscales.",
    example="/resize s-4vcpu-8gb",
    grammar=(
        Positional("size", parse=parse_size_slug, required=False),
        Flag("disk", "--disk", help="Also grow the disk (it cannot shrink back)"),
        Option("nodes", "--nodes", parse_node_range),
    ),
    args=ResizeArgs,
    permission=WRITE,
    button=Button("Resize", "Change CPU and memory"),
    note="The hub restarted during the resize; students' files are kept.",
)
async def resize(op: OperationContext, args: ResizeArgs) -> OperationResult:
    assert op.config is not None
    return await engine.resize(
        op.engine,
        op.course,
        op.config,
        args.size or "",
        disk=args.disk,
        nodes=args.nodes,
        progress=op.progress,
    )


@operation(
    "restart",
    summary="Restart JupyterHub and its proxy.",
    button=Button("Restart hub", "Restart JupyterHub"),
    check_run=True,
    note="The hub restarted; students may need to reload their page.",
)
async def restart(op: OperationContext, args: NoArgs) -> OperationResult:
    assert op.config is not None
    return await engine.restart(op.engine, op.course, op.config, progress=op.progress)


@dataclass(frozen=True)
class SnapshotArgs:
    name: str | None = None


@operation(
    "snapshot",
    usage="/snapshot [NAME]",
    summary="Take a DigitalOcean snapshot of the droplet.",
    example="/snapshot before-midterm",
    grammar=(Positional("name", parse=parse_snapshot_name, required=False),),
    args=SnapshotArgs,
    button=Button("Snapshot", "Snapshot the server's disk"),
    check_run=True,
)
async def snapshot(op: OperationContext, args: SnapshotArgs) -> OperationResult:
    assert op.config is not None
    return await engine.snapshot(op.engine, op.course, op.config, args.name, progress=op.progress)


@dataclass(frozen=True)
class ApproveArgs:
    names: tuple[str, ...] = ()


@operation(
    "approve",
    usage="/approve NAME [NAME…]",
    summary="Approve students waiting on the hub's sign-up page; the reply says which were "
    "approved, already approved or unknown.",
    example="/approve ada grace",
    grammar=(Words("names", parse=parse_hub_user),),
    args=ApproveArgs,
    permission=WRITE,
    needs_config=False,
)
async def approve(op: OperationContext, args: ApproveArgs) -> OperationResult:
    # The remembered server is enough; the reply names only the names asked for.
    return await engine.approve_students(
        op.engine, op.course, list(args.names), progress=op.progress
    )


@operation("help", summary="Show this list.", needs_config=False)
async def help_(op: OperationContext, args: NoArgs) -> OperationResult:
    return OperationResult("success", "Commands", help_text())
