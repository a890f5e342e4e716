"""FID as LaMa's evaluator computes it: pytorch-fid's Inception v3 pool3 features and the Fréchet distance.

The network is torchvision's ``Inception3`` with pytorch-fid's FID blocks (``FIDInceptionA/C/E_1/E_2``: TensorFlow's
average pools that ignore padding, and the max pool in ``Mixed_7c``), so its state dict has exactly the keys of
``pt_inception-2015-12-05-6726825d.pth`` and that file loads unchanged. pytorch-fid's own ``InceptionV3`` wrapper is
not used because its constructor always downloads the weights; its forward is reproduced in ``blocks``.

Inputs are float images in [0, 1], resized bilinearly to 299×299 (``align_corners=False``, no antialiasing) and
scaled to [−1, 1]; there is no uint8 quantisation (unlike torchmetrics' ``normalize=True``).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2
from torchvision.models.inception import BasicConv2d, Inception3, InceptionAux, InceptionB, InceptionD

from lama import weights
from lama.eval.options import FID_METHODS, FIDMethod
from lama.stand_in import seeded_random_init

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "pytorch-fid-inception"
FEATURE_DIM = 2048
INPUT_SIZE = 299
EPS = 1e-6  # pytorch-fid's diagonal offset when sqrtm of the covariance product is not finite
IMAGINARY_ATOL = 1e-2  # LaMa's tolerance on the imaginary diagonal of sqrtm (pytorch-fid itself uses 1e-3)


class InceptionWeightsError(ValueError):
    """A state dict does not fit the FID Inception (missing, unexpected or misshapen entries)."""


class FIDInceptionV3(Inception3):
    """The pytorch-fid Inception v3 returning 2048-d pool3 features; state-dict keys as in the pytorch-fid file.

    Build it with ``pretrained()``, ``from_state_dict(...)`` or ``stand_in(seed)``; plain construction leaves
    torch's default random initialisation. ``weights_label`` and ``is_stand_in`` say which weights it holds.
    """

    def __init__(self) -> None:
        super().__init__(
            num_classes=1008,
            aux_logits=False,
            init_weights=False,
            inception_blocks=[BasicConv2d, FIDInceptionA, InceptionB, FIDInceptionC, InceptionD, FIDInceptionE_1,
                              InceptionAux],
        )
        self.Mixed_7c = FIDInceptionE_2(2048)
        self.weights_label = "stand-in: torch's default random init (unseeded), not the pytorch-fid Inception"
        self.is_stand_in = True
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def _empty(cls) -> FIDInceptionV3:
        """Allocated on CPU without initialising anything (every tensor is set by the caller)."""
        with torch.device("meta"):
            net = cls()
        return net.to_empty(device="cpu")

    @classmethod
    def pretrained(cls) -> FIDInceptionV3:
        """pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` from ``$LAMA_HOME``; never downloads."""
        path = weights.require(WEIGHTS_NAME)
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        return cls.from_state_dict(state_dict, weights_label=f"pytorch-fid Inception v3 ({path})")

    @classmethod
    def from_state_dict(
        cls, state_dict: Mapping[str, torch.Tensor], *, weights_label: str, is_stand_in: bool = False
    ) -> FIDInceptionV3:
        """Any state dict in the pytorch-fid layout (e.g. the fixtures' formula weights), strictly checked."""
        net = cls._empty()
        load_inception_state_dict(net, state_dict)
        net.weights_label = weights_label
        net.is_stand_in = is_stand_in
        return net

    @classmethod
    def stand_in(cls, seed: int) -> FIDInceptionV3:
        """Seeded random weights (Kaiming-normal convs, identity BatchNorms); its FIDs are not FIDs, as labelled."""
        net = cls._empty()
        seeded_random_init(net, seed)
        net.weights_label = f"stand-in: seeded random init (seed {seed}), not the pytorch-fid Inception"
        net.is_stand_in = True
        return net

    def train(self, mode: bool = True) -> FIDInceptionV3:
        """Stay in eval mode: BatchNorm must use the stored statistics in a metric."""
        return super().train(False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images of any size → 299×299 in [−1, 1], float32 (pytorch-fid's resize and scaling)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected an (N, 3, H, W) batch, got {tuple(images.shape)}")
        x = images.to(self.Conv2d_1a_3x3.conv.weight.device, torch.float32)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """pytorch-fid's four block outputs (64×73², 192×35², 768×17², 2048×1²) for [0, 1] images."""
        x = self.preprocess(images)
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        outputs = [x]
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        outputs.append(x)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        outputs.append(x)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        outputs.append(self.avgpool(x))
        return outputs

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Pool3 features (N, 2048), float32."""
        return self.blocks(images)[-1].flatten(1)

    def extra_repr(self) -> str:
        return f"weights={self.weights_label!r}"


def load_inception_state_dict(net: FIDInceptionV3, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load pytorch-fid Inception weights, refusing anything but a complete match of the float tensors.

    ``num_batches_tracked`` entries are optional (they do not affect the forward pass; whether the released file has
    them is not known). ``fc.*`` is required because the official load is strict, although pool3 does not use it.
    """
    own = net.state_dict()
    required = [key for key in own if not key.endswith("num_batches_tracked")]
    missing = [key for key in required if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    misshapen = [
        f"{key} {tuple(value.shape)} != {tuple(own[key].shape)}"
        for key, value in state_dict.items()
        if key in own and tuple(value.shape) != tuple(own[key].shape)
    ]
    problems = [
        f"{len(keys)} {label} ({', '.join(keys[:6])}{' …' if len(keys) > 6 else ''})"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", misshapen))
        if keys
    ]
    if problems:
        raise InceptionWeightsError(
            f"state dict does not fit the pytorch-fid Inception ({len(required)} float tensors expected): "
            + "; ".join(problems)
        )
    merged = {key: value for key, value in own.items() if key.endswith("num_batches_tracked")}
    for value in merged.values():
        value.zero_()
    merged.update(state_dict)
    net.load_state_dict(merged, strict=True)


def activation_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (N − 1 normalisation) of (N, D) features, both float64."""
    acts = _as_float64(features)
    return acts.mean(axis=0), np.cov(acts, rowvar=False)


def frechet_distance_from_statistics(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = EPS
) -> float:
    """pytorch-fid's Fréchet distance: ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr √(Σ1 Σ2), √ by ``scipy.linalg.sqrtm``.

    As in pytorch-fid, a non-finite square root is retried with ``eps`` added to both diagonals, and a complex result
    keeps its real part when the imaginary diagonal is within ``IMAGINARY_ATOL``. With fewer samples than dimensions
    the product is singular and sqrtm returns such a nearly real result. Where pytorch-fid would raise on a larger
    imaginary part, the ``eps`` retry is tried first, so that a validation run is not stopped by a rounding artefact;
    only if that also fails is ``ValueError`` raised.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all() or not _nearly_real(covmean):
        logger.warning("FID: sqrtm of the covariance product is not usable; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if not _nearly_real(covmean):
        raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):g} in sqrtm of the covariances")
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def frechet_distance(
    features1: np.ndarray | torch.Tensor,
    features2: np.ndarray | torch.Tensor,
    method: FIDMethod = "sqrtm",
    eps: float = EPS,
) -> float:
    """FID between two sets of (N, D) features; NaN when a set has fewer than 2 samples or non-finite features.

    ``method="sqrtm"`` is pytorch-fid's computation (``frechet_distance_from_statistics``); a 2048² sqrtm takes
    seconds to tens of seconds on a CPU core. ``method="svd"`` evaluates the same formula in closed form:
    tr √(Σ1 Σ2) is the nuclear norm of F1 F2ᵀ for any factors with Σi = Fiᵀ Fi (the centred features / √(N−1)
    when N ≤ D, else the symmetric square root of Σi), which is exact, fast when N is small, and agrees with
    sqrtm within sqrtm's own rounding (about 1e-3 relative on rank-deficient image features).
    """
    acts1, acts2 = _as_float64(features1), _as_float64(features2)
    if acts1.ndim != 2 or acts2.ndim != 2 or acts1.shape[1] != acts2.shape[1]:
        raise ValueError(f"expected two (N, D) feature sets, got {acts1.shape} and {acts2.shape}")
    if len(acts1) < 2 or len(acts2) < 2:
        return math.nan
    if not (np.isfinite(acts1).all() and np.isfinite(acts2).all()):
        logger.warning("FID: features are not finite; returning NaN")
        return math.nan
    if method == "sqrtm":
        return frechet_distance_from_statistics(*activation_statistics(acts1), *activation_statistics(acts2), eps)
    if method == "svd":
        return _frechet_distance_svd(acts1, acts2)
    raise ValueError(f"method must be one of {', '.join(FID_METHODS)}, not {method!r}")


def _frechet_distance_svd(acts1: np.ndarray, acts2: np.ndarray) -> float:
    mu1, mu2 = acts1.mean(axis=0), acts2.mean(axis=0)
    factor1, factor2 = _covariance_factor(acts1, mu1), _covariance_factor(acts2, mu2)
    trace_covmean = np.linalg.svd(factor1 @ factor2.T, compute_uv=False).sum()
    trace1, trace2 = (factor1 * factor1).sum(), (factor2 * factor2).sum()
    diff = mu1 - mu2
    return float(diff @ diff + trace1 + trace2 - 2 * trace_covmean)


def _covariance_factor(acts: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """F with Fᵀ F = cov(acts): the scaled centred rows when they are few, else the symmetric square root."""
    centred = (acts - mu) / math.sqrt(len(acts) - 1)
    if len(acts) <= acts.shape[1]:
        return centred
    values, vectors = np.linalg.eigh(centred.T @ centred)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(matrix)
    for warning in caught:
        logger.debug("FID: %s", warning.message)  # "singular" is expected whenever N ≤ D
    return root


def _nearly_real(matrix: np.ndarray) -> bool:
    return not np.iscomplexobj(matrix) or bool(np.allclose(np.diagonal(matrix).imag, 0, atol=IMAGINARY_ATOL))


def _as_float64(features: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().numpy()
    return np.asarray(features, dtype=np.float64)
