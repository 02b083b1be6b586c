"""The Zero to JupyterHub chart's values for a ``provider: kubernetes`` course, and their check.

Pure: ``chart_values`` turns the course config into the values ``helm upgrade --install``
gets; ``check_values`` merges them over the chart's own defaults (as Helm coalesces them)
and validates the result against the chart's ``values.schema.yaml`` of the pinned version
(a draft-07 JSON schema, with jsonschema), returning the schema's messages.

Admins before sign-up (safety invariant 9): the values have two phases. ``signup_open``
False is the first install's: NativeAuthenticator's sign-up is closed, so nobody can claim
an admin's name while the service seeds the admins' rows; only after they exist does the
release get the course's own sign-up setting (``signup_open`` True).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from deploy.model import CourseConfig

CHART_NAME = "jupyterhub"
CHART_REPOSITORY = "https://hub.jupyter.org/helm-chart/"
CHART_VERSION = "4.4.0"
CHART_DATA = Path(__file__).parent / "data" / f"zero-to-jupyterhub-{CHART_VERSION}"
# The chart's sample single-user image: JupyterLab and nbgitpuller (deploy/providers/data README).
DEFAULT_SINGLEUSER_IMAGE = "quay.io/jupyterhub/k8s-singleuser-sample"
# Every student's session stops after this long whatever it does (the culler's max age).
CULL_EVERY_SECONDS = 600
HUB_DATABASE_SIZE = "1Gi"
# The chart's own hub image (its shell and Python serve the service's small Jobs).
HUB_IMAGE = f"quay.io/jupyterhub/k8s-hub:{CHART_VERSION}"
# The claim on the course's NFS export of its homes (``deploy.providers.kubernetes_homes``); each
# student's home is the folder of their name in it.
HOMES_CLAIM = "classroom-homes"
HOME_PATH = "/home/jovyan"  # the chart's singleuser.storage.homeMountPath
STUDENT_UID, STUDENT_GID = 1000, 100  # the chart's singleuser.uid and fsGid


class ValuesInvalid(ValueError):
    """The values break the chart's schema; ``messages`` are the schema's, one per problem."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages
        super().__init__(
            "the chart's values.schema.yaml refuses the values: " + "; ".join(messages)
        )


@functools.cache
def chart_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = yaml.safe_load((CHART_DATA / "values.yaml").read_text())
    return defaults


@functools.cache
def chart_schema() -> dict[str, Any]:
    schema: dict[str, Any] = yaml.safe_load((CHART_DATA / "values.schema.yaml").read_text())
    return schema


def split_image(image: str) -> tuple[str, str]:
    """``name:tag`` as the chart's ``{name, tag}``; a digest stays on the tag
    (``tag@sha256:…``), which the chart joins back as ``name:tag@sha256:…``."""
    image, at, digest = image.partition("@")
    slash, colon = image.rfind("/"), image.rfind(":")
    name, tag = (image[:colon], image[colon + 1 :]) if colon > slash else (image, "latest")
    return name, f"{tag}@{digest}" if at else tag


def _native(config: CourseConfig, signup_open: bool) -> dict[str, Any]:
    signup = config.hub.signup
    return {
        # NativeAuthenticator authorises each account itself (is_authorized).
        "allow_all": True,
        "open_signup": signup_open and signup == "open",
        "enable_signup": signup_open and signup != "closed",
    }


def homes_owner_container() -> dict[str, Any]:
    """A first container in each student's pod that gives the student's folder of the
    shared export to the student's user: the kubelet makes a new folder owned by root."""
    return {
        "name": "home-owner",
        "image": HUB_IMAGE,
        "command": ["chown", f"{STUDENT_UID}:{STUDENT_GID}", HOME_PATH],
        "securityContext": {"runAsUser": 0, "runAsGroup": 0},
        "volumeMounts": [{"name": "home", "mountPath": HOME_PATH, "subPath": "{username}"}],
    }


def chart_values(config: CourseConfig, *, signup_open: bool) -> dict[str, Any]:
    """The chart's values for ``config``: first install (``signup_open`` False), or after
    the admins exist (True)."""
    hub = config.hub
    image_name, image_tag = (
        split_image(hub.image) if hub.image else (DEFAULT_SINGLEUSER_IMAGE, CHART_VERSION)
    )
    singleuser: dict[str, Any] = {
        "image": {"name": image_name, "tag": image_tag},
        "defaultUrl": "/lab" if hub.default_app == "jupyterlab" else "/tree",
        # Every home is a folder of one shared NFS export; capacity is the per-student
        # figure, which the chart does not enforce on a static claim.
        "storage": {
            "type": "static",
            "static": {"pvcName": HOMES_CLAIM, "subPath": "{username}"},
            "capacity": f"{config.storage.size_gib}Gi" if config.storage else "10Gi",
        },
        "initContainers": [homes_owner_container()],
    }
    if hub.memory_limit:
        memory = hub.memory_limit
        singleuser["memory"] = {"limit": memory, "guarantee": memory}
    if hub.cpu_limit:
        singleuser["cpu"] = {"limit": hub.cpu_limit}
    values: dict[str, Any] = {
        "hub": {
            "config": {
                "JupyterHub": {"authenticator_class": "native", "admin_access": False},
                "Authenticator": {"admin_users": list(hub.admins)},
                "NativeAuthenticator": _native(config, signup_open),
            },
            "db": {"type": "sqlite-pvc", "pvc": {"storage": HUB_DATABASE_SIZE}},
        },
        "singleuser": singleuser,
        "cull": {
            "enabled": True,
            "users": False,
            "timeout": hub.idle_timeout,
            "every": CULL_EVERY_SECONDS,
        },
        "proxy": {"service": {"type": "LoadBalancer"}},
    }
    if hub.hostname:
        values["proxy"]["https"] = {
            "enabled": True,
            "type": "letsencrypt",
            "hosts": [hub.hostname],
            "letsencrypt": {"contactEmail": hub.letsencrypt_email},
        }
    return values


def merged(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` over ``defaults`` as Helm coalesces them: maps deeply, a null deletes."""
    out = copy.deepcopy(dict(defaults))
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def schema_errors(values: Mapping[str, Any]) -> list[str]:
    """The schema's messages for ``values`` merged over the chart's defaults; [] if valid."""
    validator = jsonschema.Draft7Validator(chart_schema())
    found = sorted(
        validator.iter_errors(merged(chart_defaults(), values)), key=lambda e: list(e.path)
    )
    return [
        f"{'.'.join(str(p) for p in error.path) or '(top)'}: {error.message}" for error in found
    ]


def check_values(values: Mapping[str, Any]) -> None:
    """Raise ``ValuesInvalid`` with the schema's messages if the chart would refuse ``values``."""
    errors = schema_errors(values)
    if errors:
        raise ValuesInvalid(errors)


def values_yaml(values: Mapping[str, Any]) -> str:
    """The values as the YAML file the helm Job reads (keys sorted: same values, same text)."""
    text: str = yaml.safe_dump(dict(values), sort_keys=True, default_flow_style=False)
    return text


def values_hash(values: Mapping[str, Any]) -> str:
    """A digest of the values and the chart version: equal for a push that changes nothing."""
    text = json.dumps({"chart": CHART_VERSION, "values": values}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
