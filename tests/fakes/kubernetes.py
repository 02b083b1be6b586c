"""A fake Kubernetes API on loopback: namespaces, config maps, secrets, jobs with their pods'
logs, persistent volumes and claims, services, deployments, checked against Kubernetes' own
OpenAPI description.

Every request is validated against the subset of Kubernetes' OpenAPI v3 description in
``tests/data/kubernetes-openapi-subset.json`` (release 1.33, see
``scripts/extract_kubernetes_openapi.py``); one that breaks it is answered 422 and kept
in ``validation_errors``. Objects keep their state between requests.

Jobs run when they are created, by what their pod would do:

- a helm Job (the pinned helm image) reads the values ConfigMap it mounts, validates the
  values merged over the chart's defaults against the chart's ``values.schema.yaml`` (as
  helm does), and on success records a new revision of the release, gives the proxy
  service a load balancer address and, on the first install, makes the hub's database
  with NativeAuthenticator's ``users_info`` table (a real SQLite file);
- a seed Job runs the very program in its environment with the request from the Secret
  it mounts, under this Python, against that database (its paths moved into the fake's
  folder): the log is the program's output.

A Service gets a cluster IP; a claim is ``Bound`` when the PersistentVolume it names
exists; a Deployment is ready at once (its rollout done) unless ``deployments_ready`` is
False, and a JSON merge patch of it bumps its generation when its spec changes.

``signup_violations`` lists every release revision that opened sign-up while a name in
``Authenticator.admin_users`` had no row: safety invariant 9, checked where it happens.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from deploy.providers.chart_values import schema_errors
from deploy.providers.release import HELM_IMAGE, HUB_DATA, HUB_IMAGE, RELEASE
from tests.fakes.openapi_check import OpenAPIChecker, OpenAPICheckError

SUBSET = Path(__file__).resolve().parents[1] / "data" / "kubernetes-openapi-subset.json"
FAKE_CLUSTER_TOKEN = "kube-token-" + "fedcba9876543210" * 2
LOAD_BALANCER_IP = "203.0.113.80"

# NativeAuthenticator 1.3's table, as its UserInfo model creates it.
USERS_INFO = """CREATE TABLE users_info (
    id INTEGER PRIMARY KEY, username VARCHAR(128) NOT NULL, password BLOB NOT NULL,
    is_authorized BOOLEAN, email VARCHAR(128), has_2fa BOOLEAN, otp_secret VARCHAR(16),
    login_email_sent BOOLEAN)"""

_checker: OpenAPIChecker | None = None


def kubernetes_checker() -> OpenAPIChecker:
    global _checker
    if _checker is None:
        _checker = OpenAPIChecker(SUBSET, check_description=False)
    return _checker


@dataclass
class KubeRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    operation: str = ""
    status: int = 0


@dataclass
class Revision:
    number: int
    values: dict[str, Any]


@dataclass
class FakeCluster:
    """What one cluster holds."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # pod name -> log
    revisions: list[Revision] = field(default_factory=list)
    jobs_created: list[dict[str, Any]] = field(default_factory=list)


class KubernetesFake:
    """A Kubernetes API server for one cluster, on loopback."""

    def __init__(self, folder: Path, *, token: str = FAKE_CLUSTER_TOKEN) -> None:
        self.folder = folder
        self.token = token
        self.cluster = FakeCluster()
        self.requests: list[KubeRequest] = []
        self.validation_errors: list[str] = []
        self.signup_violations: list[str] = []
        self.fail_helm: list[str] = []  # logs of helm runs made to fail, first first
        self.deployments_ready = True  # a Deployment's new pods become ready at once
        self.refuse: list[str] = []  # "METHOD /path" answered 500 once each
        self.deleted: list[tuple[str, str, str]] = []  # (kind, namespace, name), in order
        self._cluster_ips = itertools.count(10)
        self._uids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ---- for tests ----------------------------------------------------------------------

    @property
    def database(self) -> Path:
        return self.folder / "hub" / "jupyterhub.sqlite"

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig for this server, as DigitalOcean's API answers one."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-admin", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-admin"}}],
            "current-context": "fake",
        }

    def jobs(self) -> list[dict[str, Any]]:
        """Every Job created, in order."""
        return list(self.cluster.jobs_created)

    def objects(self, kind: str) -> dict[str, dict[str, Any]]:
        """The objects of one kind (``persistentvolumes``, ``deployments``, …) by name."""
        return {name: obj for (k, _, name), obj in self.cluster.objects.items() if k == kind}

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests]

    def rows(self) -> dict[str, bool]:
        if not self.database.exists():
            return {}
        with sqlite3.connect(self.database) as db:
            found = db.execute("SELECT username, is_authorized FROM users_info")
            return {name: bool(ok) for name, ok in found}

    def sign_up(self, name: str) -> None:
        """A student signs up on the hub (waits for approval)."""
        with sqlite3.connect(self.database) as db:
            db.execute(
                "INSERT INTO users_info (username, password, is_authorized) VALUES (?, ?, 0)",
                (name, b"x"),
            )

    # ---- server -------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/api/v1/namespaces", self._create)
        r.add_get("/api/v1/namespaces/{name}", self._read)
        r.add_get("/api/v1/namespaces/{namespace}/pods/{name}/log", self._log)
        r.add_get("/api/v1/namespaces/{namespace}/{plural}", self._list)
        r.add_post("/api/v1/namespaces/{namespace}/{plural}", self._create)
        r.add_get("/api/v1/namespaces/{namespace}/{plural}/{name}", self._read)
        r.add_put("/api/v1/namespaces/{namespace}/{plural}/{name}", self._replace)
        r.add_delete("/api/v1/namespaces/{namespace}/{plural}/{name}", self._delete)
        r.add_post("/api/v1/persistentvolumes", self._create)
        r.add_get("/api/v1/persistentvolumes/{name}", self._read)
        r.add_delete("/api/v1/persistentvolumes/{name}", self._delete)
        r.add_post("/apis/apps/v1/namespaces/{namespace}/deployments", self._create)
        r.add_get("/apis/apps/v1/namespaces/{namespace}/deployments/{name}", self._read)
        r.add_patch("/apis/apps/v1/namespaces/{namespace}/deployments/{name}", self._patch)
        r.add_get("/apis/batch/v1/namespaces/{namespace}/jobs", self._list)
        r.add_post("/apis/batch/v1/namespaces/{namespace}/jobs", self._create)
        r.add_get("/apis/batch/v1/namespaces/{namespace}/jobs/{name}", self._read)
        r.add_post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", self._create)
        r.add_get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{name}", self._read)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        record = KubeRequest(request.method, request.path, dict(request.query), body)
        self.requests.append(record)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            record.status = 401
            return _status(401, "Unauthorized", "Unauthorized")
        try:
            record.operation = kubernetes_checker().check(
                request.method,
                request.path,
                query=list(request.query.items()),
                headers=dict(request.headers),
                body=raw or None,
            )
        except OpenAPICheckError as exc:
            self.validation_errors.append(exc.message)
            record.status = 422
            return _status(422, "Invalid", exc.message)
        request["json"] = body
        said = f"{request.method} {request.path}"
        if said in self.refuse:
            self.refuse.remove(said)
            record.status = 500
            return _status(500, "InternalError", "etcdserver: request timed out")
        response = await handler(request)
        record.status = response.status
        return response

    # ---- objects ------------------------------------------------------------------------

    @staticmethod
    def _kind_of(request: web.Request) -> str:
        path = request.path
        if "/jobs" in path:
            return "jobs"
        if "/clusterrolebindings" in path:
            return "clusterrolebindings"
        if path.startswith("/api/v1/persistentvolumes"):
            return "persistentvolumes"
        if "/deployments" in path:
            return "deployments"
        return request.match_info.get("plural", "namespaces")

    def _key(self, request: web.Request, name: str) -> tuple[str, str, str]:
        return (self._kind_of(request), request.match_info.get("namespace", ""), name)

    async def _create(self, request: web.Request) -> web.Response:
        obj = dict(request["json"])
        name = obj["metadata"]["name"]
        key = self._key(request, name)
        if key in self.cluster.objects:
            return _status(409, "AlreadyExists", f'{key[0]} "{name}" already exists')
        if key[1] and (("namespaces", "", key[1]) not in self.cluster.objects):
            return _status(404, "NotFound", f'namespaces "{key[1]}" not found')
        obj["metadata"] = {
            **obj["metadata"],
            "namespace": key[1] or None,
            "uid": f"uid-{next(self._uids)}",
            "resourceVersion": "1",
        }
        if not key[1]:
            obj["metadata"].pop("namespace")
        _string_data(obj)
        self.cluster.objects[key] = obj
        self._settle(key[0], key[1], obj)
        if key[0] == "jobs":
            obj["status"] = {"active": 1}
            self.cluster.jobs_created.append(obj)
            await asyncio.to_thread(self._run_job, key[1], obj)
        return _json(obj, status=201)

    async def _read(self, request: web.Request) -> web.Response:
        key = self._key(request, request.match_info["name"])
        found = self.cluster.objects.get(key)
        if found is None:
            return _status(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        return _json(found)

    async def _replace(self, request: web.Request) -> web.Response:
        key = self._key(request, request.match_info["name"])
        if key not in self.cluster.objects:
            return _status(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        obj = dict(request["json"])
        old = self.cluster.objects[key]
        obj["metadata"] = {
            **obj["metadata"],
            "uid": old["metadata"]["uid"],
            "resourceVersion": str(int(old["metadata"]["resourceVersion"]) + 1),
        }
        _string_data(obj)
        self.cluster.objects[key] = obj
        return _json(obj)

    async def _delete(self, request: web.Request) -> web.Response:
        key = self._key(request, request.match_info["name"])
        found = self.cluster.objects.pop(key, None)
        if found is None:
            return _status(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        self.deleted.append(key)
        if key[0] == "persistentvolumeclaims":
            volume = self.cluster.objects.get(
                ("persistentvolumes", "", found["spec"]["volumeName"])
            )
            if volume is not None:  # Retain: the volume is kept, released from its claim
                volume["status"] = {"phase": "Released"}
        return _json(found)

    async def _patch(self, request: web.Request) -> web.Response:
        key = self._key(request, request.match_info["name"])
        old = self.cluster.objects.get(key)
        if old is None:
            return _status(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        if request.content_type != "application/merge-patch+json":
            return _status(415, "UnsupportedMediaType", f"{request.content_type} is not served")
        obj = _merge_patch(old, request["json"])
        metadata = obj["metadata"]
        metadata["resourceVersion"] = str(int(old["metadata"]["resourceVersion"]) + 1)
        if obj.get("spec") != old.get("spec"):
            metadata["generation"] = int(old["metadata"].get("generation") or 1) + 1
        self.cluster.objects[key] = obj
        self._settle(key[0], key[1], obj)
        return _json(obj)

    def _settle(self, kind: str, namespace: str, obj: dict[str, Any]) -> None:
        """What the cluster's controllers make of a new or changed object."""
        if kind == "services" and not obj.get("spec", {}).get("clusterIP"):
            obj["spec"]["clusterIP"] = f"10.245.0.{next(self._cluster_ips)}"
        elif kind == "persistentvolumeclaims":
            name = obj["spec"].get("volumeName", "")
            bound = ("persistentvolumes", "", name) in self.cluster.objects
            obj["status"] = {"phase": "Bound" if bound else "Pending"}
        elif kind == "deployments":
            obj["metadata"].setdefault("generation", 1)
            if self.deployments_ready:
                replicas = obj["spec"].get("replicas", 1)
                obj["status"] = {
                    "observedGeneration": obj["metadata"]["generation"],
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                }

    async def _list(self, request: web.Request) -> web.Response:
        kind = self._kind_of(request)
        namespace = request.match_info["namespace"]
        wanted = dict(
            part.split("=", 1)
            for part in request.query.get("labelSelector", "").split(",")
            if "=" in part
        )
        items = [
            obj
            for (k, ns, _), obj in self.cluster.objects.items()
            if k == kind
            and ns == namespace
            and all(obj["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]
        list_kind = {"pods": "PodList", "jobs": "JobList"}.get(kind, "List")
        api = "batch/v1" if kind == "jobs" else "v1"
        return _json({"apiVersion": api, "kind": list_kind, "metadata": {}, "items": items})

    async def _log(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.cluster.logs:
            return _status(404, "NotFound", f'pods "{name}" not found')
        return web.Response(text=self.cluster.logs[name])

    # ---- what a Job's pod does ----------------------------------------------------------

    def _run_job(self, namespace: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        pod_name = f"{name}-x7k2p"
        spec = job["spec"]["template"]["spec"]
        container = spec["containers"][0]
        if container["image"] == HELM_IMAGE:
            ok, log = self._helm(namespace, spec)
        elif container["image"] == HUB_IMAGE:
            ok, log = self._seed(namespace, spec, container)
        else:
            ok, log = False, f"unknown image {container['image']}"
        self.cluster.objects[("pods", namespace, pod_name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": namespace,
                "labels": {"batch.kubernetes.io/job-name": name, "job-name": name},
            },
            "status": {"phase": "Succeeded" if ok else "Failed"},
        }
        self.cluster.logs[pod_name] = log
        condition = {"type": "Complete" if ok else "Failed", "status": "True"}
        if not ok:
            condition.update(
                reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit"
            )
        job["status"] = {"succeeded": 1} if ok else {"failed": 1}
        job["status"]["conditions"] = [condition]

    def _volume(self, spec: dict[str, Any], kind: str) -> str:
        found = (v[kind] for v in spec["volumes"] if kind in v)
        return next(v.get("name") or v.get("secretName") for v in found)

    def _helm(self, namespace: str, spec: dict[str, Any]) -> tuple[bool, str]:
        key = ("configmaps", namespace, self._volume(spec, "configMap"))
        configmap = self.cluster.objects.get(key)
        if configmap is None:
            return False, "Error: open /values/values.yaml: no such file or directory\n"
        values = yaml.safe_load(configmap["data"]["values.yaml"]) or {}
        problems = schema_errors(values)
        if problems:
            lines = "\n".join(f"- {p}" for p in problems)
            return False, (
                "Error: values don't meet the specifications of the schema(s) in the "
                f"following chart(s):\njupyterhub:\n{lines}\n"
            )
        if self.fail_helm:
            return False, self.fail_helm.pop(0)
        number = len(self.cluster.revisions) + 1
        self.cluster.revisions.append(Revision(number, values))
        self._hub_started(namespace, values)
        verb = "installed" if number == 1 else "upgraded"
        return True, (
            f'Release "{RELEASE}" has been {verb}. Happy Helming!\n'
            f"NAME: {RELEASE}\nNAMESPACE: {namespace}\nSTATUS: deployed\nREVISION: {number}\n"
        )

    def _hub_started(self, namespace: str, values: dict[str, Any]) -> None:
        self.database.parent.mkdir(parents=True, exist_ok=True)
        if not self.database.exists():
            with sqlite3.connect(self.database) as db:
                db.execute(USERS_INFO)
        hub = self.cluster.objects.setdefault(
            ("deployments", namespace, "hub"),
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "hub", "namespace": namespace, "resourceVersion": "1"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"component": "hub"}},
                    "template": {
                        "metadata": {"labels": {"component": "hub"}},
                        "spec": {"containers": [{"name": "hub", "image": HUB_IMAGE}]},
                    },
                },
            },
        )
        self._settle("deployments", namespace, hub)
        self.cluster.objects[("services", namespace, "proxy-public")] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "proxy-public", "namespace": namespace},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}},
        }
        config = values.get("hub", {}).get("config", {})
        native = config.get("NativeAuthenticator", {})
        if native.get("enable_signup", True):
            rows = self.rows()
            unclaimed = [
                n for n in config.get("Authenticator", {}).get("admin_users", []) if n not in rows
            ]
            if unclaimed:
                self.signup_violations.append(
                    f"revision {len(self.cluster.revisions)} opened sign-up while "
                    f"{', '.join(unclaimed)} had no account"
                )

    def _seed(
        self, namespace: str, spec: dict[str, Any], container: dict[str, Any]
    ) -> tuple[bool, str]:
        secret = self.cluster.objects.get(("secrets", namespace, self._volume(spec, "secret")))
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        ]
        if secret is None or claims != ["hub-db-dir"]:
            return False, "the seed Job's volumes are not there\n"
        request = base64.b64decode(secret["data"]["request.json"])
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        program = env["ACCOUNTS_PROGRAM"].replace(HUB_DATA, str(self.database.parent))
        action = container["command"][-1].split()[-3]
        # The program the Job carries, run as its pod would run it.
        done = subprocess.run(
            [sys.executable, "-I", "-c", program, action],
            input=request,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return done.returncode == 0, (done.stdout + done.stderr).decode()


def _string_data(obj: dict[str, Any]) -> None:
    """A Secret's ``stringData`` written into ``data``, base64-encoded, as the API server does."""
    if obj.get("kind") == "Secret" and "stringData" in obj:
        data = obj.setdefault("data", {}) or {}
        obj["data"] = data
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(value.encode()).decode()


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386's JSON merge patch of ``target`` (a new object; ``null`` deletes a key)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def _json(body: Any, status: int = 200) -> web.Response:
    """JSON as the API server sends it: ``Content-Type: application/json``, no charset."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


def _status(code: int, reason: str, message: str) -> web.Response:
    return _json(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status=code,
    )
