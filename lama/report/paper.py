"""The numbers LaMa's paper prints (Suvorov et al., WACV 2022), as data the report puts beside ours.

Every number is Places365 at 512×512 (eval sets ``random_thin_512`` = narrow, ``random_thick_512`` = wide), the
"total" row of the official evaluation: FID and LPIPS, lower is better. Where the paper prints no number, the value
is ``None`` and ``notes`` says why, so nothing here is inferred from a relative mark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MASK_WIDTHS = ("narrow", "wide")
METRICS = ("fid", "lpips")
# The paper's mask widths are the official eval mask configs of these kinds.
MASK_KIND_OF_WIDTH = {"narrow": "thin", "wide": "thick"}

PAPER_EVAL_NOTE = (
    "The paper's numbers are Places365 numbers on 512×512 crops (random_thin_512 = narrow, random_thick_512 = "
    "wide), from models trained on the full Places365-Standard set; a run on the embedded sample set or another "
    "small profile is not expected to come near them in absolute terms — compare relative changes instead."
)
FIG6_NOTE = (
    "The paper's Fig. 6 prints no tick values (FID and LPIPS against test resolution 256…1536), so there is no "
    "paper line to draw; compare the shapes of the curves."
)
MASK_INTERP_NOTE = "The paper has no numbers for mask_interp: it is a follow-up study made after the paper."


@dataclass(frozen=True)
class PaperRow:
    """One printed row: FID and LPIPS on narrow and wide masks, with the model's size where the paper gives it."""

    label: str
    narrow_fid: float | None
    narrow_lpips: float | None
    wide_fid: float | None
    wide_lpips: float | None
    params: str | None = None
    blocks: int | None = None
    notes: Mapping[str, str] = field(default_factory=dict)  # column ("wide_lpips") -> why there is no number

    def value(self, width: str, metric: str) -> float | None:
        """The printed number for a mask width ("narrow"/"wide") and metric ("fid"/"lpips"); None if not printed."""
        return getattr(self, f"{width}_{metric}")


# Table 1, the LaMa row (LaMa-Fourier, 27M): Places narrow and wide columns.
TABLE1_LAMA = PaperRow("LaMa-Fourier", 0.63, 0.090, 2.21, 0.135, params="27M", blocks=9)

# Table 2, architecture ablation (Places; LaMa losses and wide training masks), keyed by our model.architecture.
TABLE2 = {
    "fourier": PaperRow("Base Fourier", 0.63, 0.090, 2.21, 0.135, params="27M", blocks=9),
    "dilated": PaperRow("Base Dilated", 0.66, 0.089, 2.30, 0.136, params="46M", blocks=9),
    "regular": PaperRow("Base Regular", 0.60, 0.089, 3.51, 0.139, params="46M", blocks=9),
    "shallow": PaperRow("Shallow Fourier", 0.72, 0.094, 2.31, 0.138, params="19M", blocks=6),
    "deep": PaperRow("Deep Regular", 0.63, 0.090, 2.62, 0.137, params="74M", blocks=15),
}

# Table 4, training masks (the LaMa-Regular rows), keyed by our model.train_masks.
TABLE4 = {
    "narrow": PaperRow(
        "LaMa-Regular, narrow training masks", 0.68, 0.091, 5.41, None, params="46M", blocks=9,
        notes={"wide_lpips": "the paper prints only a relative mark in this cell, not a number"},
    ),
    "wide": PaperRow("LaMa-Regular, wide training masks", 0.60, 0.089, 3.51, 0.139, params="46M", blocks=9),
}
