"""deploy.providers.chart_values: the Zero to JupyterHub values of a kubernetes course, checked
against the pinned chart's own values.schema.yaml."""

from __future__ import annotations

import pytest

from deploy.course.config import load_course
from deploy.model import CONFIG_PATH
from deploy.providers.chart_values import (
    CHART_VERSION,
    ValuesInvalid,
    chart_values,
    check_values,
    schema_errors,
    split_image,
    values_hash,
)

FULL = b"""\
server:
  provider: kubernetes
  region: fra1
  nodes: {size: s-4vcpu-8gb, min: 2, max: 10}
hub:
  admins: [alice, bob]
  signup: approval
  default_app: classic
  hostname: hub.example.edu
  letsencrypt_email: you@example.edu
  limits: {memory: 2G, cpu: 1.5}
  idle_timeout: 1800
  image: quay.io/jupyter/scipy-notebook:2025-06-02
storage: {size: 10}
"""


def course(text: bytes = FULL):
    return load_course({CONFIG_PATH: text}, "physics", "p101")


@pytest.mark.parametrize("signup_open", [False, True])
@pytest.mark.parametrize(
    "text", [FULL, b"server:\n  provider: kubernetes\n", b"server: {provider: kubernetes}\n"]
)
def test_the_values_pass_the_charts_own_schema(text, signup_open):
    assert schema_errors(chart_values(course(text), signup_open=signup_open)) == []


def test_values_carry_the_course_authenticator_limits_culling_https_image_and_homes():
    values = chart_values(course(), signup_open=True)
    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "native"
    assert config["Authenticator"]["admin_users"] == ["alice", "bob"]
    assert values["singleuser"]["image"] == {
        "name": "quay.io/jupyter/scipy-notebook",
        "tag": "2025-06-02",
    }
    assert values["singleuser"]["memory"]["limit"] == "2G"
    assert values["singleuser"]["cpu"] == {"limit": 1.5}
    assert values["singleuser"]["defaultUrl"] == "/tree"
    assert values["singleuser"]["storage"]["capacity"] == "10Gi"
    assert values["cull"] == {"enabled": True, "users": False, "timeout": 1800, "every": 600}
    https = values["proxy"]["https"]
    assert https["hosts"] == ["hub.example.edu"]
    assert https["letsencrypt"] == {"contactEmail": "you@example.edu"}


def test_the_default_image_is_the_charts_sample_with_nbgitpuller_at_the_pinned_version():
    values = chart_values(course(b"server: {provider: kubernetes}\n"), signup_open=True)
    assert values["singleuser"]["image"] == {
        "name": "quay.io/jupyterhub/k8s-singleuser-sample",
        "tag": CHART_VERSION,
    }
    assert "https" not in values["proxy"]


@pytest.mark.parametrize("signup", ["approval", "open", "closed"])
def test_first_install_values_never_open_sign_up_whatever_the_course_says(signup):
    text = FULL.replace(b"signup: approval", f"signup: {signup}".encode())
    first = chart_values(course(text), signup_open=False)["hub"]["config"]["NativeAuthenticator"]
    assert first["enable_signup"] is False and first["open_signup"] is False
    later = chart_values(course(text), signup_open=True)["hub"]["config"]["NativeAuthenticator"]
    assert later["enable_signup"] is (signup != "closed")
    assert later["open_signup"] is (signup == "open")


def test_a_wrong_key_is_refused_with_the_schemas_message():
    values = chart_values(course(), signup_open=True)
    values["singleuser"]["storage"]["capacityy"] = "10Gi"
    with pytest.raises(ValuesInvalid) as caught:
        check_values(values)
    assert caught.value.messages == [
        "singleuser.storage: Additional properties are not allowed ('capacityy' was unexpected)"
    ]


def test_a_wrong_type_is_refused_with_the_schemas_message():
    values = chart_values(course(), signup_open=True)
    values["cull"]["timeout"] = "an hour"
    assert schema_errors(values) == ["cull.timeout: 'an hour' is not of type 'integer', 'null'"]


def test_the_hash_changes_with_the_values_and_not_otherwise():
    one = chart_values(course(), signup_open=True)
    assert values_hash(one) == values_hash(chart_values(course(), signup_open=True))
    assert values_hash(one) != values_hash(chart_values(course(), signup_open=False))


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("jupyter/base-notebook:2025-06-02", ("jupyter/base-notebook", "2025-06-02")),
        ("localhost:5000/lab:1", ("localhost:5000/lab", "1")),
        ("r.example/lab:1@sha256:" + "a" * 64, ("r.example/lab", "1@sha256:" + "a" * 64)),
    ],
)
def test_images_split_into_the_charts_name_and_tag(image, parts):
    assert split_image(image) == parts
