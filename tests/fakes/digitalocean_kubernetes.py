"""DigitalOcean Kubernetes (DOKS) in the fake DigitalOcean API: clusters, node pools and
kubeconfigs, mixed into ``tests.fakes.digitalocean.DigitalOceanFake``.

A new cluster is ``provisioning`` for ``cluster_polls`` reads, then ``running``. Its
kubeconfig is what ``kubeconfig_for`` says (a test points it at a fake Kubernetes API);
DigitalOcean answers it as YAML. Node pools keep size, count and autoscaling range; a
deleted pool is kept in ``deleted_node_pools``. Deleting a cluster is not served at all:
the service must never ask.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import yaml
from aiohttp import web

DOKS_VERSION = "1.33.1-do.0"


class KubernetesClustersFake:
    """The DOKS part of the fake DigitalOcean API."""

    cluster_polls: int = 1

    def _init_clusters(self) -> None:
        self.clusters: dict[str, dict[str, Any]] = {}
        self.deleted_node_pools: list[dict[str, Any]] = []
        self._cluster_reads: dict[str, int] = {}
        # cluster id -> kubeconfig (a dict, sent as YAML); set by tests.
        self.kubeconfig_for: Callable[[str], dict[str, Any]] | None = None

    def cluster_routes(self) -> list[tuple[str, str, Callable]]:
        base = "/v2/kubernetes/clusters"
        pool = base + "/{cluster_id}/node_pools/{node_pool_id}"
        return [
            ("GET", base, self._list_clusters),
            ("POST", base, self._create_cluster),
            ("GET", base + "/{cluster_id}", self._get_cluster),
            ("GET", base + "/{cluster_id}/kubeconfig", self._kubeconfig),
            ("POST", base + "/{cluster_id}/node_pools", self._create_node_pool),
            ("GET", pool, self._get_node_pool),
            ("PUT", pool, self._put_node_pool),
            ("DELETE", pool, self._delete_node_pool),
        ]

    def node_pools(self, cluster_id: str) -> list[dict[str, Any]]:
        return self.clusters[cluster_id]["node_pools"]

    @staticmethod
    def _pool(spec: dict[str, Any], cluster_id: str) -> dict[str, Any]:
        count = spec.get("count", 1)
        return {
            "id": str(uuid.uuid4()),
            "name": spec["name"],
            "size": spec["size"],
            "count": count,
            "auto_scale": bool(spec.get("auto_scale", False)),
            "min_nodes": spec.get("min_nodes", count),
            "max_nodes": spec.get("max_nodes", count),
            "tags": ["k8s", f"k8s:{cluster_id}", "k8s-worker", *spec.get("tags", [])],
            "labels": spec.get("labels"),
            "nodes": [],
        }

    def _cluster_json(self, cluster: dict[str, Any]) -> dict[str, Any]:
        reads = self._cluster_reads.get(cluster["id"], 0)
        state = "running" if reads >= self.cluster_polls else "provisioning"
        return {**cluster, "status": {"state": state, "message": state}}

    def _cluster_or_none(self, request: web.Request) -> dict[str, Any] | None:
        return self.clusters.get(request.match_info["cluster_id"])

    async def _list_clusters(self, request: web.Request) -> web.Response:
        items = [self._cluster_json(c) for c in self.clusters.values()]
        return web.json_response(
            {"kubernetes_clusters": items, "links": {}, "meta": {"total": len(items)}}
        )

    async def _create_cluster(self, request: web.Request) -> web.Response:
        body = request["json"]
        if any(c["name"] == body["name"] for c in self.clusters.values()):
            return _error(422, "unprocessable_entity", "a cluster with this name already exists")
        cluster_id = str(uuid.uuid4())
        cluster = {
            "id": cluster_id,
            "name": body["name"],
            "region": body["region"],
            "version": DOKS_VERSION,
            "endpoint": f"https://{cluster_id}.k8s.ondigitalocean.com",
            "ipv4": "",
            "tags": ["k8s", f"k8s:{cluster_id}", *body.get("tags", [])],
            "node_pools": [self._pool(p, cluster_id) for p in body["node_pools"]],
            "auto_upgrade": body.get("auto_upgrade", False),
            "surge_upgrade": body.get("surge_upgrade", False),
            "ha": body.get("ha", False),
            "created_at": "2026-12-06T01:00:00Z",
            "updated_at": "2026-12-06T01:00:00Z",
        }
        self.clusters[cluster_id] = cluster
        self.tags.update(body.get("tags", []))  # type: ignore[attr-defined]
        return web.json_response({"kubernetes_cluster": self._cluster_json(cluster)}, status=201)

    async def _get_cluster(self, request: web.Request) -> web.Response:
        cluster = self._cluster_or_none(request)
        if cluster is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        answer = self._cluster_json(cluster)
        self._cluster_reads[cluster["id"]] = self._cluster_reads.get(cluster["id"], 0) + 1
        return web.json_response({"kubernetes_cluster": answer})

    async def _kubeconfig(self, request: web.Request) -> web.Response:
        cluster = self._cluster_or_none(request)
        if cluster is None or self.kubeconfig_for is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        text = yaml.safe_dump(self.kubeconfig_for(cluster["id"]))
        return web.Response(text=text, content_type="application/yaml")

    def _pool_or_none(self, request: web.Request) -> dict[str, Any] | None:
        cluster = self._cluster_or_none(request)
        wanted = request.match_info["node_pool_id"]
        pools = cluster["node_pools"] if cluster else []
        return next((p for p in pools if p["id"] == wanted), None)

    async def _create_node_pool(self, request: web.Request) -> web.Response:
        cluster = self._cluster_or_none(request)
        if cluster is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        pool = self._pool(request["json"], cluster["id"])
        cluster["node_pools"].append(pool)
        return web.json_response({"node_pool": pool}, status=201)

    async def _get_node_pool(self, request: web.Request) -> web.Response:
        pool = self._pool_or_none(request)
        if pool is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        return web.json_response({"node_pool": pool})

    async def _put_node_pool(self, request: web.Request) -> web.Response:
        pool = self._pool_or_none(request)
        if pool is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        body = request["json"]
        pool.update(name=body["name"], count=body["count"])
        for key in ("auto_scale", "min_nodes", "max_nodes", "labels"):
            if key in body:
                pool[key] = body[key]
        return web.json_response({"node_pool": pool}, status=202)

    async def _delete_node_pool(self, request: web.Request) -> web.Response:
        pool = self._pool_or_none(request)
        cluster = self._cluster_or_none(request)
        if pool is None or cluster is None:
            return _error(404, "not_found", "The resource you were accessing could not be found.")
        cluster["node_pools"].remove(pool)
        self.deleted_node_pools.append(pool)
        return web.Response(status=204)


def _error(status: int, error_id: str, message: str) -> web.Response:
    return web.json_response(
        {"id": error_id, "message": message, "request_id": "fake-request"}, status=status
    )
