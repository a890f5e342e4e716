"""The evaluations of saved DVC experiments, so the report compares them without ``dvc exp apply``.

``dvc exp run`` and ``dvc exp save`` (the main job saves its result as ``baseline``) keep each experiment as a git
commit whose outputs sit in DVC's cache; DVC's own file system reads them at that commit. Only the experiments of
the current commit are read (those ``dvc exp show`` lists), and an experiment's file identical to the workspace's
is the same evaluation, read once. The workspace's evaluations stay the report's first choice
(``lama.report.evaluations.preference``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from lama.eval.schema import EVAL_FORMAT
from lama.pipeline.layout import RESULTS, repository_root
from lama.report.evaluations import Evaluation, parse_evaluation

logger = logging.getLogger(__name__)


def saved_experiments(root: Path | None = None) -> list[tuple[str, str]]:
    """(name, commit) of every saved experiment of the repository's current commit, by name; none outside DVC."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(root or repository_root())) as repo:
            listed = repo.experiments.ls()
    except (DvcException, OSError) as error:  # not a DVC repository, no git commit yet, ...
        logger.info("no saved DVC experiments read (%s)", error)
        return []
    return sorted((name, commit) for experiments in listed.values() for name, commit in experiments if commit)


def experiment_evaluations(root: Path | None = None, folders: Sequence[str | Path] = (RESULTS,)
                           ) -> list[Evaluation]:
    """The evaluation files under ``folders`` (relative to the repository) of every saved experiment, each as an
    ``Evaluation`` whose ``experiment`` is the experiment's name and whose model label carries it
    (``lama [baseline]``)."""
    from dvc.api import DVCFileSystem

    root = root or repository_root()
    found: list[Evaluation] = []
    for name, commit in saved_experiments(root):
        files = DVCFileSystem(str(root), rev=commit)
        paths = sorted({path for folder in map(str, map(PurePosixPath, folders)) if files.isdir(folder)
                        for path in files.find(folder) if path.endswith(".json")})
        for path in paths:
            text = files.read_text(path)
            if _same_as_workspace(root / path, text):
                continue
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != EVAL_FORMAT:
                continue
            evaluation = parse_evaluation(data, Path(f"{name}:{path}"))
            found.append(dataclasses.replace(evaluation, experiment=name,
                                             model_label=f"{evaluation.model_label} [{name}]"))
    return found


def _same_as_workspace(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False
