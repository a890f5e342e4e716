"""What an evaluation is asked to do: its options and the ways the Fréchet distance can be computed.

This module imports no torch, so that the command line can show the choices and defaults (``lama evaluate
--help``) without loading it; ``lama.eval.evaluator`` runs the evaluation and ``lama.eval.fid`` computes the FID.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from lama.devices import AUTO

# sqrtm: the official computation of tr√(Σ1Σ2); svd: its exact closed form, much faster on CPU.
FIDMethod = Literal["sqrtm", "svd"]
FID_METHODS: tuple[str, ...] = get_args(FIDMethod)


@dataclass
class EvaluateOptions:
    """Where the inputs are, where the results go, and how the metrics are computed."""

    datadir: str
    predictdir: str
    out: str  # the JSON; the TSV goes beside it unless ``tsv`` is given
    tsv: str | None = None
    model_dir: str | None = None  # recorded (architecture, training masks, …) for the report
    overrides: list[str] = field(default_factory=list)  # model.FIELD=VALUE / mask_set.FIELD=VALUE
    device: str = AUTO
    weights: str = "pretrained"  # or stand-in: seeded random LPIPS/FID networks, labelled as such
    seed: int = 0
    # svd: the exact closed form, seconds instead of minutes on a CPU; sqrtm: the official computation, bit for bit.
    fid_method: str = "svd"
    batch_size: int = 8
    num_workers: int = 2
    img_suffix: str = ".png"
    inpainted_suffix: str = ".png"

    @property
    def tsv_path(self) -> Path:
        return Path(self.tsv) if self.tsv else Path(self.out).with_suffix(".tsv")

    @property
    def partial_dir(self) -> Path:
        out = Path(self.out)
        return out.parent / f".{out.name}.partial"
