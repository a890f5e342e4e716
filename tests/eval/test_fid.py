"""The FID Inception and the Fréchet distance against ``fid-inception/`` and ``eval-protocol/`` (README §8.3–8.4),
closed forms and torchmetrics."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from lama import weights
from lama.eval import fid as fid_module
from lama.eval.fid import (
    WEIGHTS_NAME,
    FIDInceptionV3,
    InceptionWeightsError,
    activation_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
)
from tests.eval import eval_protocol, formula_inception, inception_state_dict, single_thread


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(scope="module")
def fid_dir(fixtures: Path) -> Path:
    return fixtures / "fid-inception"


@pytest.fixture(scope="module")
def reference(fid_dir: Path) -> dict:
    return json.loads((fid_dir / "fid.json").read_text())


@pytest.fixture(scope="module")
def stored(fid_dir: Path) -> dict:
    return torch.load(fid_dir / "features.pt", weights_only=True)


def normalised_max_diff(value: torch.Tensor, ref: torch.Tensor) -> float:
    assert value.shape == ref.shape
    return float((value.double() - ref.double()).abs().max() / ref.double().abs().max())


def image_tolerance(ref: float, features1: np.ndarray, features2: np.ndarray) -> float:
    """README §8.3: |Δ| ≤ 1e-3·|ref| + 5e-6·(tr Σ1 + tr Σ2) for FIDs of image features."""
    trace = np.trace(activation_statistics(features1)[1]) + np.trace(activation_statistics(features2)[1])
    return 1e-3 * abs(ref) + 5e-6 * trace


def test_state_dict_has_the_pytorch_fid_layout(fid_dir: Path) -> None:
    rows = json.loads((fid_dir / "keys.json").read_text())
    own = FIDInceptionV3._empty().state_dict()
    assert [(key, list(value.shape)) for key, value in own.items()] == [(row[0], row[1]) for row in rows]


def test_pool3_features_match_the_official_network(fixtures: Path, fid_dir: Path, stored: dict) -> None:
    net = formula_inception(fixtures)
    inputs = torch.load(fid_dir / "input.pt", weights_only=True)
    with torch.no_grad():
        for name, images in inputs.items():
            chosen = slice(0, 3) if name.startswith("set_") else slice(None)  # every shape, a few of each set
            features = net(images[chosen])
            assert features.shape == (len(images[chosen]), 2048) and features.dtype == torch.float32
            assert normalised_max_diff(features, stored["pool3"][name][chosen]) <= 1e-5, name
        blocks = net.blocks(inputs["single_0"])
    for block, means in zip(blocks, stored["block_channel_means_single_0"], strict=True):
        assert normalised_max_diff(block.mean(dim=(2, 3)).reshape(means.shape), means) <= 1e-5


def test_features_match_the_eval_protocol_activations(fixtures: Path) -> None:
    predicted, images, results = eval_protocol(fixtures)
    activations = torch.load(fixtures / "eval-protocol" / "fid_activations.pt", weights_only=True)
    rows = sorted(results["per_image"], key=lambda row: row["index"])
    assert list(activations["mask_files_in_order"]) == [row["mask_file"] for row in rows]
    chosen = [13, 23]  # a few pairs suffice here; the whole set goes through ValidationMetrics elsewhere
    with torch.no_grad():
        assert normalised_max_diff(formula_inception(fixtures)(predicted[chosen]),
                                   activations["fid_activations_inpainted"][chosen]) <= 1e-5
        assert normalised_max_diff(formula_inception(fixtures)(images[chosen]),
                                   activations["fid_activations_image"][chosen]) <= 1e-5


def test_loading_is_strict_but_accepts_files_without_num_batches_tracked(fixtures: Path) -> None:
    source = inception_state_dict(fixtures)
    lean = {key: value for key, value in source.items() if not key.endswith("num_batches_tracked")}
    assert len(lean) < len(source)
    net = FIDInceptionV3.from_state_dict(lean, weights_label="lean")
    assert torch.equal(net.Mixed_7c.branch_pool.conv.weight, source["Mixed_7c.branch_pool.conv.weight"])
    with pytest.raises(InceptionWeightsError, match=r"1 missing \(fc\.bias\)"):
        FIDInceptionV3.from_state_dict({k: v for k, v in lean.items() if k != "fc.bias"}, weights_label="x")
    with pytest.raises(InceptionWeightsError, match=r"1 unexpected \(AuxLogits\.fc\.weight\)"):
        FIDInceptionV3.from_state_dict({**lean, "AuxLogits.fc.weight": torch.zeros(1000, 768)}, weights_label="x")
    with pytest.raises(InceptionWeightsError, match=r"wrong shape \(fc\.weight \(1000, 2048\)"):
        FIDInceptionV3.from_state_dict({**lean, "fc.weight": torch.zeros(1000, 2048)}, weights_label="x")


def test_pretrained_reads_the_registry_file_and_never_downloads(
    fixtures: Path, fid_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMA_HOME", str(tmp_path))
    with pytest.raises(weights.MissingWeightsError, match=f"lama weights fetch {WEIGHTS_NAME}"):
        FIDInceptionV3.pretrained()
    path = weights.weight_path(WEIGHTS_NAME)
    assert path.name == "pt_inception-2015-12-05-6726825d.pth"
    path.parent.mkdir(parents=True)
    torch.save(inception_state_dict(fixtures), path)
    net = FIDInceptionV3.pretrained()
    assert not net.is_stand_in and str(path) in net.weights_label
    image = torch.load(fid_dir / "input.pt", weights_only=True)["single_1"]
    with torch.no_grad():
        assert torch.equal(net(image), formula_inception(fixtures)(image))


def test_stand_in_is_seeded_labelled_and_discriminative() -> None:
    rng_state = torch.get_rng_state()
    net, again, other = FIDInceptionV3.stand_in(3), FIDInceptionV3.stand_in(3), FIDInceptionV3.stand_in(4)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert net.is_stand_in and net.weights_label.startswith("stand-in") and "seed 3" in net.weights_label
    own, twin = net.state_dict(), again.state_dict()
    assert all(torch.equal(own[key], twin[key]) for key in own)  # every tensor set, none left as raw memory
    images = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = net(images)
        assert torch.equal(features, again(images))
        assert not torch.allclose(features[:1], other(images[:1]))
    assert torch.isfinite(features).all() and features.shape == (2, 2048)
    assert (features.std(dim=0) > 0).sum() > 100  # images are told apart
    assert net.train().training is False


def test_frechet_distance_of_the_official_random_vectors(reference: dict, stored: dict) -> None:
    vectors = {key: value.float() for key, value in stored["vectors_float16"].items()}
    expected = reference["fid"]
    # Full rank (64 samples, 32 dims): pytorch-fid's sqrtm route.
    value = frechet_distance(vectors["d32_a"], vectors["d32_b"])
    assert abs(value - expected["random_d32_64_vs_64"]) <= 1e-6 * expected["random_d32_64_vs_64"]
    # Rank-deficient 2048 dims: the closed form reproduces the official value within the same tolerance.
    value = frechet_distance(vectors["d2048_a"], vectors["d2048_b"], method="svd")
    assert abs(value - expected["random_d2048_64_vs_64"]) <= 1e-6 * expected["random_d2048_64_vs_64"]


def test_frechet_distance_of_image_feature_sets(reference: dict, stored: dict) -> None:
    real, fake = (stored["pool3"][name].numpy() for name in ("set_real", "set_fake"))
    cases = {
        "sets_fake_vs_real_12_vs_12": (fake, real),
        "sets_real_first6_vs_real_last6": (real[:6], real[6:]),
        "sets_fake_vs_real_first3": (fake[:3], real[:3]),
        "identical_sets_real_vs_real": (real, real),
    }
    for name, (first, second) in cases.items():
        value = frechet_distance(first, second, method="svd")
        assert abs(value - reference["fid"][name]) <= image_tolerance(reference["fid"][name], first, second), name
    assert abs(frechet_distance(real, real, method="svd")) <= 1e-8  # exact, unlike sqrtm's -0.017 noise floor
    groups = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3])
    for group, expected in reference["fid"]["fidscore_groups"].items():
        chosen = groups == int(group)
        value = frechet_distance(fake[chosen], real[chosen], method="svd")
        if expected is None:
            assert math.isnan(value)  # a single sample has no covariance
        else:
            assert abs(value - expected) <= image_tolerance(expected, fake[chosen], real[chosen])


class Passthrough(nn.Module):
    """A "feature extractor" for torchmetrics that hands our features through unchanged."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.num_features = dims

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@pytest.mark.parametrize(("n1", "n2", "dims"), [(64, 64, 32), (20, 14, 64), (8, 8, 256)])
def test_both_methods_agree_with_torchmetrics(n1: int, n2: int, dims: int) -> None:
    """Full-rank and rank-deficient (fewer samples than dims) covariances; torchmetrics uses eigvals in float64."""
    generator = torch.Generator().manual_seed(dims)
    real = torch.randn(n1, dims, generator=generator).relu() * 3
    fake = (torch.randn(n2, dims, generator=generator) + 0.3).relu() * 2.5
    metric = FrechetInceptionDistance(feature=Passthrough(dims))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    expected = float(metric.compute())
    for method in ("sqrtm", "svd"):
        value = frechet_distance(fake, real, method=method)
        assert math.isfinite(value) and abs(value - expected) <= 1e-6 * expected, method


def diagonal_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    generator = np.random.default_rng(7)
    mu1, mu2 = generator.normal(size=16), generator.normal(size=16)
    var1, var2 = generator.uniform(0, 2, size=16), generator.uniform(0, 2, size=16)
    var1[:3] = 0  # singular, like any covariance of fewer samples than dimensions
    return mu1, var1, mu2, var2


def test_frechet_distance_equals_the_diagonal_closed_form() -> None:
    mu1, var1, mu2, var2 = diagonal_case()
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    value = frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2))
    assert abs(value - expected) <= 1e-10 * expected


def test_the_eps_fallback_when_sqrtm_is_not_finite(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def failing_once(matrix: np.ndarray) -> np.ndarray:
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid_module.scipy.linalg, "sqrtm", failing_once)
    mu1, var1, mu2, var2 = diagonal_case()
    with caplog.at_level(logging.WARNING, logger="lama.eval.fid"):
        value = frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2), eps=1e-6)
    assert len(calls) == 2 and "adding 1e-06" in caplog.text
    # The retry uses (Σ1 + εI)(Σ2 + εI) for the square root only; the traces stay those of Σ1 and Σ2.
    root = np.sqrt((var1 + 1e-6) * (var2 + 1e-6))
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * root)
    assert abs(value - expected) <= 1e-10 * expected


def test_imaginary_parts_are_dropped_within_tolerance_and_refused_beyond(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sqrtm = scipy.linalg.sqrtm
    mu1, var1, mu2, var2 = diagonal_case()
    exact = frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2))
    for imaginary, ok in ((1e-3, True), (0.5, False)):
        monkeypatch.setattr(fid_module.scipy.linalg, "sqrtm",
                            lambda matrix, im=imaginary: real_sqrtm(matrix) + 1j * im * np.eye(len(matrix)))
        if ok:
            assert frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(exact)
        else:
            with pytest.raises(ValueError, match=r"imaginary component 0\.5"):
                frechet_distance_from_statistics(mu1, np.diag(var1), mu2, np.diag(var2))


def test_degenerate_inputs() -> None:
    features = np.random.default_rng(0).normal(size=(5, 8))
    assert math.isnan(frechet_distance(features[:1], features))
    broken = features.copy()
    broken[2, 3] = np.nan
    assert math.isnan(frechet_distance(broken, features))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(features, features, method="eigvals")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(features, features[:, :4])
    assert frechet_distance(features, features, method="svd") == pytest.approx(0, abs=1e-12)


def test_official_sqrtm_route_on_2048_dims_and_fewer_samples(fixtures: Path) -> None:
    """The default route on the official eval activations: 32 samples, 2048 dims, a singular covariance product."""
    activations = torch.load(fixtures / "eval-protocol" / "fid_activations.pt", weights_only=True)
    results = json.loads((fixtures / "eval-protocol" / "results.json").read_text())
    inpainted, images = activations["fid_activations_inpainted"].numpy(), activations["fid_activations_image"].numpy()
    expected = results["results"]["fid"]["total"]["mean"]
    value = frechet_distance(inpainted, images)  # sqrtm
    tolerance = image_tolerance(expected, inpainted, images)
    assert math.isfinite(value) and abs(value - expected) <= tolerance
    assert abs(frechet_distance(inpainted, images, method="svd") - value) <= tolerance
