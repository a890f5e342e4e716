"""LPIPS as LaMa's evaluator measures it: ``net-lin`` on a VGG16 backbone, v0.1 linear heads, one value per image.

The network is the ``lpips`` package's (the reference implementation LaMa vendored), so the scaling layer, the five
ReLU taps of VGG16 ``features`` (indices 3, 8, 15, 22, 29), the channel normalisation and the 1×1 heads are exactly
the reference. What this module adds is where the weights come from, without any download at run time:

- the linear heads are the v0.1 ``vgg.pth`` shipped inside the ``lpips`` package (byte-identical to LaMa's copy);
- the VGG16 backbone is either torchvision's ImageNet file from the weights registry (``pretrained()``), any
  torchvision-layout state dict (``from_vgg16_state_dict``), or a seeded random stand-in (``stand_in(seed)``) whose
  numbers are labelled as not being LPIPS.

The package would initialise a whole VGG16 (138 M parameters, most of them in the unused classifier) from the global
RNG before being overwritten; building it on the meta device skips that work and leaves the global RNG untouched.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import lpips as lpips_package
import torch
from torch import nn

from lama import weights
from lama.stand_in import seeded_random_init

WEIGHTS_NAME = "torchvision-vgg16"
HEADS_VERSION = "0.1"
HEAD_KEYS = tuple(f"lin{i}.model.1.weight" for i in range(5))
# SHA-256 of the v0.1 vgg.pth heads: the file in the lpips package and LaMa's models/lpips_models/vgg.pth alike.
HEADS_SHA256 = "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"


class LPIPSWeightsError(ValueError):
    """A state dict does not fit the LPIPS VGG16 backbone or its linear heads."""


def heads_path() -> Path:
    """The v0.1 VGG linear-head file that ships inside the ``lpips`` package."""
    return Path(lpips_package.__file__).parent / "weights" / f"v{HEADS_VERSION}" / "vgg.pth"


def _empty_model() -> lpips_package.LPIPS:
    """The package's LPIPS(net-lin, vgg) with every tensor allocated on CPU but not yet set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated"
        with torch.device("meta"):
            model = lpips_package.LPIPS(pretrained=False, net="vgg", version=HEADS_VERSION, pnet_rand=True,
                                        verbose=False)
    model.to_empty(device="cpu")
    model.scaling_layer = lpips_package.ScalingLayer()  # its constant buffers were not materialised
    actual = weights.sha256_of(heads_path())
    if actual != HEADS_SHA256:
        raise LPIPSWeightsError(f"{heads_path()}: sha256 {actual}, expected the LPIPS v{HEADS_VERSION} heads "
                                f"{HEADS_SHA256}; reinstall the lpips package")
    state = torch.load(heads_path(), map_location="cpu", weights_only=True)
    if sorted(state) != sorted(HEAD_KEYS):
        raise LPIPSWeightsError(f"{heads_path()}: expected keys {list(HEAD_KEYS)}, found {sorted(state)}")
    model.load_state_dict(state, strict=False)
    return model


def _backbone_keys(model: lpips_package.LPIPS) -> dict[str, str]:
    """torchvision ``features.<i>.<param>`` → the package's ``slice<k>.<i>.<param>`` (same index i)."""
    mapping = {}
    for key in model.net.state_dict():
        _, index, param = key.split(".")
        mapping[f"features.{index}.{param}"] = key
    return mapping


def _load_backbone(model: lpips_package.LPIPS, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy the 26 conv tensors of a torchvision VGG16 state dict, ignoring ``classifier.*``, refusing anything else."""
    mapping = _backbone_keys(model)
    own = model.net.state_dict()
    missing = [key for key in mapping if key not in state_dict]
    unexpected = [key for key in state_dict if key not in mapping and not key.startswith("classifier.")]
    misshapen = [
        f"{key} {tuple(state_dict[key].shape)} != {tuple(own[target].shape)}"
        for key, target in mapping.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(own[target].shape)
    ]
    problems = [
        f"{label}: {', '.join(keys[:6])}{' …' if len(keys) > 6 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen))
        if keys
    ]
    if problems:
        raise LPIPSWeightsError("state dict does not fit the VGG16 backbone of LPIPS; " + "; ".join(problems))
    model.net.load_state_dict({target: state_dict[key] for key, target in mapping.items()}, strict=True)


class LPIPSVGG(nn.Module):
    """LPIPS(net-lin, vgg, v0.1) per image: inputs in [0, 1] (mapped to [−1, 1] here), output shape (N,).

    ``weights_label`` and ``is_stand_in`` say which backbone produced the numbers.
    """

    def __init__(self, model: lpips_package.LPIPS, *, weights_label: str, is_stand_in: bool) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.weights_label = weights_label
        self.is_stand_in = is_stand_in

    @classmethod
    def pretrained(cls) -> LPIPSVGG:
        """torchvision's ImageNet VGG16 from ``$LAMA_HOME``; raises ``MissingWeightsError`` (never downloads)."""
        path = weights.require(WEIGHTS_NAME)
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        label = f"LPIPS v{HEADS_VERSION} vgg (torchvision ImageNet VGG16 {path})"
        return cls.from_vgg16_state_dict(state_dict, weights_label=label)

    @classmethod
    def from_vgg16_state_dict(
        cls, state_dict: Mapping[str, torch.Tensor], *, weights_label: str, is_stand_in: bool = False
    ) -> LPIPSVGG:
        """Any torchvision-layout VGG16 state dict (e.g. the fixtures' formula weights), strictly checked."""
        model = _empty_model()
        _load_backbone(model, state_dict)
        return cls(model, weights_label=weights_label, is_stand_in=is_stand_in)

    @classmethod
    def stand_in(cls, seed: int) -> LPIPSVGG:
        """A seeded random VGG16 backbone (Kaiming-normal convs, zero biases) under the real v0.1 linear heads.

        Numbers computed with it are not LPIPS values; ``weights_label`` says so.
        """
        model = _empty_model()
        seeded_random_init(model.net, seed)
        label = f"stand-in: seeded random init (seed {seed}), not the ImageNet VGG16 of LPIPS"
        return cls(model, weights_label=label, is_stand_in=True)

    def train(self, mode: bool = True) -> LPIPSVGG:
        """Stay in eval mode: the heads' dropout must never be active in a metric."""
        super().train(False)
        return self

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS per image pair, (N,); symmetric in its arguments, computed in float32."""
        if predicted.ndim != 4 or predicted.shape != target.shape or predicted.shape[1] != 3:
            raise ValueError(
                f"expected two (N, 3, H, W) batches of the same shape, got {tuple(predicted.shape)} and "
                f"{tuple(target.shape)}"
            )
        device = self.model.scaling_layer.shift.device
        p = predicted.to(device, torch.float32)
        t = target.to(device, torch.float32)
        return self.model(2 * t - 1, 2 * p - 1).reshape(-1)

    def extra_repr(self) -> str:
        return f"weights={self.weights_label!r}"
