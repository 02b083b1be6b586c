"""Fixtures for a real JupyterHub beside the loopback SSH target.

``hub_target`` yields ``(ssh_target, hub)``: a started SSH target whose ``/opt/tljh``
holds TLJH's hub Python (the server's own python3) and a ``tests.support.hub.RealHub``
whose database is that target's ``/opt/tljh/state/jupyterhub.sqlite``. The hub is not
started: a test starts it with the settings it means (``hub.start(HubSettings(...))``),
as TLJH's installer starts it once, so the hub creates its own database first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sshtarget.target import SSHTarget
from tests.support.hub import RealHub


def prepare_hub_python(target: SSHTarget) -> None:
    """TLJH's hub Python inside the sandbox: the server's python3, which has sqlite3."""
    python = target.sandbox / "opt" / "tljh" / "hub" / "bin" / "python3"
    python.parent.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        python.symlink_to("/usr/bin/python3")


@pytest.fixture
def hub_target(
    make_ssh_target: Callable[..., SSHTarget], tmp_path: Path
) -> Iterator[tuple[SSHTarget, RealHub]]:
    target = make_ssh_target()
    prepare_hub_python(target)
    tljh_root = target.sandbox / "opt" / "tljh"
    hub = RealHub(tmp_path / "hub", tljh_root / "state" / "jupyterhub.sqlite", tljh_root)
    try:
        yield target, hub
    finally:
        hub.stop()
