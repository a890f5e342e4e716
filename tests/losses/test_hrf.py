"""HRF perceptual loss (ResNetPL) against the official-code fixtures in ``hrf-encoder/`` (README §8.2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from lama import weights
from lama.losses.hrf import (
    WEIGHTS_NAME,
    EncoderWeightsError,
    HRFPerceptualLoss,
    ResNet50DilatedEncoder,
    load_encoder_state_dict,
)
from tests.formula_weights import check_formula_hashes, formula_params, formula_state_dict

CASES = [(mode, pair) for mode in ("eval", "train") for pair in ("a", "b")]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The fixtures were computed with 1 thread; it is also far faster here than 2 threads on a busy 2-core box."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def hrf_dir(fixtures: Path) -> Path:
    return fixtures / "hrf-encoder"


@pytest.fixture(scope="module")
def formula_sd(hrf_dir: Path) -> dict[str, torch.Tensor]:
    seed, rv0 = formula_params(hrf_dir / "formula.json")
    assert (seed, rv0) == (0xD3F1A7E, 1.0)
    return formula_state_dict(hrf_dir / "keys.json", seed, rv0)


@pytest.fixture(scope="module")
def inputs(hrf_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(hrf_dir / "input.pt", weights_only=True)


@pytest.fixture(scope="module")
def features(hrf_dir: Path) -> dict:
    return torch.load(hrf_dir / "features.pt", weights_only=True)


@pytest.fixture(scope="module")
def reference(hrf_dir: Path) -> dict:
    return json.loads((hrf_dir / "losses.json").read_text())


@pytest.fixture(scope="module")
def shared_losses(formula_sd: dict[str, torch.Tensor]) -> dict[str, HRFPerceptualLoss]:
    """Weight-1 losses per BN mode, for tests that only run forward/backward (train mode only moves running stats)."""
    return {mode: make_loss(formula_sd, mode) for mode in ("eval", "train")}


def make_loss(state_dict: dict[str, torch.Tensor], bn_mode: str, weight: float = 1.0) -> HRFPerceptualLoss:
    return HRFPerceptualLoss.from_state_dict(state_dict, weight, bn_mode, weights_label="formula weights (fixture)")


def rel(value: float, ref: float) -> float:
    return abs(value - ref) / abs(ref)


def normalised_max_diff(value: torch.Tensor, ref: torch.Tensor) -> float:
    assert value.shape == ref.shape
    return float((value.double() - ref.double()).abs().max() / ref.double().abs().max())


def test_regenerated_formula_weights_match_hashes(formula_sd: dict[str, torch.Tensor], hrf_dir: Path) -> None:
    assert len(formula_sd) == 330
    check_formula_hashes(formula_sd, hrf_dir / "formula.json")


def test_encoder_state_dict_layout_equals_keys_json(hrf_dir: Path) -> None:
    rows = json.loads((hrf_dir / "keys.json").read_text())
    own = ResNet50DilatedEncoder().state_dict()
    assert [(key, list(t.shape), str(t.dtype).removeprefix("torch.")) for key, t in own.items()] == [
        (key, shape, dtype) for key, shape, dtype, _ in rows
    ]
    assert sum(t.is_floating_point() for t in own.values()) == 275


@pytest.mark.parametrize("with_counters", [True, False])
def test_load_accepts_files_with_and_without_num_batches_tracked(
    formula_sd: dict[str, torch.Tensor], with_counters: bool
) -> None:
    given = {k: v for k, v in formula_sd.items() if with_counters or not k.endswith("num_batches_tracked")}
    assert len(given) == (330 if with_counters else 275)
    encoder = ResNet50DilatedEncoder()
    load_encoder_state_dict(encoder, given)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, formula_sd[key]), key


def test_load_names_a_missing_key(formula_sd: dict[str, torch.Tensor]) -> None:
    given = {k: v for k, v in formula_sd.items() if k != "layer3.4.conv2.weight"}
    with pytest.raises(EncoderWeightsError, match=r"1 missing \(layer3\.4\.conv2\.weight\)") as info:
        load_encoder_state_dict(ResNet50DilatedEncoder(), given)
    assert "\n" not in str(info.value)


def test_load_refuses_prefixed_unexpected_and_misshapen_entries(formula_sd: dict[str, torch.Tensor]) -> None:
    prefixed = {f"module.{k}": v for k, v in formula_sd.items()}
    with pytest.raises(EncoderWeightsError, match=r"275 missing .*330 unexpected \(module\.conv1\.weight"):
        load_encoder_state_dict(ResNet50DilatedEncoder(), prefixed)
    with pytest.raises(EncoderWeightsError, match=r"unexpected \(fc\.weight\)"):
        load_encoder_state_dict(ResNet50DilatedEncoder(), {**formula_sd, "fc.weight": torch.zeros(150, 2048)})
    with pytest.raises(EncoderWeightsError, match=r"wrong shape \(bn1\.weight \(32,\) != \(64,\)\)"):
        load_encoder_state_dict(ResNet50DilatedEncoder(), {**formula_sd, "bn1.weight": torch.ones(32)})


def test_eval_feature_maps_of_target_b(shared_losses, inputs, features, reference) -> None:
    loss = shared_losses["eval"]
    with torch.no_grad():
        maps = loss.features(inputs["target_b"])
    assert [list(m.shape) for m in maps] == reference["feature_shapes"]["b"]
    for index, (value, ref) in enumerate(zip(maps, features["eval_target_b"], strict=True)):
        assert normalised_max_diff(value, ref) <= 1e-5, f"layer{index + 1}"


@pytest.mark.parametrize(("mode", "tolerance"), [("eval", 1e-5), ("train", 5e-4)])
def test_channel_means(shared_losses, inputs, features, mode: str, tolerance: float) -> None:
    loss = shared_losses[mode]
    for name, refs in features[f"{mode}_channel_means"].items():
        with torch.no_grad():
            maps = loss.features(inputs[name])
        for index, (value, ref) in enumerate(zip(maps, refs, strict=True)):
            assert normalised_max_diff(value.mean(dim=(2, 3)), ref) <= tolerance, f"{name} layer{index + 1}"


@pytest.mark.parametrize(("mode", "pair"), CASES)
def test_loss_and_layer_terms(shared_losses, inputs, reference, mode: str, pair: str) -> None:
    ref = reference["losses"][f"{mode}/{pair}/float32"]
    loss = shared_losses[mode]
    pred, target = inputs[f"pred_{pair}"], inputs[f"target_{pair}"]
    with torch.no_grad():
        terms = loss.layer_terms(pred, target)
        total = loss(pred, target)
    for index, (term, ref_term) in enumerate(zip(terms, ref["per_layer_mse"], strict=True)):
        assert rel(float(term), ref_term) <= 1e-5, f"layer{index + 1}"
    assert rel(float(total), ref["loss_weight1"]) <= 1e-5


@pytest.mark.parametrize(("mode", "pair"), [("eval", "a"), ("train", "b")])
def test_config_weight_30(formula_sd, inputs, reference, mode: str, pair: str) -> None:
    loss = make_loss(formula_sd, mode, weight=30.0)
    with torch.no_grad():
        value = float(loss(inputs[f"pred_{pair}"], inputs[f"target_{pair}"]))
    assert rel(value, reference["losses"][f"{mode}/{pair}/float32"]["loss_weight30"]) <= 1e-5


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_float64_gradient_wrt_pred_b(formula_sd, inputs, features, mode: str) -> None:
    loss = make_loss(formula_sd, mode).double()
    pred = inputs["pred_b"].double().requires_grad_(True)
    loss(pred, inputs["target_b"].double()).backward()
    assert normalised_max_diff(pred.grad, features[f"grad_pred_b_{mode}_float64"]) <= 1e-6


@pytest.mark.parametrize(("mode", "tolerance"), [("eval", 1e-2), ("train", 1e-1)])
def test_float32_gradient_wrt_pred_b_loosely(shared_losses, inputs, features, mode: str, tolerance: float) -> None:
    loss = shared_losses[mode]
    pred = inputs["pred_b"].clone().requires_grad_(True)
    loss(pred, inputs["target_b"]).backward()
    assert normalised_max_diff(pred.grad, features[f"grad_pred_b_{mode}"]) <= tolerance


def batchnorm_flags(loss: HRFPerceptualLoss) -> set[bool]:
    return {m.training for m in loss.encoder.modules() if isinstance(m, nn.BatchNorm2d)}


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_bn_mode_survives_parent_train_and_eval(mode: str) -> None:
    loss = HRFPerceptualLoss.stand_in(0, bn_mode=mode)
    parent = nn.ModuleDict({"generator": nn.Conv2d(3, 3, 1), "loss": loss})
    for switch in (parent.train, parent.eval, parent.train):
        switch()
        assert batchnorm_flags(loss) == {mode == "train"}
        assert parent["generator"].training == loss.training  # the flag itself still follows the parent


def test_train_mode_updates_running_stats_and_eval_mode_does_not() -> None:
    images = torch.rand(2, 3, 32, 32)
    for mode, changes in (("train", True), ("eval", False)):
        loss = HRFPerceptualLoss.stand_in(0, bn_mode=mode)
        before = loss.encoder.bn1.running_mean.clone()
        with torch.no_grad():
            loss(images, images.flip(-1))
        assert (not torch.equal(before, loss.encoder.bn1.running_mean)) == changes, mode


def test_gradient_reaches_pred_but_not_the_frozen_encoder() -> None:
    loss = HRFPerceptualLoss.stand_in(0, bn_mode="train")
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    loss(pred, torch.rand(2, 3, 32, 32)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    params = list(loss.encoder.parameters())
    assert len(params) == 55 + 2 * 55  # bias-free convolutions + BatchNorm weight/bias
    assert all(not p.requires_grad and p.grad is None for p in params)


def test_stand_in_is_deterministic_per_seed_and_labelled() -> None:
    first, again, other = (HRFPerceptualLoss.stand_in(seed, bn_mode="eval") for seed in (0, 0, 1))
    assert first.is_stand_in and "stand-in" in first.weights_label and "seed 0" in first.weights_label
    conv = "layer2.1.conv2.weight"
    assert torch.equal(first.encoder.state_dict()[conv], again.encoder.state_dict()[conv])
    assert not torch.equal(first.encoder.state_dict()[conv], other.encoder.state_dict()[conv])
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        values = [float(loss(images, images.roll(1, dims=0))) for loss in (first, again, other)]
    assert values[0] == values[1] != values[2]
    assert all(torch.isfinite(torch.tensor(values)))


def test_invalid_bn_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="bn_mode"):
        HRFPerceptualLoss.stand_in(0, bn_mode="frozen")  # type: ignore[arg-type]


def test_pretrained_without_the_file_names_path_and_fetch_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LAMA_HOME", str(tmp_path))
    with pytest.raises(weights.MissingWeightsError) as info:
        HRFPerceptualLoss.pretrained()
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth") in message
    assert f"lama weights fetch {WEIGHTS_NAME}" in message


def test_pretrained_loads_the_registry_file(tmp_path: Path, monkeypatch, formula_sd, inputs, reference) -> None:
    monkeypatch.setenv("LAMA_HOME", str(tmp_path))
    path = weights.weight_path(WEIGHTS_NAME)
    path.parent.mkdir(parents=True)
    torch.save({k: v for k, v in formula_sd.items() if not k.endswith("num_batches_tracked")}, path)
    loss = HRFPerceptualLoss.pretrained(weight=30.0, bn_mode="eval")
    assert not loss.is_stand_in and str(path) in loss.weights_label
    assert batchnorm_flags(loss) == {False}
    with torch.no_grad():
        value = float(loss(inputs["pred_a"], inputs["target_a"]))
    assert rel(value, reference["losses"]["eval/a/float32"]["loss_weight30"]) <= 1e-5
