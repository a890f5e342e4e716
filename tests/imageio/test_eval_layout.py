"""The official eval layout: masks paired with their images by the official rule, relative to the input folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lama.imageio.eval_layout import InputError, find_pairs, pair_masks


def test_pairs_split_at_the_last_mask_and_keep_subfolders(tmp_path: Path) -> None:
    for name in ("a_mask_b_mask001.png", "sub/c_mask002.png", "sub/c_mask001.png", "note.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    pairs = find_pairs(tmp_path, "/out", out_ext=".jpg")
    assert [p.mask.relative_to(tmp_path).as_posix() for p in pairs] == [
        "a_mask_b_mask001.png", "sub/c_mask001.png", "sub/c_mask002.png"]
    assert pairs[0].image == tmp_path / "a_mask_b.png"
    assert pairs[1].image == tmp_path / "sub/c.png"
    assert pairs[2].output == Path("/out/sub/c_mask002.jpg")


def test_an_image_named_like_a_mask_is_not_reported(tmp_path: Path) -> None:
    for name in ("gasmask.png", "gasmask_mask001.png", "mymask.png"):
        (tmp_path / name).touch()
    pairing = pair_masks(tmp_path, tmp_path / "out")
    assert [(p.mask.name, p.image.name) for p in pairing.pairs] == [("gasmask_mask001.png", "gasmask.png")]
    assert [path.name for path, _ in pairing.unpaired] == ["mymask.png"]


def test_whole_set_callers_get_one_error_naming_the_unpairable_file(tmp_path: Path) -> None:
    for name in ("a.png", "a_mask001.png", "mymask.png", "zmask.png"):
        (tmp_path / name).touch()
    with pytest.raises(InputError, match=r"mymask\.png: no '_mask'.*\(1 more such files\)"):
        find_pairs(tmp_path, tmp_path)
