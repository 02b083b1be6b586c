"""``/approve``'s operation refuses what it cannot do before touching any server."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import Store
from deploy import operations
from deploy.keys import ServiceKey
from deploy.ssh import SSHPool


async def noop(line: str) -> None:
    pass


@pytest.fixture
async def engine(tmp_path: Path):
    store = await Store.open(tmp_path / "data")
    engine = operations.Engine(
        records=store, ssh=SSHPool(), service_key=ServiceKey(None, "", "", "", tmp_path / "k")
    )
    yield engine
    await engine.close()
    await store.close()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ([], "name at least one student"),
        ([f"s{i}" for i in range(101)], "at most 100 names at once (101 given)"),
        (["a,b"], "without spaces, commas, slashes"),
        (["erin"], "there is no server yet"),
    ],
)
async def test_refusals_say_why(engine, names: list[str], message: str) -> None:
    result = await operations.approve_students(engine, "octo/course", names, progress=noop)
    assert result.conclusion == "failure"
    assert message in result.summary
    assert engine.ssh.commands_run == 0
