"""The type check bites: mypy, run with the project's own configuration (strict) on a copy
of the source, passes on the code as it is and reports a wrong type put into it, at its
line. ``scripts/test`` runs the same check on the tree itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[1]
# Checked (bot, handlers, deploy), with the configuration.
COPIED = ("bot", "handlers", "deploy")
WRONG = '\n\ndef wrong_type() -> int:\n    return "not a number"\n'


def run_mypy(where: Path) -> tuple[str, int]:
    out, err, status = api.run(
        ["--config-file", str(where / "pyproject.toml"), "--cache-dir", str(where / "cache")]
    )
    return out + err, status


@pytest.fixture
def source_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in COPIED:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)  # the configuration's ``files`` are relative
    return tmp_path


def test_the_check_passes_on_the_code_and_reports_a_wrong_type_at_its_line(
    source_copy: Path,
) -> None:
    output, status = run_mypy(source_copy)
    assert status == 0, output
    assert "Success: no issues found" in output

    module = source_copy / "bot" / "jobs" / "texts.py"
    text = module.read_text()
    module.write_text(text + WRONG)
    line = len((text + WRONG).splitlines())  # the return statement, the last line
    output, status = run_mypy(source_copy)
    assert status == 1
    assert (
        f'bot/jobs/texts.py:{line}: error: Incompatible return value type (got "str", '
        'expected "int")  [return-value]'
    ) in output, output


def test_a_wrong_type_in_the_engine_fails_the_check_at_its_line(source_copy: Path) -> None:
    module = source_copy / "deploy" / "planning" / "planner.py"
    text = module.read_text()
    module.write_text(text + WRONG)
    line = len((text + WRONG).splitlines())
    output, status = run_mypy(source_copy)
    assert status == 1
    assert f"deploy/planning/planner.py:{line}: error: Incompatible return value type" in output
