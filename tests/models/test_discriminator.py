"""NLayerDiscriminator against the official outputs and features in fixtures/losses.pt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lama.models import NLayerDiscriminator, load_checkpoint_file


def _relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got - ref).abs().max() / ref.abs().max()).item()


@pytest.fixture(scope="module")
def losses(fixtures: Path) -> dict:
    return torch.load(fixtures / "losses.pt", weights_only=True)


def _discriminator(losses: dict) -> NLayerDiscriminator:
    discriminator = NLayerDiscriminator(input_nc=3, ndf=4, n_layers=4)
    discriminator.load_state_dict(losses["discriminator_state_dict"])  # strict
    return discriminator


def test_train_mode_logits_and_features_match_official(losses: dict) -> None:
    discriminator = _discriminator(losses).train()
    reference = losses["float32"]
    with torch.no_grad():
        for name in ("real", "fake"):
            logits, features = discriminator(losses[name])
            assert logits.shape == (2, 1, 9, 9)
            assert _relative_error(logits, reference[f"discr_{name}_pred_train"]) <= 1e-5
            assert [f.shape[1:] for f in features] == [(4, 49, 49), (8, 25, 25), (16, 13, 13), (32, 7, 7), (64, 8, 8)]
            for got, ref in zip(features, reference[f"feats_{name}_train"], strict=True):
                assert _relative_error(got, ref) <= 1e-5


def test_eval_mode_after_one_training_step_matches_official(losses: dict) -> None:
    """The official eval values come after the G step and D step (real, fake, real, fake) moved the BN stats."""
    discriminator = _discriminator(losses).train()
    with torch.no_grad():
        for name in ("real", "fake", "real", "fake"):
            discriminator(losses[name])
        discriminator.eval()
        for name in ("real", "fake"):
            logits, _ = discriminator(losses[name])
            assert _relative_error(logits, losses["float32"][f"discr_{name}_pred_eval"]) <= 1e-5


def test_loads_discriminator_weights_from_an_official_checkpoint(fixtures: Path) -> None:
    state = load_checkpoint_file(fixtures / "tiny-biglama/models/best.ckpt")["state_dict"]
    discriminator = NLayerDiscriminator(input_nc=3, ndf=4, n_layers=4)
    discriminator.load_official_state_dict(state)
    assert torch.equal(discriminator.model5[0].weight, state["discriminator.model5.0.weight"])


def test_checkpoint_without_discriminator_says_so(fixtures: Path) -> None:
    state = load_checkpoint_file(fixtures / "tiny-lama-regular/models/best.ckpt")["state_dict"]
    with pytest.raises(KeyError, match="no 'discriminator"):
        NLayerDiscriminator(ndf=4).load_official_state_dict(state)


def test_paper_discriminator_size() -> None:
    assert sum(p.numel() for p in NLayerDiscriminator().parameters()) == 6_962_369  # reference §3
