"""The homes of a ``provider: kubernetes`` course: one DigitalOcean block volume for the
whole class, served to every student's pod over NFS from inside the cluster.

DigitalOcean attaches at most 15 volumes to a node, so a volume per student does not fit
a class of 300 on a few nodes. Instead (the pattern of 2i2c's ``jupyterhub-home-nfs``):

- one block volume per course, made through DigitalOcean's API like a droplet course's
  (``deploy.volumes.volume_driver``: named ``<course name>-home``, tagged with the course's
  tag, found again only by that tag), ``storage.total`` GiB (default ``DEFAULT_TOTAL_GIB``);
- bound in the cluster as a static PersistentVolume of DigitalOcean's CSI driver
  (``volumeHandle``: the volume's id; reclaim policy ``Retain``, so deleting the object
  never deletes the volume) and a claim on it;
- an NFS server Deployment (one pod, image pinned by digest) that exports that volume, and
  a Service in front of it;
- an NFS PersistentVolume and claim (``chart_values.HOMES_CLAIM``) on that Service's
  address, which the chart mounts in each student's pod at the folder of their name
  (``singleuser.storage.type: static``, ``subPath: {username}``).

``storage.size`` (each student's share) is not enforced: the students share the volume's
``storage.total``. The manifests are pure; ``ensure``, ``current_volume`` and ``swap``
are the thin executor over ``deploy.providers.kubernetes.ClusterClient`` and
``deploy.volumes.volume_driver``.
DigitalOcean's CSI driver formats a volume only when it holds no filesystem (safety
invariant 8); nothing here deletes a volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim

from deploy.model import DROPLET_TAG, CourseConfig, Progress
from deploy.providers.chart_values import HOMES_CLAIM
from deploy.providers.kubernetes import ClusterClient
from deploy.providers.release import NAMESPACE
from deploy.volumes.volume_driver import VolumeDriver, VolumeError, VolumeInfo

DEFAULT_TOTAL_GIB = 100
CSI_DRIVER = "dobs.csi.digitalocean.com"
DISK_CLAIM = "classroom-homes-disk"  # the claim on the block volume, in NAMESPACE
DISK_PV_PREFIX = "classroom-homes-disk-"  # + the volume's id: one PV per volume
NFS_SERVER = "classroom-homes-nfs"  # the Deployment and its Service
NFS_PV = "classroom-homes-nfs"
VOLUME_ANNOTATION = "littlest-classroom/volume-id"
EXPORT = "/nfsshare"
NFS_PORT = 2049
# An NFSv4 server on Alpine (itsthenetwork/nfs-server-alpine, kernel nfsd), pinned by the
# digest its public users pin; it exports SHARED_DIRECTORY as the root "/".
NFS_IMAGE = (
    "docker.io/itsthenetwork/nfs-server-alpine"
    "@sha256:7fa99ae65c23c5af87dd4300e543a86b119ed15ba61422444207efc7abd0ba20"
)
NFS_LABELS = {"app.kubernetes.io/name": NFS_SERVER, "app.kubernetes.io/managed-by": DROPLET_TAG}
# The chart's hub and students' pods, by the chart's own labels.
HUB_DEPLOYMENT = "hub"
STUDENT_PODS = {"component": "singleuser-server"}


def total_gib(config: CourseConfig) -> int:
    """The size of the volume all the course's homes share."""
    total = config.storage.total_gib if config.storage else None
    return total or DEFAULT_TOTAL_GIB


def disk_pv_name(volume_id: str) -> str:
    return f"{DISK_PV_PREFIX}{volume_id}"


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": DROPLET_TAG}


def disk_volume(volume: VolumeInfo) -> dict[str, Any]:
    """The block volume as a static PersistentVolume of DigitalOcean's CSI driver."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": disk_pv_name(volume.id),
            "labels": _labels(),
            "annotations": {VOLUME_ANNOTATION: volume.id},
        },
        "spec": {
            "capacity": {"storage": f"{volume.size_gib}Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "csi": {"driver": CSI_DRIVER, "volumeHandle": volume.id, "fsType": "ext4"},
        },
    }


def disk_claim(volume: VolumeInfo) -> dict[str, Any]:
    """The NFS server's claim on the block volume; it names the volume's id."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": DISK_CLAIM,
            "namespace": NAMESPACE,
            "labels": _labels(),
            "annotations": {VOLUME_ANNOTATION: volume.id},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": disk_pv_name(volume.id),
            "resources": {"requests": {"storage": f"{volume.size_gib}Gi"}},
        },
    }


def nfs_deployment() -> dict[str, Any]:
    """One NFS server pod exporting the block volume (``Recreate``: the volume is
    ReadWriteOnce, so the old pod lets go of it before a new one starts)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NFS_SERVER, "namespace": NAMESPACE, "labels": NFS_LABELS},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": NFS_LABELS},
            "template": {
                "metadata": {"labels": NFS_LABELS},
                "spec": {
                    "containers": [
                        {
                            "name": "nfs",
                            "image": NFS_IMAGE,
                            "env": [{"name": "SHARED_DIRECTORY", "value": EXPORT}],
                            # The kernel's NFS server needs the pod's privileges.
                            "securityContext": {"privileged": True},
                            "ports": [{"name": "nfs", "containerPort": NFS_PORT}],
                            "volumeMounts": [{"name": "homes", "mountPath": EXPORT}],
                        }
                    ],
                    "volumes": [
                        {"name": "homes", "persistentVolumeClaim": {"claimName": DISK_CLAIM}}
                    ],
                },
            },
        },
    }


def nfs_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NFS_SERVER, "namespace": NAMESPACE, "labels": NFS_LABELS},
        "spec": {
            "type": "ClusterIP",
            "selector": NFS_LABELS,
            "ports": [{"name": "nfs", "port": NFS_PORT, "targetPort": NFS_PORT}],
        },
    }


def nfs_volume(server_ip: str, size_gib: int) -> dict[str, Any]:
    """The export as an NFS PersistentVolume. The node mounts it, and a node does not
    resolve the cluster's names, so the server is the Service's cluster IP."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": NFS_PV, "labels": _labels()},
        "spec": {
            "capacity": {"storage": f"{size_gib}Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": ["nfsvers=4", "noresvport"],
            "nfs": {"server": server_ip, "path": "/"},
        },
    }


def nfs_claim(size_gib: int) -> dict[str, Any]:
    """The claim the chart mounts in every student's pod (``chart_values.HOMES_CLAIM``)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": HOMES_CLAIM, "namespace": NAMESPACE, "labels": _labels()},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "volumeName": NFS_PV,
            "resources": {"requests": {"storage": f"{size_gib}Gi"}},
        },
    }


def volume_id_of(claim: Mapping[str, Any] | None) -> str | None:
    """The block volume's id a disk claim names (``None``: no claim)."""
    annotations = ((claim or {}).get("metadata") or {}).get("annotations") or {}
    found = annotations.get(VOLUME_ANNOTATION)
    return found if isinstance(found, str) and found else None


# ---- the executor --------------------------------------------------------------------


async def current_volume(
    client: ClusterClient, volumes: VolumeDriver, owner: str
) -> VolumeInfo | None:
    """The block volume the cluster serves the homes from (its disk claim names it);
    refused if it does not carry the course's tag ``owner``."""
    volume_id = volume_id_of(await client.read(PersistentVolumeClaim, DISK_CLAIM))
    if volume_id is None:
        return None
    volume = await volumes.get_volume(volume_id)
    if owner not in volume.tags:
        raise VolumeError(
            f"the cluster's homes are on volume {volume.name}, which is not this course's "
            f"(no tag {owner}); nothing was done"
        )
    return volume


async def bind(client: ClusterClient, volume: VolumeInfo) -> None:
    """The block volume's PersistentVolume and claim, and the NFS server on it (each kept
    if it exists)."""
    await client.ensure(disk_volume(volume))
    await client.ensure(disk_claim(volume))
    await client.ensure(nfs_deployment())
    await client.ensure(nfs_service())


async def ensure(
    client: ClusterClient,
    volumes: VolumeDriver,
    config: CourseConfig,
    owner: str,
    region: str,
    progress: Progress,
) -> VolumeInfo | None:
    """The course's homes in the cluster: the volume found or made, bound, served over NFS
    and claimed for the chart. ``None`` when the claim the chart mounts exists already
    (one read: a push that changes nothing makes nothing); else the volume now serving."""
    if await client.read(PersistentVolumeClaim, HOMES_CLAIM) is not None:
        return None
    volume = await current_volume(client, volumes, owner)
    if volume is None:
        volume = await volumes.ensure_home_volume(
            config.server.name, owner, region, total_gib(config), progress
        )
    await bind(client, volume)
    server_ip = await client.service_ip(NFS_SERVER)
    if server_ip is None:
        raise VolumeError(f"the NFS server's Service {NFS_SERVER} has no cluster IP yet")
    await client.ensure(nfs_volume(server_ip, volume.size_gib))
    # Last: its presence says that everything above is there.
    await client.ensure(nfs_claim(volume.size_gib))
    await progress(f"homes: volume {volume.name} ({volume.size_gib} GiB) served over NFS")
    return volume


async def swap(
    client: ClusterClient, previous: VolumeInfo | None, volume: VolumeInfo, progress: Progress
) -> None:
    """Serve the homes from ``volume`` instead of ``previous``; the NFS server must be
    stopped. A PersistentVolume's volume cannot change, so the disk claim and the old
    PersistentVolume go (``Retain``: the block volume itself stays, detached) and new
    ones name ``volume``."""
    await client.delete(PersistentVolumeClaim, DISK_CLAIM)
    await client.wait_gone(PersistentVolumeClaim, DISK_CLAIM)
    if previous is not None and previous.id != volume.id:
        await client.delete(PersistentVolume, disk_pv_name(previous.id))
    await client.ensure(disk_volume(volume))
    await client.ensure(disk_claim(volume))
    serving = volume_id_of(await client.read(PersistentVolumeClaim, DISK_CLAIM))
    if serving != volume.id:
        raise VolumeError(f"the homes claim names volume {serving}, not {volume.name}")
    await progress(f"homes: the NFS server now serves volume {volume.name}")
