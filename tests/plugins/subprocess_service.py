"""Fixture ``service_process``: start ``python -m bot`` as a child process on a loopback port.

``service_process(settings)`` returns a ``tests.support.service_process.ServiceProcess``
already started; whatever a test started is stopped at its end (SIGTERM, then SIGKILL).
Its log is ``<tmp>/service-N.log``; pytest shows it when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.service_process import ServiceProcess


@pytest.fixture
def service_process(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(settings: Mapping[str, str], port: int | None = None) -> ServiceProcess:
        service = ServiceProcess(settings, tmp_path / f"service-{len(started) + 1}.log", port)
        started.append(service)
        service.start()
        return service

    yield start
    for service in started:
        service.stop()
        # Pytest shows captured teardown output only when the test failed: then it helps.
        print(f"log of the service on port {service.port}:\n{service.log()}")
