"""LPIPS (net-lin, vgg) against the official evaluator's per-image values and torchmetrics' implementation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn
from torchmetrics.functional.image.lpips import _LPIPS

from lama import weights
from lama.eval.lpips import LPIPSVGG, WEIGHTS_NAME, LPIPSWeightsError, heads_path
from tests.eval import eval_protocol, formula_lpips, single_thread, vgg16_state_dict


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


def random_pair(shape: tuple[int, ...] = (3, 3, 48, 40), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=generator)
    predicted = (target + 0.2 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return predicted, target


def test_shipped_heads_are_the_official_lama_file(fixtures: Path) -> None:
    results = json.loads((fixtures / "eval-protocol" / "results.json").read_text())
    assert weights.sha256_of(heads_path()) == results["lpips_lin_weights_sha256"]


def test_lpips_matches_the_official_evaluator_per_image(fixtures: Path) -> None:
    predicted, images, results = eval_protocol(fixtures)
    reference = torch.tensor(
        [row["lpips"] for row in sorted(results["per_image"], key=lambda row: row["index"])], dtype=torch.float64
    )
    with torch.no_grad():
        values = formula_lpips(fixtures)(predicted, images).double()
    assert values.shape == (32,)
    error = (values - reference).abs()
    assert ((error <= 1e-5 * reference.abs()) | (error <= 1e-7)).all(), error.max()
    assert abs(values.mean().item() - results["results"]["lpips"]["total"]["mean"]) <= 1e-7


def test_lpips_matches_torchmetrics_with_the_same_backbone(fixtures: Path) -> None:
    """torchmetrics ships its own copy of the heads; the backbone is copied conv by conv, in order, not by name."""
    with torch.random.fork_rng():
        reference = _LPIPS(pretrained=True, net="vgg", pnet_rand=True).eval()
    source = vgg16_state_dict(fixtures)
    convs = [module for module in reference.net.modules() if isinstance(module, nn.Conv2d)]
    indices = sorted({int(key.split(".")[1]) for key in source})
    assert len(convs) == len(indices) == 13
    with torch.no_grad():
        for conv, index in zip(convs, indices, strict=True):
            conv.weight.copy_(source[f"features.{index}.weight"])
            conv.bias.copy_(source[f"features.{index}.bias"])
        predicted, target = random_pair()
        expected = reference(2 * predicted - 1, 2 * target - 1).reshape(-1)
        values = formula_lpips(fixtures)(predicted, target)
    assert values.shape == (3,) and (values > 0).all()
    assert torch.allclose(values, expected, rtol=1e-5, atol=1e-8)


def test_lpips_is_symmetric_and_zero_on_identical_images(fixtures: Path) -> None:
    predicted, target = random_pair((2, 3, 32, 32), seed=1)
    metric = formula_lpips(fixtures)
    with torch.no_grad():
        assert torch.allclose(metric(predicted, target), metric(target, predicted), rtol=1e-6)
        assert torch.equal(metric(target, target), torch.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        metric(predicted, target[:1])


def test_stand_in_is_seeded_labelled_and_keeps_the_real_heads() -> None:
    rng_state = torch.get_rng_state()
    first, again, other = LPIPSVGG.stand_in(5), LPIPSVGG.stand_in(5), LPIPSVGG.stand_in(6)
    assert torch.equal(torch.get_rng_state(), rng_state)  # building never draws from the global RNG
    assert first.is_stand_in and "stand-in" in first.weights_label and "seed 5" in first.weights_label
    own, twin = first.state_dict(), again.state_dict()
    assert all(torch.equal(own[key], twin[key]) for key in own)  # every tensor set, none left as raw memory
    heads = torch.load(heads_path(), map_location="cpu", weights_only=True)
    for key, value in heads.items():
        assert torch.equal(first.model.state_dict()[key], value)
    predicted, target = random_pair((2, 3, 32, 32), seed=2)
    with torch.no_grad():
        values = first(predicted, target)
        assert torch.equal(values, again(predicted, target))
        assert not torch.allclose(values, other(predicted, target))
    assert torch.isfinite(values).all() and (values > 0).all()
    assert first.train().training is False  # the heads' dropout never switches on


def test_pretrained_reads_the_registry_file_and_never_downloads(
    fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMA_HOME", str(tmp_path))
    with pytest.raises(weights.MissingWeightsError, match=f"lama weights fetch {WEIGHTS_NAME}"):
        LPIPSVGG.pretrained()
    path = weights.weight_path(WEIGHTS_NAME)
    path.parent.mkdir(parents=True)
    state_dict = dict(vgg16_state_dict(fixtures))
    state_dict["classifier.6.bias"] = torch.zeros(1000)  # the real file also holds the (ignored) classifier
    torch.save(state_dict, path)
    metric = LPIPSVGG.pretrained()
    assert not metric.is_stand_in and str(path) in metric.weights_label
    predicted, target = random_pair((2, 3, 32, 32), seed=3)
    with torch.no_grad():
        assert torch.equal(metric(predicted, target), formula_lpips(fixtures)(predicted, target))


def test_backbone_state_dicts_are_checked(fixtures: Path) -> None:
    source = vgg16_state_dict(fixtures)
    missing = {key: value for key, value in source.items() if key != "features.28.bias"}
    with pytest.raises(LPIPSWeightsError, match=r"missing: features\.28\.bias"):
        LPIPSVGG.from_vgg16_state_dict(missing, weights_label="x")
    with pytest.raises(LPIPSWeightsError, match=r"unexpected: module\.features\.0\.weight"):
        LPIPSVGG.from_vgg16_state_dict({**source, "module.features.0.weight": source["features.0.weight"]},
                                       weights_label="x")
    with pytest.raises(LPIPSWeightsError, match=r"wrong shape: features\.0\.bias"):
        LPIPSVGG.from_vgg16_state_dict({**source, "features.0.bias": torch.zeros(3)}, weights_label="x")
