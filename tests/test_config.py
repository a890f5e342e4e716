"""The pipeline's params: configs/ composes into the committed params.yaml, both profiles build every run, and a
typo or a bad value fails with one line naming the key before any stage works."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import compose_and_dump
from omegaconf import OmegaConf

from lama.config import ConfigError
from lama.models.generators import PRESET_DIR, PRESET_FILES, PRESETS, build_generator, count_parameters
from lama.pipeline.params import compose_params, load_params, run_config
from tests.conftest import REPO

CONFIGS = REPO / "configs"
# Table 2's architectures (and Big LaMa) by their generator group name, with the official parameter counts.
GENERATOR_GROUP = {"fourier": ("lama-fourier", 27_048_835), "dilated": ("lama-dilated", 45_645_379),
                   "regular": ("lama-regular", 45_617_731), "shallow": ("lama-fourier-shallow", 19_073_155),
                   "deep": ("lama-regular-deep", 73_947_715), "big-lama": ("big-lama", 50_975_875)}


def lama_params(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lama.cli", "params", *arguments], cwd=REPO, capture_output=True,
                          text=True)


def test_params_yaml_is_what_dvc_composes_from_configs(tmp_path: Path) -> None:
    # DVC's own composition (what `dvc exp run` writes), called the way DVC calls it, is the reference.
    composed = tmp_path / "params.yaml"
    compose_and_dump(composed, str(CONFIGS), None, "config", str(REPO), [])
    assert (REPO / "params.yaml").read_text() == composed.read_text(), "params.yaml is stale: run 'lama params'"
    # `lama params` writes the same bytes.
    ours = tmp_path / "ours.yaml"
    compose_params(out=ours, config_dir=CONFIGS)
    assert ours.read_bytes() == composed.read_bytes()


def test_the_sample_profile_trains_one_small_run_on_the_embedded_set() -> None:
    params = load_params(REPO / "params.yaml")
    assert (params.profile, params.run_names, params.prepare.source) == ("sample", ["lama"], "embedded")
    config = run_config(params, "lama", "data/prepared", "data/eval/val/thick_256", "models/lama")
    assert config.generator["kind"] == "ffc_resnet" and config.generator["ngf"] == 8
    assert config.generator["n_blocks"] == 9  # the architecture keeps its depth; only the width is narrowed
    assert (config.data.train, config.data.val, config.train.out_dir) == (
        "data/prepared", "data/eval/val/thick_256", "models/lama")
    assert config.loss.hrf_weights == config.train.eval_weights == params.eval.weights == "stand-in"


def test_the_generator_group_is_the_library_presets(tmp_path: Path) -> None:
    # One source: Hydra finds the group in the package (configs/config.yaml's search path), where PRESETS reads it.
    assert not (CONFIGS / "generator").exists()
    assert sorted(path.stem for path in PRESET_DIR.glob("*.yaml")) == sorted(GENERATOR_GROUP)
    assert {file: preset for preset, file in PRESET_FILES.items()} == {
        name: preset for name, (preset, _) in GENERATOR_GROUP.items()}
    for name, (preset, parameters) in GENERATOR_GROUP.items():
        composed = tmp_path / f"{name}.yaml"
        compose_and_dump(composed, str(CONFIGS), None, "config", str(REPO), [f"generator={name}", "profile=paper",
                                                                              "prepare.root=/data"])
        assert yaml.safe_load(composed.read_text())["generator"] == PRESETS[preset], name
        if parameters < 30_000_000:  # building the 45-74M nets adds nothing: their presets are tested in models/
            assert count_parameters(build_generator(PRESETS[preset])) == parameters


def test_the_paper_profile_builds_every_run_of_the_tables(tmp_path: Path) -> None:
    params = compose_params(["profile=paper", "prepare.root=/data/places365"], CONFIGS, tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    assert params.run_names == ["fourier", "dilated", "regular", "shallow", "deep", "regular_narrow",
                                "fourier_bilinear", "fourier_bicubic", "big-lama"]
    runs = {name: run_config(params, name, "data/prepared", None, f"models/{name}") for name in params.run_names}
    expected = {"fourier": "lama-fourier", "dilated": "lama-dilated", "regular": "lama-regular",
                "shallow": "lama-fourier-shallow", "deep": "lama-regular-deep", "regular_narrow": "lama-regular",
                "fourier_bilinear": "lama-fourier", "fourier_bicubic": "lama-fourier", "big-lama": "big-lama"}
    for name, preset in expected.items():
        assert runs[name].generator == PRESETS[preset], name
    assert {name: run.data.loader.masks for name, run in runs.items() if run.data.loader.masks != "wide"} == {
        "regular_narrow": "narrow"}
    assert {name: run.loss.mask_interp for name, run in runs.items() if run.loss.mask_interp != "none"} == {
        "fourier_bilinear": "bilinear", "fourier_bicubic": "bicubic"}
    assert runs["big-lama"].data.loader.batch_size == 15 and runs["fourier"].data.loader.batch_size == 10
    assert runs["fourier"].train.steps == 1_000_000 and runs["fourier"].loss.hrf_weights == "pretrained"
    assert params.eval.mask_sets == ["thin_256", "medium_256", "thick_256", "thin_512", "medium_512", "thick_512"]
    assert params.eval.all_mask_sets[-3:] == ["thick_768", "thick_1024", "thick_1536"]
    assert (params.eval.weights, params.eval.fid_method, params.report.table_size) == ("pretrained", "sqrtm", 512)
    assert params.launcher.startswith("accelerate launch")


def test_the_finetune_profile_evaluates_the_shipped_model_then_fine_tunes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # train.init is relative to the repository, where the stages run
    compose_params(["profile=finetune"], CONFIGS, tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    assert params.run_names == ["pretrained", "finetuned"] and params.report.before_after == params.run_names
    runs = {name: run_config(params, name, "data/prepared", None, f"models/{name}") for name in params.run_names}
    shipped = yaml.safe_load((REPO / "examples/models/sample-narrow/config.yaml").read_text())
    for run in runs.values():
        assert run.train.init == "examples/models/sample-narrow"
        assert run.generator == shipped["generator"]  # generator=from-init
        assert (run.discriminator.ndf, run.discriminator.n_layers) == (shipped["discriminator"]["ndf"],
                                                                         shipped["discriminator"]["n_layers"])
    assert (runs["pretrained"].train.steps, runs["finetuned"].train.steps) == (0, 150)
    assert runs["finetuned"].effective_batch == 20 and runs["finetuned"].optim.schedule == "cosine"
    assert params.eval.mask_sets == ["medium_128", "thick_128"] and params.data.val_mask_set == "thick_128"

    # Big LaMa and a folder of photos: the groups compose; the model dir must be where $LAMA_HOME says.
    monkeypatch.setenv("LAMA_HOME", str(tmp_path / "cache"))
    result = lama_params("profile=finetune", "init=big-lama", "data=folder", "prepare.root=/photos", "--out",
                         str(tmp_path / "big.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"lama params: configs/ composed with profile=finetune init=big-lama data=folder "
                                     f"prepare.root=/photos: train.init='{tmp_path}/cache/big-lama': not found; "
                                     "expected a model dir (config.yaml + models/best.ckpt) or a .ckpt file inside "
                                     "one")


def test_a_group_switch_and_a_value_override_change_the_run(tmp_path: Path) -> None:
    compose_params(["generator=dilated", "loss.mask_interp=bicubic", "masks=narrow"], CONFIGS,
                   tmp_path / "params.yaml")
    params = load_params(tmp_path / "params.yaml")
    config = run_config(params, "lama", "data/prepared", None, "models/lama")
    assert config.generator["kind"] == "pix2pixhd_multidilated" and config.generator["ngf"] == 8
    assert (config.loss.mask_interp, config.data.loader.masks) == ("bicubic", "narrow")


@pytest.mark.parametrize(("override", "named"), [
    ("loss.mask_intrp=bicubic", "loss.mask_intrp"),
    ("loss.mask_interp=bicubc", "loss.mask_interp"),
    ("train.steps=0", "train.steps"),
    ("eval.mask_sets=[thin_256,wide_512]", "wide_512"),
    ("eval.resolution_sizes=[128]", "eval.resolution_sizes"),
    ("data.val_mask_set=thick_1024", "prepare.eval_sizes"),
    ("generator.n_blokcs=3", "n_blokcs"),
    ("profile=paper", "prepare.root"),
    ("data.loader.crop_size=7", "data.loader.crop_size=7: expected a multiple of 8 that is >= 16"),
    ("data.loader.crop_size=132", "data.loader.crop_size=132: expected a multiple of 8"),
    ("generator.ngf=-3", "generator.ngf=-3: expected a positive integer"),
    ("generator.resnet_conv_kwargs.ratio_gin=1.5", "generator.resnet_conv_kwargs.ratio_gin=1.5: expected a number"),
    ("report.table_size=100", "report.table_size=100: expected null or the size of an eval mask set"),
    ("eval.refiner.n_iters=0", "eval.refiner.n_iters=0: expected a positive integer"),
    ("eval.refiner.nitters=3", "eval.refiner.nitters"),
    ("eval.hd_strategy=tiles", "eval.hd_strategy='tiles': expected one of original, resize, crop"),
    ("eval.predict_batch_size=0", "eval.predict_batch_size=0: expected a positive integer"),
])
def test_a_typo_or_a_bad_value_fails_naming_the_key_and_keeps_params_yaml(
    tmp_path: Path, override: str, named: str
) -> None:
    out = tmp_path / "params.yaml"
    out.write_text("kept\n")
    result = lama_params(override, "--out", str(out))
    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and named in message, message
    assert out.read_text() == "kept\n"


def test_the_inference_keys_compose_under_eval_with_the_predict_defaults(tmp_path: Path) -> None:
    from dataclasses import fields

    from lama.models.inference_options import InferenceOptions
    from lama.predict import PredictOptions

    defaults = compose_params([], CONFIGS, tmp_path / "params.yaml").eval
    for key in (field.name for field in fields(InferenceOptions)):
        assert getattr(defaults, key) == getattr(InferenceOptions(), key), key
    assert defaults.predict_batch_size == PredictOptions.batch_size == 1
    refined = compose_params(["eval.refine=true", "eval.refiner.min_side=64", "eval.hd_strategy=crop"], CONFIGS,
                             tmp_path / "params.yaml").eval
    assert (refined.refine, refined.refiner.min_side, refined.hd_strategy) == (True, 64, "crop")


def test_a_typo_in_a_config_file_fails_naming_the_key(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    loss = configs / "loss" / "lama.yaml"
    loss.write_text(loss.read_text() + "kapa: 3\n")
    with pytest.raises(ConfigError, match=r"loss\.kapa"):
        compose_params([], configs, tmp_path / "params.yaml")
    assert not (tmp_path / "params.yaml").exists()


def test_check_tells_a_stale_params_yaml(tmp_path: Path) -> None:
    stale = tmp_path / "params.yaml"
    compose_params([], CONFIGS, stale)
    assert lama_params("--check", "--out", str(stale)).returncode == 0
    stale.write_text(stale.read_text().replace("steps: 1200", "steps: 1201"))
    result = lama_params("--check", "--out", str(stale))
    assert result.returncode == 1 and "differs from a fresh composition" in result.stderr


def test_a_bad_params_yaml_names_the_file_and_the_key(tmp_path: Path) -> None:
    raw = OmegaConf.load(REPO / "params.yaml")
    raw.runs.lama = {"losss": {"alpha": 1}}
    path = tmp_path / "params.yaml"
    path.write_text(OmegaConf.to_yaml(raw))
    with pytest.raises(ConfigError, match=rf"^{path}: runs\.lama\.losss: a run may override only"):
        load_params(path)
    raw.runs.lama = {"generator": dict(PRESETS["lama-regular"], ngf=8)}  # a run's generator replaces, not merges
    path.write_text(OmegaConf.to_yaml(raw))
    loaded = load_params(path)
    assert run_config(loaded, "lama", "d", None, "m").generator == dict(PRESETS["lama-regular"], ngf=8)


@pytest.mark.parametrize(("override", "message"), [
    ("eval.num_workers=-1", "eval.num_workers=-1: expected an integer >= 0"),
    ("report.samples=-2", "report.samples=-2: expected an integer >= 0"),
    ("generator.n_downsampling=-1", "generator.n_downsampling=-1: expected an integer >= 0"),
    ("generator.max_features=4", "generator.max_features=4: expected at least ngf (8)"),
    ("data.loader.crop_size=24", "data.loader.crop_size=24: expected a multiple of 16 that is >= 16"),  # LFU: 2×8
    ("discriminator.input_nc=4", "discriminator.input_nc=4: expected 3"),
])
def test_a_bad_count_or_size_in_params_yaml_fails_naming_the_key(override: str, message: str) -> None:
    overrides = [override]
    if "crop_size=24" in override:  # a local Fourier unit halves the bottleneck: the crop doubles its multiple
        overrides.append("generator.resnet_conv_kwargs.enable_lfu=true")
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_params(REPO / "params.yaml", overrides=overrides)
    assert "\n" not in str(error.value)
