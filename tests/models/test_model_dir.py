"""Official model dirs load here, ours load with what official tools do, and no checkpoint runs code."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from lama.models import (
    InpaintingModel,
    ModelDirError,
    NLayerDiscriminator,
    UnsafeCheckpointError,
    build_generator,
    generator_config,
    load_checkpoint_file,
    load_model,
    save_model_dir,
)
from tests.conftest import FIXTURE_MODELS


def test_lightning_checkpoint_loads_without_lightning(fixtures: Path) -> None:
    with pytest.raises(Exception, match=r"(?i)unsupported global|weights_only"):
        torch.load(fixtures / "tiny-biglama/models/best.ckpt", weights_only=True)  # why we need our own loader
    checkpoint = load_checkpoint_file(fixtures / "tiny-biglama/models/best.ckpt")
    assert checkpoint["global_step"] == 850001
    assert len(checkpoint["state_dict"]) == 271
    assert "omegaconf.dictconfig.DictConfig" in repr(checkpoint["hyper_parameters"])


def test_full_and_weights_only_checkpoints_give_the_same_generator(fixtures: Path) -> None:
    full = load_model(fixtures / "tiny-biglama")
    light = load_model(fixtures / "tiny-biglama/models/best-weights-only.ckpt")
    full_state, light_state = full.state_dict(), light.state_dict()
    assert len(full_state) == 209
    assert all(torch.equal(full_state[key], light_state[key]) for key in full_state)


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_official_fixture_dirs_load_strictly(fixtures: Path, name: str) -> None:
    model = load_model(fixtures / name)
    assert not model.training
    assert set(model.state_dict()) == {
        key for key in load_checkpoint_file(fixtures / name / "models/best.ckpt")["state_dict"]
        if key.startswith("generator.")
    }


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("__import__('pathlib').Path('/tmp').exists()",))


@pytest.mark.parametrize("where", ["top", "nested"])
def test_checkpoint_that_runs_a_command_is_refused_and_runs_nothing(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "pwned"
    payload = _RunsShell(f"touch {marker}")
    state = {"generator.model.1.weight": torch.zeros(1)}
    checkpoint = payload if where == "top" else {"state_dict": state, "callbacks": {"x": [payload]}}
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os|nt)\.system"):
        load_checkpoint_file(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_checkpoint_that_calls_eval_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "x": _Evaluates()}, tmp_path / "evil.ckpt")
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        load_checkpoint_file(tmp_path / "evil.ckpt")


def test_model_dir_with_malicious_checkpoint_gives_clear_error(tmp_path: Path, fixtures: Path) -> None:
    shutil.copy(fixtures / "tiny-biglama/config.yaml", tmp_path / "config.yaml")
    (tmp_path / "models").mkdir()
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "hook": _RunsShell(f"touch {marker}")}, tmp_path / "models/best.ckpt")
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        load_model(tmp_path)
    assert not marker.exists()


def _copy_fixture_with_state(fixtures: Path, tmp_path: Path, edit) -> Path:
    shutil.copy(fixtures / "tiny-biglama/config.yaml", tmp_path / "config.yaml")
    (tmp_path / "models").mkdir()
    checkpoint = torch.load(fixtures / "tiny-biglama/models/best-weights-only.ckpt", weights_only=True)
    edit(checkpoint["state_dict"])
    torch.save(checkpoint, tmp_path / "models/best.ckpt")
    return tmp_path


def test_missing_generator_key_is_an_error(fixtures: Path, tmp_path: Path) -> None:
    model_dir = _copy_fixture_with_state(
        fixtures, tmp_path, lambda state: state.pop("generator.model.5.conv1.ffc.convg2g.fu.conv_layer.weight"))
    with pytest.raises(ModelDirError, match=r"1 missing.*fu\.conv_layer\.weight"):
        load_model(model_dir)


def test_unexpected_generator_key_is_an_error(fixtures: Path, tmp_path: Path) -> None:
    model_dir = _copy_fixture_with_state(
        fixtures, tmp_path, lambda state: state.__setitem__("generator.model.99.weight", torch.zeros(3)))
    with pytest.raises(ModelDirError, match=r"1 unexpected.*model\.99\.weight"):
        load_model(model_dir)


def test_wrong_architecture_in_config_is_an_error(fixtures: Path, tmp_path: Path) -> None:
    model_dir = _copy_fixture_with_state(fixtures, tmp_path, lambda state: None)
    config = yaml.safe_load((model_dir / "config.yaml").read_text())
    config["generator"]["n_blocks"] = 2
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ModelDirError, match="unexpected"):
        load_model(model_dir)


def test_missing_config_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelDirError, match=r"config\.yaml: missing"):
        load_model(tmp_path)


def _tiny(preset: str) -> dict:
    config = generator_config(preset)
    config.update(ngf=8, n_blocks=2)
    return config


@pytest.mark.parametrize("preset", ["big-lama", "lama-regular", "lama-dilated"])
def test_saved_model_dir_round_trips(tmp_path: Path, preset: str) -> None:
    torch.manual_seed(1)
    config = _tiny(preset)
    model = InpaintingModel(build_generator(config), config).eval()
    save_model_dir(model, tmp_path / "model", epoch=3, global_step=120)
    loaded = load_model(tmp_path / "model")
    x = torch.rand(1, 3, 80, 96)  # dilation 8 with reflect padding needs a bottleneck of at least 9
    mask = (torch.rand(1, 1, 80, 96) > 0.5).float()
    with torch.no_grad():
        assert torch.equal(model(x, mask), loaded(x, mask))


def test_one_write_of_several_checkpoints_is_one_model_dir_and_one_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A training step that is both the last and the best writes both files and says so once."""
    config = _tiny("big-lama")
    with caplog.at_level(logging.INFO, logger="lama.models.model_dir"):
        path = save_model_dir(InpaintingModel(build_generator(config), config), tmp_path,
                              checkpoint=["last.ckpt", "best.ckpt"], global_step=7)
    assert path == tmp_path / "models" / "last.ckpt"
    assert (tmp_path / "models" / "best.ckpt").read_bytes() == path.read_bytes()
    assert [record.getMessage() for record in caplog.records] == [f"wrote model dir {tmp_path} (last.ckpt, best.ckpt)"]
    assert load_model(tmp_path, checkpoint="best.ckpt") is not None


@pytest.mark.parametrize(("preset", "blocks", "architecture"), [
    ("big-lama", 18, "big-lama"), ("lama-regular-deep", 15, "deep"), ("lama-dilated", 9, "dilated"),
    ("big-lama", 2, "fourier"),  # another depth of a kind: the kind's base architecture
])
def test_a_saved_model_dir_records_its_architecture(tmp_path: Path, preset: str, blocks: int,
                                                    architecture: str) -> None:
    config = dict(generator_config(preset), ngf=4, n_blocks=blocks)  # the width does not change the architecture
    save_model_dir(InpaintingModel(build_generator(config), config), tmp_path, extra_config={"lama": {"run": 1}})
    recorded = yaml.safe_load((tmp_path / "config.yaml").read_text())["lama"]
    assert recorded == {"architecture": architecture, "run": 1}


def test_saved_model_dir_is_readable_the_official_way(tmp_path: Path) -> None:
    """Official tools: yaml.safe_load the config, plain torch.load (weights_only by default), keys non-strict."""
    config = _tiny("big-lama")
    discriminator = NLayerDiscriminator(ndf=4, n_layers=4)
    model = InpaintingModel(build_generator(config), config)
    save_model_dir(model, tmp_path, discriminator=discriminator,
                   discriminator_config={"kind": "pix2pixhd_nlayer", "input_nc": 3, "ndf": 4, "n_layers": 4})
    official = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert official["generator"]["kind"] == "ffc_resnet"
    assert official["training_model"]["kind"] == "default" and official["training_model"]["concat_mask"] is True
    assert "visualizer" in official and "kwargs" in official["trainer"]
    checkpoint = torch.load(tmp_path / "models/best.ckpt", weights_only=True)
    assert "optimizer_states" in checkpoint  # official make_checkpoint.py deletes it
    generator_keys = {k for k in checkpoint["state_dict"] if k.startswith("generator.")}
    assert generator_keys == {f"generator.{k}" for k in model.generator.state_dict()}
    fresh = NLayerDiscriminator(ndf=4, n_layers=4)
    fresh.load_official_state_dict(checkpoint["state_dict"])
    assert torch.equal(fresh.model0[0].weight, discriminator.model0[0].weight)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave nothing behind
