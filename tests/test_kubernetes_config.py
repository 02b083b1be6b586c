"""``provider: kubernetes`` in ``.github/classroom.yml``: its keys, defaults and refusals."""

from __future__ import annotations

import pytest

from deploy.course.config import load_course
from deploy.model import CONFIG_PATH, ConfigErrors, NodePoolSpec

KUBERNETES = b"""\
server:
  provider: kubernetes
  region: fra1
  nodes: {size: s-4vcpu-8gb, min: 2, max: 10}
hub:
  admins: [alice]
  image: quay.io/jupyter/scipy-notebook:2025-06-02
storage:
  size: 10
"""


def load(config: bytes, **files: bytes):
    return load_course({CONFIG_PATH: config, **files}, "physics", "p101")


def errors_of(config: bytes, **files: bytes) -> list[tuple[str, int | None, str, str]]:
    with pytest.raises(ConfigErrors) as caught:
        load(config, **files)
    return [(e.file, e.line, e.key, e.message) for e in caught.value.errors]


def test_a_kubernetes_course_reads_its_node_pool_image_and_per_student_storage():
    course = load(KUBERNETES)
    assert course.server.provider == "kubernetes"
    assert course.server.nodes == NodePoolSpec(size="s-4vcpu-8gb", min=2, max=10)
    assert course.server.cluster is None
    assert course.hub.image == "quay.io/jupyter/scipy-notebook:2025-06-02"
    assert course.storage is not None and course.storage.size_gib == 10


def test_nodes_default_when_left_out_and_an_existing_cluster_may_be_named():
    course = load(b"server:\n  provider: kubernetes\n  cluster: department-k8s\n")
    assert course.server.nodes == NodePoolSpec()
    assert course.server.cluster == "department-k8s"


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("  size: s-2vcpu-4gb", "server.size"),
        ("  image: ubuntu-24-04-x64", "server.image"),
        ("  host: hub.example.edu", "server.host"),
        ("  user: root", "server.user"),
        ("  port: 22", "server.port"),
    ],
)
def test_server_keys_of_other_providers_are_refused_by_name(line, key):
    found = errors_of(f"server:\n  provider: kubernetes\n{line}\n".encode())
    assert [(f, n, k) for f, n, k, _ in found] == [(CONFIG_PATH, 3, key)]
    assert "provider: kubernetes" in found[0][3]


def test_tljh_version_is_refused_on_kubernetes_and_backup_is_accepted():
    found = errors_of(
        b"server:\n  provider: kubernetes\nhub:\n  tljh_version: 2.0.0\n"
        b"storage: {size: 10}\nbackup: {every: 1d}\n"
    )
    assert [(n, k) for _, n, k, _ in found] == [(4, "hub.tljh_version")]
    course = load(b"server:\n  provider: kubernetes\nstorage: {size: 10}\nbackup: {keep: 3}\n")
    assert course.backup.keep == 3


def test_the_shared_homes_volume_size_is_storage_total_with_a_default():
    course = load(KUBERNETES + b"  total: 500\n")
    assert course.storage is not None
    assert (course.storage.size_gib, course.storage.total_gib) == (10, 500)
    assert load(KUBERNETES).storage.total_gib is None  # the homes volume is then 100 GiB


@pytest.mark.parametrize(
    ("total", "words"),
    [("0", "out of range: DigitalOcean's volumes are 1 to 16384 GiB"), ("lots", "whole number")],
)
def test_a_storage_total_digitalocean_cannot_make_names_the_key(total, words):
    found = errors_of(KUBERNETES + f"  total: {total}\n".encode())
    assert [(n, k) for _, n, k, _ in found] == [(10, "storage.total")]
    assert words in found[0][3]


def test_storage_total_is_refused_on_a_droplet_naming_the_key():
    found = errors_of(b"server:\n  provider: digitalocean\nstorage: {size: 20, total: 100}\n")
    assert [k for _, _, k, _ in found] == ["storage.total"]
    assert "provider: kubernetes" in found[0][3]


@pytest.mark.parametrize("provider", ["digitalocean", "ssh\n  host: hub.example.edu"])
@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("server:\n  nodes: {min: 1}\n", "server.nodes"),
        ("server:\n  cluster: shared\n", "server.cluster"),
        ("hub:\n  image: jupyter/base-notebook:2025-06-02\n", "hub.image"),
    ],
)
def test_kubernetes_keys_are_refused_on_other_providers(provider, extra, key):
    section, _, rest = extra.partition("\n")
    if section == "server:":
        config = f"server:\n  provider: {provider}\n{rest}"
    else:
        config = f"server:\n  provider: {provider}\n{extra}"
    found = errors_of(config.encode())
    assert [k for _, _, k, _ in found] == [key]
    assert "kubernetes" in found[0][3]


@pytest.mark.parametrize(
    ("nodes", "key", "words"),
    [
        ("{min: 0}", "server.nodes.min", "out of range"),
        ("{max: 101}", "server.nodes.max", "out of range"),
        ("{min: 5, max: 2}", "server.nodes.min", "above server.nodes.max"),
        ("{size: 'S 4'}", "server.nodes.size", "not a DigitalOcean size slug"),
        ("{count: 3}", "server.nodes.count", "not a known key"),
        ("{min: two}", "server.nodes.min", "whole number"),
    ],
)
def test_bad_node_pools_name_the_key_and_line(nodes, key, words):
    found = errors_of(f"server:\n  provider: kubernetes\n  nodes: {nodes}\n".encode())
    assert [(n, k) for _, n, k, _ in found] == [(3, key)]
    assert words in found[0][3]


@pytest.mark.parametrize("image", ["jupyter/base-notebook", "UPPER/case:1", "a;b:1", "-x:1"])
def test_an_image_without_a_tag_or_with_odd_characters_is_refused(image):
    found = errors_of(f"server:\n  provider: kubernetes\nhub:\n  image: '{image}'\n".encode())
    assert [(n, k) for _, n, k, _ in found] == [(4, "hub.image")]


def test_package_files_without_an_image_are_refused_naming_each_file():
    found = errors_of(
        b"server:\n  provider: kubernetes\n",
        **{"requirements.txt": b"numpy\n", "apt.txt": b"graphviz\n"},
    )
    assert [f for f, _, _, _ in found] == ["apt.txt", "requirements.txt"]
    assert all("hub.image" in message and "repo2docker" in message for *_, message in found)


def test_package_files_beside_an_image_are_accepted():
    course = load(KUBERNETES, **{"requirements.txt": b"numpy\n"})
    assert course.hub.image is not None


def test_shared_folders_are_refused_on_kubernetes_naming_the_key():
    found = errors_of(b"server:\n  provider: kubernetes\nshared:\n  - {from: data/, to: data}\n")
    assert [(n, k) for _, n, k, _ in found] == [(3, "shared")]
    assert "not built yet" in found[0][3]
