"""The house has floors: a module imports only from its own floor or below, and no two rooms import each other.

Every ``import lama...`` statement counts, those inside functions too (a lazy import is still a dependency). The
floors are ARCHITECTURE.md's; a new package goes on one of them here and there.
"""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO

FLOORS: list[tuple[str, ...]] = [
    ("config", "safe_yaml", "safe_load", "signals", "files", "journal", "stand_in", "weights", "devices", "imageio",
     "configs", "progress", "lazy"),
    ("models", "losses", "masks", "baselines", "tracking"),
    ("data", "eval", "export"),
    ("train", "predict", "report"),
    ("sweep",),
    ("pipeline",),
    ("cli", "__main__"),
]
FLOOR_OF = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def _room(module: str) -> str | None:
    """``lama.eval.fid`` → ``eval``; None for ``lama`` itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "lama" and len(parts) > 1 else None


def _imports() -> dict[str, set[str]]:
    """Room → the rooms its modules import."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted((REPO / "lama").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        source = _room(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                target = _room(name)
                if source and target and target != source:
                    edges[source].add(target)
    return edges


def test_every_room_has_a_floor() -> None:
    rooms = {Path(path).stem for path in (REPO / "lama").iterdir()
             if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").is_file())}
    assert rooms - {"__init__"} == set(FLOOR_OF)


def test_no_import_runs_up_a_floor() -> None:
    upward = sorted(f"lama.{source} -> lama.{target}" for source, targets in _imports().items() for target in targets
                    if FLOOR_OF[target] > FLOOR_OF[source])
    assert upward == []


def test_no_two_rooms_import_each_other() -> None:
    edges = _imports()
    mutual = sorted(f"lama.{a} <-> lama.{b}" for a, targets in edges.items() for b in targets
                    if a < b and a in edges.get(b, set()))
    assert mutual == []


def test_the_stage_scripts_import_what_the_library_has() -> None:
    """A stage script runs only under ``dvc repro``; a name it imports that moved would fail there first."""
    missing = []
    for path in sorted((REPO / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lama"):
                module = importlib.import_module(node.module)
                missing += [f"{path.name}: {node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name)]
    assert missing == []
