"""The ``do_fake`` fixture: a fake DigitalOcean API on loopback, checked against its spec."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.digitalocean import DigitalOceanFake, RequestValidator
from tests.fakes.openapi_check import OpenAPIChecker, OpenAPICheckError

SUBSET = Path(__file__).resolve().parents[1] / "data" / "digitalocean-openapi-subset.json"


def without_dangling_discriminators(node: Any) -> Any:
    """``node`` less any ``discriminator`` whose mapping points outside the document.

    DigitalOcean's bundled description inlines the schemas of droplet actions and DNS
    records but leaves their discriminator mappings pointing at the source YAML files
    (``models/droplet_actions.yml#/...``), which no validator can resolve. The mapping
    is only a hint: the ``anyOf`` beside it still checks every request in full.
    """
    if isinstance(node, list):
        return [without_dangling_discriminators(item) for item in node]
    if not isinstance(node, dict):
        return node
    cleaned = {}
    for key, value in node.items():
        if key == "discriminator" and isinstance(value, dict):
            targets = (value.get("mapping") or {}).values()
            if any(not str(target).startswith("#") for target in targets):
                continue
        cleaned[key] = without_dangling_discriminators(value)
    return cleaned


def description() -> dict[str, Any]:
    """The subset of DigitalOcean's description the fake checks requests against."""
    return without_dangling_discriminators(json.loads(SUBSET.read_text()))


@cache
def _checker() -> OpenAPIChecker:
    # Once per test process, not per test; the description's own validity (two thirds of
    # a second per process) is checked once, by tests/test_openapi_subsets.py.
    return OpenAPIChecker(description(), check_description=False)


def openapi_validator() -> RequestValidator:
    """A request validator for the fake, backed by DigitalOcean's own API description."""
    checker = _checker()

    def validate(
        method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> list[str]:
        try:
            checker.check(method, path, query=query, headers=headers, body=body or None)
        except OpenAPICheckError as exc:
            return [exc.message]
        return []

    return validate


@pytest.fixture
async def do_fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DigitalOceanFake]:
    """A running fake whose URL python-digitalocean uses; no request may break the spec."""
    fake = DigitalOceanFake(validator=openapi_validator())
    url = await fake.start()
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", url)
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", fake.token)
    try:
        yield fake
    finally:
        await fake.close()
    assert not fake.validation_errors, "requests broke DigitalOcean's OpenAPI description:\n" + (
        "\n".join(fake.validation_errors)
    )
