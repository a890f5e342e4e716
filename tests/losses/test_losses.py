"""The LaMa objective against the official values in fixtures/losses.pt and losses.json (README §4)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from lama.losses import LamaLoss, LossConfig, feature_matching_loss, resize_mask
from lama.losses.total import recipe_deviations, recipe_label
from lama.models import NLayerDiscriminator

REL = 1e-5
ZERO_GRAD_BIASES = ("model1.0.bias", "model2.0.bias", "model3.0.bias", "model4.0.bias")


@pytest.fixture(scope="module")
def fixture(fixtures: Path) -> dict:
    data = torch.load(fixtures / "losses.pt", weights_only=True)
    data["json"] = json.loads((fixtures / "losses.json").read_text())
    return data


def _discriminator(fixture: dict, dtype: torch.dtype = torch.float32) -> NLayerDiscriminator:
    discriminator = NLayerDiscriminator(input_nc=3, ndf=4, n_layers=4)
    discriminator.load_state_dict(fixture["discriminator_state_dict"])
    return discriminator.to(dtype).train()


def _paper_loss(**overrides: object) -> LamaLoss:
    return LamaLoss(LossConfig(alpha=0, **overrides))  # the fixture leaves the HRF term out (README §4)


def _close(got: torch.Tensor | float, ref: float, rel: float = REL) -> bool:
    return math.isclose(float(got.detach()) if isinstance(got, torch.Tensor) else got, ref, rel_tol=rel)


def test_paper_weights_are_the_defaults() -> None:
    config = LossConfig()
    assert (config.kappa, config.alpha, config.beta, config.gamma) == (10, 30, 100, 0.001)
    assert (config.l1_known, config.l1_missing, config.mask_interp) == (10, 0, "none")


def test_generator_terms_and_total_match_official(fixture: dict) -> None:
    reference = fixture["json"]["values_float32"]["gen"]
    terms = _paper_loss().generator_loss(fixture["real"], fixture["mask"], fixture["fake"], _discriminator(fixture))
    assert _close(terms["l1"], reference["l1"])
    assert _close(terms["adversarial"], reference["adv_gen_unweighted"])
    assert _close(terms["feature_matching"], reference["fm_nomask_unweighted"])
    assert _close(terms["total"], reference["total_without_resnet_pl"])
    assert set(terms) == {"l1", "adversarial", "feature_matching", "total"}


def test_generator_gradient_wrt_prediction_matches_official(fixture: dict) -> None:
    fake = fixture["fake"].clone().requires_grad_(True)
    terms = _paper_loss().generator_loss(fixture["real"], fixture["mask"], fake, _discriminator(fixture))
    (gradient,) = torch.autograd.grad(terms["total"], fake)
    reference = fixture["float32"]["grad_total_gen_wrt_fake"]
    assert ((gradient - reference).abs().max() / reference.abs().max()).item() <= REL


def test_discriminator_loss_matches_official(fixture: dict) -> None:
    reference = fixture["json"]["values_float32"]["discr"]
    terms = _paper_loss().discriminator_loss(fixture["real"], fixture["mask"], fixture["fake"], _discriminator(fixture))
    assert _close(terms["total"], reference["total"])
    assert _close(terms["real"], reference["real_term_mean"])
    assert _close(terms["fake"], reference["fake_term_mean"])
    assert _close(terms["r1"], reference["r1_penalty_raw"])


def test_r1_is_zero_without_gradients_as_in_official_validation(fixture: dict) -> None:
    reference = fixture["json"]["values_float32"]["discr"]
    with torch.no_grad():
        terms = _paper_loss().discriminator_loss(
            fixture["real"], fixture["mask"], fixture["fake"], _discriminator(fixture))
    assert terms["r1"] == 0
    assert _close(terms["total"], reference["real_term_mean"] + reference["fake_term_mean"])


def test_discriminator_loss_is_not_weighted_by_kappa(fixture: dict) -> None:
    reference = fixture["json"]["values_float32"]["discr"]["total"]
    terms = _paper_loss(kappa=1).discriminator_loss(
        fixture["real"], fixture["mask"], fixture["fake"], _discriminator(fixture)
    )
    assert _close(terms["total"], reference)


def test_mask_is_resized_to_the_logits_with_legacy_nearest(fixture: dict) -> None:
    resized = resize_mask(fixture["mask"], (9, 9), "nearest")
    assert torch.equal(resized, fixture["float32"]["mask_at_discr_resolution_nearest"])
    rows = [math.floor(i * 96 / 9) for i in range(9)]  # README §4: source index = floor(dst * 96 / 9)
    assert torch.equal(resized, fixture["mask"][:, :, rows][:, :, :, rows])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discriminator_parameter_gradients_including_r1_match_official(fixture: dict, dtype: torch.dtype) -> None:
    discriminator = _discriminator(fixture, dtype)
    real, mask, fake = (fixture[key].to(dtype) for key in ("real", "mask", "fake"))
    _paper_loss().discriminator_loss(real, mask, fake, discriminator)["total"].backward()
    references = fixture["float32"]["discr_param_grads"] if dtype == torch.float32 else fixture[
        "float64_discr_param_grads"]
    tolerance = 1e-3 if dtype == torch.float32 else 1e-6
    for name, parameter in discriminator.named_parameters():
        reference = references[name].to(dtype)
        if name in ZERO_GRAD_BIASES:  # analytically zero: they feed a train-mode BatchNorm
            assert parameter.grad.abs().max().item() <= 1e-6, name
        else:
            error = ((parameter.grad - reference).norm() / reference.norm()).item()
            assert error <= tolerance, (name, error)


def _features(fixture: dict, discriminator: NLayerDiscriminator) -> tuple[list, list]:
    with torch.no_grad():
        return discriminator(fixture["fake"])[1], discriminator(fixture["real"])[1]


def test_masked_feature_matching_bilinear_matches_official(fixture: dict) -> None:
    fake_features, real_features = _features(fixture, _discriminator(fixture))
    value = feature_matching_loss(fake_features, real_features, fixture["mask"], "bilinear")
    assert _close(value, fixture["json"]["values_float32"]["gen"]["fm_mask_bilinear_unweighted"])


def test_bicubic_differs_from_bilinear_and_its_weights_stay_in_unit_range(fixture: dict) -> None:
    mask = fixture["mask"]
    fake_features, real_features = _features(fixture, _discriminator(fixture))
    bilinear = feature_matching_loss(fake_features, real_features, mask, "bilinear")
    bicubic = feature_matching_loss(fake_features, real_features, mask, "bicubic")
    assert abs(bicubic - bilinear) / bilinear > 10 * REL  # 1.7e-4 apart, the float32 noise is ~1e-7
    raw = [torch.nn.functional.interpolate(mask, size=f.shape[-2:], mode="bicubic", align_corners=False)
           for f in fake_features]
    assert min(r.min() for r in raw) < 0 and max(r.max() for r in raw) > 1  # bicubic does overshoot here
    for feature in fake_features:
        weights = resize_mask(mask, feature.shape[-2:], "bicubic")
        assert weights.min() >= 0 and weights.max() <= 1


def test_bicubic_is_the_official_bicubic_variant_with_clamped_weights(fixture: dict) -> None:
    fake_features, real_features = _features(fixture, _discriminator(fixture))
    clamped, unclamped = [], []
    for fake, real in zip(fake_features, real_features, strict=True):
        resized = torch.nn.functional.interpolate(fixture["mask"], size=fake.shape[-2:], mode="bicubic",
                                                  align_corners=False)
        clamped.append(((fake - real) ** 2 * (1 - resized.clamp(0, 1))).mean())
        unclamped.append(((fake - real) ** 2 * (1 - resized)).mean())
    # The fixture's bicubic value is this resize without the clamp, so the resize itself is the official one.
    assert _close(torch.stack(unclamped).mean(), fixture["json"]["values_float32"]["gen"]["fm_mask_bicubic_unweighted"])
    value = feature_matching_loss(fake_features, real_features, fixture["mask"], "bicubic")
    assert _close(value, torch.stack(clamped).mean().item(), rel=1e-6)


@pytest.mark.parametrize("interp", ["nearest", "area"])
def test_other_interpolations_weight_the_known_area(fixture: dict, interp: str) -> None:
    fake_features, real_features = _features(fixture, _discriminator(fixture))
    unmasked = feature_matching_loss(fake_features, real_features)
    masked = feature_matching_loss(fake_features, real_features, fixture["mask"], interp)
    assert 0 < masked < unmasked


def test_mask_interp_reaches_the_generator_loss(fixture: dict) -> None:
    args = (fixture["real"], fixture["mask"], fixture["fake"])
    none = _paper_loss().generator_loss(*args, _discriminator(fixture))["feature_matching"]
    bilinear = _paper_loss(mask_interp="bilinear").generator_loss(*args, _discriminator(fixture))["feature_matching"]
    assert _close(none, fixture["json"]["values_float32"]["gen"]["fm_nomask_unweighted"])
    assert _close(bilinear, fixture["json"]["values_float32"]["gen"]["fm_mask_bilinear_unweighted"])


def test_eval_mode_feature_matching_after_a_training_step_matches_official(fixture: dict) -> None:
    discriminator = _discriminator(fixture)
    with torch.no_grad():
        for name in ("real", "fake", "real", "fake"):  # the G step and the D step move the BN running stats
            discriminator(fixture[name])
    discriminator.eval()
    fake_features, real_features = _features(fixture, discriminator)
    reference = fixture["json"]["values_float32"]["eval_mode"]
    assert _close(feature_matching_loss(fake_features, real_features), reference["fm_nomask_unweighted"])
    masked = feature_matching_loss(fake_features, real_features, fixture["mask"], "bilinear")
    assert _close(masked, reference["fm_mask_bilinear_unweighted"])


def test_weights_scale_their_terms(fixture: dict) -> None:
    args = (fixture["real"], fixture["mask"], fixture["fake"])
    base = _paper_loss().generator_loss(*args, _discriminator(fixture))
    doubled = _paper_loss(kappa=20, beta=200, l1_known=20).generator_loss(*args, _discriminator(fixture))
    assert _close(doubled["total"], 2 * base["total"].item())
    l1_missing = _paper_loss(l1_known=0, l1_missing=1).generator_loss(*args, _discriminator(fixture))["l1"]
    expected = (fixture["mask"] * (fixture["fake"] - fixture["real"]).abs()).mean()
    assert _close(l1_missing, expected.item())


def test_mask_interp_without_feature_matching_warns() -> None:
    with pytest.warns(UserWarning, match="mask_interp=bicubic has no effect"):
        LossConfig(beta=0, mask_interp="bicubic")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mask_interp": "cubic"}, "loss.mask_interp must be one of none, nearest, bilinear, bicubic, area"),
        ({"kappa": -1}, "loss.kappa must be a finite number >= 0"),
        ({"gamma": float("nan")}, "loss.gamma must be a finite number >= 0"),
        ({"hrf_weights": "random"}, "loss.hrf_weights must be one of pretrained, stand-in"),
    ],
)
def test_bad_config_values_fail_naming_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LossConfig(**overrides)


def test_hrf_term_uses_alpha_and_is_labelled_as_stand_in(fixture: dict) -> None:
    loss = LamaLoss(LossConfig(hrf_weights="stand-in", hrf_seed=3))
    assert "stand-in" in loss.labels["hrf_weights"]
    args = (fixture["real"], fixture["mask"], fixture["fake"])
    terms = loss.generator_loss(*args, _discriminator(fixture))
    without = _paper_loss().generator_loss(*args, _discriminator(fixture))["total"]
    assert terms["hrf_perceptual"] > 0
    assert _close(terms["total"], without.item() + 30 * terms["hrf_perceptual"].item(), rel=1e-6)


def test_recipe_deviations_name_every_departure_from_the_papers_loss() -> None:
    assert recipe_deviations(asdict(LossConfig())) == [] and recipe_label({}) == "paper"
    assert recipe_deviations({"mask_interp": "bicubic"}) == []  # the axis of its own study, not a deviation
    assert recipe_deviations({"alpha": 0, "l1_missing": 10, "hrf_weights": "stand-in"}) == [
        "loss.alpha=0 (paper 30)", "loss.l1_missing=10 (paper 0)"]  # no HRF term: its encoder does not matter
    assert recipe_deviations({"hrf_weights": "stand-in"}) == ["loss.hrf_weights=stand-in (paper pretrained)"]
    loss = LamaLoss(LossConfig(alpha=0, l1_missing=10))
    assert loss.labels == {"hrf_weights": "off", "recipe": "loss.alpha=0 (paper 30); loss.l1_missing=10 (paper 0)"}


def test_weighted_terms_are_what_the_total_sums(fixture: dict) -> None:
    loss = _paper_loss(kappa=3, beta=7)
    terms = loss.generator_loss(fixture["real"], fixture["mask"], fixture["fake"], _discriminator(fixture))
    weighted = loss.weighted(terms)
    assert set(weighted) == {"l1", "adversarial", "feature_matching"}
    assert _close(weighted["adversarial"], 3 * terms["adversarial"].item())
    assert _close(terms["total"], sum(value.item() for value in weighted.values()))
