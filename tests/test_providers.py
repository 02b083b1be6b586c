"""The operations reach a course's server only through its ``Provider``: a provider is one
registry line, and each operation asks the one ``server.provider`` names."""

from __future__ import annotations

from typing import Any

import pytest

from deploy import operations
from deploy.model import OperationResult, ServerRecord
from deploy.providers import registry
from deploy.providers.base import Provider
from tests.plugins.planner import make_course


class Recorder:
    """A provider that answers every operation with its own name and the call."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, what: str, **kwargs: Any) -> OperationResult:
        self.calls.append((what, kwargs))
        return OperationResult("neutral", f"recorder {what}", "", "", [], None, {})

    async def deploy(self, engine, course, config, **kwargs: Any) -> OperationResult:
        return self._answer("deploy", **kwargs)

    async def plan_from_config(self, engine, course, config, last_seen, **kwargs: Any):
        return self._answer("plan", **kwargs)

    async def status(self, engine, course, config, **kwargs: Any) -> OperationResult:
        return self._answer("status", config=config, **kwargs)

    async def restart(self, engine, course, config, **kwargs: Any) -> OperationResult:
        return self._answer("restart", **kwargs)

    async def snapshot(self, engine, course, config, name, **kwargs: Any) -> OperationResult:
        return self._answer("snapshot", name=name, **kwargs)

    async def resize(self, engine, course, config, wanted, **kwargs: Any) -> OperationResult:
        return self._answer("resize", wanted=wanted, **kwargs)


class Records:
    def __init__(self, record: ServerRecord | None) -> None:
        self.record = record

    async def get_server(self, course: str) -> ServerRecord | None:
        return self.record


class Engine:
    def __init__(self, record: ServerRecord | None = None) -> None:
        self.records = Records(record)


async def noop(_line: str) -> None:
    return None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    provider = Recorder()
    monkeypatch.setitem(registry.PROVIDERS, "ssh", provider)
    return provider


async def test_every_operation_asks_the_provider_the_config_names(recorder: Recorder) -> None:
    engine: Any = Engine()
    config = make_course(provider="ssh")
    answers = [
        await operations.deploy(engine, "o/r", config, mode="apply", progress=noop),
        await operations.plan_from_config(engine, "o/r", config, None),
        await operations.status(engine, "o/r", config, progress=noop),
        await operations.restart(engine, "o/r", config, reboot=True, progress=noop),
        await operations.snapshot(engine, "o/r", config, "before-exam", progress=noop),
        await operations.resize(engine, "o/r", config, "s-2vcpu-4gb", progress=noop),
    ]
    assert [a.title for a in answers] == [
        "recorder deploy",
        "recorder plan",
        "recorder status",
        "recorder restart",
        "recorder snapshot",
        "recorder resize",
    ]
    assert recorder.calls[0][1]["mode"] == "apply"
    assert recorder.calls[3][1]["reboot"] is True
    assert recorder.calls[4][1]["name"] == "before-exam"


async def test_status_without_config_asks_the_remembered_servers_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = Recorder()
    monkeypatch.setitem(registry.PROVIDERS, "kubernetes", provider)
    engine: Any = Engine(ServerRecord(provider="kubernetes"))
    answer = await operations.status(engine, "o/r", None, progress=noop, hub="https://x")
    assert answer.title == "recorder status"
    assert provider.calls == [("status", {"config": None, "progress": noop, "hub": "https://x"})]


async def test_an_own_server_refuses_snapshot_and_resize_without_contacting_anything() -> None:
    engine: Any = Engine()  # no SSH, no DigitalOcean: any contact would fail
    config = make_course(provider="ssh")
    snap = await operations.snapshot(engine, "o/r", config, None, progress=noop)
    assert (snap.conclusion, snap.title) == ("failure", "Could not snapshot")
    assert "provider: ssh" in snap.summary
    grown = await operations.resize(engine, "o/r", config, "s-2vcpu-4gb", progress=noop)
    assert (grown.conclusion, grown.title) == ("failure", "Resize failed")
    nodes = await operations.resize(engine, "o/r", config, "", nodes=(1, 3), progress=noop)
    assert "--nodes" in nodes.summary


def test_each_provider_is_registered_under_its_own_name() -> None:
    assert set(registry.PROVIDERS) == {"digitalocean", "ssh", "kubernetes"}
    for name, provider in registry.PROVIDERS.items():
        assert provider.name == name
        checked: Provider = provider
        assert checked is provider
    with pytest.raises(ValueError, match="no provider 'gcp'"):
        registry.provider_for("gcp")
