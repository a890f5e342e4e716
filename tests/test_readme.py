"""The READMEs' commands work as written, as far as their shape goes: every `lama ...` line of a bash block parses
with the command line's own parser (flags, choices, counts of paths), and every script they name exists. Running
them is the job of the tests of each command and of tests/test_pipeline.py (the main job, the `dvc exp show` view).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lama.cli import parse_arguments
from tests.conftest import REPO

READMES = (REPO / "README.md", REPO / "examples" / "README.md")
SYNOPSIS = re.compile(r"\[|\|")  # `lama predict MODEL_DIR ... [--device auto|cpu|cuda]` describes, it is not run


def bash_lines(readme: Path) -> list[str]:
    """The command lines of the file's bash blocks, continuation lines joined."""
    lines, block, pending = [], False, ""
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            block = line.strip() == "```bash"
            continue
        if block:
            pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                lines.append(pending.strip())
                pending = ""
    return lines


def lama_commands() -> list[tuple[str, list[str]]]:
    found = []
    for readme in READMES:
        for line in bash_lines(readme):
            words = shlex.split(line, comments=True)
            start = next((index for index, word in enumerate(words) if word in ("lama", ".venv/bin/lama")), None)
            if start is not None and not SYNOPSIS.search(line.split("#", 1)[0]):
                found.append((f"{readme.relative_to(REPO)}: {line}", words[start + 1:]))
    return found


COMMANDS = lama_commands()


def test_the_readmes_show_many_lama_commands() -> None:
    assert len(COMMANDS) >= 25
    assert {arguments[0] for _, arguments in COMMANDS} >= {"predict", "train", "evaluate", "report", "params",
                                                           "prepare", "masks", "sweep", "weights"}


@pytest.mark.parametrize(("line", "arguments"), COMMANDS, ids=[line for line, _ in COMMANDS])
def test_each_lama_command_parses(line: str, arguments: list[str]) -> None:
    try:
        parsed = parse_arguments(arguments)
    except SystemExit as exit_:
        pytest.fail(f"{line}: the parser refused it (exit {exit_.code})")
    assert callable(parsed.run)


def test_every_script_a_readme_names_exists() -> None:
    named = {word for readme in READMES for line in bash_lines(readme) for word in shlex.split(line, comments=True)
             if word.startswith("scripts/") or (word.startswith("benchmarks/") and word.endswith(".py"))}
    assert "scripts/run.sh" in named
    assert [script for script in sorted(named) if not (REPO / script).is_file()] == []
