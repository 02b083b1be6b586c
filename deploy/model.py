"""The engine's shared data types: desired state, observed state, plans and results.

Pure data; every other module of ``deploy`` speaks in these types.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Provider = Literal["digitalocean", "ssh", "kubernetes"]
Signup = Literal["approval", "open", "closed"]
DefaultApp = Literal["jupyterlab", "classic"]

CONFIG_PATH = ".github/classroom.yml"
STATE_FILE = "/opt/tljh/state/classroom.json"
DROPLET_TAG = "littlest-classroom"


class ConfigError(ValueError):
    """A repository file holds a value the engine refuses.

    ``str()`` reads as ``file:line: key: message`` so a person can find and fix it.
    """

    def __init__(self, file: str, line: int | None, key: str, message: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.message = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class ConfigErrors(ValueError):
    """Every error found in one read of a repository, so all can be fixed at once."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class NodePoolSpec:
    """The node pool of a course's Kubernetes cluster (provider kubernetes): size and
    autoscaling range."""

    size: str = "s-4vcpu-8gb"
    min: int = 1
    max: int = 3


@dataclass(frozen=True)
class ServerSpec:
    provider: Provider = "digitalocean"
    name: str = ""
    region: str = "syd1"
    size: str = "s-2vcpu-4gb"
    image: str = "ubuntu-24-04-x64"
    host: str | None = None
    user: str = "root"
    port: int = 22
    host_key: str | None = None
    nodes: NodePoolSpec | None = None  # provider kubernetes only
    cluster: str | None = None  # provider kubernetes: an existing cluster of the operator's


@dataclass(frozen=True)
class HubSpec:
    hostname: str | None = None
    letsencrypt_email: str | None = None
    admins: tuple[str, ...] = ()
    signup: Signup = "approval"
    default_app: DefaultApp = "jupyterlab"
    memory_limit: str | None = None
    cpu_limit: float | None = None
    idle_timeout: int = 3600
    tljh_version: str = "2.0.0"
    # provider kubernetes: the single-user image (packages come from it); None: the
    # chart's own sample image, which holds JupyterLab and nbgitpuller.
    image: str | None = None


@dataclass(frozen=True)
class ContentSpec:
    branch: str | None = None
    open: str | None = None


@dataclass(frozen=True)
class MonitorSpec:
    every_seconds: int = 300
    issue: bool = True
    signups: bool = True  # keep one issue saying how many students wait for approval


@dataclass(frozen=True)
class StorageSpec:
    """The block storage volume that holds ``/home`` and the hub's state (digitalocean).

    On ``provider: kubernetes`` ``size_gib`` is each student's share and ``total_gib`` the
    one volume all homes are on (``None``:
    ``deploy.providers.kubernetes_homes.DEFAULT_TOTAL_GIB``)."""

    size_gib: int
    total_gib: int | None = None


@dataclass(frozen=True)
class BackupSpec:
    """Volume snapshots: how often (``None``: never, ``every: off``) and how many are kept."""

    every_seconds: int | None = 86400
    keep: int = 14


@dataclass(frozen=True)
class AssignmentsSpec:
    """nbgrader on the hub: where the assignments are in the repository, the course's id,
    the optional private repository that receives submissions, and due dates (UTC)."""

    course_id: str
    tool: Literal["nbgrader"] = "nbgrader"
    source: str = "assignments"  # a folder of the repository, no trailing '/'
    submissions: str | None = None  # OWNER/REPO, private, with the App installed
    due: tuple[tuple[str, str], ...] = ()  # (assignment, ISO 8601 UTC time)

    def due_at(self, name: str) -> str | None:
        return dict(self.due).get(name)


@dataclass(frozen=True)
class SharedFolder:
    """One folder under ``~/shared``: read-only from the repository, or writable by admins.

    ``source`` is the repository folder (``from``, without its trailing '/'); ``None`` for
    a ``writable`` folder, which the hub's admins fill on the server.
    """

    name: str
    source: str | None = None

    @property
    def writable(self) -> bool:
        return self.source is None


@dataclass(frozen=True)
class Packages:
    """What the user environment should hold, from the Binder-style files."""

    apt: tuple[str, ...] = ()
    conda_channels: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)  # kind -> file it came from
    # Package files present but not read, e.g. requirements.txt beside environment.yml
    # (as on Binder), so a plan can say why they have no effect.
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class CourseConfig:
    """The desired state of one course's hub, validated."""

    owner: str
    repo: str
    server: ServerSpec
    hub: HubSpec
    content: ContentSpec
    monitor: MonitorSpec
    packages: Packages
    badges: bool = True
    prune: bool = False
    # None: no volume; /home stays on the droplet's disk (as for every course before).
    storage: StorageSpec | None = None
    backup: BackupSpec = field(default_factory=BackupSpec)
    # None: no nbgrader on the hub.
    assignments: AssignmentsSpec | None = None
    # GitHub's repository.id: the course's cloud resources are tagged and named by it
    # (deploy.ownership). None only for a config read without a course (a pure plan).
    repo_id: int | None = None
    # ``shared:``: folders every user sees under ~/shared (/srv/shared on the server).
    shared: tuple[SharedFolder, ...] = ()


@dataclass(frozen=True)
class HubAccount:
    """One NativeAuthenticator account (a ``users_info`` row) on the hub."""

    name: str
    authorized: bool
    email: str = ""
    last_activity: str = ""  # JupyterHub's record, UTC ("" before the first login)


@dataclass(frozen=True)
class HubAccounts:
    """The hub's ``users_info`` rows, and which of them the service made as admin rows."""

    database: bool = False  # False: the hub has not created its database yet
    rows: tuple[HubAccount, ...] = ()
    seeded: frozenset[str] = frozenset()

    @property
    def waiting(self) -> tuple[HubAccount, ...]:
        return tuple(r for r in self.rows if not r.authorized)

    @property
    def approved(self) -> tuple[HubAccount, ...]:
        return tuple(r for r in self.rows if r.authorized)

    def names(self) -> set[str]:
        return {r.name for r in self.rows}


@dataclass(frozen=True)
class Observed:
    """What the server reported in one SSH round trip."""

    reachable: bool = True
    os_id: str = ""
    os_version: str = ""
    tljh_installed: bool = False
    tljh_version: str | None = None
    tljh_config: dict[str, Any] = field(default_factory=dict)
    apt: dict[str, str] = field(default_factory=dict)  # name -> version
    conda: dict[str, str] = field(default_factory=dict)
    pip: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # unit -> is-active answer
    disk_used_percent: float | None = None
    disk_free_bytes: int | None = None
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None
    state: dict[str, Any] = field(default_factory=dict)  # contents of STATE_FILE
    accounts: HubAccounts = field(default_factory=HubAccounts)
    api_service: str = ""  # the service's jupyterhub_config.d file as found ("" if none)
    home_volume: str = ""  # name of the course volume mounted on the server, if any
    home_on_volume: bool = False  # /home is that volume's home folder
    home_volume_outdated: bool = False  # set up the old way: fstab by UUID, no hub drop-in
    nbgrader_config: str = ""  # the user environment's nbgrader_config.py as found
    shared_laid_out: bool = False  # /srv/shared exists (the shared folders' layout)
    shared_commit: str = ""  # the commit the shared folders' clone has checked out


class Reload(enum.Flag):
    NONE = 0
    HUB = enum.auto()
    PROXY = enum.auto()


@dataclass(frozen=True)
class Step:
    """One idempotent action of a plan, with why it exists."""

    name: str  # short identifier, e.g. "apt", "tljh-install"
    reason: str  # sentence for people, e.g. "apt.txt adds graphviz"
    script: str  # shell script built only from validated, quoted values; "" for engine steps
    reload: Reload = Reload.NONE
    timeout: float = 600.0
    changes_server: bool = True
    names: tuple[str, ...] = ()  # the hub accounts an "accounts" step creates


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    kept: tuple[str, ...] = ()  # packages dropped from the files but left installed
    notes: tuple[str, ...] = ()  # what the plan leaves for a person to decide

    @property
    def empty(self) -> bool:
        return not any(s.changes_server for s in self.steps)


Conclusion = Literal["success", "failure", "neutral", "cancelled"]


@dataclass
class StepResult:
    step: Step
    ok: bool
    seconds: float
    output_tail: str = ""


@dataclass
class OperationResult:
    """What an operation returns for reporting: conclusion, Markdown summary, redacted log."""

    conclusion: Conclusion
    title: str
    summary: str
    log: str = ""
    steps: list[StepResult] = field(default_factory=list)
    hub_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServerRecord:
    """What the service remembers of a course's server between jobs."""

    provider: Provider
    address: str | None = None
    port: int = 22
    user: str = "root"
    droplet_id: int | None = None
    host_key: str | None = None  # OpenSSH public key line pinned at first contact
    size: str | None = None
    region: str | None = None
    # The course's reserved IP (DigitalOcean, with storage): the hub's address, which a
    # new droplet keeps.
    reserved_ip: str | None = None
    # The server may still trust the service's key (it was set up before per-course keys,
    # or found again by its tags): offered after the course's key until a deploy moves the
    # server to the course's key. A new droplet or ``provider: ssh`` host never gets it.
    trusts_service_key: bool = True
    # The DNS A record (its id) the service made for hub.hostname: the only one it changes.
    dns_record_id: int | None = None
    # provider kubernetes: the course's DOKS cluster and its node pool.
    cluster_id: str | None = None
    node_pool_id: str | None = None


class ServerRecords(Protocol):
    """Where operations read and pin a course's server; the service's store implements it."""

    async def get_server(self, course: str) -> ServerRecord | None: ...

    async def save_server(self, course: str, record: ServerRecord) -> None: ...


# Receives each progress line (already timestamped and redacted) as work goes on.
Progress = Callable[[str], Awaitable[None]]
