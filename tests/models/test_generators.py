"""Generator architectures: the paper's parameter counts, the official key layout, the Fourier unit, bad configs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lama.models import (
    PRESETS,
    InpaintingModel,
    ModelDirError,
    build_generator,
    count_parameters,
    generator_config,
    load_model,
    save_model_dir,
)
from lama.models.ffc import FourierUnit
from lama.models.generators import input_size_rule

# Official counts (reference §1.1, computed from the official module definitions; the paper rounds them).
OFFICIAL_PARAMETERS = {
    "lama-fourier": 27_048_835,
    "big-lama": 50_975_875,
    "lama-fourier-shallow": 19_073_155,
    "lama-regular": 45_617_731,
    "lama-regular-deep": 73_947_715,
    "lama-dilated": 45_645_379,
}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMETERS))
def test_preset_parameter_count_is_official(name: str) -> None:
    with torch.device("meta"):
        generator = build_generator(name)
    assert count_parameters(generator) == OFFICIAL_PARAMETERS[name]


def test_every_preset_has_an_official_count() -> None:
    assert set(PRESETS) == set(OFFICIAL_PARAMETERS)


@pytest.mark.parametrize(("name", "n_keys", "final_conv"), [("lama-fourier", 521, 25), ("big-lama", 989, 34)])
def test_fourier_state_dict_layout_matches_official(name: str, n_keys: int, final_conv: int) -> None:
    with torch.device("meta"):
        state = build_generator(name).state_dict()
    assert len(state) == n_keys
    assert state[f"model.{final_conv}.weight"].shape == (3, 64, 7, 7)
    assert state["model.4.ffc.convl2g.weight"].shape == (384, 256, 3, 3)
    assert state["model.5.conv1.ffc.convg2g.fu.conv_layer.weight"].shape == (384, 384, 1, 1)
    assert "model.1.ffc.convg2l.weight" not in state  # absent branches register nothing


def test_regular_and_dilated_block_keys() -> None:
    with torch.device("meta"):
        regular = build_generator("lama-regular").state_dict()
        dilated = build_generator("lama-dilated").state_dict()
    assert regular["model.13.conv_block.5.weight"].shape == (512, 512, 3, 3)
    assert dilated["model.13.conv_block.0.convs.3.weight"].shape == (512, 128, 3, 3)


def _numpy_fourier_unit(x: np.ndarray, weight: np.ndarray, bn: dict[str, np.ndarray]) -> np.ndarray:
    """The Fourier unit written from its definition with numpy's FFT (an independent reference)."""
    channels, height, width = x.shape[1:]
    spectrum = np.fft.rfftn(x, axes=(-2, -1), norm="ortho")
    stacked = np.stack([spectrum.real, spectrum.imag], axis=2).reshape(x.shape[0], 2 * channels, height, -1)
    mixed = np.einsum("oi,bihw->bohw", weight[:, :, 0, 0], stacked)
    scale = bn["weight"] / np.sqrt(bn["running_var"] + 1e-5)
    mixed = (mixed - bn["running_mean"][:, None, None]) * scale[:, None, None] + bn["bias"][:, None, None]
    mixed = np.maximum(mixed, 0).reshape(x.shape[0], channels, 2, height, -1)
    return np.fft.irfftn(mixed[:, :, 0] + 1j * mixed[:, :, 1], s=(height, width), axes=(-2, -1), norm="ortho")


@pytest.mark.parametrize("size", [(16, 16), (9, 11), (12, 7)])
def test_fourier_unit_matches_numpy_definition(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    unit = FourierUnit(3, 3).eval()
    with torch.no_grad():
        unit.bn.running_mean.normal_(0, 0.1)
        unit.bn.running_var.uniform_(0.5, 2.0)
        unit.bn.weight.uniform_(0.5, 1.5)
        unit.bn.bias.normal_(0, 0.2)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    unit = unit.double()
    expected = _numpy_fourier_unit(
        x.numpy(), unit.conv_layer.weight.detach().numpy(),
        {k: v.detach().numpy() for k, v in unit.bn.state_dict().items()},
    )
    with torch.no_grad():
        got = unit(x).numpy()
    assert got.shape == x.shape
    np.testing.assert_allclose(got, expected, atol=1e-10)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_generator_keeps_input_size_at_multiples_of_8(name: str) -> None:
    config = generator_config(name)
    config.update(ngf=4, n_blocks=1)
    generator = build_generator(config).eval()
    with torch.no_grad():
        out = generator(torch.rand(1, 4, 72, 88))
    assert out.shape == (1, 3, 72, 88)
    assert out.min() >= 0 and out.max() <= 1  # sigmoid head


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "ffc_unet"}, "generator.kind"),
        ({"n_blokcs": 3}, "unknown key 'n_blokcs'"),
        ({"out_ffc": True}, "generator.out_ffc=True is not supported"),
        ({"resnet_conv_kwargs": {"ratio_gin": 0.75, "gated": True}}, "generator.resnet_conv_kwargs.gated"),
        ({"add_out_act": "relu"}, "add_out_act"),
    ],
)
def test_bad_generator_config_is_refused_with_the_key(change: dict, message: str) -> None:
    config = generator_config("lama-fourier")
    config.update(change)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        build_generator(config)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="big-lama"):
        build_generator("huge-lama")


def test_official_default_options_are_accepted() -> None:
    config = generator_config("lama-regular")
    config.update(conv_kind="default", dilation=1, affine=None)
    assert count_parameters(build_generator(config)) == OFFICIAL_PARAMETERS["lama-regular"]
    fourier = _section("lama-fourier", **{"resnet_conv_kwargs.gated": False, "init_conv_kwargs.use_se": False})
    with torch.device("meta"):
        assert count_parameters(build_generator(fourier)) == OFFICIAL_PARAMETERS["lama-fourier"]
    dilated = _section("lama-dilated", **{"multidilation_kwargs.equal_dim": True, "multidilation_kwargs.padding": 1})
    with torch.device("meta"):
        assert count_parameters(build_generator(dilated)) == OFFICIAL_PARAMETERS["lama-dilated"]


def test_omitted_enable_lfu_builds_the_official_local_fourier_unit() -> None:
    """Official FFC layers default to enable_lfu=True; a config that omits the key gets the LFU weights."""
    config = generator_config("lama-fourier")
    config.update(ngf=8, n_blocks=1)
    del config["resnet_conv_kwargs"]["enable_lfu"]
    generator = build_generator(config).eval()
    state = generator.state_dict()
    assert state["model.5.conv1.ffc.convg2g.lfu.conv_layer.weight"].shape == (48, 48, 1, 1)
    with torch.no_grad():
        assert generator(torch.rand(1, 4, 64, 64)).shape == (1, 3, 64, 64)
        spectral = generator.model[5].conv1.ffc.convg2g
        x = torch.randn(1, 48, 8, 8)
        with_lfu = spectral(x)
        spectral.enable_lfu = False
        without = spectral(x)
    assert (with_lfu - without).abs().max() > 1e-2  # the local Fourier unit takes part in the forward pass


def _section(name: str = "lama-fourier", **change: object) -> dict:
    config = generator_config(name)
    for key, value in change.items():
        if "." in key:
            section, leaf = key.split(".")
            config[section] = {**(config.get(section) or {}), leaf: value}
        else:
            config[key] = value
    return config


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("lama-fourier", {"ngf": -3}, "generator.ngf=-3: expected a positive integer"),
        ("lama-fourier", {"ngf": 0}, "generator.ngf=0: expected a positive integer"),
        ("lama-fourier", {"ngf": 8.5}, "generator.ngf=8.5: expected a positive integer"),
        ("lama-fourier", {"ngf": "wide"}, "generator.ngf='wide': expected a positive integer"),
        ("lama-fourier", {"ngf": True}, "generator.ngf=True: expected a positive integer"),
        ("lama-regular", {"input_nc": 0}, "generator.input_nc=0: expected a positive integer"),
        ("lama-regular", {"max_features": -1}, "generator.max_features=-1: expected a positive integer"),
        ("lama-regular", {"ngf": 16, "max_features": 8}, "generator.max_features=8: expected at least ngf (16)"),
        ("lama-regular", {"n_blocks": -1}, "generator.n_blocks=-1: expected an integer >= 0"),
        ("lama-dilated", {"n_downsampling": -2}, "generator.n_downsampling=-2: expected an integer >= 0"),
        ("lama-regular", {"padding_type": "zeros"}, "generator.padding_type='zeros' is not supported"),
        ("lama-regular", {"add_out_act": "relu"}, "generator.add_out_act='relu': expected one of"),
        ("lama-fourier", {"resnet_conv_kwargs.ratio_gin": 1.5, "resnet_conv_kwargs.ratio_gout": 1.5},
         "generator.resnet_conv_kwargs.ratio_gin=1.5: expected a number in [0, 1]"),
        ("lama-fourier", {"resnet_conv_kwargs.ratio_gout": -0.25},
         "generator.resnet_conv_kwargs.ratio_gout=-0.25: expected a number in [0, 1]"),
        ("lama-fourier", {"resnet_conv_kwargs.enable_lfu": "yes"},
         "generator.resnet_conv_kwargs.enable_lfu='yes': expected true or false"),
        ("lama-fourier", {"init_conv_kwargs.ratio_gin": 0.5}, "generator.init_conv_kwargs.ratio_gin=0.5"),
        ("lama-fourier", {"downsample_conv_kwargs.ratio_gin": 0.5}, "generator.downsample_conv_kwargs.ratio_gin=0.5"),
        ("lama-fourier", {"resnet_conv_kwargs.ratio_gout": 0.5}, "generator.resnet_conv_kwargs.ratio_gout=0.5"),
        ("lama-fourier", {"ngf": 1, "resnet_conv_kwargs.ratio_gin": 0.125, "resnet_conv_kwargs.ratio_gout": 0.125},
         "generator.resnet_conv_kwargs.ratio_gout=0.125"),  # 1 global channel of 8: the spectral transform halves it
        ("lama-fourier", {"ngf": 6, "resnet_conv_kwargs.enable_lfu": True}, "generator.resnet_conv_kwargs.enable_lfu"),
        ("lama-dilated", {"multidilation_kwargs.comb_mode": "mean"}, "generator.multidilation_kwargs.comb_mode='mean'"),
        ("lama-dilated", {"multidilation_kwargs.dilation_num": 0},
         "generator.multidilation_kwargs.dilation_num=0: expected a positive integer"),
        ("lama-dilated", {"multidilation_kwargs.dilation_num": 3}, "generator.multidilation_kwargs.dilation_num=3"),
        ("lama-dilated", {"multidilation_kwargs.padding": 2}, "generator.multidilation_kwargs.padding=2"),
    ],
)
def test_a_bad_width_depth_or_ratio_is_refused_before_building_naming_the_key(
    name: str, change: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        generator_config(_section(name, **change))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("name", "change"), [
    ("lama-fourier", {"n_downsampling": 1}),
    ("lama-fourier", {"n_downsampling": 2, "resnet_conv_kwargs.enable_lfu": True}),
    ("lama-fourier", {"n_downsampling": 0, "resnet_conv_kwargs.ratio_gin": 0, "resnet_conv_kwargs.ratio_gout": 0}),
    ("lama-regular", {"n_downsampling": 2}),
    ("lama-dilated", {"n_downsampling": 1}),
    ("lama-dilated", {"n_downsampling": 1, "multidilation_kwargs.dilation_num": 2}),
    ("lama-dilated", {"n_downsampling": 2, "multidilation_kwargs.comb_mode": "sum",
                      "multidilation_kwargs.dilation_num": 2, "multidilation_kwargs.min_dilation": 2}),
])
def test_the_input_size_rule_is_what_the_generator_maps_onto_itself(name: str, change: dict) -> None:
    config = _section(name, ngf=8, n_blocks=1, **change)
    multiple, minimum = input_size_rule(config)
    generator = build_generator(config).eval()
    for size in range(1, minimum + 2 * multiple + 1):
        try:
            with torch.no_grad():
                works = generator(torch.rand(1, 4, size, size)).shape[-2:] == (size, size)
        except (RuntimeError, ValueError):
            works = False
        assert works == (size % multiple == 0 and size >= minimum), (size, multiple, minimum)


def test_every_section_that_passes_the_checks_builds_a_working_generator() -> None:
    """Random sections around the presets: each one either fails the static checks or builds and runs."""
    rng = np.random.default_rng(0)
    ratios = [0, 0.125, 0.25, 0.5, 0.75, 1]
    outcomes = set()
    for _ in range(60):
        name = str(rng.choice(["lama-fourier", "lama-regular", "lama-dilated"]))
        change = {"ngf": int(rng.integers(1, 13)), "n_downsampling": int(rng.integers(0, 3)), "n_blocks": 1,
                  "max_features": int(rng.choice([8, 1024]))}
        if name == "lama-fourier":
            for section in ("init_conv_kwargs", "downsample_conv_kwargs", "resnet_conv_kwargs"):
                for leaf in ("ratio_gin", "ratio_gout"):
                    change[f"{section}.{leaf}"] = float(rng.choice(ratios)) if rng.random() < 0.4 else \
                        generator_config(name)[section][leaf]
                change[f"{section}.enable_lfu"] = bool(rng.random() < 0.5)
        if name == "lama-dilated":
            change["multidilation_kwargs.dilation_num"] = int(rng.integers(1, 5))
            change["multidilation_kwargs.comb_mode"] = str(rng.choice(["cat_in", "sum"]))
        config = _section(name, **change)
        try:
            _, minimum = input_size_rule(config)
        except ValueError:
            outcomes.add("refused")
            continue
        generator = build_generator(config).eval()
        with torch.no_grad():
            assert generator(torch.rand(1, 4, minimum, minimum)).shape == (1, 3, minimum, minimum), config
        outcomes.add("built")
    assert outcomes == {"refused", "built"}


def test_init_model_refuses_a_bad_width_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from lama.cli import main

    assert main(["init-model", "lama-fourier", str(tmp_path / "model"), "--ngf", "-3"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "lama init-model: generator.ngf=-3: expected a positive integer"
    assert main(["init-model", "lama-regular", str(tmp_path / "model"), "--n-blocks", "-1"]) == 2
    assert "generator.n_blocks=-1" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_a_model_dir_with_a_bad_width_is_a_model_dir_error_naming_its_config(tmp_path: Path) -> None:
    config = _section("lama-fourier", ngf=4, n_blocks=1)
    save_model_dir(InpaintingModel(build_generator(config), config), tmp_path / "model")
    path = tmp_path / "model" / "config.yaml"
    written = yaml.safe_load(path.read_text())
    written["generator"]["ngf"] = -3
    path.write_text(yaml.safe_dump(written))
    with pytest.raises(ModelDirError, match=rf"^{re.escape(str(path))}: generator\.ngf=-3: expected a positive integer$"
                       ) as error:
        load_model(tmp_path / "model")
    assert "\n" not in str(error.value)
