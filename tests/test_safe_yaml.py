"""Every YAML file is read bounded: an alias bomb, a self-referring alias or an oversized file is a one-line error
naming the file, found before anything walks the expanded data."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from lama.cli import main
from lama.config import ConfigError
from lama.eval.provenance import describe_model_dir
from lama.pipeline.params import load_params
from lama.safe_yaml import MAX_BYTES, YamlFileError, read_omegaconf, read_yaml
from lama.train import load_config


def _alias_bomb(path: Path, levels: int = 9) -> Path:
    """About 500 bytes that expand to 10**levels scalars."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = _alias_bomb(tmp_path / "bomb.yaml")
    started = time.perf_counter()
    with pytest.raises(YamlFileError, match="aliases expand to") as error:
        read_yaml(path)
    assert time.perf_counter() - started < 1
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_aliases_within_the_bound_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {x: 1, y: [1, 2]}\nother: *b\nmerged: {<<: *b, z: 3}\nlr: 1e-3\n")
    assert read_yaml(path)["merged"] == {"x": 1, "y": [1, 2], "z": 3}
    assert read_yaml(path)["lr"] == "1e-3"  # yaml.safe_load's YAML 1.1 rules...
    assert read_omegaconf(path).lr == 0.001  # ...and OmegaConf.load's
    _alias_bomb(path, levels=3)
    assert len(read_yaml(path)["a2"]) == 10


@pytest.mark.parametrize(("text", "message"), [
    ("a: &a [1, *a]\n", "an alias refers to a node that contains it"),
    ("a: [1, 2\nb: c\n", r"not valid YAML \(expected ',' or '\]', but got ':' at line 2, column 2\)"),
    ("a: 1\na: 2\n", "found duplicate key a"),
    ("just text\n", "holds a str; expected a mapping"),
])
def test_unusable_yaml_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(YamlFileError, match=message) as error:
        read_omegaconf(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_an_oversized_file_is_refused_unparsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * MAX_BYTES)
    with pytest.raises(YamlFileError, match=f"larger than {MAX_BYTES} bytes"):
        read_yaml(path)


def test_every_config_reader_refuses_the_bomb(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bomb = _alias_bomb(tmp_path / "bomb.yaml")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(bomb))}: its aliases expand"):
        load_config(bomb)
    with pytest.raises(ConfigError, match=r"^params: its aliases expand"):
        load_params(bomb, label="params")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _alias_bomb(model_dir / "config.yaml")
    with pytest.raises(YamlFileError, match=r"config\.yaml: its aliases expand"):
        describe_model_dir(model_dir)
    assert main(["train", str(bomb)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"lama train: {bomb}: its aliases expand")
