"""Fixtures for the loopback SSH target: a real sshd whose commands run among stand-ins.

``ssh_target`` yields a started ``tests.sshtarget.target.SSHTarget``: ``.host``,
``.port``, ``.host_key`` (the server's public key line), ``.client_key`` (an asyncssh
private key the server authorises), ``.sandbox``, ``.calls()``, ``.state(name)``,
``.canary``, ``.fail_next()``, ``.hang_next()``, ``.cut_next()`` and
``.regenerate_host_key()``. ``make_ssh_target(backend=...)`` builds more, e.g. the
asyncssh fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.sshtarget.target import Backend, SSHTarget, generate_key


@pytest.fixture(scope="session")
def ssh_session_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, asyncssh.SSHKey]:
    """A throwaway host key file and client key, made once per test session."""
    keys = tmp_path_factory.mktemp("ssh-keys")
    host_key = keys / "host_ed25519"
    generate_key(host_key)
    client_key = generate_key(keys / "client_ed25519")
    return host_key, client_key


@pytest.fixture
def make_ssh_target(
    tmp_path_factory: pytest.TempPathFactory,
    ssh_session_keys: tuple[Path, asyncssh.SSHKey],
) -> Iterator[Callable[..., SSHTarget]]:
    started: list[SSHTarget] = []

    def make(backend: Backend | None = None) -> SSHTarget:
        host_key, client_key = ssh_session_keys
        target = SSHTarget(tmp_path_factory.mktemp("ssh-target"), host_key, client_key, backend)
        target.start()
        started.append(target)
        return target

    yield make
    for target in started:
        target.stop()


@pytest.fixture
def ssh_target(make_ssh_target: Callable[..., SSHTarget]) -> SSHTarget:
    return make_ssh_target()
