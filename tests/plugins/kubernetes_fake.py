"""The ``kube_fake`` fixture: a fake Kubernetes API on loopback, checked against Kubernetes'
OpenAPI description, whose kubeconfig the fake DigitalOcean hands out for every cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.digitalocean import DigitalOceanFake
from tests.fakes.kubernetes import KubernetesFake


@pytest.fixture
async def kube_fake(tmp_path: Path, do_fake: DigitalOceanFake) -> AsyncIterator[KubernetesFake]:
    fake = KubernetesFake(tmp_path / "cluster")
    await fake.start()
    do_fake.kubeconfig_for = lambda _cluster_id: fake.kubeconfig()
    try:
        yield fake
    finally:
        await fake.close()
    assert not fake.validation_errors, "requests broke Kubernetes' OpenAPI description:\n" + (
        "\n".join(fake.validation_errors)
    )
