"""Fine-tuning: starting from a model dir (train.init), accumulation, the schedule, frozen parts, SyncBatchNorm."""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lama.cli import main
from lama.config import ConfigError
from lama.data.loader import TrainLoader
from lama.losses.reconstruction import masked_l1_loss
from lama.models.generators import build_generator
from lama.models.model_dir import InpaintingModel, load_model, save_model_dir
from lama.models.parts import generator_parts
from lama.safe_load import load_checkpoint_file
from lama.train import load_config, train
from lama.train.loop import make_accelerator
from lama.train.schedule import lr_factor
from lama.train.step import GanStep, synchronise_batchnorm
from tests.train.conftest import TINY_GENERATOR, tiny_config

TINY_DISCRIMINATOR = {"ndf": 8, "n_layers": 3}
# The official-layout fixture's discriminator section (its config.yaml): ndf 4, four layers.
BIGLAMA_FIXTURE_DISCRIMINATOR = {"ndf": 4, "n_layers": 4}


def _biglama_config(fixtures: Path, embedded_data: Path, out_dir: Path, **train_values: object):
    body = tiny_config(embedded_data, out_dir, data={"val": None}, tracking={"enabled": False},
                       discriminator=BIGLAMA_FIXTURE_DISCRIMINATOR,
                       train={"init": str(fixtures / "tiny-biglama"), **train_values})
    body["generator"] = "from-init"
    return load_config(base=body)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_file(path)["state_dict"]  # the official file holds Lightning objects


def test_step_zero_from_an_official_checkpoint_predicts_as_lama_predict_on_that_dir(
    fixtures: Path, embedded_data: Path, tmp_path: Path
) -> None:
    """Lightning pickles with discriminator, loss and evaluator keys: the run starts from exactly that model."""
    config = _biglama_config(fixtures, embedded_data, tmp_path / "run", steps=0)
    assert config.generator["n_blocks"] == 3 and config.generator["ngf"] == 8  # generator=from-init took the dir's
    result = train(config)
    assert (result.status, result.step) == ("finished", 0)
    official = _state(fixtures / "tiny-biglama" / "models" / "best.ckpt")
    ours = _state(tmp_path / "run" / "models" / "best.ckpt")
    for prefix in ("generator.", "discriminator."):
        keys = sorted(key for key in official if key.startswith(prefix))
        assert keys and keys == sorted(key for key in ours if key.startswith(prefix)), prefix
        for key in keys:
            assert torch.equal(official[key], ours[key]), key
    inputs = fixtures / "tiny-biglama" / "input"
    for model, out in ((fixtures / "tiny-biglama", tmp_path / "official"), (tmp_path / "run", tmp_path / "step0")):
        assert main(["predict", str(model), str(inputs), str(out), "--quiet", "--device", "cpu"]) == 0
    written = sorted(path.relative_to(tmp_path / "official") for path in (tmp_path / "official").rglob("*.png"))
    assert len(written) == 5
    for relative in written:
        assert (tmp_path / "step0" / relative).read_bytes() == (tmp_path / "official" / relative).read_bytes()


@pytest.mark.parametrize(("override", "message"), [
    ({"generator": "lama-fourier"}, "its generator has n_blocks=3, the run's 9; set generator=from-init"),
    ({"discriminator": {"ndf": 8}}, "its discriminator has ndf=4, the run's discriminator.ndf=8; set "
                                    "discriminator.ndf=4 or train.init_discriminator=false"),
])
def test_an_init_that_does_not_fit_the_run_fails_before_any_work(
    fixtures: Path, embedded_data: Path, tmp_path: Path, override: dict, message: str
) -> None:
    body = tiny_config(embedded_data, tmp_path / "run", discriminator=BIGLAMA_FIXTURE_DISCRIMINATOR,
                       train={"init": str(fixtures / "tiny-biglama")})
    body["generator"] = "from-init"
    body.update(override)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as error:
        load_config(base=body)
    assert "\n" not in str(error.value) and not (tmp_path / "run").exists()
    body.setdefault("train", {})["init_discriminator"] = False  # a fresh D: its section is the run's to choose
    if "discriminator" in override:
        assert load_config(base=body).discriminator.ndf == 8


def test_init_weights_that_do_not_fit_their_config_fail_before_any_work(
    fixtures: Path, embedded_data: Path, tmp_path: Path
) -> None:
    """A model dir whose checkpoint lost a key, or whose config names another width than its weights."""
    broken = tmp_path / "broken"
    (broken / "models").mkdir(parents=True)
    (broken / "config.yaml").write_bytes((fixtures / "tiny-biglama" / "config.yaml").read_bytes())
    checkpoint = {"state_dict": _state(fixtures / "tiny-biglama" / "models" / "best.ckpt")}
    dropped = sorted(key for key in checkpoint["state_dict"] if key.startswith("generator."))[0]
    del checkpoint["state_dict"][dropped]
    torch.save(checkpoint, broken / "models" / "best.ckpt")
    config = _biglama_config(fixtures, embedded_data, tmp_path / "run", steps=2)
    config.train.init = str(broken)
    with pytest.raises(ConfigError, match=r"train.init: .*best.ckpt: weights do not match the run's generator "
                                          r"\(1 missing"):
        train(config)
    assert not (tmp_path / "run").exists()
    (broken / "models" / "best.ckpt").write_bytes((fixtures / "tiny-biglama/models/best.ckpt").read_bytes())
    (broken / "config.yaml").write_text((broken / "config.yaml").read_text().replace("ngf: 8", "ngf: 16"))
    config = _biglama_config(fixtures, embedded_data, tmp_path / "run", steps=2)
    config.train.init = str(broken)
    config.generator = load_config(base={**tiny_config(embedded_data, tmp_path / "run", train={"init": str(broken)},
                                                       discriminator=BIGLAMA_FIXTURE_DISCRIMINATOR),
                                         "generator": "from-init"}).generator
    with pytest.raises(ConfigError, match=r"weights do not fit the run's generator: size mismatch"):
        train(config)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"train.init='.*': .*config.yaml: missing"):
        load_config(base=tiny_config(embedded_data, tmp_path / "run", train={"init": str(tmp_path)}))


def _fixed_batch(embedded_data: Path, size: int = 8) -> dict[str, torch.Tensor]:
    config = load_config(base=tiny_config(embedded_data, Path("unused")))
    loader_config = config.data.loader
    loader_config.batch_size = size
    return next(iter(TrainLoader(config.data.train, loader_config, device=torch.device("cpu"))))


def _training_l1(model: InpaintingModel, batch: dict[str, torch.Tensor], weight_missing: float) -> float:
    with torch.no_grad():
        predicted = model(batch["image"], batch["mask"])
    return masked_l1_loss(predicted, batch["image"], batch["mask"], 10.0, weight_missing).item()


def test_a_short_fine_tuning_lowers_the_training_l1_and_keeps_frozen_parts(
    fixtures: Path, embedded_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight steps of 2 x 2 images with a warm-up and cosine decay, the encoder frozen: the L1 of the training loss
    falls on a fixed batch, and the encoder's weights and BatchNorm statistics are exactly the init's."""
    config = _biglama_config(fixtures, embedded_data, tmp_path / "run", steps=12, accumulate=2, freeze=["encoder"],
                             log_every=1, save_every=12, sample_every=100)
    config.optim.schedule, config.optim.warmup_steps = "cosine", 2
    with caplog.at_level(logging.WARNING, logger="lama.train.loop"):
        train(config)
    assert "effective batch 4 = data.loader.batch_size 2 x train.accumulate 2 x 1 process: below 20" in caplog.text
    batch = _fixed_batch(embedded_data)
    before, after = load_model(fixtures / "tiny-biglama"), load_model(tmp_path / "run")
    for weight_missing in (0.0, 1.0):  # the official weights (known area only) and the hole as well
        assert _training_l1(after, batch, weight_missing) < 0.97 * _training_l1(before, batch, weight_missing)

    official, ours = _state(fixtures / "tiny-biglama" / "models" / "best.ckpt"), _state(tmp_path / "run" / "models"
                                                                                          / "best.ckpt")
    parts = generator_parts(before)
    encoder = {f"generator.{name}" for name, _ in _named(before.generator, parts["encoder"])}
    bottleneck = {f"generator.{name}" for name, _ in _named(before.generator, parts["bottleneck"])}
    assert encoder and all(torch.equal(official[key], ours[key]) for key in encoder)  # running stats included
    assert any(not torch.equal(official[key], ours[key]) for key in bottleneck)
    log = [line for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    factors = [float(line.split('"train/lr_factor": ')[1].split(",")[0].rstrip("}")) for line in log]
    assert factors == pytest.approx([lr_factor(step, 12, "cosine", 2) for step in range(12)])


def _named(root: nn.Module, layers: list[nn.Module]) -> list[tuple[str, torch.Tensor]]:
    wanted = {id(layer) for layer in layers}
    names = {id(module): name for name, module in root.named_modules()}
    found = []
    for layer in layers:
        assert id(layer) in wanted
        prefix = names[id(layer)]
        found += [(f"{prefix}.{name}", value) for name, value in layer.state_dict().items()]
    return found


def test_accumulating_two_micro_batches_of_two_equals_one_batch_of_four(embedded_data: Path, tmp_path: Path) -> None:
    """BatchNorm aside: in train mode it normalises each micro-batch with its own statistics, so the comparison runs
    every BatchNorm layer (both networks' and the HRF encoder's, which official training runs in train mode) on its
    running statistics (eval mode), where each sample's computation is independent of the batch. Tiny rates make
    the two G updates (Adam's first step is ±lr per weight) too small to change the D step, so the gradients of
    both steps are compared."""
    batch = _fixed_batch(embedded_data, size=4)
    gradients = []
    for accumulate in (1, 2):
        body = tiny_config(embedded_data, tmp_path / f"run{accumulate}", train={"accumulate": accumulate},
                           optim={"generator_lr": 1e-12, "discriminator_lr": 1e-12})
        config = load_config(base=body)
        torch.manual_seed(0)
        step = GanStep.build(config, make_accelerator())
        for module in (*step.generator.modules(), *step.discriminator.modules(), *step.loss.modules()):
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        torch.manual_seed(1)
        terms, predicted = step(batch["image"], batch["mask"])
        assert predicted.shape == batch["image"].shape
        gradients.append((terms, [p.grad.clone() for p in step.generator.parameters()],
                          [p.grad.clone() for p in step.discriminator.parameters()]))
    (terms_one, g_one, d_one), (terms_two, g_two, d_two) = gradients
    for name in ("gen/l1", "gen/total", "discr/total", "discr/r1"):
        assert terms_two[name].item() == pytest.approx(terms_one[name].item(), rel=1e-4), name
    for one, two in ((g_one, g_two), (d_one, d_two)):
        for left, right in zip(one, two, strict=True):
            torch.testing.assert_close(right, left, rtol=1e-3, atol=1e-6)


def test_the_schedule_is_a_warm_up_then_constant_or_a_cosine_to_zero() -> None:
    assert [lr_factor(step, 10, "constant", 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = [lr_factor(step, 12, "cosine", 2) for step in range(13)]
    assert cosine[:3] == [0.5, 1.0, 1.0]
    assert cosine[7] == pytest.approx(0.5)  # halfway through the 10 steps after the warm-up
    assert cosine[12] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(cosine[2:]))
    assert lr_factor(5, 12, "cosine", 0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 12)))
    with pytest.raises(ValueError, match="schedule='step'"):
        lr_factor(0, 1, "step")


def test_sync_batchnorm_converts_under_several_gpus_and_refuses_cpu_processes() -> None:
    model = InpaintingModel(build_generator(TINY_GENERATOR), TINY_GENERATOR)
    one = SimpleNamespace(num_processes=1, device=torch.device("cpu"))
    assert synchronise_batchnorm(model, one) is model
    with pytest.raises(ConfigError, match=r"train.sync_bn=true: torch's SyncBatchNorm runs on GPUs only; "
                                          r"this launch is 2 cpu processes"):
        synchronise_batchnorm(model, SimpleNamespace(num_processes=2, device=torch.device("cpu")))
    converted = synchronise_batchnorm(model, SimpleNamespace(num_processes=2, device=torch.device("cuda")))
    kinds = {type(module) for module in converted.modules()}
    assert nn.SyncBatchNorm in kinds and nn.BatchNorm2d not in kinds
    assert converted.state_dict().keys() == model.state_dict().keys()  # the model dir's keys stay official


def test_a_model_dir_of_ours_is_a_valid_init_with_its_discriminator(embedded_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = InpaintingModel(build_generator(TINY_GENERATOR), TINY_GENERATOR)
    from lama.models.discriminator import NLayerDiscriminator

    discriminator = NLayerDiscriminator(3, **TINY_DISCRIMINATOR)
    save_model_dir(source, tmp_path / "source", discriminator=discriminator,
                   discriminator_config={"kind": "pix2pixhd_nlayer", "input_nc": 3, **TINY_DISCRIMINATOR})
    body = tiny_config(embedded_data, tmp_path / "run", data={"val": None}, tracking={"enabled": False},
                       train={"init": str(tmp_path / "source"), "steps": 0})
    train(load_config(base=body))
    state = _state(tmp_path / "run" / "models" / "best.ckpt")
    for key, value in discriminator.state_dict().items():
        assert torch.equal(state[f"discriminator.{key}"], value), key
