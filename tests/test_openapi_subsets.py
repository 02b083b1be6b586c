"""The OpenAPI descriptions the fakes of GitHub and DigitalOcean check every request
against are themselves valid OpenAPI: checked here once, not in every test process.

Kubernetes' is not checked: its ``default: {}`` beside references to schemas with required
properties is refused by the validator though every request is still checked as usual.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.fakes import github
from tests.fakes.openapi_check import OpenAPIChecker
from tests.plugins import digitalocean_fake


def subset(name: str) -> dict[str, Any]:
    if name == "github":
        return json.loads(github.SUBSET.read_text())
    return digitalocean_fake.description()


@pytest.mark.parametrize("name", ["github", "digitalocean"])
def test_each_fakes_description_is_valid_openapi(name: str) -> None:
    OpenAPIChecker(subset(name))  # validates the description, then builds the matcher


def test_a_broken_description_is_refused() -> None:
    broken = copy.deepcopy(subset("digitalocean"))
    path = next(iter(broken["paths"].values()))
    operation = next(v for k, v in path.items() if k in ("get", "post", "put", "delete"))
    operation["responses"] = "not a mapping"
    with pytest.raises(OpenAPIValidationError):
        OpenAPIChecker(broken)
