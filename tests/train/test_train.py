"""The training run in one process: config checks, the GAN step against a plain loop, bf16, the model dir, MLflow,
and a non-finite loss."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from accelerate import Accelerator

from benchmarks.plain_loop import plain_step
from lama.config import ConfigError
from lama.losses.total import LamaLoss, LossConfig
from lama.models.discriminator import NLayerDiscriminator
from lama.models.generators import build_generator
from lama.models.model_dir import InpaintingModel, load_model
from lama.train import NonFiniteLossError, load_config, train
from lama.train.config import config_difference
from lama.train.loop import resolve_precision
from lama.train.step import GanStep
from tests.train.conftest import TINY_GENERATOR, tiny_config


@pytest.mark.parametrize(("override", "message"), [
    ("loss.kapa=1", "loss.kapa: Key 'kapa' not in 'LossConfig'"),
    ("optim.generator_lr=fast", "optim.generator_lr: Value 'fast'"),
    ("optim.generator_lr=0", "optim.generator_lr=0.0: expected a positive finite number"),
    ("train.steps=0", "train.steps=0: only with train.init"),
    ("train.accumulate=0", "train.accumulate=0: expected a positive integer"),
    ("optim.schedule=linear", "optim.schedule='linear': expected one of constant, cosine"),
    ("optim.warmup_steps=-1", "optim.warmup_steps=-1: expected an integer >= 0"),
    ("train.freeze=[encoders]", "train.freeze: unknown part 'encoders'; expected any of encoder, bottleneck, decoder"),
    ("train.freeze=[encoder,bottleneck,decoder]", "expected distinct parts, not all of them (nothing would train)"),
    ("generator=from-init", "generator=from-init: needs train.init"),
    ("train.init=/nowhere", "train.init='/nowhere': not found; expected a model dir"),
    ("train.best_metric=accuracy", "train.best_metric='accuracy': expected one of"),
    ("train.resume=/nowhere", "train.resume='/nowhere': expected auto, never or an existing state dir"),
    ("train.mixed_precision=fp16", "train.mixed_precision='fp16': expected one of auto, no, bf16"),
    ("data.loader.batch_size=0", "data.loader.batch_size=0: expected a positive integer"),
    ("data.val_limit=1", "data.val_limit=1: expected null or >= 2"),
    ("loss.mask_interp=cubic", "loss.mask_interp must be one of"),
    ("generator=lama-fourier-huge", "generator: unknown generator 'lama-fourier-huge'"),
    ("generator.n_blocks=2", "generator"),  # a preset name is not a section: the override cannot merge
    ("steps", "'steps': expected key=value"),
    ("data.loader.crop_size=7", "data.loader.crop_size=7: expected >= 9 with data.loader.augment=distortions"),
    ("data.loader.crop_size=20", "data.loader.crop_size=20: expected a multiple of 8 that is >= 16"),
    ("discriminator.input_nc=4", "discriminator.input_nc=4: expected 3"),
    ("generator=5", "generator=5: expected a preset name or an official generator section"),
])
def test_bad_config_values_fail_with_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_config(overrides=[override])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (["generator.ngf=-3"], "generator.ngf=-3: expected a positive integer"),
    (["generator.n_blocks=1.5"], "generator.n_blocks=1.5: expected an integer >= 0"),
    (["generator.resnet_conv_kwargs.ratio_gin=2"], "generator.resnet_conv_kwargs.ratio_gin=2: expected a number in"),
    (["generator.input_nc=3"], "generator.input_nc=3: expected 4, the image with its holes zeroed, then the mask"),
    (["generator.output_nc=1"], "generator.output_nc=1: expected 3"),
    (["data.loader.crop_size=36"], "data.loader.crop_size=36: expected a multiple of 8 that is >= 16"),
    (["generator.n_downsampling=6"], "data.loader.crop_size=64: expected a multiple of 64 that is >= 128"),
    (["data.loader.crop_size=8", "data.loader.augment=flip"], "data.loader.crop_size=8: expected a multiple of 8 "
                                                              "that is >= 16"),
    (["data.loader.crop_size=48", "data.loader.scale_masks=false"],
     "data.loader.crop_size=48: too small for data.loader.masks=wide (scale_masks=false): wide: box masks"),
    (["data.loader.crop_size=24", "data.loader.masks=narrow", "data.loader.scale_masks=false"],
     "data.loader.crop_size=24: too small for data.loader.masks=narrow (scale_masks=false): narrow: box masks"),
])
def test_a_crop_or_a_width_the_run_cannot_use_fails_with_the_key(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    base = tiny_config(tmp_path, tmp_path / "run")
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_config(base=base, overrides=overrides)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("overrides", "message"), [
    # The reported failure: CLAHE cannot tile a 7² crop, found in a DataLoader worker after the run had started.
    (["data.loader.crop_size=7", "data.loader.augment=distortions", "data.loader.num_workers=1"],
     "lama train: data.loader.crop_size=7: expected >= 9 with data.loader.augment=distortions"),
    (["data.loader.crop_size=7"], "lama train: data.loader.crop_size=7: expected a multiple of 8 that is >= 16"),
    (["generator.ngf=-3"], "lama train: generator.ngf=-3: expected a positive integer"),
])
def test_lama_train_refuses_a_bad_crop_or_width_before_the_run_starts(
    tmp_path: Path, embedded_data: Path, capsys: pytest.CaptureFixture, overrides: list[str], message: str
) -> None:
    from lama.cli import main

    out_dir = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(embedded_data, out_dir)))
    assert main(["train", str(config), *overrides]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith(message), error
    assert not out_dir.exists()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()  # no MLflow run


def test_the_default_config_is_the_official_recipe() -> None:
    config = load_config()
    assert (config.optim.generator_lr, config.optim.discriminator_lr, config.optim.grad_clip) == (1e-3, 1e-4, 1.0)
    assert (config.loss.kappa, config.loss.alpha, config.loss.beta, config.loss.gamma) == (10, 30, 100, 0.001)
    assert config.data.loader.batch_size == 10 and config.train.best_metric == "ssim_fid100_f1"
    assert config.generator["n_blocks"] == 9 and config.generator["resnet_conv_kwargs"]["ratio_gin"] == 0.75


def test_a_missing_dataset_fails_before_the_first_step(tmp_path: Path, embedded_data: Path) -> None:
    config = load_config(base=tiny_config(embedded_data, tmp_path / "run", data={"train": str(tmp_path / "none")}))
    with pytest.raises(FileNotFoundError, match="none"):
        train(config)
    assert not (tmp_path / "run").exists()


def _networks(seed: int = 0) -> tuple[InpaintingModel, NLayerDiscriminator, LamaLoss]:
    torch.manual_seed(seed)
    generator = InpaintingModel(build_generator(TINY_GENERATOR), TINY_GENERATOR)
    discriminator = NLayerDiscriminator(3, 8, 3)
    loss = LamaLoss(LossConfig(hrf_weights="stand-in", alpha=30))
    return generator, discriminator, loss


def _batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.rand(2, 3, 64, 64, generator=generator),
             (torch.rand(2, 1, 64, 64, generator=generator) > 0.6).float()) for _ in range(count)]


def test_the_gan_step_on_accelerate_equals_a_plain_eager_loop() -> None:
    generator, discriminator, loss = _networks()
    plain = [copy.deepcopy(module) for module in (generator, discriminator)]
    accelerator = Accelerator(cpu=True)
    optimizers = [torch.optim.Adam(generator.parameters(), 1e-3), torch.optim.Adam(discriminator.parameters(), 1e-4)]
    prepared = accelerator.prepare(generator, discriminator, *optimizers)
    step = GanStep(accelerator, *prepared[:2], loss, *prepared[2:], grad_clip=1.0)
    plain_optimizers = [torch.optim.Adam(plain[0].parameters(), 1e-3), torch.optim.Adam(plain[1].parameters(), 1e-4)]
    for image, mask in _batches(3):
        terms, _ = step(image, mask)
        reference = plain_step(*plain, loss, *plain_optimizers, image, mask, grad_clip=1.0)
        assert terms["gen/total"].item() == pytest.approx(reference[0], rel=1e-6)
        assert terms["discr/total"].item() == pytest.approx(reference[1], rel=1e-6)
    for ours, theirs in zip((generator, discriminator), plain, strict=True):
        for (name, value), other in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
            assert torch.allclose(value.float(), other.float(), rtol=1e-5, atol=1e-7), name
    assert not torch.equal(generator.state_dict()["generator.model.1.ffc.convl2l.weight"],
                           _networks()[0].state_dict()["generator.model.1.ffc.convl2l.weight"])


def test_bf16_runs_the_convolutions_in_bf16_and_the_ffts_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    generator, discriminator, loss = _networks()
    fft_inputs: list[torch.dtype] = []
    conv_outputs: list[torch.dtype] = []
    rfftn = torch.fft.rfftn
    monkeypatch.setattr(torch.fft, "rfftn", lambda x, *a, **k: fft_inputs.append(x.dtype) or rfftn(x, *a, **k))
    generator.generator.model[1].ffc.convl2l.register_forward_hook(lambda m, i, o: conv_outputs.append(o.dtype))
    accelerator = Accelerator(cpu=True)
    optimizers = [torch.optim.Adam(generator.parameters(), 1e-3), torch.optim.Adam(discriminator.parameters(), 1e-4)]
    step = GanStep(accelerator, generator, discriminator, loss, *optimizers, grad_clip=1.0,
                   autocast_dtype=resolve_precision("bf16", torch.device("cpu")))
    terms, _ = step(*_batches(1)[0])
    assert all(torch.isfinite(value) for value in terms.values())
    assert set(conv_outputs) == {torch.bfloat16} and fft_inputs and set(fft_inputs) == {torch.float32}
    assert resolve_precision("auto", torch.device("cpu")) is None  # CPU trains in float32 unless asked


def test_a_run_writes_an_official_model_dir_a_log_and_an_mlflow_run(
    tmp_path: Path, embedded_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    config = load_config(base=tiny_config(embedded_data, tmp_path / "run"))
    result = train(config)
    assert (result.status, result.step, result.best_step) == ("finished", 4, result.best_step)
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "train/gen/total" in r]
    val_records = [r for r in records if any(key.startswith("val/") for key in r)]
    assert train_steps == [1, 2, 3, 4] and [r["step"] for r in val_records] == [2, 4]
    # LPIPS and FID came from stand-in networks, and every value they touch says so; SSIM does not need one.
    assert {"val/ssim", "val/fid_stand-in", "val/lpips_stand-in", "val/ssim_fid100_f1_stand-in"} <= set(val_records[0])
    assert "val/fid" not in val_records[0]
    best = max(val_records, key=lambda r: r["val/ssim_fid100_f1_stand-in"])
    assert result.best_step == best["step"] and result.best_value == best["val/ssim_fid100_f1_stand-in"]
    for checkpoint in ("best.ckpt", "last.ckpt"):
        model = load_model(run, checkpoint=checkpoint)
        assert isinstance(model, InpaintingModel)
    last = torch.load(run / "models" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and any(key.startswith("discriminator.") for key in last["state_dict"])
    assert sorted(path.name for path in (run / "samples").iterdir()) == ["step-000000001.png", "step-000000002.png",
                                                                        "step-000000004.png"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_step"] == result.best_step and "stand-in" in metrics["labels"]["fid"]

    client = mlflow.MlflowClient(tracking_uri=config.tracking.uri)
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("lama").experiment_id])
    assert mlflow_run.info.status == "FINISHED"
    params, tags = mlflow_run.data.params, mlflow_run.data.tags
    assert params["loss.kappa"] == "10.0" and params["data.loader.batch_size"] == "2"
    assert tags["dvc.exp_name"] == "tiny-exp" if "dvc.exp_name" in tags else "tiny-exp" in tags.values()
    assert any("stand-in" in value for key, value in tags.items() if key.startswith("label."))
    reference = json.loads((run / "tracking.json").read_text())
    assert reference["run_id"] == mlflow_run.info.run_id and reference["offline"] is False
    history = client.get_metric_history(mlflow_run.info.run_id, "train/gen/total")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert {m.step for m in client.get_metric_history(mlflow_run.info.run_id, "val/fid_stand-in")} == {2, 4}
    artifacts = [a.path for a in client.list_artifacts(mlflow_run.info.run_id)]
    assert any("image" in path or "samples" in path for path in artifacts), artifacts
    # The finished model: an artifact of the run and version 1 of "<experiment>.<model dir name>".
    assert tags["lama.registered_model"] == "models:/lama.run/1"
    assert tags["lama.model_dir"] == f"runs:/{mlflow_run.info.run_id}/model"
    version = client.get_model_version("lama.run", "1")
    assert version.run_id == mlflow_run.info.run_id and version.tags == {"dvc.exp_name": "tiny-exp"}
    logged = Path(client.download_artifacts(mlflow_run.info.run_id, "model", str(tmp_path / "logged")))
    assert (logged / "models" / "best.ckpt").read_bytes() == (run / "models" / "best.ckpt").read_bytes()
    assert isinstance(load_model(logged), InpaintingModel)


def test_a_non_finite_loss_stops_the_run_naming_the_loss_and_the_step(
    tmp_path: Path, embedded_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = LamaLoss.generator_loss
    calls = {"n": 0}

    def poisoned(self: LamaLoss, *args: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = original(self, *args)
        calls["n"] += 1
        if calls["n"] == 3:
            terms["feature_matching"] = terms["feature_matching"] * float("nan")
        return terms

    monkeypatch.setattr(LamaLoss, "generator_loss", poisoned)
    config = load_config(base=tiny_config(embedded_data, tmp_path / "run", data={"val": None}))
    named = r"non-finite loss gen/feature_matching(, \S+)* at step 3; .*step-000000002"  # and what it made NaN
    with pytest.raises(NonFiniteLossError, match=named):
        train(config)
    assert (tmp_path / "run" / "state" / "latest").read_text().strip() == "step-000000002"
    assert torch.load(tmp_path / "run" / "models" / "last.ckpt", weights_only=True)["global_step"] == 2
    client = mlflow.MlflowClient(tracking_uri=config.tracking.uri)
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("lama").experiment_id])
    assert mlflow_run.info.status == "FAILED"


def test_resume_never_refuses_to_overwrite_a_saved_run(tmp_path: Path, embedded_data: Path) -> None:
    base = tiny_config(embedded_data, tmp_path / "run", data={"val": None}, train={"steps": 2},
                       tracking={"enabled": False})
    train(load_config(base=base))
    with pytest.raises(ConfigError, match=r"train.resume=never: .* already holds a state \(step-000000002\)"):
        train(load_config(base=base, overrides=["train.resume=never"]))
    again = train(load_config(base=base, overrides=["train.steps=3"]))  # auto: continues from step 2
    assert again.step == 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_resume_same_config_continues_its_own_state_and_starts_over_on_another_config(
    tmp_path: Path, embedded_data: Path
) -> None:
    base = tiny_config(embedded_data, tmp_path / "run", data={"val": None}, train={"steps": 2, "resume": "same-config"},
                       tracking={"enabled": False})
    train(load_config(base=base))
    # A longer schedule is the same run: it continues from step 2.
    assert train(load_config(base=base, overrides=["train.steps=3"])).step == 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    # Another loss is another run: the old state, log and samples go, training starts from step 0.
    again = train(load_config(base=base, overrides=["train.steps=3", "loss.mask_interp=bicubic"]))
    assert again.step == 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3] and (tmp_path / "run" / "state" / "latest").read_text().strip() == "step-000000003"
    saved = yaml.safe_load((tmp_path / "run" / "train_config.yaml").read_text())
    assert saved["loss"]["mask_interp"] == "bicubic"


def test_config_difference_ignores_what_a_resumed_run_may_change() -> None:
    saved = load_config(base={"train": {"steps": 10}}).to_dict()
    assert config_difference(saved, load_config(base={"train": {"steps": 20, "log_every": 3}}).to_dict()) is None
    changed = load_config(base={"train": {"steps": 10}, "loss": {"alpha": 3.0}}).to_dict()
    assert config_difference(saved, changed) == "loss.alpha: 30.0 -> 3.0"


def test_training_goes_on_when_the_tracking_server_is_unreachable(
    tmp_path: Path, embedded_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = tiny_config(embedded_data, tmp_path / "run", data={"val": None}, train={"steps": 2},
                       tracking={"uri": f"http://127.0.0.1:{port}"})
    result = train(load_config(base=base))
    assert result.status == "finished" and result.step == 2
    (record,) = (tmp_path / "run" / "mlflow-offline").iterdir()
    logged = [json.loads(line) for line in (record / "metrics.jsonl").read_text().splitlines()]
    assert {row["step"] for row in logged if row["key"] == "train/gen/total"} == {1, 2}
    assert json.loads((record / "run.json").read_text())["params"]["loss.kappa"] == "10.0"
