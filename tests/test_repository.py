"""The repository keeps its promises: README's two commands exist and CI runs exactly the test one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

FIRST_SCREEN_LINES = 40


def _readme_commands() -> list[str]:
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:FIRST_SCREEN_LINES])
    block = re.search(r"```bash\n(.*?)```", first_screen, re.S)
    assert block, "README's first screen has no bash block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_first_screen_gives_setup_run_and_test_commands() -> None:
    run, test = _readme_commands()
    assert run == "bash scripts/run.sh"
    assert test.startswith("bash scripts/setup.sh && ") and "pytest" in test
    for script in ("scripts/run.sh", "scripts/setup.sh"):
        assert (REPO / script).is_file(), script


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert _readme_commands()[1] in ci_lines


def test_setup_pins_the_torch_build_it_was_tested_with() -> None:
    constraints = (REPO / "constraints.txt").read_text()
    assert re.search(r"^torch==\d", constraints, re.M) and re.search(r"^torchvision==\d", constraints, re.M)
    assert "-c constraints.txt" in (REPO / "scripts/setup.sh").read_text()


@pytest.mark.skipif(shutil.which("ruff", path=str(REPO / ".venv/bin")) is None and shutil.which("ruff") is None,
                    reason="ruff is not installed (it comes with the dev extra)")
def test_code_is_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(REPO / ".venv/bin")) or shutil.which("ruff")
    result = subprocess.run([ruff, "check", "lama", "tests", "benchmarks", "stages"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_library_import_has_no_side_effects() -> None:
    code = "import logging, lama.models, lama.predict; print(len(logging.getLogger().handlers))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0"
