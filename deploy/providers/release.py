"""The Zero to JupyterHub release of a ``provider: kubernetes`` course, as Kubernetes objects.

Pure: the objects the service writes into the course's cluster to install or upgrade the
chart without a helm binary of its own, and the decision of which Jobs a deploy needs.

- The values go into a ConfigMap (``VALUES_CONFIGMAP``); they hold no secret (the chart
  makes the hub's own). Its annotations remember the hash of the values the last
  successful helm Job applied and the admins whose hub accounts the service made.
- A helm Job runs the official helm image, pinned by digest, with a ServiceAccount bound
  to ``cluster-admin`` (the chart makes cluster-wide objects: the user scheduler's roles),
  and runs ``helm upgrade --install`` of the pinned chart with those values.
- A seed Job makes the admins' NativeAuthenticator rows in the hub's database: it runs
  the constant program of ``deploy.host.accounts`` under the hub image's Python, on the node
  of the hub pod (the database volume is ReadWriteOnce), with its request (names and
  unusable password hashes) from a Secret.

Admins before sign-up (safety invariant 9): ``jobs_for`` orders the first install as helm
with sign-up closed, then the seed Job, then helm with the course's sign-up; a later
deploy needs only the last, and none at all when the values' hash is the one applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from deploy.host.accounts import server_program
from deploy.model import DROPLET_TAG
from deploy.providers.chart_values import (
    CHART_NAME,
    CHART_REPOSITORY,
    CHART_VERSION,
    HUB_IMAGE,
    values_hash,
    values_yaml,
)

NAMESPACE = "classroom"
RELEASE = "classroom"
VALUES_CONFIGMAP = "classroom-values"
SEED_REQUEST_SECRET_NAME = "classroom-accounts-request"  # noqa: S105 (a name)
SERVICE_ACCOUNT = "classroom-helm"
CLUSTER_ROLE_BINDING = "classroom-helm"
# The official helm image (alpine/helm, the helm project's static binary on Alpine), 3.19.0,
# pinned by the digest of its multi-platform index.
HELM_IMAGE = (
    "docker.io/alpine/helm:3.19.0"
    "@sha256:aef9b56f64e866207d9591d0abd8f6d767b36aadd12edf68f8a719716d9d29c9"
)
# HUB_IMAGE, the chart's own hub image: its Python runs the accounts program against
# its database.
HUB_DATA = "/srv/jupyterhub"  # where the chart mounts the hub's database volume
HUB_DATABASE_CLAIM = "hub-db-dir"
HUB_USER = 1000  # the hub image's user, owner of the database
APPLIED_ANNOTATION = "littlest-classroom/applied-values"
SEEDED_ANNOTATION = "littlest-classroom/seeded-admins"
KIND_LABEL = "littlest-classroom/job"
HELM_TIMEOUT = "10m0s"
JOB_DEADLINE_SECONDS = 900
# Where the hub is reached: the chart's proxy service, a DigitalOcean load balancer.
PROXY_SERVICE = "proxy-public"

JobKind = Literal["helm", "seed", "accounts"]


@dataclass(frozen=True)
class PlannedJob:
    """One Job a deploy runs, in order, and why."""

    kind: JobKind
    reason: str
    values: Mapping[str, Any] | None = None  # the helm Job's values
    admins: tuple[str, ...] = ()  # the seed Job's names

    @property
    def values_hash(self) -> str:
        return values_hash(self.values or {})


@dataclass(frozen=True)
class ReleaseState:
    """What the cluster says of the release: the values applied, the admins seeded."""

    applied_hash: str | None = None
    seeded: frozenset[str] = frozenset()


def release_state(configmap: Mapping[str, Any] | None) -> ReleaseState:
    """The state from the values ConfigMap's annotations (``None``: no ConfigMap yet)."""
    annotations = ((configmap or {}).get("metadata") or {}).get("annotations") or {}
    seeded = annotations.get(SEEDED_ANNOTATION, "")
    return ReleaseState(
        applied_hash=annotations.get(APPLIED_ANNOTATION) or None,
        seeded=frozenset(name for name in seeded.split(",") if name),
    )


def jobs_for(
    admins: tuple[str, ...],
    closed: Mapping[str, Any],
    wanted: Mapping[str, Any],
    state: ReleaseState,
) -> list[PlannedJob]:
    """The Jobs that bring the release to ``wanted``; ``closed`` is the same with sign-up
    closed, installed first while any admin has no account yet."""
    missing = tuple(name for name in admins if name not in state.seeded)
    jobs: list[PlannedJob] = []
    applied = state.applied_hash
    if missing:
        if applied != values_hash(closed):
            reason = (
                "install the hub with sign-up closed"
                if applied is None
                else "close sign-up while the admins' accounts are made"
            )
            jobs.append(PlannedJob("helm", reason, closed))
            applied = values_hash(closed)
        names = ", ".join(missing)
        jobs.append(PlannedJob("seed", f"create the admins' hub accounts: {names}", admins=missing))
    if applied != values_hash(wanted):
        reason = "open sign-up as the course says" if missing else "apply the course's values"
        jobs.append(PlannedJob("helm", reason, wanted))
    return jobs


# ---- the objects ----------------------------------------------------------------------


def _metadata(name: str, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": DROPLET_TAG, **extra.pop("labels", {})}
    return {"name": name, "namespace": NAMESPACE, "labels": labels, **extra}


def namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": DROPLET_TAG}},
    }


def service_account() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(SERVICE_ACCOUNT)}


def cluster_role_binding() -> dict[str, Any]:
    """helm's ServiceAccount may do what the chart needs, cluster-wide objects included."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": CLUSTER_ROLE_BINDING,
            "labels": {"app.kubernetes.io/managed-by": DROPLET_TAG},
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
    }


def values_configmap(
    values: Mapping[str, Any], state: ReleaseState, *, applied: bool = False
) -> dict[str, Any]:
    """The values file for the next helm Job; ``applied`` records them as installed."""
    annotations = {
        APPLIED_ANNOTATION: values_hash(values) if applied else state.applied_hash or "",
        SEEDED_ANNOTATION: ",".join(sorted(state.seeded)),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(VALUES_CONFIGMAP, annotations=annotations),
        "data": {"values.yaml": values_yaml(values)},
    }


def helm_command() -> list[str]:
    """The helm Job's command: a fixed list, no value from a repository in it."""
    return [
        "helm",
        "upgrade",
        "--install",
        RELEASE,
        CHART_NAME,
        "--repo",
        CHART_REPOSITORY,
        "--version",
        CHART_VERSION,
        "--namespace",
        NAMESPACE,
        "--values",
        "/values/values.yaml",
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
    ]


def job_name(kind: JobKind, number: int) -> str:
    return f"classroom-{kind}-{number}"


def _job(name: str, kind: JobKind, pod: dict[str, Any], digest: str) -> dict[str, Any]:
    labels = {KIND_LABEL: kind}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(
            name, labels=labels, annotations={APPLIED_ANNOTATION: digest} if digest else {}
        ),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": 7 * 86400,
            "template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", **pod}},
        },
    }


def helm_job(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    pod = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "containers": [
            {
                "name": "helm",
                "image": HELM_IMAGE,
                "command": helm_command(),
                # helm keeps its cache and config under HOME; the pod's own scratch space.
                "env": [{"name": "HOME", "value": "/tmp"}],  # noqa: S108
                "volumeMounts": [{"name": "values", "mountPath": "/values", "readOnly": True}],
            }
        ],
        "volumes": [{"name": "values", "configMap": {"name": VALUES_CONFIGMAP}}],
    }
    return _job(name, "helm", pod, values_hash(values))


def accounts_request_secret(request: Mapping[str, Any]) -> dict[str, Any]:
    """An accounts Job's request (names, password hashes: never a password), as a Secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(SEED_REQUEST_SECRET_NAME),
        "type": "Opaque",
        "stringData": {"request.json": json.dumps(dict(request), sort_keys=True)},
    }


def accounts_program() -> str:
    """deploy.host.accounts' constant program, for the database on the hub's volume."""
    return server_program(f"{HUB_DATA}/jupyterhub.sqlite", f"{HUB_DATA}/classroom-accounts.json")


def seed_job(name: str) -> dict[str, Any]:
    return accounts_job(name, "seed")


def accounts_job(name: str, action: str) -> dict[str, Any]:
    """A Job running deploy.host.accounts' program for ``action`` on the hub's database."""
    if action not in ("seed", "approve", "set-password"):
        raise ValueError(f"unknown accounts action {action!r}")
    pod = {
        "securityContext": {"runAsUser": HUB_USER, "runAsGroup": HUB_USER, "fsGroup": HUB_USER},
        # The database volume is ReadWriteOnce: run beside the hub pod, on its node.
        "affinity": {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"component": "hub"}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        },
        "containers": [
            {
                "name": "accounts",
                "image": HUB_IMAGE,
                "command": [
                    "/bin/sh",
                    "-c",
                    f'exec python3 -I -c "$ACCOUNTS_PROGRAM" {action} < /request/request.json',
                ],
                "env": [{"name": "ACCOUNTS_PROGRAM", "value": accounts_program()}],
                "volumeMounts": [
                    {"name": "hub-db", "mountPath": HUB_DATA},
                    {"name": "request", "mountPath": "/request", "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "hub-db", "persistentVolumeClaim": {"claimName": HUB_DATABASE_CLAIM}},
            {"name": "request", "secret": {"secretName": SEED_REQUEST_SECRET_NAME}},
        ],
    }
    return _job(name, "seed" if action == "seed" else "accounts", pod, "")
