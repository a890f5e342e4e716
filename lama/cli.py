"""The ``lama`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lama.models.safe_pickle import UnsafeCheckpointError
from lama.predict import InputError, PredictOptions, predict_folder

PREDICT_EPILOG = """\
Arguments are MODEL_DIR INPUT_DIR OUTPUT_DIR, official-style key=value overrides, or both:
  lama predict big-lama/ input/ output/ --precision bf16
  lama predict model.path=big-lama indir=input outdir=output device=cpu
Keys: model.path, model.checkpoint, indir, outdir, device (auto|cpu|cuda|cuda:N), precision (fp32|bf16),
out_key (inpainted|predicted_image), out_ext, dataset.img_suffix, dataset.pad_out_to_modulo, fold_norms,
channels_last.
Exit status: 0 when every mask was inpainted, 1 when some inputs failed (each named on stderr), 2 on bad usage.
"""


def parse_predict_options(args: argparse.Namespace) -> PredictOptions:
    """Merge positionals, key=value overrides and flags (in that order) into validated options."""
    positional = [token for token in args.arguments if "=" not in token]
    overrides = [token for token in args.arguments if "=" in token]
    if len(positional) > 3:
        raise ValueError(f"expected at most MODEL_DIR INPUT_DIR OUTPUT_DIR, got {len(positional)} paths")
    named = zip(("model.path", "indir", "outdir"), positional, strict=False)
    overrides = [f"{key}={value}" for key, value in named] + overrides
    for flag, key in (("device", "device"), ("precision", "precision"), ("checkpoint", "model.checkpoint")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    schema = OmegaConf.structured(PredictOptions)
    try:
        config = OmegaConf.merge(schema, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        message = str(getattr(error, "msg", None) or error).splitlines()[0]
        raise ValueError(f"{key}: {message}" if key else message) from error
    missing = sorted(OmegaConf.missing_keys(config))
    if missing:
        raise ValueError(f"missing {', '.join(missing)}; see 'lama predict --help'")
    options = OmegaConf.to_object(config)
    options.validate()
    return options


def run_predict(args: argparse.Namespace) -> int:
    try:
        options = parse_predict_options(args)
    except ValueError as error:
        print(f"lama predict: {error}", file=sys.stderr)
        return 2
    try:
        summary = predict_folder(options, progress=not args.quiet)
    except (InputError, ValueError, UnsafeCheckpointError) as error:
        print(f"lama predict: {error}", file=sys.stderr)
        return 2
    print(f"lama predict: {summary} -> {options.outdir}", file=sys.stderr)
    return 1 if summary.failures else 0


def run_init_model(args: argparse.Namespace) -> int:
    import torch

    from lama.models import InpaintingModel, build_generator, generator_config, save_model_dir

    try:
        config = generator_config(args.preset)
    except ValueError as error:
        print(f"lama init-model: {error}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    if args.ngf is not None:
        config["ngf"] = args.ngf
    if args.n_blocks is not None:
        config["n_blocks"] = args.n_blocks
    model = InpaintingModel(build_generator(config), config)
    path = save_model_dir(model, args.output, extra_config={
        "lama": {"weights": f"random initialisation, seed {args.seed}; untrained"}})
    print(f"lama init-model: wrote {path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lama", description="LaMa large-mask inpainting")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="inpaint a folder of images and masks (official layout)", epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("arguments", nargs="*", metavar="ARG", help="paths and key=value overrides")
    predict.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    predict.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 keeps the FFTs in float32")
    predict.add_argument("--checkpoint", help="checkpoint file name under MODEL_DIR/models (default best.ckpt)")
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(run=run_predict)

    init = commands.add_parser(
        "init-model", help="write a randomly initialised model dir (official layout) for a preset")
    init.add_argument("preset", help="lama-fourier, big-lama, lama-fourier-shallow, lama-regular, ...")
    init.add_argument("output", help="model dir to create")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--ngf", type=int, help="override the base width (e.g. 8 for a tiny model)")
    init.add_argument("--n-blocks", type=int, help="override the number of residual blocks")
    init.set_defaults(run=run_init_model)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    return args.run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
