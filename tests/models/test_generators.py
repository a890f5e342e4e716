"""Generator architectures: the paper's parameter counts, the official key layout, the Fourier unit, bad configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lama.models import PRESETS, build_generator, count_parameters, generator_config
from lama.models.ffc import FourierUnit

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
