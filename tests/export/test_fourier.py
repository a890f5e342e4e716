"""The DFT-basis Fourier unit computes what the FFT one does, at every size, odd ones included."""

from __future__ import annotations

import math

import pytest
import torch

from lama.export.fourier import BasisFourierUnit, dft_angles, with_basis_fourier_units
from lama.models.ffc import FourierUnit
from lama.models.generators import build_generator, generator_config


def _unit(channels: int = 6) -> FourierUnit:
    torch.manual_seed(0)
    unit = FourierUnit(channels, channels).eval()
    with torch.no_grad():
        unit.bn.running_mean.normal_(0, 0.5)
        unit.bn.running_var.uniform_(0.5, 2)
        unit.bn.weight.uniform_(0.5, 1.5)
        unit.bn.bias.normal_(0, 0.2)
    return unit


def _float64_reference(unit: FourierUnit, x: torch.Tensor) -> torch.Tensor:
    """The unit's math in float64 with torch's FFT: an independent reference for both float32 versions."""
    double = FourierUnit(unit.conv_layer.in_channels // 2, unit.conv_layer.out_channels // 2).double().eval()
    double.load_state_dict({key: value.double() for key, value in unit.state_dict().items()})
    with torch.no_grad():
        return double(x.double())


@pytest.mark.parametrize(("height", "width"), [(8, 8), (9, 11), (7, 15), (5, 6), (1, 3), (33, 17), (64, 96)])
def test_basis_unit_matches_the_fft_unit_to_float32_rounding(height: int, width: int) -> None:
    unit = _unit()
    x = torch.randn(2, 6, height, width, generator=torch.Generator().manual_seed(height * width)) * 3
    reference = _float64_reference(unit, x)
    with torch.no_grad():
        basis, fft = BasisFourierUnit(unit)(x), unit(x)
    scale = reference.abs().max().item()
    assert (basis.double() - reference).abs().max().item() <= 2e-6 * scale
    assert (fft.double() - reference).abs().max().item() <= 2e-6 * scale


def test_angles_are_reduced_modulo_the_size() -> None:
    angles = dft_angles(5, 3, 5, torch.zeros(1))
    expected = torch.tensor([[(j * k % 5) * 2 * math.pi / 5 for k in range(3)] for j in range(5)])
    assert torch.equal(angles, expected.float())
    assert dft_angles(1000, 1000, 1000, torch.zeros(1)).max() < 2 * math.pi


def test_every_fourier_unit_of_a_generator_is_replaced_and_shares_its_weights() -> None:
    generator = build_generator({**generator_config("lama-fourier"), "ngf": 8, "n_blocks": 2}).eval()
    units = [module for module in generator.modules() if isinstance(module, FourierUnit)]
    with_basis_fourier_units(generator)
    replaced = [module for module in generator.modules() if isinstance(module, BasisFourierUnit)]
    assert len(units) == len(replaced) == 4  # two FFC layers in each of the two blocks
    assert not any(isinstance(module, FourierUnit) for module in generator.modules())
    assert all(new.conv_layer is old.conv_layer for old, new in zip(units, replaced, strict=True))
