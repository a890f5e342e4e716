"""Build a generator from a preset name or an official ``generator:`` config section.

Presets are written in the official config format, so a preset, an official ``config.yaml`` and our own model
dirs all go through one validated path. Official options that LaMa never changes are accepted only at their
official default: a config that turns one on fails here, naming the key, instead of building a different net.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from lama.models.ffc import FFC_BN_ACT, OUT_ACTIVATIONS, FFCResNetGenerator
from lama.models.pix2pixhd import COMB_MODES, GlobalGenerator, MultidilatedConv
from lama.safe_yaml import read_yaml

# What a generator reads and writes (``lama.models.model_dir.generator_input``): an RGB image with its holes zeroed
# plus the mask as a fourth channel in, the RGB prediction out.
IMAGE_CHANNELS = 3
MASKED_INPUT_CHANNELS = IMAGE_CHANNELS + 1
# The reflection pads around the 7×7 convolutions at full resolution, and around the bottleneck's 3×3 ones: torch
# reflects only a side longer than its pad.
STEM_PADDING = 3
BOTTLENECK_PADDING = 1

# The paper's generators (Table 2), each an official config section in one YAML file of lama/configs/generator/,
# which is also the pipeline's Hydra group ``generator``: preset name → file (the architecture's name in the tables).
PRESET_FILES = {"lama-fourier": "fourier", "lama-dilated": "dilated", "lama-regular": "regular",
                "lama-fourier-shallow": "shallow", "lama-regular-deep": "deep", "big-lama": "big-lama"}
PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "generator"
# What tells the paper's architectures apart (Table 2): the generator kind, then the number of residual blocks.
IDENTITY_KEYS = ("kind", "n_blocks")


def _read_preset(name: str) -> dict[str, Any]:
    return read_yaml(PRESET_DIR / f"{name}.yaml")


PRESETS: dict[str, dict[str, Any]] = {name: _read_preset(file) for name, file in PRESET_FILES.items()}


# Keyword arguments each official kind takes, and official options accepted only at their default value.
_COMMON = {"input_nc", "output_nc", "ngf", "n_downsampling", "n_blocks", "add_out_act", "max_features"}
_KWARGS = {
    "ffc_resnet": _COMMON | {"init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs"},
    "pix2pixhd_global": set(_COMMON),
    "pix2pixhd_multidilated": _COMMON | {"multidilation_kwargs"},
}
_FIXED_DEFAULTS = {
    "ffc_resnet": {"padding_type": "reflect", "spatial_transform_layers": None, "spatial_transform_kwargs": {},
                   "out_ffc": False, "out_ffc_kwargs": {}},
    "pix2pixhd_global": {"padding_type": "reflect", "conv_kind": "default", "dilated_blocks_n": 0,
                         "dilated_blocks_n_start": 0, "dilated_blocks_n_middle": 0, "affine": None,
                         "is_resblock_depthwise": False,
                         "ffc_positions": None, "ffc_kwargs": {}, "dilation": 1, "second_dilation": None,
                         "dilation_block_kind": "simple"},
}
_FIXED_DEFAULTS["pix2pixhd_multidilated"] = _FIXED_DEFAULTS["pix2pixhd_global"]
_FFC_CONV_KWARGS = {"ratio_gin", "ratio_gout", "enable_lfu"}
_FFC_CONV_FIXED = {"gated": False, "spectral_pos_encoding": False, "use_se": False, "se_kwargs": None,
                   "ffc3d": False, "fft_norm": "ortho", "spatial_scale_factor": None}
_MULTIDILATION_KWARGS = {"comb_mode", "dilation_num", "min_dilation"}
# A padding of one dilation keeps each convolution's output the size of its input, which the residual sum needs.
_MULTIDILATION_FIXED = {"padding": 1, "equal_dim": True, "shared_weights": False, "shuffle_in_channels": False,
                        "use_depthwise": False}
_FFC_SECTIONS = ("init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs")
_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "ffc_resnet": FFCResNetGenerator, "pix2pixhd_global": GlobalGenerator, "pix2pixhd_multidilated": GlobalGenerator,
}


def generator_config(name_or_config: str | Mapping[str, Any]) -> dict[str, Any]:
    """Resolve a preset name into its official config section; validate and copy a mapping."""
    if isinstance(name_or_config, str):
        if name_or_config not in PRESETS:
            raise ValueError(f"unknown generator {name_or_config!r}; expected one of {sorted(PRESETS)}")
        return copy.deepcopy(PRESETS[name_or_config])
    if not isinstance(name_or_config, Mapping):
        raise ValueError(f"generator={name_or_config!r}: expected a preset name or an official generator section")
    config = _plain(name_or_config)
    kind = config.get("kind")
    if kind not in _KWARGS:
        raise ValueError(f"generator.kind: {kind!r} is not a known generator; expected one of {sorted(_KWARGS)}")
    _check_keys("generator", config, _KWARGS[kind] | {"kind"}, _FIXED_DEFAULTS[kind])
    for section in _FFC_SECTIONS:
        _check_keys(f"generator.{section}", _subsection(config, section), _FFC_CONV_KWARGS, _FFC_CONV_FIXED)
    if kind == "pix2pixhd_multidilated":
        _check_keys(
            "generator.multidilation_kwargs", _subsection(config, "multidilation_kwargs"), _MULTIDILATION_KWARGS,
            _MULTIDILATION_FIXED,
        )
    _check_values(config)
    return config


def effective_config(name_or_config: str | Mapping[str, Any]) -> dict[str, Any]:
    """The validated section with the builder's defaults for the top-level keys it leaves out: what is built."""
    return _with_defaults(generator_config(name_or_config))


def architecture_of(name_or_config: str | Mapping[str, Any]) -> str | None:
    """The architecture a generator is, by the paper's names (the files of ``PRESET_FILES``): the preset of its kind
    and depth, else the base preset of its kind (a Fourier generator of another depth is still "fourier"); None for
    an unknown kind. Widths and sampling depths do not count: profiles narrow them. A model dir records the result
    (``lama.architecture`` in config.yaml)."""
    section = PRESETS.get(name_or_config, {}) if isinstance(name_or_config, str) else name_or_config
    for keys in (IDENTITY_KEYS, IDENTITY_KEYS[:1]):
        found = [file for name, file in PRESET_FILES.items()
                 if all(PRESETS[name][key] == section.get(key) for key in keys)]
        if found:
            return found[0]
    return None


def input_size_rule(name_or_config: str | Mapping[str, Any]) -> tuple[int, int]:
    """``(multiple, minimum)``: the generator maps an image side onto itself exactly when the side is a multiple of
    ``multiple`` and at least ``minimum``.

    Each of the ``n_downsampling`` halvings must be exact, and a local Fourier unit cuts the bottleneck in two, so
    the side is a multiple of 2**n_downsampling (twice that with one). torch reflects only a side longer than the
    pad: the 3-pixel pads of the 7×7 convolutions need 4 pixels at full size, the bottleneck's pads 2 (or one more
    than the largest dilation of a multi-dilated block).
    """
    values = effective_config(name_or_config)
    depth = values["n_downsampling"]
    multiple, bottleneck = 2**depth, BOTTLENECK_PADDING + 1
    if values["kind"] == "ffc_resnet" and _ffc_uses_lfu(values):
        multiple *= 2
    if values["kind"] == "pix2pixhd_multidilated":
        dilation = _multidilation(values)
        bottleneck = dilation["padding"] * dilation["min_dilation"] * 2 ** (dilation["dilation_num"] - 1) + 1
    minimum = max(STEM_PADDING + 1, bottleneck * 2**depth)
    return multiple, -(-minimum // multiple) * multiple  # rounded up in integers: the sides can outgrow a float


def build_generator(name_or_config: str | Mapping[str, Any]) -> nn.Module:
    """A generator from a preset name (see ``PRESETS``) or an official ``generator:`` config section."""
    config = generator_config(name_or_config)
    kind = config.pop("kind")
    kwargs = {key: value for key, value in config.items() if key in _KWARGS[kind]}
    # Official options accepted at their default are checked, not passed: the builders do not take them.
    if kind == "ffc_resnet":
        for section in _FFC_SECTIONS:
            if section in kwargs:
                kwargs[section] = {key: value for key, value in _subsection(kwargs, section).items()
                                   if key in _FFC_CONV_KWARGS}
        return FFCResNetGenerator(**kwargs)
    if kind == "pix2pixhd_multidilated":
        kwargs["multidilation_kwargs"] = {key: value for key, value in _subsection(kwargs, "multidilation_kwargs")
                                          .items() if key in _MULTIDILATION_KWARGS}
    return GlobalGenerator(**kwargs)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameter count, as the paper reports it (BatchNorm running statistics excluded)."""
    return sum(parameter.numel() for parameter in module.parameters())


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """A deep plain-dict copy; OmegaConf nodes are resolved here (only this section, never the whole file)."""
    if isinstance(config, DictConfig):
        try:
            return OmegaConf.to_container(config, resolve=True)
        except OmegaConfBaseException as error:
            raise ValueError(f"generator: {str(error).splitlines()[0]}") from None
    return copy.deepcopy(dict(config))


def _subsection(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = config.get(key)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ValueError(f"generator.{key}={section!r}: expected a mapping")
    return section


def _defaults(builder: Callable[..., Any]) -> dict[str, Any]:
    """A builder's keyword defaults: what an official section that leaves a key out gets."""
    return {name: parameter.default for name, parameter in inspect.signature(builder).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def _with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    return {**_defaults(_BUILDERS[config["kind"]]), **config}


def _require_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{key}={value!r}: expected {expected}")


def _check_values(config: Mapping[str, Any]) -> None:
    """Widths, depths, ratios and activations the builders can make a working network of, so that a bad value is
    a one-line error naming its key here rather than a torch traceback when the network is built or first run."""
    values = _with_defaults(config)
    for key in ("input_nc", "output_nc", "ngf", "max_features"):
        _require_int(f"generator.{key}", values[key], 1)
    for key in ("n_downsampling", "n_blocks"):
        _require_int(f"generator.{key}", values[key], 0)
    if values["max_features"] < values["ngf"]:  # the stem and the last decoder layer have ngf channels, uncapped
        raise ValueError(f"generator.max_features={values['max_features']}: expected at least ngf ({values['ngf']})")
    activation = values["add_out_act"]
    if not (activation is None or isinstance(activation, bool)
            or (isinstance(activation, str) and activation in OUT_ACTIVATIONS)):
        raise ValueError(f"generator.add_out_act={activation!r}: expected one of {sorted(OUT_ACTIVATIONS)}, true "
                         "(tanh) or false (none)")
    if config["kind"] == "ffc_resnet":
        _ffc_uses_lfu(values)
    if config["kind"] == "pix2pixhd_multidilated":
        _multidilation(values)


def _ffc_conv(values: Mapping[str, Any], section: str) -> dict[str, Any]:
    conv = {**{key: value for key, value in _defaults(FFC_BN_ACT).items() if key in _FFC_CONV_KWARGS},
            **_subsection(values, section)}
    for key in ("ratio_gin", "ratio_gout"):
        ratio = conv[key]
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise ValueError(f"generator.{section}.{key}={ratio!r}: expected a number in [0, 1]")
    if not isinstance(conv["enable_lfu"], bool):
        raise ValueError(f"generator.{section}.enable_lfu={conv['enable_lfu']!r}: expected true or false")
    return conv


def _ffc_uses_lfu(values: Mapping[str, Any]) -> bool:
    """Whether any spectral transform has a local Fourier unit, after checking that the layers' local/global
    channel splits follow each other: each FFC layer takes ``int(channels * ratio_gin)`` of its input as global and
    makes ``int(channels * ratio_gout)`` of its output global, as ``lama.models.ffc.FFC`` counts them."""
    init, down, resnet = (_ffc_conv(values, section) for section in _FFC_SECTIONS)
    depth = values["n_downsampling"]
    widths = [min(values["max_features"], values["ngf"] * 2**level) for level in range(depth + 1)]
    # (section, the key that sets its output ratio, in and out channels, ratios, local Fourier unit)
    layers = [("init_conv_kwargs", "init_conv_kwargs.ratio_gout", values["input_nc"], widths[0], init["ratio_gin"],
               init["ratio_gout"], init["enable_lfu"])]
    for level in range(depth):
        # The last encoder layer makes the split the bottleneck reads (FFCResNetGenerator).
        out_key, out_ratio = (("resnet_conv_kwargs.ratio_gin", resnet["ratio_gin"]) if level == depth - 1
                              else ("downsample_conv_kwargs.ratio_gout", down["ratio_gout"]))
        layers.append(("downsample_conv_kwargs", out_key, widths[level], widths[level + 1], down["ratio_gin"],
                       out_ratio, down["enable_lfu"]))
    if values["n_blocks"]:
        layers.append(("resnet_conv_kwargs", "resnet_conv_kwargs.ratio_gout", widths[-1], widths[-1],
                       resnet["ratio_gin"], resnet["ratio_gout"], resnet["enable_lfu"]))
    made, maker, lfu = 0, None, False  # the masked image comes in as one local tensor
    for section, out_key, cin, cout, gin, gout, layer_lfu in layers:
        taken, given = int(cin * gin), int(cout * gout)
        if taken != made:
            source = "the masked image comes in as one local tensor" if maker is None else \
                f"generator.{maker[0]}={maker[1]} makes {made} global"
            raise ValueError(f"generator.{section}.ratio_gin={gin}: takes {taken} of its {cin} input channels as "
                             f"global, but {source}; expected the same split")
        if section == "resnet_conv_kwargs" and given != taken:
            raise ValueError(f"generator.resnet_conv_kwargs.ratio_gout={gout}: makes {given} of {cout} channels "
                             f"global, ratio_gin={gin} takes {taken}; a residual block adds its input to its output, "
                             "so expected the same split")
        if taken and given:  # a spectral transform: it halves the global channels, the LFU folds a quarter of them
            hidden = given // 2
            if hidden < 1:
                raise ValueError(f"generator.{out_key}={gout}: makes {given} of {cout} channels global, which the "
                                 "spectral transform halves to none; expected 0 or at least 2 global channels")
            if layer_lfu and hidden % 4:
                raise ValueError(f"generator.{section}.enable_lfu=true: the local Fourier unit folds a quarter of "
                                 f"the spectral transform's {hidden} channels (half of {given} global, from "
                                 f"generator.{out_key}={gout}), which needs a multiple of 4; expected false or "
                                 "another ratio")
            lfu = lfu or layer_lfu
        made, maker = given, (out_key, gout)
    return lfu


def _multidilation(values: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = {**_defaults(MultidilatedConv), **_subsection(values, "multidilation_kwargs")}
    if kwargs["comb_mode"] not in COMB_MODES:
        raise ValueError(f"generator.multidilation_kwargs.comb_mode={kwargs['comb_mode']!r}: expected one of "
                         f"{', '.join(COMB_MODES)}")
    for key in ("dilation_num", "min_dilation"):
        _require_int(f"generator.multidilation_kwargs.{key}", kwargs[key], 1)
    bottleneck = min(values["max_features"], values["ngf"] * 2 ** values["n_downsampling"])
    if kwargs["comb_mode"] == "cat_in" and bottleneck % kwargs["dilation_num"]:
        raise ValueError(f"generator.multidilation_kwargs.dilation_num={kwargs['dilation_num']}: comb_mode cat_in "
                         f"splits the {bottleneck} bottleneck channels into that many chunks; expected a divisor "
                         f"of {bottleneck}")
    return kwargs


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
