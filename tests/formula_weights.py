"""Regenerate the fixtures' "formula weights" (README §8.1) and check them against ``formula.json``.

Pretrained networks cannot ship with the fixtures, so every state-dict tensor of the official networks was replaced
by a deterministic function of its key and a seed. This helper rebuilds those tensors from a ``keys.json`` layout
(rows ``[key, shape, dtype, kind]``) for any of the fixture networks (ADE20k encoder, Inception, VGG16).
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import torch


def formula_tensor(key: str, shape: list[int], kind: str, seed: int, rv0: float | None) -> torch.Tensor:
    """One tensor: a fresh CPU generator seeded with crc32(key) ^ seed, exactly one draw, a per-kind formula."""
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")) ^ seed)
    size = tuple(shape)
    if kind == "conv_weight":
        return torch.randn(size, generator=generator, dtype=torch.float32) * math.sqrt(
            2.0 / (shape[1] * shape[2] * shape[3])
        )
    if kind == "linear_weight":
        return torch.randn(size, generator=generator, dtype=torch.float32) * math.sqrt(1.0 / shape[1])
    if kind == "bn_weight":
        return 1.0 + 0.1 * torch.randn(size, generator=generator, dtype=torch.float32)
    if kind in ("bn_bias", "bn_running_mean", "bias"):
        return 0.1 * torch.randn(size, generator=generator, dtype=torch.float32)
    if kind == "bn_running_var":
        if rv0 is None:
            raise ValueError(f"{key}: a running_var needs RV0")
        return rv0 + 0.5 * torch.rand(size, generator=generator, dtype=torch.float32)
    if kind == "bn_num_batches_tracked":
        return torch.tensor(0, dtype=torch.int64)
    raise ValueError(f"{key}: unknown kind {kind!r}")


def read_keys(keys_json_path: str | Path) -> list[tuple[str, list[int], str, str]]:
    """The rows of a ``keys.json``: (key, shape, dtype, kind) in state-dict order."""
    return [(key, list(shape), dtype, kind) for key, shape, dtype, kind in json.loads(Path(keys_json_path).read_text())]


def formula_state_dict(
    keys_json_path: str | Path, seed: int, rv0: float | None, select: Callable[[str], bool] | None = None
) -> dict[str, torch.Tensor]:
    """All formula tensors of a ``keys.json`` (or those whose key ``select`` accepts), in its order and dtypes.

    ``select`` spares generating tensors a test never uses (VGG16's 120 M classifier values, for LPIPS).
    """
    state_dict = {}
    for key, shape, dtype, kind in read_keys(keys_json_path):
        if select is not None and not select(key):
            continue
        tensor = formula_tensor(key, shape, kind, seed, rv0)
        if str(tensor.dtype).removeprefix("torch.") != dtype or list(tensor.shape) != shape:
            raise ValueError(
                f"{key}: formula gives {tensor.dtype} {list(tensor.shape)}, keys.json says {dtype} {shape}"
            )
        state_dict[key] = tensor
    return state_dict


def formula_params(formula_json_path: str | Path, section: str | None = None) -> tuple[int, float | None]:
    """(SEED, RV0) of one network section of a ``formula.json`` (the only section when ``section`` is None)."""
    record = _section(json.loads(Path(formula_json_path).read_text()), section)
    rv0 = record.get("RV0")
    return int(record["SEED"]), float(rv0) if isinstance(rv0, (int, float)) else None


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's raw little-endian bytes (the hash ``formula.json`` records)."""
    array = tensor.detach().cpu().contiguous().numpy()
    return hashlib.sha256(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()


def check_formula_hashes(
    state_dict: dict[str, torch.Tensor],
    formula_json_path: str | Path,
    section: str | None = None,
    partial: bool = False,
) -> None:
    """Assert every tensor's SHA-256 and the hash over all of them concatenated in key order.

    ``formula.json`` records the concatenation over *all* entries, int64 ``num_batches_tracked`` included.
    ``partial=True`` checks a selected subset (see ``formula_state_dict``): per-key hashes and order only.
    """
    record = _section(json.loads(Path(formula_json_path).read_text()), section)
    expected: dict[str, str] = record["sha256_per_key"]
    if partial:
        assert list(state_dict) == [key for key in expected if key in state_dict], "keys unknown or out of order"
    else:
        assert list(state_dict) == list(expected), "state-dict keys or their order differ from formula.json"
    wrong = [key for key, tensor in state_dict.items() if tensor_sha256(tensor) != expected[key]]
    assert not wrong, f"{len(wrong)} regenerated tensors differ from formula.json: {', '.join(wrong[:8])}"
    if partial:
        return
    combined = hashlib.sha256()
    for tensor in state_dict.values():
        array = tensor.detach().cpu().contiguous().numpy()
        combined.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    assert combined.hexdigest() == record["sha256_all_tensors_concatenated_in_key_order"], "combined hash differs"


def _section(formula: dict, section: str | None) -> dict:
    sections = [name for name, value in formula.items() if isinstance(value, dict) and "sha256_per_key" in value]
    if section is None:
        if len(sections) != 1:
            raise ValueError(f"formula.json has sections {sections}; name one")
        section = sections[0]
    return formula[section]
