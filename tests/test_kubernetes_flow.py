"""A ``provider: kubernetes`` course through the running service: pushes and comments go
in at /webhook; the fake DigitalOcean makes the cluster, the fake Kubernetes API runs the
Jobs; the check run, the deployment and the replies come back to the fake GitHub."""

from __future__ import annotations

import pytest

from deploy.providers.droplets import DropletDriver
from tests.fakes.kubernetes import LOAD_BALANCER_IP
from tests.plugins.classroom import COURSE_REPO_ID, NOTEBOOK, README_WITH_MARKERS
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.support.droplet_classroom import issue_payload

pytestmark = pytest.mark.sshd

# The id every delivery of the course repository carries: a course is known by it.
REPO_ID = COURSE_REPO_ID
CONFIG = b"""\
server:
  provider: kubernetes
  region: fra1
  nodes: {size: s-4vcpu-8gb, min: 1, max: 10}
hub:
  admins: [alice]
content:
  open: StartHere.ipynb
storage: {size: 10}
"""


def files(config: bytes = CONFIG) -> dict[str, bytes]:
    return {
        ".github/classroom.yml": config,
        "README.md": README_WITH_MARKERS,
        "StartHere.ipynb": NOTEBOOK,
    }


async def kubernetes_classroom(classroom, do_fake) -> None:
    engine = classroom.services.engine
    engine.droplets = DropletDriver(do_fake.token, poll_interval=0.01, timeout=5.0)
    engine.cluster_options = {"poll_seconds": 0}
    await classroom.services.store.add_courses(INSTALLATION_ID, [(COURSE_REPO, REPO_ID)])


async def push(classroom, example, config: bytes = CONFIG) -> dict:
    sha = classroom.commit(files(config))
    response = await classroom.push(example, sha)
    assert response.status == 202
    await classroom.settle()
    (run,) = [r for r in classroom.runs() if r["head_sha"] == sha]
    return run


async def test_a_new_kubernetes_course_gets_its_cluster_the_helm_job_and_a_deployment(
    classroom, do_fake, kube_fake, example
):
    await kubernetes_classroom(classroom, do_fake)
    run = await push(classroom, example)
    assert run["conclusion"] == "success", run["output"]
    (cluster,) = do_fake.clusters.values()
    assert f"lc-course-{REPO_ID}" in cluster["tags"]
    # The check run shows the helm Job's log.
    text = run["output"]["summary"] + (run["output"].get("text") or "")
    assert 'Release "classroom" has been installed. Happy Helming!' in text
    assert [j["metadata"]["name"] for j in kube_fake.jobs()] == [
        "classroom-helm-1",
        "classroom-seed-2",
        "classroom-helm-3",
    ]
    assert kube_fake.signup_violations == []
    # The homes: one volume of the course's, bound in the cluster and served over NFS.
    (volume,) = do_fake.volumes.values()
    assert f"lc-course-{REPO_ID}" in volume.tags
    assert {"classroom-homes", "classroom-homes-disk"} <= set(
        kube_fake.objects("persistentvolumeclaims")
    )
    deployments = classroom.github.deployments.values()
    (deployment,) = [d for d in deployments if d["sha"] == run["head_sha"]]
    statuses = classroom.github.deployment_statuses[deployment["id"]]
    assert statuses[-1]["state"] == "success"
    assert statuses[-1]["environment_url"] == f"http://{LOAD_BALANCER_IP}"


async def test_a_second_push_that_changes_nothing_creates_no_job(
    classroom, do_fake, kube_fake, example
):
    await kubernetes_classroom(classroom, do_fake)
    await push(classroom, example)
    jobs = len(kube_fake.jobs())
    again = await push(classroom, example, CONFIG + b"# a comment changes no value\n")
    assert again["conclusion"] == "neutral", again["output"]
    assert len(kube_fake.jobs()) == jobs
    assert len(do_fake.volumes) == 1


async def test_backup_restore_list_and_restart_commands_on_a_kubernetes_course(
    classroom, do_fake, kube_fake, example
):
    await kubernetes_classroom(classroom, do_fake)
    await push(classroom, example)
    issue = classroom.github.add_issue(COURSE_REPO, "Running the course hub")
    for body in ("/backup", "/restore", "/restart"):
        await classroom.comment(example, body, issue=issue_payload(example, issue.number))
        await classroom.settle()
    (volume,) = do_fake.volumes.values()
    (snapshot,) = do_fake.snapshots
    assert snapshot["resource_id"] == volume.id and f"lc-course-{REPO_ID}" in snapshot["tags"]
    replies = [c["body"] for c in classroom.github.issues[(COURSE_REPO, issue.number)].comments]
    assert replies[0].startswith("@alice `/backup` done"), replies[0]
    assert replies[1].startswith("@alice `/restore` done") and snapshot["name"] in replies[1]
    assert replies[2].startswith("@alice `/restart` done"), replies[2]
    hub = kube_fake.objects("deployments")["hub"]
    assert "kubectl.kubernetes.io/restartedAt" in hub["spec"]["template"]["metadata"]["annotations"]


async def test_resize_and_node_range_commands_change_the_node_pool(
    classroom, do_fake, kube_fake, example
):
    await kubernetes_classroom(classroom, do_fake)
    await push(classroom, example)
    issue = classroom.github.add_issue(COURSE_REPO, "Running the course hub")
    (cluster,) = do_fake.clusters.values()
    for body in ("/resize s-8vcpu-16gb", "/resize --nodes 2:20"):
        await classroom.comment(example, body, issue=issue_payload(example, issue.number))
        await classroom.settle()
    (pool,) = do_fake.node_pools(cluster["id"])
    assert (pool["size"], pool["min_nodes"], pool["max_nodes"]) == ("s-8vcpu-16gb", 2, 20)
    replies = [c["body"] for c in classroom.github.issues[(COURSE_REPO, issue.number)].comments]
    assert replies[0].startswith("@alice `/resize s-8vcpu-16gb` done")
    assert replies[1].startswith("@alice `/resize --nodes 2:20` done")


async def test_a_config_key_of_another_provider_fails_the_check_run_naming_it(
    classroom, do_fake, kube_fake, example
):
    await kubernetes_classroom(classroom, do_fake)
    run = await push(classroom, example, CONFIG.replace(b"  region: fra1\n", b"  size: s-1\n"))
    assert run["conclusion"] == "failure"
    assert "server.size" in run["output"]["summary"] or "server.size" in run["output"]["text"]
    assert do_fake.clusters == {} and kube_fake.requests == []


async def test_approve_reaches_the_hub_through_the_kubernetes_api(
    classroom, do_fake, kube_fake, example
):
    await kubernetes_classroom(classroom, do_fake)
    await push(classroom, example)
    kube_fake.sign_up("carol")
    issue = classroom.github.add_issue(COURSE_REPO, "Sign-ups")
    await classroom.comment(example, "/approve carol", issue=issue_payload(example, issue.number))
    await classroom.settle()
    assert kube_fake.rows()["carol"] is True
    (reply,) = classroom.github.issues[(COURSE_REPO, issue.number)].comments
    assert reply["body"].startswith("@alice `/approve carol` done")


async def test_a_branch_push_only_plans_from_the_config(classroom, do_fake, kube_fake, example):
    await kubernetes_classroom(classroom, do_fake)
    sha = classroom.commit(files(), branch="feature")
    await classroom.push(example, sha, branch="feature")
    await classroom.settle()
    (run,) = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert run["conclusion"] == "success", run["output"]
    assert "install the hub with sign-up closed" in run["output"]["summary"]
    assert "make the homes volume and serve it over NFS" in run["output"]["summary"]
    assert do_fake.requests == [] and kube_fake.requests == []
    assert classroom.github.deployments == {}
