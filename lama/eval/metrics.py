"""The validation metrics the trainer accumulates: SSIM, PSNR, LPIPS, FID, LaMa's two integral scores and, given
the masks, SSIM and PSNR over the hole.

``ValidationMetrics`` keeps per-image SSIM/PSNR/LPIPS values and the Inception features of predictions and targets
(all on CPU), and ``compute()`` turns them into one number per metric. FID is computed between the set of
predictions and the set of their own targets, as in LaMa's evaluator. Under ``torch.distributed`` each rank
accumulates its own images; ``compute()`` gathers everything (``all_gather_object``, so any backend works), rank 0
computes, and the result is broadcast, so every rank returns identical numbers.

Networks built as stand-ins (seeded random weights, for runs without the pretrained files) change what LPIPS and FID
mean; ``labels`` and ``affected_by_stand_ins`` say which numbers those are, so they can be marked wherever shown.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.distributed as dist

from lama.eval.fid import FEATURE_DIM, FID_METHODS, FIDInceptionV3, FIDMethod, frechet_distance
from lama.eval.lpips import LPIPSVGG
from lama.eval.ssim import hole_psnr, hole_ssim, psnr, ssim
from lama.stand_in import WEIGHT_MODES, WeightsMode

logger = logging.getLogger(__name__)

METRIC_NAMES = ("ssim", "psnr", "lpips", "fid", "ssim_fid100_f1", "lpips_fid100_f1", "hole_ssim", "hole_psnr")
# Per-image values, averaged over the images; the hole ones only when the masks are given.
PER_IMAGE_METRICS = ("ssim", "psnr", "lpips", "hole_ssim", "hole_psnr")
HOLE_METRICS = ("hole_ssim", "hole_psnr")
# Which pretrained network each metric depends on.
NETWORKS_OF_METRIC: dict[str, tuple[str, ...]] = {
    "ssim": (),
    "psnr": (),
    "lpips": ("lpips",),
    "fid": ("fid",),
    "ssim_fid100_f1": ("fid",),
    "lpips_fid100_f1": ("lpips", "fid"),
    "hole_ssim": (),
    "hole_psnr": (),
}
NO_NETWORK_LABEL = "exact (no pretrained network)"
STAND_IN_SUFFIX = "_stand-in"


def affected_by_stand_ins(stand_in_networks: Iterable[str] = ("lpips", "fid")) -> tuple[str, ...]:
    """The metric names whose values depend on any of the given stand-in networks (``"lpips"``, ``"fid"``)."""
    networks = set(stand_in_networks)
    unknown = networks - {"lpips", "fid"}
    if unknown:
        raise ValueError(f"unknown networks {sorted(unknown)}; known: 'lpips', 'fid'")
    return tuple(name for name in METRIC_NAMES if networks.intersection(NETWORKS_OF_METRIC[name]))


def labelled_name(name: str, stand_in_networks: Iterable[str]) -> str:
    """``name``, or ``name_stand-in`` when one of the stand-in networks touched the metric: the key under which a
    value is logged, written and shown, so that a stand-in number cannot pass for a real LPIPS or FID."""
    return f"{name}{STAND_IN_SUFFIX}" if name in affected_by_stand_ins(stand_in_networks) else name


def fid100_f1(score: float, fid: float) -> float:
    """LaMa's integral score: 2·s·r / (s + r + 1e-3) with r = max(0, 100 − FID) / 100; NaN if FID is NaN.

    ``score`` is SSIM for ``ssim_fid100_f1`` (the official checkpoint monitor) and 1 − LPIPS for
    ``lpips_fid100_f1`` (the official evaluation's integral metric).
    """
    if math.isnan(fid) or math.isnan(score):
        return math.nan
    fid_rel = max(0.0, 100.0 - fid) / 100.0
    return 2 * score * fid_rel / (score + fid_rel + 1e-3)


class ValidationMetrics:
    """Accumulates ``update(predicted, target)`` batches (N, 3, H, W) in [0, 1]; ``compute()`` → dict of floats.

    ``weights="pretrained"`` needs the LPIPS VGG16 and FID Inception files in the weights registry (a missing one
    raises ``MissingWeightsError`` naming the fetch command); ``"stand-in"`` uses seeded random networks. Ready
    networks can be passed instead (``lpips_net``, ``inception``). ``fid_method`` selects how the Fréchet distance
    is evaluated (see ``lama.eval.fid.frechet_distance``): ``"sqrtm"`` is the official computation.
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        weights: WeightsMode = "pretrained",
        seed: int = 0,
        *,
        fid_method: FIDMethod = "sqrtm",
        lpips_net: LPIPSVGG | None = None,
        inception: FIDInceptionV3 | None = None,
    ) -> None:
        if weights not in WEIGHT_MODES:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_MODES)}, not {weights!r}")
        if fid_method not in FID_METHODS:
            raise ValueError(f"fid_method must be one of {', '.join(FID_METHODS)}, not {fid_method!r}")
        self.device = torch.device(device)
        self.fid_method: FIDMethod = fid_method
        if lpips_net is None:
            lpips_net = LPIPSVGG.pretrained() if weights == "pretrained" else LPIPSVGG.stand_in(seed)
        if inception is None:
            inception = FIDInceptionV3.pretrained() if weights == "pretrained" else FIDInceptionV3.stand_in(seed)
        self.lpips_net = lpips_net.to(self.device).eval()
        self.inception = inception.to(self.device).eval()
        self.reset()

    def reset(self) -> None:
        """Forget every accumulated image (e.g. at the start of a validation epoch)."""
        self._values: dict[str, list[torch.Tensor]] = {name: [] for name in PER_IMAGE_METRICS}
        self._features: dict[str, list[torch.Tensor]] = {"predicted": [], "target": []}

    @property
    def num_samples(self) -> int:
        """Images accumulated on this rank."""
        return sum(len(values) for values in self._values["ssim"])

    @property
    def stand_in_networks(self) -> tuple[str, ...]:
        """Which of ``"lpips"`` and ``"fid"`` are computed with stand-in networks."""
        return tuple(
            name for name, net in (("lpips", self.lpips_net), ("fid", self.inception)) if net.is_stand_in
        )

    @property
    def labels(self) -> dict[str, str]:
        """Metric name → where its value comes from; every value touched by a stand-in says ``stand-in``."""
        network_labels = {"lpips": self.lpips_net.weights_label, "fid": self.inception.weights_label}
        labels = {}
        for name in METRIC_NAMES:
            parts = [f"{net}: {network_labels[net]}" for net in NETWORKS_OF_METRIC[name]]
            labels[name] = "; ".join(parts) if parts else NO_NETWORK_LABEL
        return labels

    @torch.no_grad()
    def measure(self, predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Per-image ``ssim``, ``psnr``, ``lpips``, ``hole_ssim``, ``hole_psnr`` (N,; the hole ones NaN without a
        ``mask``) and Inception ``features_predicted``/``features_target`` (N, 2048) of one batch, on CPU, without
        accumulating (the area-bin evaluator keeps its own records)."""
        if predicted.ndim != 4 or predicted.shape != target.shape or predicted.shape[1] != 3:
            raise ValueError(
                f"expected two (N, 3, H, W) batches of the same shape, got {tuple(predicted.shape)} and "
                f"{tuple(target.shape)}"
            )
        p = predicted.detach().to(self.device, torch.float32)
        t = target.detach().to(self.device, torch.float32)
        with torch.autocast(self.device.type, enabled=False):  # the official numbers are float32
            measured = {
                "ssim": ssim(p, t).cpu(),
                "psnr": psnr(p, t).cpu(),
                "lpips": self.lpips_net(p, t).cpu(),
                "features_predicted": self.inception(p).cpu(),
                "features_target": self.inception(t).cpu(),
            }
            if mask is None:
                nan = torch.full((len(p),), math.nan, dtype=torch.float64)
                measured.update(hole_ssim=nan.float(), hole_psnr=nan)
            else:
                m = mask.detach().to(self.device, torch.float32)
                measured.update(hole_ssim=hole_ssim(p, t, m).cpu(), hole_psnr=hole_psnr(p, t, m).cpu())
            return measured

    def update(self, predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Add a batch of predictions and their targets, (N, 3, H, W) in [0, 1], and optionally the hole masks
        (N, 1, H, W); any float dtype, any device."""
        measured = self.measure(predicted, target, mask)
        for name in self._values:
            self._values[name].append(measured[name])
        for name in self._features:
            self._features[name].append(measured[f"features_{name}"])

    def compute(self) -> dict[str, float]:
        """``ssim``, ``psnr``, ``lpips`` (means over all images of all ranks), ``fid``, the two f1 scores and, when
        masks were given, ``hole_ssim`` and ``hole_psnr`` (means over the images with a hole).

        FID needs at least 2 images (NaN otherwise, and then NaN f1 scores); with fewer images than 2048 the
        covariances are singular, which the Fréchet distance handles (see ``lama.eval.fid``).
        """
        gathered = self._gather()
        if len(gathered["ssim"]) == 0:  # the same on every rank, so all of them raise
            raise RuntimeError("ValidationMetrics.compute() called before any update()")
        if not _distributed():
            return self._result(gathered)
        payload: list[dict[str, float] | Exception | None] = [None]
        if dist.get_rank() == 0:
            try:
                payload[0] = self._result(gathered)
            except Exception as error:  # handed to every rank, so that none waits forever for a result
                payload[0] = error
        dist.broadcast_object_list(payload, src=0)
        result = payload[0]
        if isinstance(result, Exception):
            raise result
        if result is None:
            raise RuntimeError("rank 0 broadcast no validation metrics")
        return result

    def _local(self) -> dict[str, np.ndarray]:
        def cat(parts: list[torch.Tensor], shape: tuple[int, ...]) -> np.ndarray:
            return torch.cat(parts).numpy() if parts else np.empty(shape, dtype=np.float32)

        local = {name: cat(parts, (0,)) for name, parts in self._values.items()}
        local.update({f"features_{name}": cat(parts, (0, FEATURE_DIM)) for name, parts in self._features.items()})
        return local

    def _gather(self) -> dict[str, np.ndarray]:
        local = self._local()
        if not _distributed():
            return local
        parts: list[dict[str, np.ndarray] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)
        return {name: np.concatenate([part[name] for part in parts if part is not None]) for name in local}

    def _result(self, gathered: dict[str, np.ndarray]) -> dict[str, float]:
        means = {name: float(np.mean(gathered[name], dtype=np.float64)) for name in ("ssim", "psnr", "lpips")}
        fid = frechet_distance(gathered["features_predicted"], gathered["features_target"], method=self.fid_method)
        logger.debug("FID over %d image pairs (%s)", len(gathered["ssim"]), self.fid_method)
        holes = {name: gathered[name][np.isfinite(gathered[name])] for name in HOLE_METRICS}
        return {
            **means,
            "fid": fid,
            "ssim_fid100_f1": fid100_f1(means["ssim"], fid),
            "lpips_fid100_f1": fid100_f1(1.0 - means["lpips"], fid),
            **{name: float(np.mean(values, dtype=np.float64)) for name, values in holes.items() if len(values)},
        }


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
