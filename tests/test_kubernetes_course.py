"""A ``provider: kubernetes`` course through the engine: DigitalOcean's fake makes the
cluster, the fake Kubernetes API runs the helm and accounts Jobs (checked against both
providers' OpenAPI descriptions)."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import bcrypt
import pytest
import yaml

from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.model import CONFIG_PATH
from deploy.providers import chart_values, kubernetes_homes
from deploy.providers.droplets import DropletDriver
from deploy.providers.release import HELM_IMAGE, NAMESPACE
from deploy.ssh import SSHPool
from deploy.volumes import backup as engine_backup
from deploy.volumes.volume_driver import home_volume_name
from tests.fakes.kubernetes import LOAD_BALANCER_IP
from tests.support.engine import MemoryRecords, instant, noop

COURSE = "physics/p101"
REPO_ID = 4242
DEPT_ID = "6b0e7a8c-1d2e-4f50-9a6b-7c8d9e0f1a2b"
CONFIG = b"""\
server:
  provider: kubernetes
  region: fra1
  nodes: {size: s-4vcpu-8gb, min: 1, max: 10}
hub:
  admins: [alice, bob]
  signup: approval
storage: {size: 10}
"""


def course(text: bytes = CONFIG):
    return load_course({CONFIG_PATH: text}, "physics", "p101")


@pytest.fixture
async def engine(do_fake, kube_fake, tmp_path: Path):
    async def course_ids(name: str) -> int | None:
        return REPO_ID if name == COURSE else None

    engine = operations.Engine(
        records=MemoryRecords(),
        ssh=SSHPool(),
        service_key=ServiceKey(None, "", "", "", tmp_path / "key"),  # type: ignore[arg-type]
        droplets=DropletDriver(do_fake.token, poll_interval=0.001, timeout=1.0, sleep=instant),
        course_ids=course_ids,
        cluster_options={"poll_seconds": 0, "sleep": instant},
    )
    yield engine
    await engine.close()


async def deploy(engine, config=None, mode="apply"):
    return await operations.deploy(engine, COURSE, config or course(), mode=mode, progress=noop)


async def test_a_new_course_gets_a_tagged_cluster_the_helm_job_and_the_hub_address(
    engine, do_fake, kube_fake
):
    result = await deploy(engine)
    assert result.conclusion == "success", result.summary
    (cluster,) = do_fake.clusters.values()
    assert {"littlest-classroom", f"lc-course-{REPO_ID}"} <= set(cluster["tags"])
    (pool,) = cluster["node_pools"]
    assert (pool["size"], pool["auto_scale"], pool["min_nodes"], pool["max_nodes"]) == (
        "s-4vcpu-8gb",
        True,
        1,
        10,
    )
    jobs = kube_fake.jobs()
    assert [j["metadata"]["name"] for j in jobs] == [
        "classroom-helm-1",
        "classroom-seed-2",
        "classroom-helm-3",
    ]
    helm = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert helm["image"] == HELM_IMAGE and "@sha256:" in helm["image"]
    assert helm["command"][:3] == ["helm", "upgrade", "--install"]
    # Every revision's values passed the chart's schema (the fake's helm checks them too).
    for revision in kube_fake.cluster.revisions:
        assert chart_values.schema_errors(revision.values) == []
    # The check run shows the Jobs' logs; the deployment carries the hub's address.
    assert 'Release "classroom" has been installed. Happy Helming!' in result.summary
    assert '"created": ["alice", "bob"]' in result.summary
    assert result.hub_url == f"http://{LOAD_BALANCER_IP}"
    record = await engine.records.get_server(COURSE)
    assert (record.provider, record.cluster_id, record.address) == (
        "kubernetes",
        cluster["id"],
        LOAD_BALANCER_IP,
    )


async def test_admins_exist_before_sign_up_opens_from_the_values_and_the_job_order(
    engine, kube_fake
):
    await deploy(engine)
    first, last = kube_fake.cluster.revisions
    native = [r.values["hub"]["config"]["NativeAuthenticator"] for r in (first, last)]
    assert native[0]["enable_signup"] is False
    assert native[1]["enable_signup"] is True
    kinds = [j["metadata"]["labels"]["littlest-classroom/job"] for j in kube_fake.jobs()]
    assert kinds == ["helm", "seed", "helm"]
    assert kube_fake.rows() == {"alice": True, "bob": True}
    assert kube_fake.signup_violations == []


async def test_a_second_push_that_changes_nothing_creates_no_job(engine, kube_fake):
    await deploy(engine)
    before = len(kube_fake.jobs())
    again = await deploy(engine)
    assert again.conclusion == "neutral", again.summary
    assert "no Job" in again.summary
    assert len(kube_fake.jobs()) == before
    assert again.hub_url == f"http://{LOAD_BALANCER_IP}"


async def test_a_changed_value_is_one_helm_job_without_closing_sign_up(engine, kube_fake):
    await deploy(engine)
    changed = CONFIG.replace(b"signup: approval", b"signup: approval\n  idle_timeout: 1800")
    result = await deploy(engine, course(changed))
    assert result.conclusion == "success", result.summary
    assert [j["metadata"]["name"] for j in kube_fake.jobs()][3:] == ["classroom-helm-4"]
    assert kube_fake.cluster.revisions[-1].values["cull"]["timeout"] == 1800


async def test_a_new_admin_closes_sign_up_while_its_account_is_made(engine, kube_fake):
    await deploy(engine)
    more = CONFIG.replace(b"[alice, bob]", b"[alice, bob, carol]")
    result = await deploy(engine, course(more))
    assert result.conclusion == "success", result.summary
    kinds = [j["metadata"]["labels"]["littlest-classroom/job"] for j in kube_fake.jobs()][3:]
    assert kinds == ["helm", "seed", "helm"]
    closing = kube_fake.cluster.revisions[2].values["hub"]["config"]["NativeAuthenticator"]
    assert closing["enable_signup"] is False
    assert kube_fake.signup_violations == []


async def test_an_admin_name_a_student_took_stops_the_deploy_and_is_not_made_admin(
    engine, kube_fake
):
    await deploy(engine)
    kube_fake.sign_up("carol")
    more = CONFIG.replace(b"[alice, bob]", b"[alice, bob, carol]")
    result = await deploy(engine, course(more))
    assert result.conclusion == "failure"
    assert "carol signed up on the hub before the account could be made" in result.summary
    assert kube_fake.rows()["carol"] is False


async def test_values_the_schema_refuses_fail_the_plan_before_anything_is_applied(
    engine, do_fake, kube_fake, monkeypatch
):
    made = chart_values.chart_values

    def with_a_wrong_key(config, *, signup_open):
        values = made(config, signup_open=signup_open)
        values["singleuser"]["storage"]["capacityy"] = "10Gi"
        return values

    monkeypatch.setattr("deploy.providers.kubernetes_course.chart_values", with_a_wrong_key)
    for mode in ("plan", "apply"):
        result = await deploy(engine, mode=mode)
        assert result.conclusion == "failure"
        assert "Additional properties are not allowed ('capacityy' was unexpected)" in (
            result.summary
        )
    assert do_fake.clusters == {} and kube_fake.requests == []


async def test_a_pull_requests_plan_touches_no_cloud(engine, do_fake, kube_fake):
    result = await deploy(engine, mode="plan")
    assert result.conclusion == "success"
    assert "create the course's Kubernetes cluster" in result.summary
    assert "install the hub with sign-up closed" in result.summary
    assert do_fake.requests == [] and kube_fake.requests == []


async def test_a_failed_helm_job_fails_the_deploy_with_its_log_and_is_retried(engine, kube_fake):
    kube_fake.fail_helm.append("Error: UPGRADE FAILED: timed out waiting for the condition\n")
    failed = await deploy(engine)
    assert failed.conclusion == "failure"
    assert "UPGRADE FAILED: timed out waiting for the condition" in failed.summary
    again = await deploy(engine)
    assert again.conclusion == "success", again.summary


async def test_resize_replaces_the_node_pool_and_nodes_sets_the_autoscaling_range(
    engine, do_fake, kube_fake
):
    await deploy(engine)
    (cluster,) = do_fake.clusters.values()
    resized = await operations.resize(engine, COURSE, course(), "s-8vcpu-16gb", progress=noop)
    assert resized.conclusion == "success", resized.summary
    (pool,) = do_fake.node_pools(cluster["id"])
    assert pool["size"] == "s-8vcpu-16gb"
    assert [p["size"] for p in do_fake.deleted_node_pools] == ["s-4vcpu-8gb"]
    ranged = await operations.resize(engine, COURSE, course(), "", nodes=(2, 20), progress=noop)
    assert ranged.conclusion == "success", ranged.summary
    (pool,) = do_fake.node_pools(cluster["id"])
    assert (pool["min_nodes"], pool["max_nodes"], pool["auto_scale"]) == (2, 20, True)
    assert not any(
        r.method == "DELETE" and "/clusters/" in r.path and "node_pools" not in r.path
        for r in do_fake.requests
    )


async def test_a_cluster_of_that_name_without_the_courses_tag_is_never_adopted(
    engine, do_fake, kube_fake
):
    do_fake.clusters["other"] = {
        "id": "other",
        "name": "physics-p101",
        "region": "fra1",
        "tags": ["k8s"],
        "node_pools": [],
    }
    result = await deploy(engine)
    assert result.conclusion == "failure"
    assert "without the tag lc-course-4242" in result.summary
    assert kube_fake.requests == []


async def test_status_reports_the_cluster_and_pool(engine, do_fake, kube_fake):
    await deploy(engine)
    result = await operations.status(engine, COURSE, course(), progress=noop)
    assert result.conclusion == "success", result.summary
    assert "node pool students-s-4vcpu-8gb: s-4vcpu-8gb" in result.summary
    assert LOAD_BALANCER_IP in result.summary


async def test_what_is_not_built_yet_is_refused_clearly(engine, kube_fake):
    await deploy(engine)
    snapshot = await operations.snapshot(engine, COURSE, course(), None, progress=noop)
    assert snapshot.conclusion == "neutral" and "not built yet" in snapshot.summary
    rebooted = await operations.restart(engine, COURSE, course(), reboot=True, progress=noop)
    assert rebooted.conclusion == "failure" and "`--reboot` is for droplets" in rebooted.summary
    one = await engine_backup.restore_student(
        engine, COURSE, course(), "x-home-20250301-020000", "carol", progress=noop
    )
    assert one.conclusion == "failure" and "--student NAME` is not built" in one.summary
    with pytest.raises(operations.OperationError, match="hub's admin page"):
        await operations.hub_accounts(engine, COURSE)


async def test_approve_reaches_the_hubs_database_through_a_job(engine, kube_fake):
    await deploy(engine)
    kube_fake.sign_up("carol")
    result = await operations.approve_students(
        engine, COURSE, ["carol", "alice", "zed"], progress=noop
    )
    assert result.conclusion == "success", result.summary
    assert result.details == {"approved": ["carol"], "already": ["alice"], "unknown": ["zed"]}
    assert kube_fake.rows()["carol"] is True
    job = kube_fake.jobs()[-1]
    assert job["metadata"]["labels"]["littlest-classroom/job"] == "accounts"
    # The request Secret is emptied once the Job has run.
    secret = kube_fake.cluster.objects[("secrets", NAMESPACE, "classroom-accounts-request")]
    assert base64.b64decode(secret["data"]["request.json"]) == b"{}"


async def test_an_admin_sets_the_hub_password_on_the_console_through_a_job(engine, kube_fake):
    await deploy(engine)
    await operations.set_hub_password(
        engine, COURSE, "alice", "correct horse battery", "correct horse battery"
    )
    with sqlite3.connect(kube_fake.database) as db:
        (stored,) = db.execute("SELECT password FROM users_info WHERE username='alice'").fetchone()
    assert bcrypt.checkpw(b"correct horse battery", stored)
    with pytest.raises(operations.OperationError, match="no account 'nobody'"):
        await operations.set_hub_password(
            engine, COURSE, "nobody", "correct horse battery", "correct horse battery"
        )


def test_the_values_configmap_is_what_the_helm_job_reads():
    from deploy.providers import release

    values = chart_values.chart_values(course(), signup_open=True)
    configmap = release.values_configmap(values, release.ReleaseState())
    assert yaml.safe_load(configmap["data"]["values.yaml"]) == values
    job = release.helm_job("classroom-helm-1", values)
    assert job["metadata"]["namespace"] == NAMESPACE
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume == {"name": "values", "configMap": {"name": release.VALUES_CONFIGMAP}}


async def test_an_existing_cluster_named_in_the_config_is_used_when_tagged_for_the_course(
    engine, do_fake, kube_fake
):
    config = course(CONFIG.replace(b"  region: fra1\n", b"  region: fra1\n  cluster: dept\n"))
    missing = await deploy(engine, config)
    assert missing.conclusion == "failure" and "no cluster named dept" in missing.summary
    do_fake.clusters[DEPT_ID] = {
        "id": DEPT_ID,
        "name": "dept",
        "region": "fra1",
        "tags": ["k8s", f"lc-course-{REPO_ID}"],
        "node_pools": [],
    }
    do_fake._cluster_reads[DEPT_ID] = 1
    result = await deploy(engine, config)
    assert result.conclusion == "success", result.summary
    assert list(do_fake.clusters) == [DEPT_ID]
    assert (await engine.records.get_server(COURSE)).cluster_id == DEPT_ID


# ---- homes on one shared volume, /backup, /restore, /restart --------------------------


def homes_volumes(do_fake) -> list:
    return [v for v in do_fake.volumes.values() if f"lc-course-{REPO_ID}" in v.tags]


async def test_a_new_course_gets_one_tagged_homes_volume_served_over_nfs(
    engine, do_fake, kube_fake
):
    config = course(CONFIG.replace(b"storage: {size: 10}", b"storage: {size: 10, total: 300}"))
    result = await deploy(engine, config)
    assert result.conclusion == "success", result.summary
    (volume,) = homes_volumes(do_fake)
    assert volume.name == home_volume_name(config.server.name)
    assert "littlest-classroom" in volume.tags and volume.size_gigabytes == 300
    assert volume.region == "fra1"
    # The volume bound in the cluster through DigitalOcean's CSI driver, kept if released.
    disk = kube_fake.objects("persistentvolumes")[kubernetes_homes.disk_pv_name(volume.id)]
    assert disk["spec"]["csi"]["driver"] == "dobs.csi.digitalocean.com"
    assert disk["spec"]["csi"]["volumeHandle"] == volume.id
    assert disk["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    claims = kube_fake.objects("persistentvolumeclaims")
    assert claims["classroom-homes-disk"]["status"]["phase"] == "Bound"
    # One NFS server on it, pinned by digest, behind a Service whose address the NFS PV uses.
    server = kube_fake.objects("deployments")["classroom-homes-nfs"]
    (container,) = server["spec"]["template"]["spec"]["containers"]
    assert "@sha256:" in container["image"]
    (mounted,) = server["spec"]["template"]["spec"]["volumes"]
    assert mounted["persistentVolumeClaim"]["claimName"] == "classroom-homes-disk"
    service = kube_fake.objects("services")["classroom-homes-nfs"]
    nfs = kube_fake.objects("persistentvolumes")["classroom-homes-nfs"]
    assert nfs["spec"]["nfs"] == {"server": service["spec"]["clusterIP"], "path": "/"}
    assert claims["classroom-homes"]["status"]["phase"] == "Bound"
    assert nfs["spec"]["accessModes"] == ["ReadWriteMany"]
    # The chart mounts that claim, a folder per student, in values its schema accepts.
    for revision in kube_fake.cluster.revisions:
        storage = revision.values["singleuser"]["storage"]
        assert storage["type"] == "static"
        assert storage["static"] == {"pvcName": "classroom-homes", "subPath": "{username}"}
        # The kubelet makes a student's new folder owned by root: it is given to the student.
        (owner,) = revision.values["singleuser"]["initContainers"]
        assert owner["command"] == ["chown", "1000:100", "/home/jovyan"]
        assert owner["volumeMounts"][0]["subPath"] == "{username}"
        assert chart_values.schema_errors(revision.values) == []
    # The homes exist before the first helm Job installs the hub.
    paths = [r.path for r in kube_fake.requests if r.method == "POST"]
    claim_made = paths.index(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims", 1)
    assert claim_made < paths.index(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")
    assert "volume `" in result.summary and "(300 GiB)" in result.summary


async def test_a_push_that_changes_nothing_makes_no_volume_no_object_and_no_job(
    engine, do_fake, kube_fake
):
    await deploy(engine)
    do_before, kube_before = len(do_fake.requests), len(kube_fake.requests)
    again = await deploy(engine)
    assert again.conclusion == "neutral", again.summary
    writes = [r for r in do_fake.requests[do_before:] if r.method != "GET"]
    assert writes == []
    made = [r for r in kube_fake.requests[kube_before:] if r.method in ("POST", "PATCH", "DELETE")]
    assert made == []
    assert len(homes_volumes(do_fake)) == 1


async def test_a_cluster_that_lost_its_homes_objects_binds_the_same_volume_again(
    engine, do_fake, kube_fake
):
    await deploy(engine)
    (volume,) = homes_volumes(do_fake)
    for kind in ("persistentvolumeclaims", "persistentvolumes", "deployments", "services"):
        for key in [k for k in kube_fake.cluster.objects if k[0] == kind and "homes" in k[2]]:
            del kube_fake.cluster.objects[key]
    result = await deploy(engine)
    assert result.conclusion == "success", result.summary
    assert homes_volumes(do_fake) == [volume]
    claim = kube_fake.objects("persistentvolumeclaims")["classroom-homes-disk"]
    assert claim["spec"]["volumeName"] == kubernetes_homes.disk_pv_name(volume.id)


async def test_backup_snapshots_the_homes_volume_tagged_as_the_courses(engine, do_fake, kube_fake):
    await deploy(engine)
    (volume,) = homes_volumes(do_fake)
    result = await engine_backup.backup(engine, COURSE, course(), progress=noop)
    assert result.conclusion == "success", result.summary
    (snapshot,) = do_fake.snapshots
    assert snapshot["resource_id"] == volume.id
    assert {"littlest-classroom", f"lc-course-{REPO_ID}"} <= set(snapshot["tags"])
    assert snapshot["name"] == result.details["snapshot"]
    assert snapshot["name"].startswith(home_volume_name(course().server.name) + "-")
    listed = await engine_backup.list_snapshots(engine, COURSE, course(), progress=noop)
    assert snapshot["name"] in listed.summary


async def test_a_homes_volume_without_the_courses_tag_is_left_alone(engine, do_fake, kube_fake):
    await deploy(engine)
    (volume,) = homes_volumes(do_fake)
    taken = (await engine_backup.backup(engine, COURSE, course(), progress=noop)).details
    volume.tags = ["littlest-classroom", "lc-course-999"]
    result = await engine_backup.backup(engine, COURSE, course(), progress=noop)
    assert result.conclusion == "failure" and "not this course's" in result.summary
    assert len(do_fake.snapshots) == 1
    restored = await engine_backup.restore_all(
        engine, COURSE, course(), taken["snapshot"], confirm=True, progress=noop
    )
    assert restored.conclusion == "failure" and "not this course's" in restored.summary
    assert [r for r in kube_fake.requests if r.method == "PATCH"] == []


async def test_backup_before_the_cluster_exists_says_so(engine, do_fake, kube_fake):
    result = await engine_backup.backup(engine, COURSE, course(), progress=noop)
    assert result.conclusion == "failure" and "no cluster yet" in result.summary
    assert do_fake.snapshots == []


async def restore(engine, name: str, **kwargs):
    return await engine_backup.restore_all(
        engine, COURSE, course(), name, confirm=True, progress=noop, **kwargs
    )


async def test_restore_all_serves_a_volume_made_from_the_snapshot_and_keeps_the_old_one(
    engine, do_fake, kube_fake
):
    await deploy(engine)
    (old,) = homes_volumes(do_fake)
    taken = (await engine_backup.backup(engine, COURSE, course(), progress=noop)).details
    kube_fake.cluster.objects[("pods", NAMESPACE, "jupyter-carol")] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-carol", "labels": {"component": "singleuser-server"}},
    }
    result = await restore(engine, taken["snapshot"])
    assert result.conclusion == "success", result.summary
    (snapshot,) = do_fake.snapshots
    (new,) = [v for v in homes_volumes(do_fake) if v.id != old.id]
    assert new.snapshot_id == snapshot["id"] and new.size_gigabytes == old.size_gigabytes
    assert "littlest-classroom-restore" not in new.tags  # a course volume, never deleted
    assert old.id in do_fake.volumes  # kept
    claim = kube_fake.objects("persistentvolumeclaims")["classroom-homes-disk"]
    assert claim["metadata"]["annotations"]["littlest-classroom/volume-id"] == new.id
    volumes = kube_fake.objects("persistentvolumes")
    assert volumes[kubernetes_homes.disk_pv_name(new.id)]["spec"]["csi"]["volumeHandle"] == new.id
    assert kubernetes_homes.disk_pv_name(old.id) not in volumes
    # The hub, the students' servers and the NFS server stopped while the volume changed.
    scaled = [
        (r.path.rsplit("/", 1)[1], r.body["spec"]["replicas"])
        for r in kube_fake.requests
        if r.method == "PATCH"
    ]
    assert scaled == [
        ("hub", 0),
        ("classroom-homes-nfs", 0),
        ("classroom-homes-nfs", 1),
        ("hub", 1),
    ]
    assert ("pods", NAMESPACE, "jupyter-carol") in kube_fake.deleted
    deployments = kube_fake.objects("deployments")
    assert deployments["hub"]["spec"]["replicas"] == 1
    assert deployments["classroom-homes-nfs"]["spec"]["replicas"] == 1
    assert f"`{new.name}`" in result.summary and f"`{old.name}`, is kept" in result.summary
    # Safety invariant 8: no volume is ever deleted.
    assert not [r for r in do_fake.requests if r.method == "DELETE" and "/volumes" in r.path]
    # Asked again, it is done already: nothing stops, nothing new is made.
    patches = len(scaled)
    again = await restore(engine, taken["snapshot"])
    assert again.conclusion == "success", again.summary
    assert len([r for r in kube_fake.requests if r.method == "PATCH"]) == patches
    assert len(homes_volumes(do_fake)) == 2


async def test_a_restore_whose_volume_cannot_be_made_serves_the_old_volume_again(
    engine, do_fake, kube_fake
):
    await deploy(engine)
    (old,) = homes_volumes(do_fake)
    taken = (await engine_backup.backup(engine, COURSE, course(), progress=noop)).details
    do_fake.fail("POST /v2/volumes", 422, times=5)
    result = await restore(engine, taken["snapshot"])
    assert result.conclusion == "failure"
    assert "serves the homes again" in result.summary
    assert homes_volumes(do_fake) == [old]
    claim = kube_fake.objects("persistentvolumeclaims")["classroom-homes-disk"]
    assert claim["metadata"]["annotations"]["littlest-classroom/volume-id"] == old.id
    deployments = kube_fake.objects("deployments")
    assert deployments["hub"]["spec"]["replicas"] == 1
    assert deployments["classroom-homes-nfs"]["spec"]["replicas"] == 1


async def test_a_swap_that_fails_in_the_cluster_binds_the_old_volume_again(
    engine, do_fake, kube_fake
):
    await deploy(engine)
    (old,) = homes_volumes(do_fake)
    taken = (await engine_backup.backup(engine, COURSE, course(), progress=noop)).details
    kube_fake.refuse.append("POST /api/v1/persistentvolumes")
    result = await restore(engine, taken["snapshot"])
    assert result.conclusion == "failure", result.summary
    assert f"`{old.name}`, serves the homes again" in result.summary
    claim = kube_fake.objects("persistentvolumeclaims")["classroom-homes-disk"]
    assert claim["metadata"]["annotations"]["littlest-classroom/volume-id"] == old.id
    assert kubernetes_homes.disk_pv_name(old.id) in kube_fake.objects("persistentvolumes")
    assert kube_fake.objects("deployments")["hub"]["spec"]["replicas"] == 1
    # The volume made from the snapshot is kept; the same command finishes the restore.
    assert len(homes_volumes(do_fake)) == 2
    again = await restore(engine, taken["snapshot"])
    assert again.conclusion == "success", again.summary


async def test_restore_of_an_unknown_snapshot_stops_nothing(engine, do_fake, kube_fake):
    await deploy(engine)
    result = await restore(engine, "physics-hub-home-20250301-020000")
    assert result.conclusion == "failure" and "no snapshot of this course" in result.summary
    assert [r for r in kube_fake.requests if r.method == "PATCH"] == []


async def test_restart_rolls_the_hub_deployment_and_waits_until_it_is_ready(engine, kube_fake):
    await deploy(engine)
    before = kube_fake.objects("deployments")["hub"]["metadata"]["generation"]
    result = await operations.restart(engine, COURSE, course(), progress=noop)
    assert result.conclusion == "success", result.summary
    hub = kube_fake.objects("deployments")["hub"]
    annotations = hub["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == result.details["restarted_at"]
    assert hub["metadata"]["generation"] == before + 1
    assert result.hub_url == f"http://{LOAD_BALANCER_IP}"


async def test_a_restart_whose_hub_never_gets_ready_says_so(engine, kube_fake):
    await deploy(engine)
    kube_fake.deployments_ready = False
    engine.cluster_options["wait_seconds"] = 0
    result = await operations.restart(engine, COURSE, course(), progress=noop)
    assert result.conclusion == "failure"
    assert result.title == "The hub did not come back"
