"""The house has one direction: imports, read with ``ast`` from the source tree, follow it.

- ``deploy/`` (the engine) imports nothing of the service: not ``bot``, not ``handlers``.
- ``handlers/`` only decide: they reach the engine through ``bot.jobs``, never ``deploy``.
- In ``bot/`` only the webhook intake imports the handlers (to dispatch to them).
- ``bot/github/`` is an adapter to GitHub: it imports neither the jobs, nor the monitor,
  nor the services that hold them; what it shows comes to it as data.
- The jobs never import the monitor: the monitor hears from them through runner hooks.
- No module imports another module's private name (``from x import _y``): what modules
  share is public, so a reader can see what a module offers.
- No module imports a test module: helpers tests share live in ``tests/support/``,
  fixtures in ``tests/plugins/``.

Every import counts, also one inside a function or under ``TYPE_CHECKING``, and so does
``importlib.import_module("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "deploy", "handlers")
# Where the private-name rule applies: every Python file of the project.
ALL_SOURCES = (*PACKAGES, "tests", "bench", "scripts")
SKIPPED_PARTS = {"node_modules", "__pycache__", "data"}


@dataclass(frozen=True)
class Rule:
    """Modules under ``source`` may not import modules under ``target`` (except ``allowed``)."""

    source: str
    target: str
    why: str
    allowed: tuple[str, ...] = ()


RULES = (
    Rule("deploy", "bot", "the engine never imports the service"),
    Rule("deploy", "handlers", "the engine never imports the service's handlers"),
    Rule("handlers", "deploy", "handlers only decide; the engine is reached through bot.jobs"),
    Rule(
        "bot",
        "handlers",
        "only the webhook intake dispatches to the handlers",
        allowed=("bot.intake.webhook",),
    ),
    Rule("bot.github", "bot.jobs", "GitHub's adapter knows nothing of jobs or operations"),
    Rule("bot.github", "bot.monitor", "GitHub's adapter knows nothing of the monitor"),
    Rule("bot.github", "bot.services", "GitHub's adapter is given its parts, not the services"),
    Rule("bot.jobs", "bot.monitor", "jobs reach the monitor only through the runner's hooks"),
)


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``module`` (at ``where``) imports ``target``."""

    module: str
    where: str
    target: str
    names: tuple[str, ...] = ()


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(source: str, module: str, where: str, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (the text of ``module``), relative ones resolved."""
    found: list[Import] = []
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        at = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [Import(module, at, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            found.append(Import(module, at, target, names))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(module, at, node.args[0].value))
    return found


def project_imports(roots: tuple[str, ...]) -> list[Import]:
    found: list[Import] = []
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if SKIPPED_PARTS & set(relative.parts):
                continue
            found += imports_in(
                path.read_text(),
                module_name(relative),
                str(relative),
                is_package=path.name == "__init__.py",
            )
    return found


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def direction_violations(found: list[Import]) -> list[str]:
    return [
        f"{edge.where}: {edge.module} imports {edge.target}: {rule.why}"
        for edge in found
        for rule in RULES
        if under(edge.module, rule.source)
        and under(edge.target, rule.target)
        and edge.module not in rule.allowed
    ]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_name_violations(found: list[Import]) -> list[str]:
    return [
        f"{edge.where}: {edge.module} imports {edge.target}.{name}, a private name; "
        "give it a public name in its module"
        for edge in found
        for name in edge.names
        if is_private(name) and edge.target != edge.module
    ]


def is_test_module(module: str) -> bool:
    return module.split(".")[-1].startswith("test_")


def imports_of_test_modules(found: list[Import]) -> list[str]:
    return [
        f"{edge.where}: {edge.module} imports the test module {target}; "
        "move what it shares to tests/support/"
        for edge in found
        for target in (edge.target, *(f"{edge.target}.{name}" for name in edge.names))
        if under(target, "tests") and is_test_module(target) and target != edge.module
    ]


# ---- the rules themselves, on sources made here -------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("deploy.volumes.backup", "from bot.services import Services\n"),
        ("deploy.volumes.backup", "import bot.jobs.registry\n"),
        ("deploy.volumes.backup", "def f():\n    from handlers import router\n"),
        ("deploy.volumes.backup", "import importlib\nimportlib.import_module('bot.monitor')\n"),
        ("handlers.push", "from deploy import planner\n"),
        ("bot.jobs.registry", "from handlers.common import installation_id\n"),
        ("bot.github.reporting", "from bot.jobs import registry\n"),
        ("bot.github.texts", "from bot.jobs.results import JobResult\n"),
        ("bot.github.reporting", "def f():\n    from bot.monitor import Monitor\n"),
        ("bot.github.reporting", "from bot.services import Services\n"),
        ("bot.jobs.hub_operations", "from bot.monitor import note_hub_up\n"),
    ],
)
def test_an_import_against_the_direction_is_found(module: str, source: str) -> None:
    [violation] = direction_violations(imports_in(source, module, "x.py"))
    assert module in violation


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("bot.jobs.hub_operations", "from deploy import operations\n"),
        ("handlers.push", "from bot.intake.delivery import Intake\n"),
        ("bot.intake.webhook", "from handlers import router\n"),
        ("deploy.backup", "from .operations import known_server\n"),
        ("bot.github.reporting", "from bot.store import CheckRunRecord\n"),
        ("bot.jobs.check_runs", "from bot.github.reporting import Reporter\n"),
        ("bot.monitor", "from bot.jobs.registry import enqueue_operation\n"),
    ],
)
def test_imports_along_the_direction_pass(module: str, source: str) -> None:
    assert direction_violations(imports_in(source, module, "x.py")) == []


def test_relative_imports_are_resolved() -> None:
    [edge] = imports_in("from ..store import Store\n", "bot.jobs.runner", "x.py")
    assert (edge.target, edge.names) == ("bot.store", ("Store",))
    [edge] = imports_in("from . import texts\n", "bot.github", "x.py", is_package=True)
    assert (edge.target, edge.names) == ("bot.github", ("texts",))


def test_a_private_name_from_another_module_is_found() -> None:
    source = "from deploy.operations import Engine, _known_server\n"
    [violation] = private_name_violations(imports_in(source, "deploy.volumes.backup", "x.py"))
    assert "deploy.operations._known_server" in violation
    dunder = "from deploy import __version__\n"
    assert private_name_violations(imports_in(dunder, "deploy.volumes.backup", "x.py")) == []


def test_an_import_of_a_test_module_is_found() -> None:
    for source in ("from tests.test_recover import VOLUME\n", "from tests import test_recover\n"):
        [violation] = imports_of_test_modules(imports_in(source, "tests.test_x", "x.py"))
        assert "tests.test_recover" in violation
    fine = "from tests.support.recovery import student_files\n"
    assert imports_of_test_modules(imports_in(fine, "tests.test_x", "x.py")) == []


# ---- the project ----------------------------------------------------------------------------


def test_the_project_imports_follow_the_direction() -> None:
    found = project_imports(PACKAGES)
    assert len(found) > 100, "the source tree was read"
    assert direction_violations(found) == []


def test_no_module_imports_another_modules_private_name() -> None:
    assert private_name_violations(project_imports(ALL_SOURCES)) == []


def test_no_module_imports_a_test_module() -> None:
    assert imports_of_test_modules(project_imports(ALL_SOURCES)) == []
