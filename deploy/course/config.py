"""A course's desired state, read and checked from its repository's files.

``load_course`` turns ``.github/classroom.yml`` and the package files into a
``CourseConfig``, or raises ``ConfigErrors`` with every problem found, each naming the
file, the line, the key and what is allowed.  Every key is optional; a missing file
means every default.  ``is_course_file`` says which repository paths this reads, so the
service can read just those from a commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from deploy.course.packages import PACKAGE_FILE_NAMES, PACKAGE_FOLDERS, read_packages
from deploy.course.validate import (
    MAX_ADMINS,
    YamlReader,
    check_assignment_name,
    check_branch,
    check_content_path,
    check_course_id,
    check_cpu,
    check_droplet_name,
    check_email,
    check_host,
    check_host_key,
    check_hostname,
    check_hub_username,
    check_image,
    check_memory,
    check_port,
    check_repository,
    check_repository_folder,
    check_shared_name,
    check_size_slug,
    check_slug,
    check_tljh_version,
    check_unix_username,
    course_id_for,
    droplet_name_for,
    line_of,
    parse_due,
    parse_duration,
    parse_yaml,
)
from deploy.model import (
    CONFIG_PATH,
    AssignmentsSpec,
    BackupSpec,
    ConfigError,
    ConfigErrors,
    ContentSpec,
    CourseConfig,
    HubSpec,
    MonitorSpec,
    NodePoolSpec,
    Packages,
    ServerSpec,
    SharedFolder,
    StorageSpec,
)
from deploy.ownership import course_name

README_PATH = "README.md"
CONFIG_FILES: frozenset[str] = frozenset(
    {
        CONFIG_PATH,
        README_PATH,
        *(folder + name for folder in ("", *PACKAGE_FOLDERS) for name in PACKAGE_FILE_NAMES),
    }
)

TOP_KEYS = (
    "server",
    "hub",
    "content",
    "badges",
    "monitor",
    "prune",
    "storage",
    "backup",
    "assignments",
    "shared",
)
SERVER_KEYS = (
    "provider",
    "name",
    "region",
    "size",
    "image",
    "host",
    "user",
    "port",
    "host_key",
    "nodes",
    "cluster",
)
HUB_KEYS = (
    "hostname",
    "letsencrypt_email",
    "admins",
    "signup",
    "default_app",
    "limits",
    "idle_timeout",
    "tljh_version",
    "image",
)
NODE_KEYS = ("size", "min", "max")
LIMIT_KEYS = ("memory", "cpu")
CONTENT_KEYS = ("branch", "open")
MONITOR_KEYS = ("every", "issue", "signups")
STORAGE_KEYS = ("size", "total")
BACKUP_KEYS = ("every", "keep")
ASSIGNMENTS_KEYS = ("tool", "source", "course_id", "submissions", "due")
MAX_DUE_DATES = 200
SHARED_KEYS = ("from", "to", "writable")
MAX_SHARED_FOLDERS = 20

IDLE_TIMEOUT_RANGE = (60, 30 * 86400)
# DigitalOcean's volumes are 1 GiB to 16 TiB.
STORAGE_SIZE_RANGE = (1, 16384)
BACKUP_EVERY_RANGE = (3600, 30 * 86400)
# DigitalOcean keeps at most 25 snapshots of a volume, and a backup takes the new one
# before retention deletes the oldest.
BACKUP_KEEP_RANGE = (1, 24)
# DigitalOcean's node pools autoscale between 1 and 100 nodes (min may be 0 only for
# pools beside another that keeps the cluster's own pods).
NODE_COUNT_RANGE = (1, 100)

# Keys of other providers that a kubernetes course may not set, and what to use instead.
NOT_ON_KUBERNETES = {
    "server.size": "the nodes' size is server.nodes.size on provider: kubernetes",
    "server.image": "nodes run DigitalOcean's Kubernetes image; the students' image is hub.image",
    "server.host": "is only used with provider: ssh",
    "server.user": "is only used for SSH; provider: kubernetes has no SSH",
    "server.port": "is only used for SSH; provider: kubernetes has no SSH",
    "server.host_key": "is only used for SSH; provider: kubernetes has no SSH",
    "hub.tljh_version": "is The Littlest JupyterHub's; provider: kubernetes runs the Zero to "
    "JupyterHub chart at the version this service pins",
    "shared": "shared folders are not built yet on provider: kubernetes; remove the key "
    "(put the files in the students' image instead)",
    "assignments": "nbgrader is set up on TLJH hubs only for now; remove the key on "
    "provider: kubernetes",
}
# Keys that only mean something on provider: kubernetes.
ONLY_ON_KUBERNETES = {
    "server.nodes": "is the node pool of provider: kubernetes",
    "server.cluster": "names a Kubernetes cluster (provider: kubernetes)",
    "storage.total": "is the size of the volume all homes share on provider: kubernetes; a "
    "droplet's volume is storage.size",
    "hub.image": "is the students' container image on provider: kubernetes; on a server, "
    "packages come from environment.yml, requirements.txt and apt.txt",
}


def is_course_file(path: str) -> bool:
    """Whether the engine reads ``path``: config, package files, README, notebooks.

    Anything directly inside ``binder/`` or ``.binder/`` counts too: repo2docker reads
    only that folder when it exists, even if it holds none of the package files.
    """
    if path in CONFIG_FILES or path.endswith(".ipynb"):
        return True
    return any(
        path.startswith(folder) and "/" not in path[len(folder) :] for folder in PACKAGE_FOLDERS
    )


def load_course(
    files: Mapping[str, bytes], owner: str, repo: str, repo_id: int | None = None
) -> CourseConfig:
    """The course's validated desired state; raises ``ConfigErrors`` listing every problem.

    With the repository's id, ``server.name`` (or the default ``<owner>-<repo>``) is only
    the readable front of the droplet's name, which ends in the id's code
    (``deploy.ownership``); without it (a config read for no course) it stays as written.
    """
    errors: list[ConfigError] = []
    try:
        settings = read_settings(files.get(CONFIG_PATH), owner, repo)
    except ConfigErrors as found:
        errors += found.errors
    try:
        packages = read_packages(files)
    except ConfigErrors as found:
        errors += found.errors
    if not errors and settings.server.provider == "kubernetes":
        errors += _packages_need_an_image(settings, packages)
    if errors:
        raise ConfigErrors(errors)
    server = settings.server
    if repo_id is not None:
        server = replace(server, name=course_name(server.name, repo_id))
    return CourseConfig(
        owner=owner,
        repo=repo,
        repo_id=repo_id,
        server=server,
        hub=settings.hub,
        content=settings.content,
        monitor=settings.monitor,
        packages=packages,
        badges=settings.badges,
        prune=settings.prune,
        storage=settings.storage,
        backup=settings.backup,
        assignments=settings.assignments,
        shared=settings.shared,
    )


def _packages_need_an_image(settings: CourseSettings, packages: Packages) -> list[ConfigError]:
    """On Kubernetes the students' packages come from an image: package files without
    ``hub.image`` are refused, naming the file."""
    if settings.hub.image is not None:
        return []
    files = sorted({file for value in packages.sources.values() for file in value.split(", ")})
    return [
        ConfigError(
            file,
            None,
            "",
            "on provider: kubernetes packages come from the students' image: build one from "
            "this file with repo2docker (e.g. the jupyterhub/repo2docker-action workflow) and "
            "name it in hub.image in .github/classroom.yml",
        )
        for file in files
    ]


@dataclass(frozen=True)
class CourseSettings:
    """What ``.github/classroom.yml`` says, before the package files are added."""

    server: ServerSpec
    hub: HubSpec
    content: ContentSpec = field(default_factory=ContentSpec)
    monitor: MonitorSpec = field(default_factory=MonitorSpec)
    badges: bool = True
    prune: bool = False
    storage: StorageSpec | None = None
    backup: BackupSpec = field(default_factory=BackupSpec)
    assignments: AssignmentsSpec | None = None
    shared: tuple[SharedFolder, ...] = ()


def read_settings(content: bytes | None, owner: str, repo: str) -> CourseSettings:
    """``.github/classroom.yml`` read and checked; ``None`` (no file) means all defaults."""
    default_name = droplet_name_for(owner, repo)
    if content is None:
        return CourseSettings(server=ServerSpec(name=default_name), hub=HubSpec())
    root = parse_yaml(content, CONFIG_PATH)
    reader = YamlReader(CONFIG_PATH)
    top = reader.mapping(root, "", TOP_KEYS)
    server = _server(reader, top.get("server"), default_name)
    hub = _hub(reader, top.get("hub"))
    content_spec = _content(reader, top.get("content"))
    monitor = _monitor(reader, top.get("monitor"))
    storage = _storage(reader, top.get("storage"))
    backup = _backup(reader, top.get("backup"))
    shared = _shared(reader, top.get("shared"))
    _volume_needs_a_droplet(reader, server, top)
    _keys_for_the_provider(reader, server, top)
    assignments = _assignments(reader, top.get("assignments"), repo)
    flags: dict[str, Any] = {
        "storage": storage,
        "backup": backup,
        "shared": shared,
        "assignments": assignments,
    }
    for key in ("badges", "prune"):
        if key in top and (flag := reader.boolean(top[key][1], key)) is not None:
            flags[key] = flag
    if reader.errors:
        raise ConfigErrors(sorted(reader.errors, key=lambda error: error.line or 0))
    return CourseSettings(server=server, hub=hub, content=content_spec, monitor=monitor, **flags)


Entry = tuple[yaml.Node, yaml.Node]


def _section(
    reader: YamlReader, entry: Entry | None, key: str, allowed: tuple[str, ...]
) -> dict[str, Entry]:
    return reader.mapping(entry[1], key, allowed) if entry else {}


def _server(reader: YamlReader, entry: Entry | None, default_name: str) -> ServerSpec:
    keys = _section(reader, entry, "server", SERVER_KEYS)
    values: dict[str, Any] = {"name": default_name}

    def read(key: str, checker: Any) -> None:
        if key in keys and (value := reader.checked_text(keys[key][1], f"server.{key}", checker)):
            values[key] = value

    if "provider" in keys:
        provider = reader.choice(
            keys["provider"][1], "server.provider", ("digitalocean", "ssh", "kubernetes")
        )
        if provider:
            values["provider"] = provider
    read("name", check_droplet_name)
    read("region", lambda value: check_slug(value, "region"))
    read("size", check_size_slug)
    read("image", lambda value: check_slug(value, "image"))
    read("host", check_host)
    read("user", check_unix_username)
    read("host_key", check_host_key)
    if "port" in keys:
        port = reader.integer(keys["port"][1], "server.port")
        if port is not None and (
            port := reader.check(keys["port"][1], "server.port", check_port, port)
        ):
            values["port"] = port
    read("cluster", check_droplet_name)
    if "nodes" in keys:
        values["nodes"] = _nodes(reader, keys["nodes"])
    elif values.get("provider") == "kubernetes":
        values["nodes"] = NodePoolSpec()
    server = ServerSpec(**values)
    provider_line = keys["provider"][0] if "provider" in keys else entry[0] if entry else 1
    if server.provider == "ssh" and "host" not in keys:
        reader.error(
            provider_line, "server.host", "is required with provider: ssh (the server's address)"
        )
    if server.provider == "digitalocean" and "host" in keys:
        reader.error(
            keys["host"][0],
            "server.host",
            "is only used with provider: ssh; a droplet's address comes from DigitalOcean",
        )
    return server


def _nodes(reader: YamlReader, entry: Entry) -> NodePoolSpec:
    keys = _section(reader, entry, "server.nodes", NODE_KEYS)
    values: dict[str, Any] = {}
    if "size" in keys and (
        size := reader.checked_text(keys["size"][1], "server.nodes.size", check_size_slug)
    ):
        values["size"] = size
    low, high = NODE_COUNT_RANGE
    for key in ("min", "max"):
        if key not in keys:
            continue
        node = keys[key][1]
        count = reader.integer(node, f"server.nodes.{key}")
        if count is not None and not low <= count <= high:
            reader.error(
                node, f"server.nodes.{key}", f"{count} is out of range; use {low} to {high} nodes"
            )
        elif count is not None:
            values[key] = count
    pool = NodePoolSpec(**values)
    if pool.min > pool.max:
        line = keys["min"][0] if "min" in keys else entry[0]
        reader.error(
            line,
            "server.nodes.min",
            f"{pool.min} is above server.nodes.max ({pool.max}); the pool scales between them",
        )
    return pool


def _hub(reader: YamlReader, entry: Entry | None) -> HubSpec:
    keys = _section(reader, entry, "hub", HUB_KEYS)
    values: dict[str, Any] = {}
    if "hostname" in keys:
        values["hostname"] = reader.checked_text(
            keys["hostname"][1], "hub.hostname", check_hostname
        )
    if "letsencrypt_email" in keys:
        values["letsencrypt_email"] = reader.checked_text(
            keys["letsencrypt_email"][1], "hub.letsencrypt_email", check_email
        )
    if "admins" in keys:
        admins = []
        items = reader.sequence(keys["admins"][1], "hub.admins", MAX_ADMINS)
        for index, node in enumerate(items):
            admin = reader.checked_text(node, f"hub.admins[{index}]", check_hub_username)
            if admin:
                admins.append(admin)
        values["admins"] = tuple(dict.fromkeys(admins))
    for key, allowed in (
        ("signup", ("approval", "open", "closed")),
        ("default_app", ("jupyterlab", "classic")),
    ):
        if key in keys and (choice := reader.choice(keys[key][1], f"hub.{key}", allowed)):
            values[key] = choice
    limits = _section(reader, keys.get("limits"), "hub.limits", LIMIT_KEYS)
    if "memory" in limits:
        values["memory_limit"] = reader.checked_text(
            limits["memory"][1], "hub.limits.memory", check_memory
        )
    if "cpu" in limits:
        node = limits["cpu"][1]
        cpu = reader.number(node, "hub.limits.cpu")
        if cpu is not None:
            values["cpu_limit"] = reader.check(node, "hub.limits.cpu", check_cpu, cpu)
    if "idle_timeout" in keys:
        node = keys["idle_timeout"][1]
        seconds = reader.integer(node, "hub.idle_timeout")
        low, high = IDLE_TIMEOUT_RANGE
        if seconds is not None and not low <= seconds <= high:
            reader.error(
                node, "hub.idle_timeout", f"{seconds} is out of range; use {low} to {high} seconds"
            )
        elif seconds is not None:
            values["idle_timeout"] = seconds
    if "tljh_version" in keys:
        version = reader.checked_text(
            keys["tljh_version"][1], "hub.tljh_version", check_tljh_version
        )
        if version:
            values["tljh_version"] = version
    if "image" in keys:
        image = reader.checked_text(keys["image"][1], "hub.image", check_image)
        if image:
            values["image"] = image
    hub = HubSpec(**values)
    if hub.hostname and not hub.letsencrypt_email and "letsencrypt_email" not in keys:
        reader.error(
            keys["hostname"][0],
            "hub.letsencrypt_email",
            "is required when hub.hostname is set (Let's Encrypt sends expiry notices there)",
        )
    if "letsencrypt_email" in keys and "hostname" not in keys:
        reader.error(
            keys["letsencrypt_email"][0],
            "hub.letsencrypt_email",
            "is only used with hub.hostname (https through Let's Encrypt); set both or neither",
        )
    return hub


def _content(reader: YamlReader, entry: Entry | None) -> ContentSpec:
    keys = _section(reader, entry, "content", CONTENT_KEYS)
    branch = open_path = None
    if "branch" in keys:
        branch = reader.checked_text(keys["branch"][1], "content.branch", check_branch)
    if "open" in keys:
        open_path = reader.checked_text(keys["open"][1], "content.open", check_content_path)
    return ContentSpec(branch=branch, open=open_path)


def _monitor(reader: YamlReader, entry: Entry | None) -> MonitorSpec:
    keys = _section(reader, entry, "monitor", MONITOR_KEYS)
    values: dict[str, Any] = {}
    if "every" in keys:
        node = keys["every"][1]
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int":
            every: str | int | None = reader.integer(node, "monitor.every")
        else:
            every = reader.text(node, "monitor.every")
        if every is not None and (
            seconds := reader.check(node, "monitor.every", parse_duration, every)
        ):
            values["every_seconds"] = seconds
    if "issue" in keys and (issue := reader.boolean(keys["issue"][1], "monitor.issue")) is not None:
        values["issue"] = issue
    if (
        "signups" in keys
        and (signups := reader.boolean(keys["signups"][1], "monitor.signups")) is not None
    ):
        values["signups"] = signups
    return MonitorSpec(**values)


def _storage(reader: YamlReader, entry: Entry | None) -> StorageSpec | None:
    keys = _section(reader, entry, "storage", STORAGE_KEYS)
    if "size" not in keys:
        if entry is not None and isinstance(entry[1], yaml.MappingNode):
            reader.error(entry[0], "storage.size", "is required: the volume's size in GiB, e.g. 20")
        return None
    node = keys["size"][1]
    size = reader.integer(node, "storage.size")
    if size is None:
        return None
    low, high = STORAGE_SIZE_RANGE
    if not low <= size <= high:
        reader.error(node, "storage.size", f"{size} is out of range; use {low} to {high} GiB")
        return None
    if "total" not in keys:
        return StorageSpec(size_gib=size)
    node = keys["total"][1]
    total = reader.integer(node, "storage.total")
    if total is None:
        return None
    if not low <= total <= high:
        reader.error(
            node,
            "storage.total",
            f"{total} is out of range: DigitalOcean's volumes are {low} to {high} GiB",
        )
        return None
    return StorageSpec(size_gib=size, total_gib=total)


def _backup(reader: YamlReader, entry: Entry | None) -> BackupSpec:
    keys = _section(reader, entry, "backup", BACKUP_KEYS)
    values: dict[str, Any] = {}
    if "every" in keys:
        node = keys["every"][1]
        # YAML 1.1 reads a bare `off` as the boolean false; it is the documented way to
        # turn snapshots off, so it is taken as written.
        if isinstance(node, yaml.ScalarNode) and node.value.lower() == "off":
            values["every_seconds"] = None
        else:
            low, high = BACKUP_EVERY_RANGE
            every = reader.text(node, "backup.every")
            seconds = None
            if every is not None:
                seconds = reader.check(
                    node,
                    "backup.every",
                    lambda value: parse_duration(value, minimum=low, maximum=high),
                    every,
                )
            if seconds:
                values["every_seconds"] = seconds
    if "keep" in keys:
        node = keys["keep"][1]
        keep = reader.integer(node, "backup.keep")
        low, high = BACKUP_KEEP_RANGE
        if keep is not None and not low <= keep <= high:
            reader.error(node, "backup.keep", f"{keep} is out of range; keep {low} to {high}")
        elif keep is not None:
            values["keep"] = keep
    return BackupSpec(**values)


def _assignments(reader: YamlReader, entry: Entry | None, repo: str) -> AssignmentsSpec | None:
    """``assignments``: nbgrader on the hub; ``None`` when the key is absent."""
    if entry is None:
        return None
    keys = _section(reader, entry, "assignments", ASSIGNMENTS_KEYS)
    values: dict[str, Any] = {"course_id": course_id_for(repo)}
    if "tool" in keys:
        reader.choice(keys["tool"][1], "assignments.tool", ("nbgrader",))
    if "source" in keys:
        source = reader.checked_text(keys["source"][1], "assignments.source", check_content_path)
        if source:
            values["source"] = source
    if "course_id" in keys:
        course_id = reader.checked_text(
            keys["course_id"][1], "assignments.course_id", check_course_id
        )
        if course_id:
            values["course_id"] = course_id
    if "submissions" in keys:
        values["submissions"] = reader.checked_text(
            keys["submissions"][1], "assignments.submissions", check_repository
        )
    due_entry = keys.get("due")
    # Every key is allowed here (assignment names, each checked below).
    names = (
        tuple(k.value for k, _ in due_entry[1].value if isinstance(k, yaml.ScalarNode))
        if due_entry is not None and isinstance(due_entry[1], yaml.MappingNode)
        else ()
    )
    due_keys = _section(reader, due_entry, "assignments.due", names)
    if len(due_keys) > MAX_DUE_DATES:
        reader.error(
            keys["due"][0], "assignments.due", f"has {len(due_keys)} entries; at most "
            f"{MAX_DUE_DATES} are allowed"
        )  # fmt: skip
        due_keys = {}
    due: list[tuple[str, str]] = []
    for name, (key_node, value_node) in due_keys.items():
        where = f"assignments.due.{name}"
        if reader.check(key_node, where, check_assignment_name, name) is None:
            continue
        when = reader.checked_text(value_node, where, parse_due)
        if when:
            due.append((name, when))
    values["due"] = tuple(sorted(due))
    return AssignmentsSpec(**values)


def _shared(reader: YamlReader, entry: Entry | None) -> tuple[SharedFolder, ...]:
    """``shared:``: a list of ``{from: FOLDER/, to: NAME}`` and ``{writable: NAME}``."""
    if entry is None:
        return ()
    folders: list[SharedFolder] = []
    first_line: dict[str, int] = {}
    for index, node in enumerate(reader.sequence(entry[1], "shared", MAX_SHARED_FOLDERS)):
        where = f"shared[{index}]"
        if not isinstance(node, yaml.MappingNode):
            reader.error(
                node,
                where,
                "must be a mapping: {from: data/, to: data} (read-only, from the repository) "
                "or {writable: notes} (writable by the hub's admins)",
            )
            continue
        keys = reader.mapping(node, where, SHARED_KEYS)
        if "writable" in keys and ("from" in keys or "to" in keys):
            reader.error(
                node,
                where,
                "is either {from: FOLDER/, to: NAME} or {writable: NAME}, not both: a "
                "writable folder is filled on the hub, not from the repository",
            )
            continue
        if "writable" in keys:
            name_node = keys["writable"][1]
            name = reader.checked_text(name_node, f"{where}.writable", check_shared_name)
            source = None
        elif "from" in keys and "to" in keys:
            name_node = keys["to"][1]
            source = reader.checked_text(keys["from"][1], f"{where}.from", check_repository_folder)
            name = reader.checked_text(name_node, f"{where}.to", check_shared_name)
            if source is None:
                continue
        else:
            missing = "to" if "from" in keys else "from"
            reader.error(
                node,
                f"{where}.{missing}",
                "is required: give both from (a repository folder, e.g. data/) and to "
                "(its name under ~/shared, e.g. data), or writable: NAME",
            )
            continue
        if name is None:
            continue
        if name in first_line:
            reader.error(
                name_node,
                where,
                f"{name!r} is named twice under ~/shared (first on line {first_line[name]})",
            )
            continue
        first_line[name] = line_of(name_node)
        folders.append(SharedFolder(name=name, source=source))
    return tuple(folders)


def _volume_needs_a_droplet(reader: YamlReader, server: ServerSpec, top: dict[str, Entry]) -> None:
    """``storage`` and ``backup`` are DigitalOcean volumes: refused for other servers,
    and snapshots need a volume to snapshot."""
    for key in ("storage", "backup"):
        if key in top and server.provider == "ssh":
            reader.error(
                top[key][0],
                key,
                "is only for provider: digitalocean (a block storage volume and its "
                "snapshots); on your own server back /home up with restic or rsync, "
                "see docs/instructors.md",
            )
    if "backup" in top and "storage" not in top and server.provider == "digitalocean":
        reader.error(
            top["backup"][0],
            "backup",
            "snapshots are of the course's volume: set storage.size as well (e.g. 20)",
        )


def _keys_for_the_provider(reader: YamlReader, server: ServerSpec, top: dict[str, Entry]) -> None:
    """Keys that mean nothing for the course's provider are refused, each by name."""
    found: dict[str, yaml.Node] = {name: key for name, (key, _) in top.items()}
    for section in ("server", "hub", "storage"):
        if section in top and isinstance(top[section][1], yaml.MappingNode):
            for key_node, _ in top[section][1].value:
                if isinstance(key_node, yaml.ScalarNode):
                    found.setdefault(f"{section}.{key_node.value}", key_node)
    kubernetes = server.provider == "kubernetes"
    refused = NOT_ON_KUBERNETES if kubernetes else ONLY_ON_KUBERNETES
    for key, why in refused.items():
        if key in found:
            where = "provider: kubernetes" if kubernetes else f"provider: {server.provider}"
            reader.error(found[key], key, f"is not used with {where}: {why}")


__all__ = [
    "CONFIG_FILES",
    "CourseSettings",
    "Packages",
    "is_course_file",
    "load_course",
    "read_settings",
]
