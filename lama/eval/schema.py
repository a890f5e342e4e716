"""The evaluation file (format ``lama-eval/1``) as one typed schema: what ``lama evaluate`` writes, what the report
reads.

``EvaluationFile`` and its parts are dataclasses whose annotations say every field's type and allowed values.
``to_json`` turns one into the JSON object, keys in field order (the evaluator writes exactly that); ``from_json``
validates a parsed JSON object against the annotations with pydantic, strictly (a "3" is no integer, a 3 no string,
true no number), and builds one. A wrong value is a one-line ``SchemaError`` naming its key, e.g.
``mask_set.size: Input should be a valid integer, got 'big'``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import Field, StrictFloat, StrictInt, StrictStr

from lama.eval.fid import FID_METHODS
from lama.eval.metrics import NETWORKS_OF_METRIC
from lama.eval.provenance import MASK_SET_KINDS

EVAL_FORMAT = "lama-eval/1"
# The pretrained networks a seeded stand-in can replace: those the metrics depend on, in first-use order.
STAND_IN_NETWORKS = tuple(dict.fromkeys(network for networks in NETWORKS_OF_METRIC.values() for network in networks))

T = TypeVar("T")


@dataclass
class MaskSetInfo:
    """The eval mask set, as ``lama.eval.provenance.describe_mask_set`` describes it."""

    name: Annotated[StrictStr, Field(min_length=1)]
    kind: Literal[MASK_SET_KINDS] | None
    size: Annotated[StrictInt, Field(gt=0)] | None
    path: StrictStr


@dataclass
class ModelInfo:
    """The evaluated model, as ``lama.eval.provenance.describe_model_dir`` describes it; null: not recorded."""

    name: StrictStr | None
    path: StrictStr | None
    architecture: StrictStr | None  # the provenance's name for it (recorded in the model dir, or derived)
    train_masks: StrictStr | None  # the report reads null as "wide"
    mask_interp: StrictStr | None  # the report reads null as "none"
    parameters: StrictInt | None
    # Files written before these two existed lack them: absent reads as null.
    classical: StrictStr | None = None  # the classical method of a baseline (lama.baselines)
    recipe: list[StrictStr] | None = None  # how the training loss departs from the paper's; empty: it does not


@dataclass
class EvaluationFile:
    """One ``lama evaluate`` result: what was evaluated, with which networks, and the scores."""

    format: Literal[EVAL_FORMAT]
    mask_set: MaskSetInfo
    predictions: StrictStr  # the predictions folder, as given to the evaluator
    model: ModelInfo
    networks: dict[str, StrictStr]  # network ("lpips", "fid") -> its weights label
    stand_in: list[Literal[STAND_IN_NETWORKS]]
    fid_method: Literal[FID_METHODS]
    n: Annotated[StrictInt, Field(ge=0)]
    # Totals under their labelled names ("fid_stand-in" when a stand-in made them); null (or NaN) where not computable.
    metrics: dict[str, StrictFloat | None]
    bins: dict[str, dict[str, Any]]  # area bin, then "total" -> n and every metric's scores


class SchemaError(ValueError):
    """A value that does not fit the schema; the message, one line, names its key."""


def to_json(document: Any) -> dict[str, Any]:
    """A schema dataclass as a JSON object, keys in field order (values deep-copied, not converted)."""
    return dataclasses.asdict(document)


def from_json(cls: type[T], data: Any) -> T:
    """Validate ``data`` (parsed JSON) against dataclass ``cls`` and build it; keys the schema does not name are
    ignored. The first problem is the error: its key (list items by index), pydantic's words and the value."""
    try:
        return pydantic.TypeAdapter(cls).validate_python(data)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        key = ".".join(map(str, first["loc"])) or "the document"
        given = "" if first["type"] == "missing" else f", got {first['input']!r:.60}"
        raise SchemaError(f"{key}: {first['msg']}{given}") from None
