"""A course's DigitalOcean Kubernetes (DOKS) cluster and its node pool, from DigitalOcean's API.

Through the same request path as droplets (``deploy.providers.digitalocean_api``, retried by the
``DropletDriver``'s policy). The cluster carries the service's tag and the course's
ownership tag (``lc-course-<repository id>``): a cluster is found by both, never adopted
by its name alone (safety invariant 11). The kubeconfig is fetched when needed and only
held in memory. Nothing here deletes a cluster; a node pool is deleted only when a
resize has put a new pool of the new size beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from deploy.model import NodePoolSpec, Progress
from deploy.providers.digitalocean_api import DELETE, GET, POST, PUT
from deploy.providers.droplets import DropletDriver

# DigitalOcean Kubernetes 1.33 (its newest patch when the cluster is made).
KUBERNETES_VERSION = "1.33"
POOL_PREFIX = "students"
CLUSTER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class ClusterError(RuntimeError):
    """A cluster cannot be made, found or changed; the message is for the instructor."""


def course_tag(repository_id: int) -> str:
    """The ownership tag of everything a course has in DigitalOcean."""
    return f"lc-course-{int(repository_id)}"


def cluster_name(server_name: str) -> str:
    """The course's cluster name, from its server name (DOKS: lower-case, 63 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", server_name.lower()).strip("-")[:63].rstrip("-")
    return name or "classroom"


@dataclass(frozen=True)
class PoolInfo:
    id: str
    name: str
    size: str
    count: int
    auto_scale: bool
    min_nodes: int
    max_nodes: int


@dataclass(frozen=True)
class ClusterInfo:
    id: str
    name: str
    region: str
    state: str
    tags: tuple[str, ...]
    pools: tuple[PoolInfo, ...]

    @property
    def pool(self) -> PoolInfo | None:
        """The course's students' pool (the newest, while a resize has two)."""
        own = [p for p in self.pools if p.name.startswith(POOL_PREFIX)]
        return own[-1] if own else None


def _pool(data: dict[str, Any]) -> PoolInfo:
    return PoolInfo(
        id=data["id"],
        name=data["name"],
        size=data["size"],
        count=int(data.get("count") or 0),
        auto_scale=bool(data.get("auto_scale")),
        min_nodes=int(data.get("min_nodes") or 0),
        max_nodes=int(data.get("max_nodes") or 0),
    )


def _cluster(data: dict[str, Any]) -> ClusterInfo:
    return ClusterInfo(
        id=data["id"],
        name=data["name"],
        region=data["region"],
        state=(data.get("status") or {}).get("state", ""),
        tags=tuple(data.get("tags") or ()),
        pools=tuple(_pool(p) for p in data.get("node_pools") or ()),
    )


def pool_request(name: str, nodes: NodePoolSpec, tags: list[str]) -> dict[str, Any]:
    """A node pool that autoscales between ``nodes.min`` and ``nodes.max``."""
    return {
        "name": name,
        "size": nodes.size,
        "count": nodes.min,
        "auto_scale": True,
        "min_nodes": nodes.min,
        "max_nodes": nodes.max,
        "tags": tags,
    }


class ClusterDriver:
    """The calls this service makes about a course's cluster, as async methods."""

    def __init__(self, droplets: DropletDriver) -> None:
        self._droplets = droplets

    async def _request(
        self, what: str, url: str, method: str = GET, params: dict[str, Any] | None = None
    ) -> Any:
        return await self._droplets._call(what, self._droplets.api.request, url, method, params)

    async def find(self, name: str, tag: str) -> ClusterInfo | None:
        """The cluster named ``name`` that carries ``tag``; ClusterError if one of that name
        does not (it is somebody else's)."""
        listed = await self._request("list Kubernetes clusters", "kubernetes/clusters")
        for data in listed.get("kubernetes_clusters") or []:
            if data.get("name") != name:
                continue
            if tag not in (data.get("tags") or []):
                raise ClusterError(
                    f"a Kubernetes cluster named {name} exists without the tag {tag}; it is "
                    "not this course's and is left alone: rename it, or name another cluster"
                )
            return _cluster(data)
        return None

    async def get(self, cluster_id: str) -> ClusterInfo:
        data = await self._request("read the cluster", f"kubernetes/clusters/{cluster_id}")
        return _cluster(data["kubernetes_cluster"])

    async def ensure_cluster(
        self, name: str, region: str, nodes: NodePoolSpec, tags: list[str], progress: Progress
    ) -> ClusterInfo:
        """The course's cluster, found by name and tag or made, once it is running."""
        found = await self.find(name, tags[-1])
        if found is None:
            request = {
                "name": name,
                "region": region,
                "version": KUBERNETES_VERSION,
                "tags": tags,
                "auto_upgrade": True,
                "surge_upgrade": True,
                "node_pools": [pool_request(f"{POOL_PREFIX}-{nodes.size}", nodes, tags)],
            }
            made = await self._request(
                "create the Kubernetes cluster", "kubernetes/clusters", POST, request
            )
            found = _cluster(made["kubernetes_cluster"])
            await progress(
                f"created Kubernetes cluster {name} in {region}: nodes {nodes.size}, "
                f"{nodes.min} to {nodes.max}"
            )
        return await self.wait_running(found, progress)

    async def wait_running(self, cluster: ClusterInfo, progress: Progress) -> ClusterInfo:
        driver = self._droplets
        for _ in range(driver._polls(driver.timeout * 2)):
            if cluster.state == "running":
                return cluster
            await progress(f"waiting for cluster {cluster.name} ({cluster.state or 'new'})")
            await driver._sleep(driver.poll_interval)
            cluster = await self.get(cluster.id)
        raise ClusterError(f"the cluster {cluster.name} was not running in time")

    async def kubeconfig(self, cluster_id: str) -> dict[str, Any]:
        """The cluster's kubeconfig, parsed; kept in memory by the caller, never written."""
        text = await self._droplets._call(
            "read the cluster's kubeconfig",
            self._droplets.api.text,
            f"kubernetes/clusters/{cluster_id}/kubeconfig",
        )
        config = yaml.safe_load(text)
        if not isinstance(config, dict) or not config.get("clusters"):
            raise ClusterError("DigitalOcean answered a kubeconfig without a cluster in it")
        return config

    async def autoscale(
        self, cluster: ClusterInfo, pool: PoolInfo, low: int, high: int, progress: Progress
    ) -> PoolInfo:
        """``/resize --nodes LOW:HIGH``: the pool's autoscaling range."""
        count = min(max(pool.count, low), high)
        answer = await self._request(
            "change the node pool",
            f"kubernetes/clusters/{cluster.id}/node_pools/{pool.id}",
            PUT,
            {
                "name": pool.name,
                "count": count,
                "auto_scale": True,
                "min_nodes": low,
                "max_nodes": high,
            },
        )
        await progress(f"node pool {pool.name} now scales between {low} and {high} nodes")
        return _pool(answer["node_pool"])

    async def replace_pool(
        self, cluster: ClusterInfo, pool: PoolInfo, size: str, tags: list[str], progress: Progress
    ) -> PoolInfo:
        """``/resize SIZE``: DOKS cannot change a pool's node size, so a new pool of that
        size joins the cluster and then the old one is deleted (its pods move over)."""
        nodes = NodePoolSpec(size=size, min=pool.min_nodes or 1, max=pool.max_nodes or 1)
        made = await self._request(
            "add a node pool",
            f"kubernetes/clusters/{cluster.id}/node_pools",
            POST,
            pool_request(f"{POOL_PREFIX}-{size}", nodes, tags),
        )
        new = _pool(made["node_pool"])
        await progress(f"added node pool {new.name} ({size})")
        await self._request(
            "remove the old node pool",
            f"kubernetes/clusters/{cluster.id}/node_pools/{pool.id}",
            DELETE,
        )
        await progress(f"removed node pool {pool.name}; the hub and sessions move to {size}")
        return new
