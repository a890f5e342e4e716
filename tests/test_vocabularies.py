"""Each list of choices and each default has one home, the module that consumes it; the command line and the
report take theirs from there (checked by import: a copy that drifted would fail here)."""

from __future__ import annotations

import argparse

from lama.cli import build_parser
from lama.data.prepare import SOURCES, PrepareConfig
from lama.eval.evaluator import EvaluateOptions
from lama.eval.fid import FID_METHODS
from lama.losses.feature_matching import FM_MASK_INTERPOLATIONS, UNMASKED
from lama.losses.total import LossConfig
from lama.models.inference import DEFAULT_PRECISION, PRECISIONS
from lama.pipeline.params import EvalParams
from lama.predict import PredictOptions
from lama.report.tables import MASK_INTERP_ROWS, Selector
from lama.stand_in import WEIGHT_MODES


def _option(command: str, flag: str) -> argparse.Action:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return next(action for action in subparsers.choices[command]._actions if flag in action.option_strings or
                action.dest == flag)


def test_the_command_line_takes_choices_and_defaults_from_the_modules() -> None:
    assert tuple(_option("predict", "--precision").choices) == tuple(PRECISIONS)
    assert tuple(_option("evaluate", "--fid-method").choices) == FID_METHODS
    assert tuple(_option("evaluate", "--weights").choices) == WEIGHT_MODES
    for flag, field in (("--fid-method", "fid_method"), ("--weights", "weights"), ("--batch-size", "batch_size"),
                        ("--workers", "num_workers"), ("--device", "device")):
        assert _option("evaluate", flag).default == getattr(EvaluateOptions, field), flag
    assert tuple(_option("prepare", "source").choices) == SOURCES
    assert _option("prepare", "--min-size").default == PrepareConfig.min_size


def test_mask_interp_is_spelled_by_the_feature_matching_loss() -> None:
    assert LossConfig().mask_interp == Selector(None).mask_interp == UNMASKED == FM_MASK_INTERPOLATIONS[0]
    assert MASK_INTERP_ROWS[0] == UNMASKED and set(MASK_INTERP_ROWS) <= set(FM_MASK_INTERPOLATIONS)


def test_inference_owns_the_precisions_of_predict_and_of_the_pipeline() -> None:
    assert PredictOptions.precision == EvalParams.precision == DEFAULT_PRECISION in PRECISIONS
    assert (EvalParams.fid_method, EvalParams.weights) == (EvaluateOptions.fid_method, EvaluateOptions.weights)


def test_inference_options_own_the_strategies_and_refiner_defaults_of_predict_and_of_the_pipeline() -> None:
    from lama.cli import PREDICT_EPILOG
    from lama.models.inference_options import HD_STRATEGIES, InferenceOptions, RefinerOptions

    assert tuple(_option("predict", "--hd-strategy").choices) == HD_STRATEGIES
    assert issubclass(PredictOptions, InferenceOptions) and issubclass(EvalParams, InferenceOptions)
    for key, value in vars(RefinerOptions()).items():
        if key != "gpu_ids":
            assert f"refiner.{key}={value}" in PREDICT_EPILOG, key


def test_export_options_own_the_choices_and_defaults_of_lama_export_and_the_predict_backend() -> None:
    from lama.export.options import (
        BACKENDS,
        DEFAULT_BACKEND,
        FORMATS,
        FOURIER_MODES,
        ONNX_PRECISIONS,
        ExportOptions,
    )
    from lama.models.inference_options import OUT_KEYS

    for flag, choices, field in (("--format", FORMATS, "format"), ("--fourier", FOURIER_MODES, "fourier"),
                                 ("--precision", ONNX_PRECISIONS, "precision"), ("--out-key", OUT_KEYS, "out_key")):
        assert tuple(_option("export", flag).choices) == choices, flag
        assert _option("export", flag).default == getattr(ExportOptions, field), flag
    assert tuple(_option("predict", "--backend").choices) == BACKENDS
    assert PredictOptions.backend == DEFAULT_BACKEND in BACKENDS
