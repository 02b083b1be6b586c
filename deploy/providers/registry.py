"""Which ``Provider`` serves each ``server.provider`` name: one line per provider."""

from __future__ import annotations

from deploy.providers.base import Provider
from deploy.providers.digitalocean import DropletServer
from deploy.providers.kubernetes_cluster import KubernetesCluster
from deploy.providers.own_server import OwnServer

PROVIDERS: dict[str, Provider] = {
    "digitalocean": DropletServer(),
    "ssh": OwnServer(),
    "kubernetes": KubernetesCluster(),
}


def provider_for(name: str) -> Provider:
    """The provider a course's ``server.provider`` names (validated by the config)."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"no provider {name!r}; known: {', '.join(PROVIDERS)}") from None
