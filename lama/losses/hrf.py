"""LaMa's high-receptive-field perceptual loss (official ``ResNetPL``) on the ADE20k ResNet50-dilated encoder.

The loss compares the four stage outputs of a scene-parsing ResNet50 whose last two stages are dilated (output
stride 8), so that each feature sees a large part of the image; that is what makes it "high receptive field".

Official semantics reproduced here:

- inputs in [0, 1] are ImageNet-normalised, and pred and target go through the encoder in two separate calls;
- loss = weight × Σ over the 4 maps of ``F.mse_loss`` (a mean per map, summed over maps; the paper's "mean" is 4×
  smaller);
- the encoder is frozen, but during official training its BatchNorms run in *train* mode (batch statistics), because
  PyTorch-Lightning's ``model.train()`` recursively undoes the ``.eval()`` of the loss constructor. ``bn_mode``
  makes this explicit: ``"train"`` reproduces training steps, ``"eval"`` the validation numbers.

The official loader uses ``strict=False`` and would silently keep random weights on a key mismatch; here loading
fails unless every one of the 275 float tensors is present with the right shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812 (the conventional alias)
from torch import nn

from lama import weights
from lama.stand_in import seeded_random_init

BNMode = Literal["train", "eval"]
WEIGHTS_NAME = "ade20k-resnet50dilated-encoder"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EncoderWeightsError(ValueError):
    """A state dict does not fit the encoder (missing, unexpected or misshapen entries)."""


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class Bottleneck(nn.Module):
    """ResNet bottleneck with the stride on the 3×3 convolution (the CSAIL/ADE20k and torchvision v1.5 layout)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = _bn(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), _bn(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _stage(inplanes: int, planes: int, blocks: int, stride: int, first_dilation: int, dilation: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride=stride, dilation=first_dilation)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50DilatedEncoder(nn.Module):
    """The ADE20k ``ResnetDilated(resnet50, dilate_scale=8)`` encoder, with the official state-dict keys.

    Deep 3-conv stem (not torchvision's 7×7), then bottleneck stages of 3/4/6/3 blocks. layer3 and layer4 lose their
    strides and are dilated instead (first block 1 resp. 2, the rest 2 resp. 4), so the output stride is 8 and each
    side goes H → ceil(H/2) → ceil(/2) → ceil(/2).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(64)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = _bn(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = _bn(128)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(128, 64, 3, stride=1, first_dilation=1, dilation=1)
        self.layer2 = _stage(256, 128, 4, stride=2, first_dilation=1, dilation=1)
        self.layer3 = _stage(512, 256, 6, stride=1, first_dilation=1, dilation=2)
        self.layer4 = _stage(1024, 512, 3, stride=1, first_dilation=2, dilation=4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs (256/512/1024/2048 channels), each after its stage's last ReLU."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        maps = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            maps.append(x)
        return maps


def _listed(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_encoder_state_dict(encoder: ResNet50DilatedEncoder, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ADE20k encoder weights, refusing anything but a complete match of the 275 float tensors.

    ``num_batches_tracked`` entries are optional (files written before PyTorch 0.4.1 lack them; they do not affect
    the forward pass). Keys must carry no prefix, exactly as the official loader expects.
    """
    own = encoder.state_dict()
    required = [key for key in own if not key.endswith("num_batches_tracked")]
    missing = [key for key in required if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_listed(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_listed(unexpected)})")
    misshapen = [
        f"{key} {tuple(value.shape)} != {tuple(own[key].shape)}"
        for key, value in state_dict.items()
        if key in own and (not isinstance(value, torch.Tensor) or value.shape != own[key].shape)
    ]
    if misshapen:
        problems.append(f"{len(misshapen)} with the wrong shape ({_listed(misshapen)})")
    if problems:
        raise EncoderWeightsError(
            f"state dict does not fit the ADE20k ResNet50-dilated encoder ({len(required)} float tensors expected): "
            + "; ".join(problems)
        )
    merged = dict(own)
    merged.update(state_dict)
    encoder.load_state_dict(merged, strict=True)


def load_encoder_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an ``encoder_epoch_20.pth`` state dict without executing code from the file (``weights_only=True``)."""
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise EncoderWeightsError(f"{path}: expected a state dict, found {type(state_dict).__name__}")
    return dict(state_dict)


class HRFPerceptualLoss(nn.Module):
    """ResNetPL: weight × Σ_l MSE(encoder_l(norm(pred)), encoder_l(norm(target))), gradients flowing to ``pred``.

    ``bn_mode="train"`` (the official training behaviour) normalises each call with its own batch statistics and,
    as officially, updates the encoder's running statistics (momentum 0.1) on every call; the loss value does not
    depend on them. ``bn_mode="eval"`` uses the running statistics (the official validation numbers). The mode sticks:
    ``.train()``/``.eval()`` on a parent change this module's ``training`` flag but not the encoder's BatchNorms.

    Build it with ``pretrained()`` (the real ADE20k file) or, explicitly, ``stand_in(seed)``; ``is_stand_in`` and
    ``weights_label`` say which, so numbers computed with it can be labelled.
    """

    def __init__(
        self,
        encoder: ResNet50DilatedEncoder,
        weight: float = 30.0,
        bn_mode: BNMode = "train",
        *,
        weights_label: str,
        is_stand_in: bool,
    ) -> None:
        super().__init__()
        if bn_mode not in ("train", "eval"):
            raise ValueError(f"bn_mode must be 'train' or 'eval', not {bn_mode!r}")
        self.encoder = encoder
        self.encoder.requires_grad_(False)
        self.weight = float(weight)
        self.bn_mode: BNMode = bn_mode
        self.weights_label = weights_label
        self.is_stand_in = is_stand_in
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.train(self.training)

    @classmethod
    def pretrained(cls, weight: float = 30.0, bn_mode: BNMode = "train") -> HRFPerceptualLoss:
        """The real ADE20k encoder from ``$LAMA_HOME``; raises ``MissingWeightsError`` (never falls back)."""
        path = weights.require(WEIGHTS_NAME)
        return cls.from_state_dict(
            load_encoder_file(path), weight, bn_mode, weights_label=f"ADE20k ResNet50-dilated encoder ({path})"
        )

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, torch.Tensor],
        weight: float = 30.0,
        bn_mode: BNMode = "train",
        *,
        weights_label: str,
        is_stand_in: bool = False,
    ) -> HRFPerceptualLoss:
        """Any complete encoder state dict (e.g. the fixtures' formula weights), strictly checked."""
        encoder = ResNet50DilatedEncoder()
        load_encoder_state_dict(encoder, state_dict)
        return cls(encoder, weight, bn_mode, weights_label=weights_label, is_stand_in=is_stand_in)

    @classmethod
    def stand_in(cls, seed: int, weight: float = 30.0, bn_mode: BNMode = "train") -> HRFPerceptualLoss:
        """A seeded random encoder (Kaiming-normal convs, identity BatchNorms) for runs without the ADE20k file.

        Numbers computed with it are not ResNetPL values; ``weights_label`` says so.
        """
        encoder = ResNet50DilatedEncoder()
        seeded_random_init(encoder, seed)
        label = f"stand-in: seeded random init (seed {seed}), not the ADE20k encoder"
        return cls(encoder, weight, bn_mode, weights_label=label, is_stand_in=True)

    def train(self, mode: bool = True) -> HRFPerceptualLoss:
        """Follow the parent's flag, but keep the encoder's BatchNorms in the chosen ``bn_mode``."""
        super().train(mode)
        self.encoder.train(self.bn_mode == "train")
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet normalisation of [0, 1] images, in at least float32 (half-precision inputs are upcast)."""
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four encoder maps of one batch of [0, 1] images (one encoder call, so one set of batch statistics)."""
        return self.encoder(self.normalize(x))

    def layer_terms(self, pred: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """The four unweighted per-map MSEs (means over all elements, batch included)."""
        pred_maps = self.features(pred)
        target_maps = self.features(target)
        terms = []
        for p, t in zip(pred_maps, target_maps, strict=True):
            dtype = torch.promote_types(p.dtype, torch.float32)
            terms.append(F.mse_loss(p.to(dtype), t.to(dtype)))
        return terms

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """weight × the sum (not the mean) of the four per-map MSEs."""
        return self.weight * torch.stack(self.layer_terms(pred, target)).sum()

    def extra_repr(self) -> str:
        return f"weight={self.weight}, bn_mode={self.bn_mode!r}, weights={self.weights_label!r}"
