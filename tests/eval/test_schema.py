"""The evaluation file's schema: what `lama evaluate` writes round-trips through it unchanged, and a wrong value is
one error naming its key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lama.eval.evaluator import EvaluateOptions, evaluate_predictions
from lama.eval.provenance import DERIVED_MODEL_FIELDS, MASK_SET_FIELDS, MODEL_FIELDS
from lama.eval.schema import EVAL_FORMAT, EvaluationFile, MaskSetInfo, ModelInfo, SchemaError, from_json, to_json
from tests.eval import write_eval_set


def test_the_evaluators_json_round_trips_through_the_schema_unchanged(tmp_path: Path) -> None:
    data, predict = write_eval_set(tmp_path, 6)
    out = tmp_path / "eval.json"
    evaluate_predictions(EvaluateOptions(str(data), str(predict), str(out), weights="stand-in", fid_method="svd",
                                         batch_size=4, num_workers=0,
                                         overrides=["model.architecture=fourier", "model.name=tiny"]),
                         progress=False)
    written = out.read_bytes()
    document = from_json(EvaluationFile, json.loads(written))
    assert (document.format, document.model.architecture, document.mask_set.kind) == (EVAL_FORMAT, "fourier", "thick")
    assert document.stand_in == ["lpips", "fid"] and document.n == 6
    assert json.dumps(to_json(document), indent=1).encode() + b"\n" == written


def test_the_schema_carries_the_provenance_fields_in_their_order() -> None:
    """The evaluator fills these dataclasses from the provenance dicts, so the key order of the file is theirs."""
    assert [spec.name for spec in dataclasses.fields(ModelInfo)] == [*MODEL_FIELDS, *DERIVED_MODEL_FIELDS]
    assert [spec.name for spec in dataclasses.fields(MaskSetInfo)] == list(MASK_SET_FIELDS)


def minimal() -> dict:
    return {"format": EVAL_FORMAT, "mask_set": {"name": "thick_512", "kind": "thick", "size": 512, "path": "m"},
            "predictions": "p", "model": dict.fromkeys(MODEL_FIELDS), "networks": {"lpips": "x", "fid": "y"},
            "stand_in": [], "fid_method": "svd", "n": 1, "metrics": {"ssim": 1, "fid": None}, "bins": {}}


@pytest.mark.parametrize(("change", "message"), [
    (lambda data: data.update(n="1"), "n: Input should be a valid integer, got '1'"),
    (lambda data: data.update(n=True), "n: Input should be a valid integer, got True"),
    (lambda data: data.update(n=-1), "n: Input should be greater than or equal to 0, got -1"),
    (lambda data: data["metrics"].update(ssim="1"), "metrics.ssim: Input should be a valid number, got '1'"),
    (lambda data: data["model"].pop("parameters"), "model.parameters: Field required"),
    (lambda data: data.update(mask_set="m"), "mask_set: Input should be a dictionary or an instance of MaskSetInfo, "
                                              "got 'm'"),
    (lambda data: data.update(stand_in=["fid", "vgg"]), "stand_in.1: Input should be 'lpips' or 'fid', got 'vgg'"),
    (lambda data: data["mask_set"].update(kind="wide"), "mask_set.kind: Input should be 'thin', 'medium' or 'thick', "
                                                        "got 'wide'"),
])
def test_a_wrong_value_is_one_error_naming_its_key(change, message: str) -> None:
    data = minimal()
    change(data)
    with pytest.raises(SchemaError) as error:
        from_json(EvaluationFile, data)
    assert str(error.value) == message


def test_keys_the_schema_does_not_name_are_ignored_and_values_kept() -> None:
    data = minimal()
    data["extra"] = 1
    document = from_json(EvaluationFile, data)
    assert document.metrics == {"ssim": 1.0, "fid": None}
    assert document.model.classical is None and document.model.recipe is None
    del data["extra"]
    data["model"].update(classical=None, recipe=None)
    assert to_json(document) == data
