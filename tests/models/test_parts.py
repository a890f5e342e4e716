"""The parts a fine-tuning may freeze, for every generator architecture we build."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lama.models.generators import PRESETS, build_generator
from lama.models.model_dir import InpaintingModel
from lama.models.parts import GENERATOR_PARTS, RESIDUAL_BLOCKS, freeze, generator_parts


def _small(preset: str) -> InpaintingModel:
    config = {**PRESETS[preset], "ngf": 4}
    return InpaintingModel(build_generator(config), config)


@pytest.mark.parametrize("preset", ["lama-fourier", "lama-dilated", "lama-regular", "big-lama"])
def test_the_parts_split_every_layer_once_at_the_residual_blocks(preset: str) -> None:
    model = _small(preset)
    parts = generator_parts(model)
    assert tuple(parts) == GENERATOR_PARTS
    assert [layer for part in parts.values() for layer in part] == list(model.generator.model)
    assert parts["bottleneck"] and all(isinstance(layer, RESIDUAL_BLOCKS) for layer in parts["bottleneck"])
    assert len(parts["bottleneck"]) == PRESETS[preset]["n_blocks"]
    assert not any(isinstance(layer, RESIDUAL_BLOCKS) for part in ("encoder", "decoder") for layer in parts[part])
    convolutions = [layer for layer in parts["encoder"][1].modules() if isinstance(layer, nn.Conv2d)]
    assert convolutions[0].in_channels == 4  # the input convolution (image + mask) opens the encoder


def test_frozen_layers_keep_their_weights_and_statistics_through_a_training_step() -> None:
    torch.manual_seed(0)
    model = _small("lama-fourier")
    count = freeze(model, ["encoder"])
    encoder = generator_parts(model)["encoder"]
    assert count == sum(p.numel() for layer in encoder for p in layer.parameters()) > 0
    before = {name: value.clone() for name, value in model.state_dict().items()}
    model.train()
    assert all(not layer.training for layer in encoder) and model.generator.model[-2].training
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    image, mask = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    model(image, mask).mean().backward()
    optimizer.step()
    after = model.state_dict()
    encoder_keys = {f"generator.model.{index}.{name}" for index in range(len(encoder))
                    for name in encoder[index].state_dict()}
    assert encoder_keys and all(torch.equal(before[key], after[key]) for key in encoder_keys)
    assert any(not torch.equal(before[key], after[key]) for key in after if key not in encoder_keys)
    with pytest.raises(ValueError, match="unknown generator part 'middle'"):
        freeze(model, ["middle"])
