"""The ``lama`` command line.

Building the parser and printing help load no torch, numpy or MLflow: the choices and defaults the help shows come
from the torch-free modules that own them, and each command imports its implementation when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lama.baselines import DEFAULT_RADIUS, METHODS, TELEA, classical_model
from lama.config import ConfigError
from lama.data.prepare_config import SOURCES, PrepareConfig
from lama.eval.options import FID_METHODS, EvaluateOptions
from lama.export.options import (
    BACKENDS,
    DEFAULT_FOURIER,
    DEFAULT_ONNX_PRECISION,
    FORMAT_OF_SUFFIX,
    FORMATS,
    FOURIER_MODES,
    ONNX_PRECISIONS,
    ExportOptions,
)
from lama.imageio.formats import IMAGE_FORMATS
from lama.masks.configs import DEFAULT_EXTENSIONS, EVAL_CONFIGS
from lama.models.inference_options import (
    DEFAULT_CROP_MARGIN,
    DEFAULT_CROP_TRIGGER_SIZE,
    DEFAULT_RESIZE_LIMIT,
    HD_STRATEGIES,
    OUT_KEYS,
    PRECISIONS,
    RefinerOptions,
)
from lama.signals import Interrupted, stop_signals_raise
from lama.stand_in import WEIGHT_MODES

if TYPE_CHECKING:
    from lama.predict import PredictOptions

_REFINER_DEFAULTS = {key: value for key, value in vars(RefinerOptions()).items() if key != "gpu_ids"}
PREDICT_EPILOG = f"""\
Arguments are MODEL_DIR INPUT_DIR OUTPUT_DIR, official-style key=value overrides, or both:
  lama predict big-lama/ input/ output/ --precision bf16
  lama predict model.path=big-lama indir=input outdir=output device=cpu
  lama predict {classical_model(TELEA)} input/ output/      # a classical baseline instead of a model dir
  lama predict big-lama/ input/ output/ --refine refiner.n_iters=15   # the official refinement
  lama predict big-lama/ photos/ output/ --hd-strategy crop --batch-size 4
  lama predict big-lama.onnx input/ output/ --backend onnxruntime   # a file written by 'lama export'
Keys: model.path, model.checkpoint, indir, outdir, device (auto|cpu|cuda|cuda:N), precision ({'|'.join(PRECISIONS)}),
out_key ({'|'.join(OUT_KEYS)}), out_ext, dataset.img_suffix, dataset.pad_out_to_modulo, fold_norms,
channels_last, classical_radius (pixels, default {DEFAULT_RADIUS}), batch_size (default 1),
backend ({'|'.join(BACKENDS)}).
Refinement (the official keys and defaults): refine (true|false),
  {', '.join(f"refiner.{key}={value}" for key, value in _REFINER_DEFAULTS.items())},
  refiner.gpu_ids (empty: the device; 0,1: shared out over cuda:0 and cuda:1).
High resolution (IOPaint's keys and defaults): hd_strategy ({'|'.join(HD_STRATEGIES)}),
  hd_strategy_resize_limit={DEFAULT_RESIZE_LIMIT}, hd_strategy_crop_trigger_size={DEFAULT_CROP_TRIGGER_SIZE}, \
hd_strategy_crop_margin={DEFAULT_CROP_MARGIN}.
Classical baselines (no training, CPU): {', '.join(classical_model(method) for method in METHODS)}.
Exit status: 0 when every mask was inpainted, 1 when some inputs failed (each named on stderr), 2 on bad usage.
"""


def parse_predict_options(args: argparse.Namespace) -> PredictOptions:
    """Merge positionals, key=value overrides and flags (in that order) into validated options."""
    from lama.config import build
    from lama.predict import PredictOptions

    positional = [token for token in args.arguments if "=" not in token]
    overrides = [token for token in args.arguments if "=" in token]
    if len(positional) > 3:
        raise ValueError(f"expected at most MODEL_DIR INPUT_DIR OUTPUT_DIR, got {len(positional)} paths")
    named = zip(("model.path", "indir", "outdir"), positional, strict=False)
    overrides = [f"{key}={value}" for key, value in named] + overrides
    for flag, key in (("device", "device"), ("precision", "precision"), ("checkpoint", "model.checkpoint"),
                      ("refine", "refine"), ("hd_strategy", "hd_strategy"), ("batch_size", "batch_size"),
                      ("backend", "backend")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    try:
        return build(PredictOptions, overrides=overrides)
    except ConfigError as error:
        hint = "; see 'lama predict --help'" if str(error).startswith("missing ") else ""
        raise ConfigError(f"{error}{hint}") from None


def run_predict(args: argparse.Namespace) -> int:
    from lama.imageio.eval_layout import InputError
    from lama.predict import predict_folder

    try:
        options = parse_predict_options(args)
    except ValueError as error:
        print(f"lama predict: {error}", file=sys.stderr)
        return 2
    try:
        summary = predict_folder(options, progress=not args.quiet)
    except (InputError, ValueError) as error:  # a CheckpointError or ModelDirError is a ValueError
        print(f"lama predict: {error}", file=sys.stderr)
        return 2
    print(f"lama predict: {summary} -> {options.outdir}", file=sys.stderr)
    return 1 if summary.failures else 0


EXPORT_EPILOG = f"""\
The file takes image [B,3,H,W] in [0,1] and mask [B,1,H,W] (values > 0 are holes), float32, with H and W multiples
of 8 (16 for a generator with a local Fourier unit; the file records its rule), and returns the inpainted image:
  lama export big-lama/ big-lama.onnx           # ONNX, {DEFAULT_FOURIER} Fourier units, {DEFAULT_ONNX_PRECISION}
  lama export big-lama/ big-lama-dft.onnx --fourier dft     # ONNX's DFT operator (ONNX Runtime runs it)
  lama export big-lama/ big-lama.pt                         # TorchScript for IOPaint / simple-lama-inpainting
  lama predict big-lama.onnx input/ output/ --backend onnxruntime
The format comes from the suffix ({', '.join(f"{suffix} {name}" for suffix, name in FORMAT_OF_SUFFIX.items())}) \
unless --format names it.
"""


def run_export(args: argparse.Namespace) -> int:
    from lama.export import export_model

    try:
        options = ExportOptions(args.format, args.fourier, args.precision, args.out_key)
        result = export_model(args.model_dir, args.output, options, **(
            {"checkpoint": args.checkpoint} if args.checkpoint else {}))
    except (ValueError, FileNotFoundError) as error:  # a ConfigError or ModelDirError is a ValueError
        print(f"lama export: {error}", file=sys.stderr)
        return 2
    print(f"lama export: {result}", file=sys.stderr)
    return 0


def run_init_model(args: argparse.Namespace) -> int:
    import torch

    from lama.models import InpaintingModel, build_generator, generator_config, save_model_dir

    widths = {"ngf": args.ngf, "n_blocks": args.n_blocks}
    try:  # the preset, then the section with the overrides: each checked before anything is built or written
        config = generator_config(args.preset)
        config = generator_config({**config, **{key: value for key, value in widths.items() if value is not None}})
    except ValueError as error:
        print(f"lama init-model: {error}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    model = InpaintingModel(build_generator(config), config)
    path = save_model_dir(model, args.output, extra_config={
        "lama": {"weights": f"random initialisation, seed {args.seed}; untrained"}})
    print(f"lama init-model: wrote {path}", file=sys.stderr)
    return 0


def run_job(command: str, outdir: object, job: Callable[[], object]) -> int:
    """Run a folder-building job: its summary on success (0), its one-line error on bad input (2)."""
    try:
        summary = job()
    except (ValueError, FileNotFoundError) as error:
        print(f"lama {command}: {error}", file=sys.stderr)
        return 2
    print(f"lama {command}: {summary} -> {outdir}", file=sys.stderr)
    return 0


def run_masks(args: argparse.Namespace) -> int:
    from lama.masks import build_eval_mask_set

    return run_job("masks", args.outdir, lambda: build_eval_mask_set(
        args.config, args.indir, args.outdir, seed=args.seed, n_jobs=args.n_jobs, extensions=args.ext.split(","),
        progress=not args.quiet))


def run_prepare(args: argparse.Namespace) -> int:
    from lama.data.prepare import prepare

    def job() -> object:
        given = {"source": args.source, "root": args.root, "seed": args.seed, "train_count": args.train_count,
                 "val_count": args.val_count, "test_count": args.test_count, "size": args.size,
                 "min_size": args.min_size, "image_format": args.image_format, "quality": args.quality,
                 "shard_size": args.shard_size}
        if args.eval_sizes:
            given["eval_sizes"] = [int(size) for size in args.eval_sizes.split(",")]
        config = PrepareConfig(**{key: value for key, value in given.items() if value is not None})
        return prepare(config, args.outdir, n_jobs=args.n_jobs, progress=not args.quiet)

    return run_job("prepare", args.outdir, job)


def evaluate_options(args: argparse.Namespace) -> EvaluateOptions:
    """The options of ``lama evaluate``: the KEY=VALUE arguments after the paths, then those given with ``--set``."""
    return EvaluateOptions(
        datadir=args.datadir, predictdir=args.predictdir, out=args.out, tsv=args.tsv, model_dir=args.model_dir,
        overrides=[*args.overrides, *args.set], device=args.device, weights=args.weights, seed=args.seed,
        fid_method=args.fid_method, batch_size=args.batch_size, num_workers=args.n_jobs, img_suffix=args.img_suffix,
        inpainted_suffix=args.inpainted_suffix)


def run_evaluate(args: argparse.Namespace) -> int:
    from lama.eval.evaluator import evaluate_predictions

    options = evaluate_options(args)
    return run_job("evaluate", args.out, lambda: evaluate_predictions(options, progress=not args.quiet))


def run_report(args: argparse.Namespace) -> int:
    from lama.report import build_report

    def job() -> object:
        from lama.pipeline.experiments import experiment_evaluations

        experiments = experiment_evaluations(folders=args.results) if args.experiments else []
        return build_report(args.results, args.out, table_size=args.table_size, samples=args.samples,
                            progress=not args.quiet, experiments=experiments, before_after=args.before_after or ())

    return run_job("report", args.out, job)


def run_params(args: argparse.Namespace) -> int:
    from lama.pipeline.params import compose_params

    try:
        params = compose_params(args.overrides, args.config_dir, args.out, check=args.check)
    except ConfigError as error:
        print(f"lama params: {error}", file=sys.stderr)
        return 1 if args.check else 2
    runs = ", ".join(params.run_names)
    verb = "matches a fresh composition" if args.check else "written"
    print(f"lama params: {args.out} {verb} (profile {params.profile}; runs {runs})", file=sys.stderr)
    return 0


def run_weights(args: argparse.Namespace) -> int:
    from lama import weights

    if args.action == "list":
        print(f"weights cache: {weights.lama_home()} (set $LAMA_HOME to move it)")
        for name, entry in sorted(weights.REGISTRY.items()):
            if args.names and name not in args.names:
                continue
            size = f"{entry.size / 2**20:.1f} MiB" if entry.size else "size not pinned"
            pinned = f"sha256 {entry.sha256[:12]}…" if entry.sha256 else "no pinned sha256"
            print(f"{name:32} {weights.local_state(entry, args.verify):10} {size:>16}  {pinned:22} {entry.licence}")
            print(f"{'':32} {entry.local_path()}")
        return 0
    names = args.names or sorted(weights.REGISTRY)
    status = 0
    for name in names:
        try:
            path = weights.fetch(name, progress=not args.quiet, sha256=args.sha256, allow_unpinned=args.allow_unpinned)
        except (KeyError, ValueError, OSError) as error:
            print(f"lama weights: {name}: {error}", file=sys.stderr)
            status = 1
        else:
            print(f"lama weights: {name} -> {path}", file=sys.stderr)
    return status


def run_train(args: argparse.Namespace) -> int:
    if not (args.print_config or args.dry_run):
        from lama.train.__main__ import main as train_main

        return train_main(args.arguments)
    from lama.train.preview import compose, dry_run

    try:
        config = compose(args.arguments)
        if args.print_config:
            print(config.to_yaml(), end="")
        if args.dry_run:
            print(dry_run(config))
    except (ConfigError, FileNotFoundError, ValueError) as error:  # as a run fails on them: one line, status 2
        print(f"lama train: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"lama train: dry run: the run is ready to start; nothing was written to {config.train.out_dir}",
              file=sys.stderr)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    import optuna

    from lama.pipeline.params import load_params
    from lama.pipeline.sweep import default_storage, open_from_params
    from lama.sweep.interrupt import interruption, stop_on_signals
    from lama.sweep.search import work
    from lama.sweep.session import join, run_search

    logging.getLogger("lama").setLevel(logging.INFO)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with stop_on_signals():
            if args.worker:
                if args.overrides:
                    raise ConfigError("--worker takes its settings from the storage; OVERRIDES are for 'lama sweep'")
                search = join(args.storage or default_storage(), args.name, args.wait)
                plan = work(search)
                print(f"lama sweep: search {search.name} {plan.reason}; this worker is done", file=sys.stderr)
                return 0
            params = load_params(args.params, overrides=args.overrides)
            search = open_from_params(params, args.storage, args.name)
            summary = run_search(search)
    except (ConfigError, OSError) as error:
        print(f"lama sweep: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:  # SIGINT/SIGTERM: a trial that was running is recorded as interrupted
        stopped = interruption(error)
        print(f"lama sweep: {stopped}; a trial it was running is recorded as interrupted and runs again when the "
              "same command resumes the search", file=sys.stderr)
        return stopped.exit_code
    best = summary["best"]
    found = "no setting finished" if best is None else f"best {best['setting']} ({summary['objective']} " \
        f"{best['value']:.6g})"
    given_up = sum(len(stage["given_up"]) for stage in summary["stages"])
    failed = f"; {given_up} setting(s) given up after repeated failures (see sweep.md)" if given_up else ""
    print(f"lama sweep: search {search.name}: {summary['reason']}; {found} -> {search.config.out_dir}, "
          f"{search.config.loss_config}{failed}", file=sys.stderr)
    return 0


def run_sync_tracking(args: argparse.Namespace) -> int:
    from lama.tracking import sync_offline_records

    try:
        synced = sync_offline_records(args.record_root, args.uri)
    except RuntimeError as error:
        print(f"lama sync-tracking: {error}", file=sys.stderr)
        return 1
    for folder, run_id in synced.items():
        print(f"lama sync-tracking: {folder} -> run {run_id}", file=sys.stderr)
    return 0


def with_progress(command: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int]) -> None:
    """A command that shows a progress bar unless ``-q``, run by ``run``."""
    command.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    command.set_defaults(run=run)


class VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for (it scans the installed
    packages, which ``lama --help`` need not wait for)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {installed_version()}")
        parser.exit()


def installed_version() -> str:
    """The version of the distribution that installed the ``lama`` package (named in pyproject.toml); the source
    tree's own version when the package runs uninstalled."""
    from importlib import metadata

    import lama

    names = metadata.packages_distributions().get(lama.__name__, [])
    if not names:
        return f"{lama.__version__} (not installed)"
    return metadata.version(names[0])


def key_values(command: argparse.ArgumentParser, dest: str, metavar: str, help: str) -> None:
    """The command's list of ``key=value`` arguments (after its paths, if any); :func:`parse_arguments` also takes
    those that follow an option."""
    command.add_argument(dest, nargs="*", metavar=metavar, help=help)
    command.set_defaults(key_values=dest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lama", description="LaMa large-mask inpainting")
    parser.add_argument("--version", action=VersionAction, help="show the installed version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser(
        "predict", help="inpaint a folder of images and masks (official layout)", epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    key_values(predict, "arguments", "ARG", "paths, then key=value overrides")
    predict.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    predict.add_argument("--precision", choices=tuple(PRECISIONS), help="bf16 keeps the FFTs in float32")
    predict.add_argument("--checkpoint", help="checkpoint file name under MODEL_DIR/models (default best.ckpt)")
    predict.add_argument("--refine", action="store_const", const=True,
                         help="the official multi-scale refinement (refiner.* keys below)")
    predict.add_argument("--hd-strategy", choices=HD_STRATEGIES, help="large images: original (default), resize "
                         "or crop")
    predict.add_argument("--batch-size", type=int, help="images of equal size per generator pass (default 1)")
    predict.add_argument("--backend", choices=BACKENDS, help="torch (default; a model dir) or onnxruntime (a .onnx "
                         "file from 'lama export')")
    with_progress(predict, run_predict)

    export = commands.add_parser(
        "export", help="write a model dir as an ONNX file or a TorchScript module (image, mask -> inpainted)",
        epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("model_dir", help="an official or LaMa Lab model dir (or a .ckpt inside one)")
    export.add_argument("output", help="the file to write (.onnx, .pt)")
    export.add_argument("--format", choices=FORMATS, help="default: from the output's suffix")
    export.add_argument("--fourier", choices=FOURIER_MODES, default=DEFAULT_FOURIER,
                        help=f"ONNX: DFT-basis products or ONNX's DFT operator, both exact (default {DEFAULT_FOURIER})")
    export.add_argument("--precision", choices=ONNX_PRECISIONS, default=DEFAULT_ONNX_PRECISION,
                        help="ONNX: fp16 convolutions; the Fourier units, inputs and output stay fp32")
    export.add_argument("--out-key", choices=OUT_KEYS, default=OUT_KEYS[0],
                        help="inpainted (blended, default) or predicted_image (the raw generator output)")
    export.add_argument("--checkpoint", help="checkpoint file name under MODEL_DIR/models (default best.ckpt)")
    export.set_defaults(run=run_export)

    init = commands.add_parser(
        "init-model", help="write a randomly initialised model dir (official layout) for a preset")
    init.add_argument("preset", help="lama-fourier, big-lama, lama-fourier-shallow, lama-regular, ...")
    init.add_argument("output", help="model dir to create")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--ngf", type=int, help="override the base width (e.g. 8 for a tiny model)")
    init.add_argument("--n-blocks", type=int, help="override the number of residual blocks")
    init.set_defaults(run=run_init_model)

    masks = commands.add_parser(
        "masks", help="build a fixed eval mask set from a folder of images (official gen_mask_dataset layout)",
        description="Writes <stem>_crop000.png and <stem>_crop000_mask000.png per image, plus maskset.json with "
        "the config, the seed and every file not used (dropped image, other file, broken link) with its reason. Same "
        "inputs, same bytes.")
    masks.add_argument("config", help=f"an official set ({', '.join(EVAL_CONFIGS)}) or one scaled to another size, "
                       "e.g. thick_1024")
    masks.add_argument("indir", help="folder of images (searched recursively)")
    masks.add_argument("outdir", help="folder for the image/mask pairs")
    masks.add_argument("--seed", type=int, default=0, help="mask seed (default 0)")
    masks.add_argument("--n-jobs", type=int, default=1, help="worker processes (default 1)")
    masks.add_argument("--ext", default=",".join(e.lstrip(".") for e in DEFAULT_EXTENSIONS),
                       help="image extensions, comma-separated (default: %(default)s)")
    with_progress(masks, run_masks)

    prepare = commands.add_parser(
        "prepare", help="build train shards (WebDataset) and fixed val/test image folders from a source",
        description="Sources: embedded (crops of photographs shipped in installed packages; no download), "
        "places365 (ROOT holds data_large/ val_large/ test_large/ or the official tar files, and the official file "
        "lists where present), folder (ROOT is any image folder, or one with train/ val/ test/). Writes "
        "OUTDIR/train/train-NNNNNN.tar, OUTDIR/{val,test}/{512,256}/*.png, dataset.json, skipped.tsv and "
        "converted.tsv. Same inputs and params, same bytes; an interrupted run resumes.")
    prepare.add_argument("source", choices=SOURCES)
    prepare.add_argument("outdir", type=Path, help="folder to create")
    prepare.add_argument("--root", help="the Places365 folder or the image folder")
    prepare.add_argument("--size", type=int, help="short side of train images (default 256 embedded, else 512)")
    prepare.add_argument("--min-size", type=int, default=PrepareConfig.min_size,
                         help="skip files whose short side is smaller (default %(default)s)")
    prepare.add_argument("--image-format", "--format", default=PrepareConfig.image_format, choices=tuple(IMAGE_FORMATS),
                         help="train image encoding (default %(default)s)")
    prepare.add_argument("--quality", type=int, default=PrepareConfig.quality,
                         help="jpg/webp quality (default %(default)s)")
    prepare.add_argument("--shard-size", type=int, default=PrepareConfig.shard_size,
                         help="samples per shard (default %(default)s)")
    prepare.add_argument("--train-count", type=int, help="train images (default: all; embedded 240)")
    prepare.add_argument("--val-count", type=int, help="val images (embedded 8, places365 2000)")
    prepare.add_argument("--test-count", type=int, help="test images (embedded 16, places365 30000)")
    prepare.add_argument("--eval-sizes", help="eval image sizes, comma-separated (default "
                         f"{','.join(map(str, PrepareConfig().eval_sizes))})")
    prepare.add_argument("--seed", type=int, default=PrepareConfig.seed,
                         help="selection and crop seed (default %(default)s)")
    prepare.add_argument("--n-jobs", type=int, default=1, help="worker processes (default 1)")
    with_progress(prepare, run_prepare)

    train = commands.add_parser(
        "train", help="train a model (one process; use accelerate launch -m lama.train for several)",
        description="Trains per CONFIG (YAML) and key=value overrides, e.g. train.steps=2000 loss.kappa=3. Writes "
        "an official model dir (config.yaml, models/best.ckpt, models/last.ckpt) and a resumable state under "
        "train.out_dir; train.resume=auto (the default) continues from the last state. Exit status: 0 done, 1 a "
        "loss went non-finite, 2 bad config or input, 128+N after signal N (the state was saved first).")
    key_values(train, "arguments", "ARG", "[CONFIG.yaml] key=value ...")
    train.add_argument("--print-config", action="store_true",
                       help="print the composed, checked config (YAML, as the run would write train_config.yaml) "
                       "and exit without training")
    train.add_argument("--dry-run", action="store_true",
                       help="check the config, build the networks, open the data and read one batch, print a "
                       "summary and exit without training or writing anything")
    train.set_defaults(run=run_train)

    sync = commands.add_parser(
        "sync-tracking", help="replay offline MLflow records (kept while the tracking server was unreachable)")
    sync.add_argument("record_root", type=Path, help="folder of records, e.g. runs/train/mlflow-offline")
    sync.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else the record's own)")
    sync.set_defaults(run=run_sync_tracking)

    evaluate = commands.add_parser(
        "evaluate", help="score predictions against an eval mask set (SSIM, PSNR, LPIPS, FID per mask-area bin)",
        description="Pairs masks, images and predictions as the official evaluate_predicts.py does and writes OUT "
        "(JSON: totals under 'metrics' for dvc metrics, every area bin under 'bins', what was evaluated) and the "
        "official TSV beside it. LPIPS and FID need `lama weights fetch torchvision-vgg16 pytorch-fid-inception`, "
        "or --weights stand-in (seeded random networks; every such number is named *_stand-in). An interrupted "
        "evaluation resumes.")
    evaluate.add_argument("datadir", help="the eval mask set (image.png + image_maskNNN.png)")
    evaluate.add_argument("predictdir", help="the predictions, named like the masks (lama predict's output)")
    evaluate.add_argument("out", help="the JSON to write, e.g. results/fourier/thick_512.json")
    key_values(evaluate, "overrides", "KEY=VALUE", "record model.name/architecture/train_masks/mask_interp/"
               "parameters or mask_set.name/kind/size explicitly")
    evaluate.add_argument("--tsv", help="the TSV to write (default: OUT with .tsv)")
    evaluate.add_argument("--model-dir", help="the evaluated model dir, recorded for the report")
    evaluate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="a KEY=VALUE as one option (repeatable)")
    evaluate.add_argument("--weights", default=EvaluateOptions.weights, choices=WEIGHT_MODES)
    evaluate.add_argument("--seed", type=int, default=EvaluateOptions.seed,
                          help="seed of the stand-in networks (default %(default)s)")
    evaluate.add_argument("--fid-method", default=EvaluateOptions.fid_method, choices=FID_METHODS,
                          help="sqrtm: the official computation; svd: its exact closed form, much faster on CPU")
    evaluate.add_argument("--device", default=EvaluateOptions.device,
                          help="auto (a GPU when there is one), cpu, cuda, cuda:N")
    evaluate.add_argument("--batch-size", type=int, default=EvaluateOptions.batch_size,
                          help="images per batch (default %(default)s, the official)")
    evaluate.add_argument("--n-jobs", "--workers", type=int, default=EvaluateOptions.num_workers,
                          help="image-reading processes (default %(default)s)")
    evaluate.add_argument("--img-suffix", default=EvaluateOptions.img_suffix,
                          help="image suffix in DATADIR (default %(default)s)")
    evaluate.add_argument("--inpainted-suffix", default=EvaluateOptions.inpainted_suffix,
                          help="prediction suffix (default %(default)s)")
    with_progress(evaluate, run_evaluate)

    report = commands.add_parser(
        "report", help="paper-style tables (Markdown), Fig. 6 and sample grids (PNG) from evaluation JSONs",
        description="Reads every evaluation JSON under RESULTS (files or folders) and writes Tables 1, 2 and 4, "
        "the mask_interp ablation, Fig. 6 and sample grids into OUT, with the paper's numbers beside ours; cells "
        "without an evaluation say what is missing. Renders offline.")
    report.add_argument("results", nargs="+", help="evaluation JSON files or folders holding them")
    report.add_argument("--out", default="reports", help="output folder (default reports)")
    report.add_argument("--table-size", type=int, help="eval image size of the tables (default 512 if present, "
                        "else the largest)")
    report.add_argument("--samples", type=int, default=4, help="rows per sample grid (default 4)")
    report.add_argument("--experiments", action="store_true", help="also read the evaluations of the saved DVC "
                        "experiments of this commit (dvc exp show's rows) under the same results folder")
    report.add_argument("--before-after", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="two model names (runs) to set side by side in a first table, e.g. pretrained "
                        "finetuned: each metric before, after and its change, ▲ better or ▼ worse, per mask set both "
                        "were evaluated on")
    with_progress(report, run_report)

    params = commands.add_parser(
        "params", help="compose configs/ into params.yaml (as dvc exp run does) and check every value",
        description="Composes the Hydra config groups in configs/ with OVERRIDES (profile=paper, generator=dilated, "
        "loss.mask_interp=bicubic, ...) into params.yaml, byte-identical to DVC's composition, after checking every "
        "key and value; a bad one leaves params.yaml as it was. `dvc repro` then runs what it says.")
    key_values(params, "overrides", "OVERRIDE", "Hydra overrides, e.g. profile=paper")
    params.add_argument("--config-dir", default="configs", help="the config groups (default configs)")
    params.add_argument("--out", default="params.yaml", help="the file to write (default params.yaml)")
    params.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if OUT differs from a fresh composition")
    params.set_defaults(run=run_params)

    sweep = commands.add_parser(
        "sweep", help="coordinate-wise beam search over the loss weights kappa/alpha/beta/gamma (Optuna)",
        description="Tunes the loss weights of a run of params.yaml as the paper did: rounds over the coordinates, "
        "a log-spaced grid per coordinate around the best settings so far (beam), a short training per setting "
        "scored on the val set, pruning of hopeless trials, until a round brings no improvement. The search lives "
        "in an Optuna storage (SQLite by default; PostgreSQL for workers on many hosts), so a rerun resumes it and "
        "'lama sweep --worker' processes anywhere share it. Writes sweep.out_dir and sweep.loss_config.")
    key_values(sweep, "overrides", "OVERRIDE", "params.yaml values, e.g. sweep.beam_width=1 sweep.steps=200")
    sweep.add_argument("--params", default="params.yaml", help="the pipeline's params (default params.yaml)")
    sweep.add_argument("--storage", help="Optuna storage URL (default sweep.storage, else sqlite:///optuna.db), "
                       "e.g. postgresql://user:password@host/db")
    sweep.add_argument("--name", help="the search's name (default sweep.name, else the run and a hash); with "
                       "--worker: default the only search in the storage")
    sweep.add_argument("--worker", action="store_true",
                       help="join a search that 'lama sweep' opened and evaluate its settings until it ends")
    sweep.add_argument("--wait", type=float, default=300.0,
                       help="--worker: seconds to wait for the search to appear (default 300)")
    sweep.set_defaults(run=run_sweep)

    weights = commands.add_parser("weights", help="list or fetch the pretrained files (cached under $LAMA_HOME)")
    weights.add_argument("action", choices=("list", "fetch"))
    weights.add_argument("names", nargs="*", metavar="NAME", help="registry names (default: all)")
    weights.add_argument("--sha256", help="expected SHA-256 for a file the registry has no pinned hash for")
    weights.add_argument("--allow-unpinned", action="store_true", help="accept an unpinned file without a hash")
    weights.add_argument("--verify", action="store_true", help="list: hash every present file (slow for big ones)")
    with_progress(weights, run_weights)
    return parser


# What an interrupted command leaves, for its one-line message; fields of the command's arguments in braces.
# `train` and `sweep` say it themselves: they save before they stop.
KEPT_ON_INTERRUPT = {
    "predict": "every output written so far is complete; rerun to write them all",
    "masks": "finished images are journaled in {outdir}; rerun the same command to continue",
    "prepare": "finished shards and eval images are journaled in {outdir}; rerun the same command to continue",
    "evaluate": "finished batches are journaled beside {out}; rerun the same command to continue",
}
KEPT_OTHERWISE = "no partial file is left; rerun the command"


def interrupted_message(args: argparse.Namespace, stop: Interrupted) -> str:
    kept = KEPT_ON_INTERRUPT.get(args.command, KEPT_OTHERWISE).format(**vars(args))
    return f"lama {args.command}: interrupted by {stop.name}; {kept}"


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line parsed, with ``key=value`` arguments anywhere after the paths: argparse gives a list
    positional only the arguments before the first option, so ``lama train CONFIG --dry-run k=v`` would otherwise
    leave ``k=v`` unrecognised."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    dest = getattr(args, "key_values", None)
    if extra and (dest is None or any("=" not in token or token.startswith("-") for token in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        getattr(args, dest).extend(extra)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; SIGINT/SIGTERM end it with one line and exit status 128 + N (see ``lama.signals``)."""
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        with stop_signals_raise():
            return args.run(args)
    except Interrupted as stop:
        print(interrupted_message(args, stop), file=sys.stderr)
        return stop.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
