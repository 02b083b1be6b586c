"""The engine's operations for a ``provider: kubernetes`` course: deploy (plan or apply),
status and resize, on the Zero to JupyterHub chart in the course's DOKS cluster.

``deploy.operations`` hands a kubernetes course's operations here. A deploy:

1. makes the chart's values from the config (``deploy.providers.chart_values``) and checks them
   against the pinned chart's schema; values the schema refuses fail the plan with the
   schema's messages before anything is applied (a pull request's plan stops here);
2. finds or makes the course's cluster (``deploy.providers.clusters``), tagged as the course's, and
   reads its kubeconfig into memory;
3. runs the Jobs ``deploy.providers.release.jobs_for`` orders (helm with sign-up closed, the admins'
   accounts, helm with the course's sign-up; or only what changed; or nothing when the
   values' hash is the one applied), each Job's log going to the check run;
4. remembers the cluster and the hub's address for ``/status`` and the deployment.

Before the Jobs, the course's homes (``deploy.providers.kubernetes_homes``): one block volume served
over NFS in the cluster. ``homes_volume`` hands that volume to ``deploy.volumes.backup`` so
``/backup`` and the snapshot list work as for droplets; ``restore_all`` swaps in a volume
made from a snapshot while the hub and the NFS server are stopped; ``restart`` rolls the
hub's Deployment and waits until it is ready again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

from deploy.host import accounts
from deploy.model import (
    DROPLET_TAG,
    CourseConfig,
    OperationResult,
    Plan,
    Progress,
    ServerRecord,
    Step,
    StepResult,
)
from deploy.planning.render import escape, render_plan
from deploy.providers import kubernetes_homes, release
from deploy.providers.chart_values import ValuesInvalid, chart_values, check_values
from deploy.providers.clusters import (
    ClusterDriver,
    ClusterError,
    ClusterInfo,
    cluster_name,
    course_tag,
)
from deploy.providers.digitalocean_api import DigitalOceanError
from deploy.providers.droplets import DropletDriver, DropletError
from deploy.providers.kubernetes import ClusterClient, JobOutcome, KubernetesError
from deploy.providers.kubernetes_homes import HUB_DEPLOYMENT, NFS_SERVER, STUDENT_PODS
from deploy.redact import redact
from deploy.volumes.volume_driver import (
    VolumeDriver,
    VolumeError,
    VolumeInfo,
    snapshot_time,
    swapped_volume_name,
)

LOG_CHARS = 4000
FAILURES = (ClusterError, KubernetesError, DropletError, DigitalOceanError)


class KubernetesCourseError(Exception):
    """The operation cannot go on; the message is for the instructor."""


# What an operation on a kubernetes course may fail with, each message safe to show.
ERRORS = (KubernetesCourseError, *FAILURES)


def _result(
    conclusion: Literal["success", "failure", "neutral"],
    title: str,
    summary: str,
    *,
    url: str | None = None,
    steps: list[StepResult] | None = None,
    **details: object,
) -> OperationResult:
    return OperationResult(conclusion, title, redact(summary), "", steps or [], url, dict(details))


def code_block(text: str) -> str:
    """``text`` (a Job's log, its last part) as a Markdown code block it cannot break out of."""
    tail = redact(text)[-LOG_CHARS:].replace("```", "'''")
    return f"```\n{tail.rstrip()}\n```"


def hub_url(config: CourseConfig, address: str | None) -> str | None:
    if config.hub.hostname:
        return f"https://{config.hub.hostname}"
    return f"http://{address}" if address else None


def values_pair(config: CourseConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first install's values (sign-up closed) and the course's, both checked against
    the chart's schema; ``ValuesInvalid`` with its messages if either is refused."""
    closed = chart_values(config, signup_open=False)
    wanted = chart_values(config, signup_open=True)
    check_values(closed)
    check_values(wanted)
    return closed, wanted


HOMES_STEP = Step("homes", "make the homes volume and serve it over NFS in the cluster", "")


def _plan(jobs: list[release.PlannedJob], cluster: str | None, *, homes: bool = False) -> Plan:
    steps = []
    if cluster is None:
        steps.append(Step("cluster", "create the course's Kubernetes cluster and node pool", ""))
    if homes:
        steps.append(HOMES_STEP)
    for job in jobs:
        name = "helm" if job.kind == "helm" else "accounts"
        steps.append(Step(name, job.reason, "", names=job.admins))
    return Plan(tuple(steps))


def fresh_plan(config: CourseConfig) -> str:
    """The plan for a course with no cluster yet, as Markdown; ``ValuesInvalid`` if the
    chart's schema refuses the values (for ``python -m bot check``)."""
    closed, wanted = values_pair(config)
    jobs = release.jobs_for(config.hub.admins, closed, wanted, release.ReleaseState())
    return render_plan(_plan(jobs, None, homes=True))


async def _course_tags(engine: Any, course: str) -> list[str]:
    resolver: Callable[[str], Awaitable[int | None]] | None = engine.course_ids
    repository_id = await resolver(course) if resolver is not None else None
    if repository_id is None:
        raise KubernetesCourseError(
            "the repository's id is not known yet, so its cluster cannot be tagged as its "
            "own: reinstall the app on the repository, then push again"
        )
    return [DROPLET_TAG, course_tag(repository_id)]


async def _droplets(engine: Any, course: str) -> DropletDriver:
    droplets: DropletDriver | None = await engine.droplets_for(course)
    if droplets is None:
        raise KubernetesCourseError(
            "DigitalOcean is not configured on this service (DIGITALOCEAN_ACCESS_TOKEN); "
            "ask its operator"
        )
    return droplets


async def _driver(engine: Any, course: str) -> ClusterDriver:
    return ClusterDriver(await _droplets(engine, course))


async def _cluster_client(engine: Any, course: str) -> tuple[ClusterClient, ServerRecord]:
    """A client of the course's cluster, as remembered; refused while there is none."""
    record: ServerRecord | None = await engine.records.get_server(course)
    if record is None or record.provider != "kubernetes" or not record.cluster_id:
        raise KubernetesCourseError("there is no cluster yet: push to the default branch first")
    driver = await _driver(engine, course)
    kubeconfig = await driver.kubeconfig(record.cluster_id)
    return ClusterClient(kubeconfig, **engine.cluster_options), record


async def _cluster(
    engine: Any, course: str, config: CourseConfig, progress: Progress
) -> tuple[ClusterDriver, ClusterInfo, list[str]]:
    driver = await _driver(engine, course)
    tags = await _course_tags(engine, course)
    server = config.server
    assert server.nodes is not None
    name = server.cluster or cluster_name(server.name)
    if server.cluster:
        found = await driver.find(name, tags[-1])
        if found is None:
            raise KubernetesCourseError(
                f"no cluster named {name} with the tag {tags[-1]}: tag the operator's cluster "
                "for this course in DigitalOcean, or leave server.cluster out"
            )
        cluster = await driver.wait_running(found, progress)
    else:
        cluster = await driver.ensure_cluster(name, server.region, server.nodes, tags, progress)
    previous = await engine.records.get_server(course)
    pool = cluster.pool
    record = ServerRecord(
        provider="kubernetes",
        address=previous.address if previous and previous.cluster_id == cluster.id else None,
        region=cluster.region,
        size=pool.size if pool else None,
        cluster_id=cluster.id,
        node_pool_id=pool.id if pool else None,
    )
    if record != previous:
        await engine.records.save_server(course, record)
    return driver, cluster, tags


async def deploy(
    engine: Any,
    course: str,
    config: CourseConfig,
    *,
    mode: Literal["plan", "apply"],
    progress: Progress,
    before_apply: Callable[[Plan], Awaitable[None]] | None = None,
) -> OperationResult:
    """Plan the release; in ``apply`` mode, make the cluster and run the Jobs."""
    try:
        closed, wanted = values_pair(config)
    except ValuesInvalid as exc:
        lines = "\n".join(f"- {escape(m)}" for m in exc.messages)
        return _result(
            "failure",
            "The chart's schema refuses the values",
            "The Zero to JupyterHub chart's `values.schema.yaml` refuses the values made from "
            f"this configuration; nothing was applied.\n\n{lines}",
        )
    record = await engine.records.get_server(course)
    known = record if record is not None and record.provider == "kubernetes" else None
    if mode == "plan":
        jobs = release.jobs_for(config.hub.admins, closed, wanted, release.ReleaseState())
        plan = _plan(jobs, known.cluster_id if known else None, homes=known is None)
        note = "" if known is None else "\n\nJobs already applied in the cluster are skipped.\n"
        url = hub_url(config, known.address if known else None)
        title = f"Plan: {len(plan.steps)} step(s)"
        return _result("success", title, render_plan(plan) + note, url=url, plan=True)
    try:
        return await _apply(engine, course, config, closed, wanted, progress, before_apply)
    except (KubernetesCourseError, *FAILURES) as exc:
        return _result("failure", "Could not deploy", str(exc))


async def _apply(
    engine: Any,
    course: str,
    config: CourseConfig,
    closed: dict[str, Any],
    wanted: dict[str, Any],
    progress: Progress,
    before_apply: Callable[[Plan], Awaitable[None]] | None,
) -> OperationResult:
    driver, cluster, tags = await _cluster(engine, course, config, progress)
    client = ClusterClient(await driver.kubeconfig(cluster.id), **engine.cluster_options)
    try:
        configmap = await client.configmap(release.VALUES_CONFIGMAP)
        if configmap is None:
            # A new release: its namespace and helm's account first (kept if found).
            for manifest in (
                release.namespace(),
                release.service_account(),
                release.cluster_role_binding(),
            ):
                await client.ensure(manifest)
        volumes = VolumeDriver(await _droplets(engine, course))
        homes = await kubernetes_homes.ensure(
            client, volumes, config, tags[-1], cluster.region, progress
        )
        made = (
            ""
            if homes is None
            else f"\n\nHomes: volume `{escape(homes.name)}` ({homes.size_gib} GiB), served to "
            "every student's pod over NFS."
        )
        state = release.release_state(configmap)
        jobs = release.jobs_for(config.hub.admins, closed, wanted, state)
        plan = _plan(jobs, cluster.id)
        address = await client.hub_address()
        if not jobs:
            await _remember_address(engine, course, address)
            if homes is not None:
                return _result(
                    "success", "Homes made", render_plan(plan) + made, url=hub_url(config, address)
                )
            return _result(
                "neutral",
                "Nothing to do",
                render_plan(plan) + "\n\nThe release already has these values: no Job.",
                url=hub_url(config, address),
            )
        if before_apply is not None:
            await before_apply(plan)
        results: list[StepResult] = []
        logs: list[str] = []
        for job, step in zip(jobs, plan.steps, strict=True):
            started = time.monotonic()
            await progress(f"step {step.name}: {step.reason}")
            outcome, state, problem = await _run(client, job, state, progress)
            results.append(StepResult(step, outcome.ok, time.monotonic() - started, outcome.log))
            logs.append(f"Job `{outcome.name}`:\n\n{code_block(outcome.log)}")
            if not outcome.ok or problem:
                summary = render_plan(plan, results=results)
                said = problem or outcome.reason
                why = f"\n\n{escape(said)}" if said else ""
                return _result(
                    "failure",
                    f"Job {outcome.name} failed",
                    f"{summary}{why}\n\n" + "\n\n".join(logs),
                    steps=results,
                    url=hub_url(config, address),
                )
        address = await client.hub_address()
        await _remember_address(engine, course, address)
    finally:
        await client.close()
    url = hub_url(config, address)
    return _result(
        "success",
        f"Deployed: {len(results)} Job(s)",
        render_plan(plan, results=results) + made + "\n\n" + "\n\n".join(logs),
        steps=results,
        url=url,
    )


async def _run(
    client: ClusterClient, job: release.PlannedJob, state: release.ReleaseState, progress: Progress
) -> tuple[JobOutcome, release.ReleaseState, str]:
    """Run one planned Job; the release state after it, and a problem it reported."""
    name = release.job_name(job.kind, await client.job_count() + 1)
    if job.kind == "helm":
        assert job.values is not None
        await client.put(release.values_configmap(job.values, state))
        outcome = await client.run_job(release.helm_job(name, job.values), progress)
        if outcome.ok:
            state = replace(state, applied_hash=job.values_hash)
            await client.put(release.values_configmap(job.values, state, applied=True))
        return outcome, state, ""
    await client.put(release.accounts_request_secret(accounts.seed_request(job.admins)))
    outcome = await client.run_job(release.seed_job(name), progress)
    answer = accounts.parse_answer(outcome.log)
    made = set(answer.get("created") or []) | set(answer.get("present") or [])
    taken = [n for n in answer.get("taken") or [] if isinstance(n, str)]
    if outcome.ok and not answer.get("database"):
        return outcome, state, "the hub has not made its database yet; push again in a minute"
    state = replace(state, seeded=state.seeded | {n for n in made if isinstance(n, str)})
    configmap = await client.configmap(release.VALUES_CONFIGMAP)
    data = (configmap or {}).get("data") or {}
    await client.put(
        {
            **release.values_configmap({}, state),
            "data": data,
        }
    )
    if taken:
        return (
            outcome,
            state,
            f"{', '.join(taken)} signed up on the hub before the account could be made; it is "
            "left alone and not made an admin: check who it is on the hub",
        )
    await progress(f"admins' hub accounts: {', '.join(sorted(made)) or 'none new'}")
    return outcome, state, ""


async def _remember_address(engine: Any, course: str, address: str | None) -> None:
    record = await engine.records.get_server(course)
    if record is not None and address and record.address != address:
        await engine.records.save_server(course, replace(record, address=address))


async def status(
    engine: Any, course: str, config: CourseConfig | None, *, progress: Progress
) -> OperationResult:
    """The cluster, its node pool and the hub's address, from DigitalOcean and the cluster."""
    record = await engine.records.get_server(course)
    if record is None or not record.cluster_id:
        return _result("neutral", "No cluster yet", "No cluster yet: push to the default branch.")
    try:
        driver = await _driver(engine, course)
        cluster = await driver.get(record.cluster_id)
    except (KubernetesCourseError, *FAILURES) as exc:
        return _result("failure", "Status unavailable", str(exc))
    pool = cluster.pool
    lines = [
        "- provider: kubernetes",
        f"- cluster: {escape(cluster.name)} in {escape(cluster.region)}, {escape(cluster.state)}",
    ]
    if pool is not None:
        lines.append(
            f"- node pool {escape(pool.name)}: {escape(pool.size)}, {pool.count} node(s), "
            f"autoscaling {pool.min_nodes} to {pool.max_nodes}"
        )
    lines.append(f"- hub address: {escape(record.address or 'not yet')}")
    url = hub_url(config, record.address) if config else None
    healthy = cluster.state == "running"
    return _result(
        "success" if healthy else "failure",
        "Cluster is running" if healthy else "Cluster is not running",
        "\n".join(lines),
        url=url,
    )


async def resize(
    engine: Any,
    course: str,
    config: CourseConfig,
    *,
    size: str | None,
    nodes: tuple[int, int] | None,
    progress: Progress,
) -> OperationResult:
    """``/resize SIZE`` (a new node pool of that size) or ``/resize --nodes MIN:MAX``."""
    try:
        driver, cluster, tags = await _cluster(engine, course, config, progress)
        pool = cluster.pool
        if pool is None:
            raise KubernetesCourseError("the cluster has no students' node pool")
        if nodes is not None:
            low, high = nodes
            changed = await driver.autoscale(cluster, pool, low, high, progress)
            return _result(
                "success",
                f"Nodes {low} to {high}",
                f"Node pool `{escape(changed.name)}` ({escape(changed.size)}) now scales "
                f"between {low} and {high} nodes.",
                nodes=[low, high],
            )
        assert size is not None
        if pool.size == size:
            return _result("neutral", f"Already {size}", f"The nodes are already `{size}`.")
        new = await driver.replace_pool(cluster, pool, size, tags, progress)
        record = await engine.records.get_server(course)
        if record is not None:
            await engine.records.save_server(
                course, replace(record, size=new.size, node_pool_id=new.id)
            )
    except (KubernetesCourseError, *FAILURES) as exc:
        return _result("failure", "Resize failed", str(exc))
    return _result(
        "success",
        f"Resized to {size}",
        f"A node pool of `{escape(size)}` replaced `{escape(pool.size)}`; running sessions "
        "restarted on the new nodes, students' files are kept.",
        size=size,
    )


async def accounts_action(
    engine: Any, course: str, action: str, request: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """One action of deploy.host.accounts' program on the hub's database, run by a Job in the
    course's cluster; its answer. The request Secret is emptied afterwards."""
    client, _ = await _cluster_client(engine, course)
    try:
        await client.put(release.accounts_request_secret(request))
        name = release.job_name("accounts", await client.job_count() + 1)
        try:
            outcome = await client.run_job(release.accounts_job(name, action), progress)
        finally:
            await client.put(release.accounts_request_secret({}))
    finally:
        await client.close()
    answer = accounts.parse_answer(outcome.log)
    if not outcome.ok or not answer:
        raise KubernetesCourseError(
            f"the hub's accounts could not be reached (Job {name}: {outcome.reason or 'no answer'})"
        )
    if not answer.get("database"):
        raise KubernetesCourseError("the hub has no account database yet: deploy first")
    return answer


def not_built(what: str) -> OperationResult:
    """What a command not built yet for kubernetes courses answers."""
    return _result(
        "neutral",
        f"{what} is not available on Kubernetes yet",
        f"{what} is not built yet for `provider: kubernetes` courses; see "
        "docs/instructors.md for what works on Kubernetes today.",
    )


async def homes_volume(
    engine: Any, course: str, config: CourseConfig
) -> tuple[VolumeDriver, ServerRecord, VolumeInfo, str]:
    """For ``deploy.volumes.backup``: the volume driver, the course's record, the block volume its
    cluster serves the homes from, and the course's tag. Every refusal is a
    ``VolumeError`` (a DigitalOcean volume error, as ``deploy.volumes.backup`` reports them)."""
    try:
        owner = (await _course_tags(engine, course))[-1]
        volumes = VolumeDriver(await _droplets(engine, course))
        client, record = await _cluster_client(engine, course)
        try:
            volume = await kubernetes_homes.current_volume(client, volumes, owner)
        finally:
            await client.close()
    except (KubernetesCourseError, KubernetesError, ClusterError) as exc:
        raise VolumeError(str(exc)) from None
    if volume is None:
        raise VolumeError("the course's homes volume is not in its cluster yet; push to deploy")
    return volumes, record, volume, owner


def student_restore_refused() -> OperationResult:
    """``/restore SNAPSHOT --student NAME`` on a kubernetes course."""
    return _result(
        "failure",
        "Nothing restored",
        "`/restore SNAPSHOT --student NAME` is not built on `provider: kubernetes`: a "
        "student's folder would be copied from a volume mounted in the cluster, which this "
        "service does not do yet. `/restore SNAPSHOT --all --confirm` brings every home back "
        "(docs/instructors.md).",
    )


async def restore_all(
    engine: Any, course: str, config: CourseConfig, snapshot: str, *, progress: Progress
) -> OperationResult:
    """Every home back as it was in ``snapshot``: the hub, the students' pods and the NFS
    server stop; a volume made from the snapshot is bound in place of the current one
    (which is kept, detached); the NFS server and the hub start again.

    If the swap fails, the current volume is bound again and everything started on it.
    """
    try:
        volumes, record, current, owner = await homes_volume(engine, course, config)
        region = record.region or config.server.region
        chosen = await volumes.own_snapshot(config.server.name, owner, snapshot)
        wanted = swapped_volume_name(config.server.name, snapshot_time(chosen))
        client, _ = await _cluster_client(engine, course)
        try:
            if current.name != wanted:
                await progress("stopping the hub, the students' servers and the NFS server")
                await client.scale(HUB_DEPLOYMENT, 0)
                await client.delete_pods(STUDENT_PODS)
                await client.scale(NFS_SERVER, 0)
                try:
                    swapped = await volumes.create_swap_volume(
                        chosen, config.server.name, owner, region, current.size_gib, progress
                    )
                    await kubernetes_homes.swap(client, current, swapped, progress)
                except FAILURES as exc:
                    back = await _put_back(client, current, progress)
                    raise KubernetesCourseError(f"{exc}\n\n{back}") from exc
                finally:
                    await client.scale(NFS_SERVER, 1)
                    await client.scale(HUB_DEPLOYMENT, 1)
            ready = await client.wait_ready(HUB_DEPLOYMENT, progress)
        finally:
            await client.close()
    except ERRORS as exc:
        return _result(
            "failure",
            "Restore did not finish",
            f"{exc}\n\nNo volume was deleted; run the same command again to finish it.",
        )
    kept = (
        ""
        if current.name == wanted
        else f" The previous volume, `{escape(current.name)}`, is kept in DigitalOcean."
    )
    started = "the hub is running" if ready else "the hub is starting (not ready yet)"
    return _result(
        "success",
        f"Restored every home from {snapshot}",
        f"Volume `{escape(wanted)}`, made from `{escape(snapshot)}`, now holds every home, "
        f"and {started}.{kept}",
        url=hub_url(config, record.address),
        volume=wanted,
    )


async def _put_back(client: ClusterClient, previous: VolumeInfo, progress: Progress) -> str:
    """Bind ``previous`` again after a failed swap; says how it went."""
    await progress(f"putting the previous volume {previous.name} back")
    try:
        await kubernetes_homes.swap(client, None, previous, progress)
    except FAILURES as exc:
        return (
            f"Binding the previous volume `{escape(previous.name)}` again failed too: {exc}. "
            "Run the same command again."
        )
    return f"The previous volume, `{escape(previous.name)}`, serves the homes again."


async def restart(
    engine: Any, course: str, config: CourseConfig, *, reboot: bool, progress: Progress
) -> OperationResult:
    """Restart the hub as ``kubectl rollout restart`` does, then wait until it is ready."""
    if reboot:
        return _result(
            "failure",
            "Could not restart",
            "`--reboot` is for droplets; a cluster's nodes are DigitalOcean's to replace",
        )
    try:
        client, record = await _cluster_client(engine, course)
        try:
            when = datetime.now(UTC).isoformat(timespec="seconds")
            await client.rollout_restart(HUB_DEPLOYMENT, when)
            await progress("restarting the hub's pod")
            ready = await client.wait_ready(HUB_DEPLOYMENT, progress)
        finally:
            await client.close()
    except ERRORS as exc:
        return _result("failure", "Could not restart", str(exc))
    if not ready:
        return _result(
            "failure",
            "The hub did not come back",
            f"The hub's Deployment was restarted at {when} but its new pod was not ready in "
            "time; `/status` shows the cluster.",
        )
    return _result(
        "success",
        "Hub restarted",
        "The hub restarted and answers again.",
        url=hub_url(config, record.address),
        restarted_at=when,
    )
