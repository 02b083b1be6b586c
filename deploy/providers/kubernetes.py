"""Talk to a course's Kubernetes cluster with lightkube: write objects, run Jobs, read logs.

The thin executor for ``deploy.providers.release``'s objects. The kubeconfig comes from
DigitalOcean's API (``deploy.providers.clusters``) as a dict and stays in memory: lightkube
reads it with ``KubeConfig.from_dict``, and nothing is written to disk. Every request goes through
lightkube's async client; its ``ApiError`` and transport errors become ``KubernetesError``
with Kubernetes' own message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig, codecs
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Pod, Service
from lightkube.types import PatchType

from deploy.model import Progress
from deploy.providers.release import NAMESPACE, PROXY_SERVICE
from deploy.redact import add_secrets, redact

# ``kubectl rollout restart``'s annotation on a Deployment's pod template.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

FIELD_MANAGER = "littlest-classroom"
LOG_LINES = 200


class KubernetesError(RuntimeError):
    """The cluster refused or did not answer; the message is safe to show."""


@dataclass(frozen=True)
class JobOutcome:
    name: str
    ok: bool
    log: str  # the pod's log, last lines
    reason: str = ""


def kubeconfig_secrets(kubeconfig: Mapping[str, Any]) -> list[str]:
    """The credentials in a kubeconfig, for the redactor: tokens and keys."""
    found = []
    for user in kubeconfig.get("users") or []:
        for key in ("token", "client-key-data", "password"):
            value = (user.get("user") or {}).get(key)
            if isinstance(value, str) and value:
                found.append(value)
    return found


def rolled_out(deployment: Mapping[str, Any]) -> bool:
    """Whether a Deployment's rollout is done: its controller saw the newest spec, and
    every wanted replica is updated and ready (what ``kubectl rollout status`` waits for)."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    generation = (deployment.get("metadata") or {}).get("generation") or 0
    return (
        (status.get("observedGeneration") or 0) >= generation
        and (status.get("updatedReplicas") or 0) >= wanted
        and (status.get("readyReplicas") or 0) >= wanted
        and (status.get("replicas") or 0) <= wanted
    )


class ClusterClient:
    """One cluster, reached with a kubeconfig held in memory."""

    def __init__(
        self,
        kubeconfig: Mapping[str, Any],
        *,
        poll_seconds: float = 2.0,
        wait_seconds: float = 1200.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        add_secrets(kubeconfig_secrets(kubeconfig))
        self.client = AsyncClient(
            KubeConfig.from_dict(dict(kubeconfig)),
            namespace=NAMESPACE,
            field_manager=FIELD_MANAGER,
            trust_env=False,
        )
        self._present: set[tuple[str, str]] = set()  # (kind, name) seen in the cluster
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self.sleep = sleep

    async def close(self) -> None:
        await self.client.close()

    async def _call(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except ApiError as exc:
            status = exc.status
            raise KubernetesError(
                redact(f"Kubernetes refused to {what}: {status.code} {status.message}")
            ) from None
        except httpx2.HTTPError as exc:
            raise KubernetesError(f"no answer from the cluster to {what} ({exc})") from None

    async def ensure(self, manifest: Mapping[str, Any]) -> None:
        """Create the object unless one of its kind and name exists (kept as found)."""
        obj = codecs.from_dict(dict(manifest))
        try:
            await self.client.create(obj)
        except ApiError as exc:
            if exc.status.code != 409:
                raise KubernetesError(
                    redact(f"Kubernetes refused to create {manifest['kind']}: {exc.status.message}")
                ) from None

    async def put(self, manifest: Mapping[str, Any]) -> None:
        """Create the object, or replace the one of its kind and name (at once when this
        client has seen it: one request, not two)."""
        obj = codecs.from_dict(dict(manifest))
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key not in self._present:
            try:
                await self.client.create(obj)
                self._present.add(key)
                return
            except ApiError as exc:
                if exc.status.code != 409:
                    raise KubernetesError(
                        redact(f"Kubernetes refused to create {key[0]}: {exc.status.message}")
                    ) from None
        await self._call(f"replace {key[0]}", self.client.replace(obj))
        self._present.add(key)

    async def configmap(self, name: str) -> dict[str, Any] | None:
        try:
            found = await self.client.get(ConfigMap, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise KubernetesError(f"Kubernetes refused to read ConfigMap {name}") from None
        self._present.add(("ConfigMap", name))
        return found.to_dict()

    async def read(self, resource: Any, name: str) -> dict[str, Any] | None:
        """The object of that kind and name as a dict; ``None`` if there is none."""
        try:
            found = await self.client.get(resource, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise KubernetesError(
                redact(
                    f"Kubernetes refused to read {resource.__name__} {name}: {exc.status.message}"
                )
            ) from None
        except httpx2.HTTPError as exc:
            raise KubernetesError(f"no answer from the cluster to read {name} ({exc})") from None
        result: dict[str, Any] = found.to_dict()
        return result

    async def delete(self, resource: Any, name: str) -> None:
        """Delete the object (gone already is fine)."""
        try:
            await self.client.delete(resource, name)
        except ApiError as exc:
            if exc.status.code != 404:
                raise KubernetesError(
                    redact(
                        f"Kubernetes refused to delete {resource.__name__} {name}: "
                        f"{exc.status.message}"
                    )
                ) from None

    async def wait_gone(self, resource: Any, name: str) -> None:
        """Wait until a deleted object is gone (a claim waits for its finalizer)."""
        deadline = time.monotonic() + self.wait_seconds
        while await self.read(resource, name) is not None:
            if time.monotonic() >= deadline:
                raise KubernetesError(f"{resource.__name__} {name} was not deleted in time")
            await self.sleep(self.poll_seconds)

    async def delete_pods(self, labels: Mapping[str, str]) -> list[str]:
        """Delete the namespace's pods with these labels; their names."""
        pods = [pod async for pod in self.client.list(Pod, labels=dict(labels))]
        names = [pod.metadata.name for pod in pods if pod.metadata and pod.metadata.name]
        for name in names:
            await self.delete(Pod, name)
        return names

    async def scale(self, deployment: str, replicas: int) -> None:
        """Set a Deployment's replicas (0 stops its pods, 1 starts one again)."""
        await self._call(
            f"scale Deployment {deployment}",
            self.client.patch(
                Deployment, deployment, {"spec": {"replicas": replicas}}, patch_type=PatchType.MERGE
            ),
        )

    async def rollout_restart(self, deployment: str, when: str) -> None:
        """Restart a Deployment's pods as ``kubectl rollout restart`` does: a new
        ``restartedAt`` annotation on its pod template rolls them."""
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: when}}}}}
        await self._call(
            f"restart Deployment {deployment}",
            self.client.patch(Deployment, deployment, patch, patch_type=PatchType.MERGE),
        )

    async def wait_ready(self, deployment: str, progress: Progress) -> bool:
        """Wait until the Deployment's newest pods are all ready (its rollout is done);
        False if that does not happen within ``wait_seconds``."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            found = await self._call(
                f"read Deployment {deployment}", self.client.get(Deployment, deployment)
            )
            if rolled_out(found.to_dict()):
                return True
            if time.monotonic() >= deadline:
                return False
            await progress(f"waiting for {deployment} to be ready")
            await self.sleep(self.poll_seconds)

    async def job_count(self) -> int:
        jobs = self.client.list(Job)
        return len([job async for job in jobs])

    async def run_job(self, manifest: Mapping[str, Any], progress: Progress) -> JobOutcome:
        """Create the Job, wait until it succeeds or fails, and read its pod's log."""
        name = manifest["metadata"]["name"]
        await self._call(f"create Job {name}", self.client.create(codecs.from_dict(dict(manifest))))
        await progress(f"Job {name} started in namespace {NAMESPACE}")
        deadline = time.monotonic() + self.wait_seconds
        while True:
            job = await self._call(f"read Job {name}", self.client.get(Job, name))
            status = job.status
            if status is not None and (status.succeeded or status.failed):
                break
            if time.monotonic() >= deadline:
                return JobOutcome(name, False, await self._log(name), "did not finish in time")
            await self.sleep(self.poll_seconds)
        ok = bool(status.succeeded)
        reason = ""
        for condition in status.conditions or []:
            if condition.type == "Failed" and condition.status == "True":
                reason = condition.message or condition.reason or "failed"
        return JobOutcome(name, ok, await self._log(name), reason)

    async def _log(self, job: str) -> str:
        pods = [
            pod async for pod in self.client.list(Pod, labels={"batch.kubernetes.io/job-name": job})
        ]
        pod = pods[-1].metadata.name if pods and pods[-1].metadata else None
        if not pod:
            return ""
        lines = [line async for line in self.client.log(pod, tail_lines=LOG_LINES)]
        return redact("".join(lines))

    async def service_ip(self, name: str) -> str | None:
        """A Service's cluster IP (``None`` while it has none)."""
        found = await self.read(Service, name)
        ip = ((found or {}).get("spec") or {}).get("clusterIP")
        return ip if isinstance(ip, str) and ip and ip != "None" else None

    async def hub_address(self) -> str | None:
        """The load balancer's address of the chart's proxy (None until it has one)."""
        try:
            service = await self.client.get(Service, PROXY_SERVICE)
        except ApiError:
            return None
        balancer = service.status.loadBalancer if service.status else None
        ingress = (balancer.ingress or []) if balancer else []
        for entry in ingress:
            if entry.ip or entry.hostname:
                return entry.ip or entry.hostname
        return None
