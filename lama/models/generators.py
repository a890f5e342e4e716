"""Build a generator from a preset name or an official ``generator:`` config section.

Presets are written in the official config format, so a preset, an official ``config.yaml`` and our own model
dirs all go through one validated path. Official options that LaMa never changes are accepted only at their
official default: a config that turns one on fails here, naming the key, instead of building a different net.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from lama.models.ffc import FFCResNetGenerator
from lama.models.pix2pixhd import GlobalGenerator

_FFC_075 = {"ratio_gin": 0.75, "ratio_gout": 0.75, "enable_lfu": False}
_FFC_LOCAL = {"ratio_gin": 0, "ratio_gout": 0, "enable_lfu": False}


def _fourier(n_blocks: int) -> dict[str, Any]:
    return {
        "kind": "ffc_resnet", "input_nc": 4, "output_nc": 3, "ngf": 64, "n_downsampling": 3,
        "n_blocks": n_blocks, "add_out_act": "sigmoid", "init_conv_kwargs": dict(_FFC_LOCAL),
        "downsample_conv_kwargs": dict(_FFC_LOCAL), "resnet_conv_kwargs": dict(_FFC_075),
    }


def _regular(n_blocks: int, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "pix2pixhd_global", "input_nc": 4, "output_nc": 3, "ngf": 64, "n_downsampling": 3,
        "n_blocks": n_blocks, "conv_kind": "default", "add_out_act": "sigmoid", **extra,
    }


# The paper's generators (Table 2) with the official parameter counts they must reproduce.
PRESETS: dict[str, dict[str, Any]] = {
    "lama-fourier": _fourier(9),  # 27,048,835 parameters
    "big-lama": _fourier(18),  # 50,975,875
    "lama-fourier-shallow": _fourier(6),  # 19,073,155
    "lama-regular": _regular(9),  # 45,617,731
    "lama-regular-deep": _regular(15),  # 73,947,715 (official big-lama-regular)
    "lama-dilated": _regular(
        9, kind="pix2pixhd_multidilated", multidilation_kwargs={"comb_mode": "cat_in", "dilation_num": 4}
    ),  # 45,645,379
}

# Keyword arguments each official kind takes, and official options accepted only at their default value.
_COMMON = {"input_nc", "output_nc", "ngf", "n_downsampling", "n_blocks", "add_out_act", "max_features", "padding_type"}
_KWARGS = {
    "ffc_resnet": _COMMON | {"init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs"},
    "pix2pixhd_global": set(_COMMON),
    "pix2pixhd_multidilated": _COMMON | {"multidilation_kwargs"},
}
_FIXED_DEFAULTS = {
    "ffc_resnet": {"spatial_transform_layers": None, "spatial_transform_kwargs": {}, "out_ffc": False,
                   "out_ffc_kwargs": {}},
    "pix2pixhd_global": {"conv_kind": "default", "dilated_blocks_n": 0, "dilated_blocks_n_start": 0,
                         "dilated_blocks_n_middle": 0, "affine": None, "is_resblock_depthwise": False,
                         "ffc_positions": None, "ffc_kwargs": {}, "dilation": 1, "second_dilation": None,
                         "dilation_block_kind": "simple"},
}
_FIXED_DEFAULTS["pix2pixhd_multidilated"] = _FIXED_DEFAULTS["pix2pixhd_global"]
_FFC_CONV_KWARGS = {"ratio_gin", "ratio_gout", "enable_lfu"}
_FFC_CONV_FIXED = {"gated": False, "spectral_pos_encoding": False, "use_se": False, "se_kwargs": None,
                   "ffc3d": False, "fft_norm": "ortho", "spatial_scale_factor": None}
_MULTIDILATION_KWARGS = {"comb_mode", "dilation_num", "min_dilation", "padding"}
_MULTIDILATION_FIXED = {"equal_dim": True, "shared_weights": False, "shuffle_in_channels": False,
                        "use_depthwise": False}


def generator_config(name_or_config: str | Mapping[str, Any]) -> dict[str, Any]:
    """Resolve a preset name into its official config section; validate and copy a mapping."""
    if isinstance(name_or_config, str):
        if name_or_config not in PRESETS:
            raise ValueError(f"unknown generator {name_or_config!r}; expected one of {sorted(PRESETS)}")
        return copy.deepcopy(PRESETS[name_or_config])
    config = _plain(name_or_config)
    kind = config.get("kind")
    if kind not in _KWARGS:
        raise ValueError(f"generator.kind: {kind!r} is not a known generator; expected one of {sorted(_KWARGS)}")
    _check_keys("generator", config, _KWARGS[kind] | {"kind"}, _FIXED_DEFAULTS[kind])
    for section in ("init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs"):
        _check_keys(f"generator.{section}", config.get(section) or {}, _FFC_CONV_KWARGS, _FFC_CONV_FIXED)
    if kind == "pix2pixhd_multidilated":
        _check_keys(
            "generator.multidilation_kwargs", config.get("multidilation_kwargs") or {}, _MULTIDILATION_KWARGS,
            _MULTIDILATION_FIXED,
        )
    return config


def build_generator(name_or_config: str | Mapping[str, Any]) -> nn.Module:
    """A generator from a preset name (see ``PRESETS``) or an official ``generator:`` config section."""
    config = generator_config(name_or_config)
    kind = config.pop("kind")
    kwargs = {key: value for key, value in config.items() if key in _KWARGS[kind]}
    if kind == "ffc_resnet":
        return FFCResNetGenerator(**kwargs)
    if kind == "pix2pixhd_multidilated":
        kwargs["multidilation_kwargs"] = dict(kwargs.get("multidilation_kwargs") or {})
    return GlobalGenerator(**kwargs)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameter count, as the paper reports it (BatchNorm running statistics excluded)."""
    return sum(parameter.numel() for parameter in module.parameters())


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """A deep plain-dict copy; OmegaConf nodes are resolved here (only this section, never the whole file)."""
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)
    return copy.deepcopy(dict(config))


def _check_keys(where: str, section: Mapping[str, Any], allowed: set[str], fixed: Mapping[str, Any]) -> None:
    for key, value in section.items():
        if key in allowed:
            continue
        if key in fixed:
            if value != fixed[key]:
                raise ValueError(
                    f"{where}.{key}={value!r} is not supported; LaMa Lab builds only {key}={fixed[key]!r}"
                )
            continue
        raise ValueError(f"{where}: unknown key {key!r}; expected one of {sorted(allowed | set(fixed))}")
