"""Shared helpers for the report tests: tiny mask sets and predictions, ``lama-eval/1`` dicts as ``lama evaluate``
writes them, and a report run that returns its summary, ``report.json`` and Markdown."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image

from lama.report import ReportSummary, build_report
from lama.report import build as build_module

TILE = 16


def make_mask_set(root: Path, count: int = 3, seed: int = 0) -> Path:
    """Official layout: ``imgN.png`` beside ``imgN_mask000.png``; each mask a different box."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(rng.integers(0, 200, (TILE, TILE, 3), dtype=np.uint8)).save(root / f"img{index}.png")
        mask = np.zeros((TILE, TILE), dtype=np.uint8)
        mask[2 + index : 8 + index, 3:10] = 255
        Image.fromarray(mask).save(root / f"img{index}_mask000.png")
    (root / "maskset.json").write_text(json.dumps({"config": "thick_512"}))  # not an evaluation: ignored
    return root


def make_predictions(mask_dir: Path, out: Path, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for mask in sorted(mask_dir.glob("*_mask*.png")):
        Image.fromarray(rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8)).save(out / mask.name)
    return out


def evaluation(architecture: str | None, kind: str, size: int | None, fid: float | None, lpips: float | None, *,
               stand_in: tuple[str, ...] = (), train_masks: str | None = "wide", mask_interp: str | None = "none",
               parameters: int | None = 27_037_475, mask_dir: Path | str = "nowhere/masks",
               predictions: Path | str = "nowhere/predict", name: str | None = None, classical: str | None = None,
               recipe: list[str] | None = None, hole: tuple[float, float] | None = None,
               bins: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """A ``lama-eval/1`` dict; metric keys carry ``_stand-in`` exactly as ``lama evaluate`` writes them."""
    lpips_key = "lpips_stand-in" if "lpips" in stand_in else "lpips"
    fid_key = "fid_stand-in" if "fid" in stand_in else "fid"
    return {
        "format": "lama-eval/1",
        "mask_set": {"name": f"{kind}_{size}", "kind": kind, "size": size, "path": str(mask_dir)},
        "predictions": str(predictions),
        "model": {"name": name or classical or architecture, "path": f"runs/{architecture}",
                  "architecture": architecture, "train_masks": train_masks, "mask_interp": mask_interp,
                  "parameters": parameters, "classical": classical, "recipe": recipe},
        "networks": {"lpips": "label", "fid": "label"},
        "stand_in": list(stand_in),
        "fid_method": "sqrtm",
        "n": 3,
        "metrics": {"ssim": 0.8, "psnr": 24.0, lpips_key: lpips, fid_key: fid,
                    **({"hole_ssim": hole[0], "hole_psnr": hole[1]} if hole else {})},
        "bins": bins or {},
    }


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def skip_rendering(series: Any, path: Path) -> None:
    path.write_bytes(b"")


def run_report(tmp_path: Path, evaluations: dict[str, dict[str, Any]], *, render_figure: bool = False,
               **options: Any) -> tuple[ReportSummary, dict[str, Any], str]:
    """Write the evaluation files under ``tmp_path/evals``, build the report, return summary, report.json, Markdown.

    Rendering the figures is most of a report's time, so only the tests about a figure render them.
    """
    (tmp_path / "evals").mkdir(exist_ok=True)
    for name, data in evaluations.items():
        write_json(tmp_path / "evals" / f"{name}.json", data)
    with ExitStack() as stack:
        if not render_figure:
            for renderer in ("write_resolution_figure", "write_bins_figure"):
                stack.enter_context(mock.patch.object(build_module, renderer, skip_rendering))
        summary = build_report([tmp_path / "evals"], tmp_path / "report", **options)
    payload = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    markdown = (tmp_path / "report" / "tables.md").read_text(encoding="utf-8")
    return summary, payload, markdown


def row(payload: dict[str, Any], table: str, label: str) -> dict[str, Any]:
    return next(item for item in payload["tables"][table]["rows"] if item["label"] == label)


def markdown_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the Markdown table under the heading that starts with ``heading``."""
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def markdown_section(markdown: str, heading: str) -> str:
    return markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def markdown_header(markdown: str, heading: str) -> list[str]:
    section = markdown_section(markdown, heading)
    line = next(line for line in section.splitlines() if line.startswith("| "))
    return [cell.strip() for cell in line.strip("|").split("|")]
