"""The ``astrozoo`` command: list, info, predict, finetune, download.

Heavy imports (torch, astropy) happen inside the commands that need them, so ``astrozoo --help``
and ``astrozoo list`` answer quickly. Ordinary problems (a bad file, a missing band, no GPU, an
existing output) end in one line on stderr and exit status 2; ``--debug`` shows the traceback.
``predict`` exits 1 when rows failed (more than ``--max-failed`` of them), and ends with a
summary of rows, flags and failures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

EXIT_USAGE, EXIT_ROWS_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def _headline_metric(config) -> str:
    from .registry import get_task

    key = (get_task(config.task).key_metrics or ("",))[0]
    for dataset, values in config.metrics.items():
        if key in values:
            return f"{key}={values[key]:.4g} ({dataset})"
    return "-"


def _cmd_list(args) -> int:
    from .registry import default_model, get_entry, list_models

    rows = [("task", "model", "bands", "input", "metric", "weights")]
    for name in list_models(args.task):
        entry = get_entry(name)
        cfg = entry.config
        spec = cfg.input_spec
        shape = f"{spec.size}x{spec.size} @{spec.pixel_scale}\"" if spec.kind == "image" else "catalogue"
        star = "*" if default_model(entry.task) == name else ""
        rows.append((entry.task, name + star, "".join(spec.bands), shape, _headline_metric(cfg),
                     entry.weights.describe()))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("\n* default model of its task (astrozoo.load(TASK))")
    return 0


def _model_files(name):
    """(config, card text, weights description, sha256) of a registered name or a directory."""

    from .config import ModelConfig
    from .hub import CARD_NAME, CONFIG_NAME, resolve_files
    from .registry import get_entry, is_registered

    if not is_registered(name) and Path(name).is_dir():
        d = Path(name)
        cfg = ModelConfig.from_json(d / CONFIG_NAME)
        card = (d / CARD_NAME).read_text() if (d / CARD_NAME).is_file() else ""
        return cfg, card, f"local:{d}", cfg.weights_sha256
    entry = get_entry(name)
    if entry.template is not None:  # an upstream repository: its card is on the Hub
        card = f"{entry.summary}\n\nCard: https://huggingface.co/{entry.weights.hub_repo}\n"
    else:
        card = (resolve_files(entry, (CONFIG_NAME, CARD_NAME)) / CARD_NAME).read_text()
    return entry.config, card, entry.weights.describe(), entry.sha256


def _cmd_info(args) -> int:
    from .cards import card_body

    cfg, card, where, sha = _model_files(args.name)
    s = cfg.input_spec
    print(f"{cfg.name}  (task: {cfg.task}, architecture: {cfg.architecture}, licence: {cfg.license})")
    print(f"  weights: {where}  sha256 {sha}")
    print(f"  input:   {s.kind}, survey {s.survey}, bands {','.join(s.bands)}, unit {s.flux_unit}"
          + (f", {s.size}x{s.size} px at {s.pixel_scale}\"/px" if s.kind == "image" else "")
          + f", normalisation {s.normalization}")
    if s.kind == "catalog":
        from .io.catalog import expected_columns

        print(f"  columns: {expected_columns(s)}")
    elif s.scale_free:
        print("  calibration: the normalisation is scale-free (each cutout's own noise); the "
              "flux unit does not change the output")
    else:
        print(f"  calibration: needed (BUNIT, MAGZP, FLUXMAG0, MAGZERO or PHOTFLAM in the "
              f"headers, or --unit/--zeropoint); uncalibrated inputs are flagged")
    print(f"  outputs: {', '.join(cfg.outputs)}")
    for dataset, values in cfg.metrics.items():
        vals = ", ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}"
                         for k, v in values.items())
        print(f"  metrics [{dataset}]: {vals}")
    body = card_body(card)
    paras = [p.strip() for p in body.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    if paras:
        print("\n" + paras[0])
    return 0


def _parse_pairs(items, what: str) -> dict:
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"{what} expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _summary(table, failed_limit: float) -> tuple[str, int]:
    """Closing summary (rows, flagged by flag, failed by reason) and the exit status."""
    import collections

    import numpy as np

    from .io import Flag

    flags = np.asarray(table["flags"]).astype(np.int64)
    n = len(table)
    errors = [e for e in (table["error"] if "error" in table.colnames else []) if e]
    by_flag = {f.name: int(np.count_nonzero(flags & f)) for f in Flag if f != Flag.READ_ERROR}
    flagged = int(np.count_nonzero(flags & ~np.int64(Flag.READ_ERROR)))
    lines = [f"{n} rows, {flagged} flagged, {len(errors)} failed"]
    lines += [f"  flagged {name}: {k}" for name, k in by_flag.items() if k]
    reasons = collections.Counter(e.split(": ", 1)[-1][:100] for e in errors)
    lines += [f"  failed ({k}): {why}" for why, k in reasons.most_common(5)]
    status = EXIT_ROWS_FAILED if errors and len(errors) > failed_limit * n else 0
    if status:
        lines.append(f"exit status {status}: {len(errors)} of {n} rows failed "
                     f"(--max-failed {failed_limit:g})")
    return "\n".join(lines), status


def _cmd_predict(args) -> int:
    from . import load
    from .inference.engine import select_device

    select_device(args.device)  # no GPU when one is asked for: say so before loading anything
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, not {args.batch_size}")
    model = load(args.model)
    images = _parse_pairs(args.image, "--image")
    if images and not args.catalog:
        raise ValueError("--image needs --catalog (positions of the objects to cut out)")
    if model.spec.kind == "catalog":
        if len(args.inputs) != 1:
            raise ValueError(f"{model.name} is a catalogue model: give one table file")
        inputs = args.inputs[0]
    else:
        inputs = images or args.inputs
    if not inputs and not (args.dask is not None and args.tiles):
        raise ValueError("no inputs: give FITS paths/globs/directories, or --catalog with --image")
    opts = {k: v for k, v in dict(
        bands=args.bands.split(",") if args.bands else None, catalog=args.catalog,
        id_column=args.id_column, unit=args.unit, zeropoint=args.zeropoint,
        missing_band=args.missing_band, uncalibrated=args.uncalibrated,
        max_missing=args.max_missing, scale_max_rtol=args.scale_max_rtol,
        keep=args.keep.split(",") if args.keep else None,
        columns=_parse_pairs(args.column, "--column") or None,
        chunk_size=args.chunk_size, num_workers=args.workers).items() if v is not None}
    if args.dask is not None:
        return _predict_dask(args, model, images, opts)
    if args.tiles or args.partition_rows or args.dask_workers:
        raise ValueError("--tiles, --partition-rows and --dask-workers need --dask")
    if model.spec.kind == "image":
        opts["group"] = None if args.no_group else args.group
    output = Path(args.output) if args.output else None
    reused = (output is not None and output.exists() and not args.overwrite
              and not output.with_name(output.name + ".partial").exists())
    table = model.predict(inputs, batch_size=args.batch_size, device=args.device,
                          progress=not args.quiet, output=output, on_error=args.on_error,
                          tta=args.tta, overwrite=args.overwrite,
                          score_incomplete=args.score_incomplete, **opts)
    if output is not None:
        from .inference.writers import column_names, read_table

        # the summary needs two columns, not the catalogue
        table = read_table(output, columns=[c for c in ("flags", "error")
                                            if c in column_names(output)])
        if reused:  # predict returned without an error: the file is this job's
            print(f"{args.output} is already complete for this job: nothing to do "
                  "(--overwrite to recompute)", file=sys.stderr)
        elif not args.quiet:
            print(f"wrote {len(table)} rows to {args.output}", file=sys.stderr)
    else:
        table.pprint(max_lines=-1 if args.all else 40, max_width=-1)
    summary, status = _summary(table, args.max_failed)
    if not args.quiet or status:
        print(summary, file=sys.stderr)
    return status


def _predict_dask(args, model, images, opts) -> int:
    """``predict --dask``: partitions of the catalogue on a Dask cluster, results in a
    directory of per-partition Parquet files (`astrozoo.scaleout.dask.predict_dask`)."""
    from .scaleout.dask import predict_dask

    if not args.output:
        raise ValueError("--dask needs -o DIR: the directory of per-partition Parquet files")
    if model.spec.kind == "catalog":
        catalog, tiles = args.inputs[0], None
    else:
        if not args.catalog or not (images or args.tiles):
            raise ValueError("--dask with a cutout model needs --catalog and the survey images "
                             "(--image BAND=PATH for one tile, or --tiles TABLE)")
        if images and args.tiles:
            raise ValueError("give --image or --tiles, not both")
        catalog = args.catalog
        if args.tiles:
            from .io.catalog import read_table

            tiles = read_table(args.tiles)
        else:
            tiles = images
    opts.pop("catalog", None)
    opts.pop("chunk_size", None)
    opts.pop("bands", None)
    scheduler = None if args.dask == "local" else args.dask
    table = predict_dask(args.model, catalog, args.output, images=tiles, scheduler=scheduler,
                         n_workers=args.dask_workers, max_rows=args.partition_rows or 10_000,
                         overwrite=args.overwrite, device=args.device, progress=not args.quiet,
                         batch_size=args.batch_size, on_error=args.on_error, tta=args.tta,
                         score_incomplete=args.score_incomplete, **opts)
    if not args.quiet:
        print(f"wrote {len(table)} rows to {args.output}/part-*.parquet", file=sys.stderr)
    summary, status = _summary(table, args.max_failed)
    if not args.quiet or status:
        print(summary, file=sys.stderr)
    return status


def _band_list(text):
    """``griz`` or ``g,r,i,z`` -> a list of band names (None stays None)."""
    if not text:
        return None
    return text.split(",") if "," in text else list(text)


def _cmd_finetune(args) -> int:
    from pathlib import Path

    from . import finetune

    out = Path(args.output)
    if (out / "model.safetensors").is_file() and not args.overwrite:
        raise FileExistsError(f"{out} already holds a model (--overwrite to replace it)")
    freeze = int(args.freeze) if args.freeze.isdigit() else args.freeze
    val = args.val
    if val is not None:
        try:
            val = float(val)
        except ValueError:
            pass  # a table path
    labels = args.labels.split(",") if args.labels else None
    label_column = args.label_column.split(",")
    read = {k: v for k, v in dict(unit=args.unit, zeropoint=args.zeropoint,
                                  on_error=args.on_error, max_missing=args.max_missing,
                                  scale_max_rtol=args.scale_max_rtol).items() if v is not None}
    train = {k: v for k, v in dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                   seed=args.seed, patience=args.patience).items()
             if v is not None}
    model = finetune(
        args.model, args.train, val, head=args.head, labels=labels,
        label_column=label_column[0] if len(label_column) == 1 else label_column,
        path_column=args.path_column, freeze=freeze,
        layer_decay=None if args.layer_decay == 0 else args.layer_decay,
        bands=_band_list(args.bands),
        pixel_scale=args.pixel_scale, size=args.size, survey=args.survey,
        class_weight=args.class_weight, unlabeled=args.unlabeled,
        pseudo_threshold=args.pseudo_threshold, name=args.name, read_options=read,
        progress=not args.quiet, log=(lambda m: None) if args.quiet else
        (lambda m: print(m, file=sys.stderr)), **train)
    import os

    if int(os.environ.get("RANK", "0")) == 0:  # one writer when run under torchrun
        model.save_pretrained(out)
        metrics = model.config.metrics.get("finetune-validation", {})
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        print(f"wrote {model.name} ({model.task}, {model.config.training['n_train']} training "
              f"rows) to {out}" + (f"; validation: {shown}" if shown else ""), file=sys.stderr)
    return 0


def _cmd_download(args) -> int:
    from . import download

    path = download(args.name)
    print(f"{args.name}: files verified in {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="astrozoo", description="Pretrained astronomy models: "
                                "list them, inspect them, run them on FITS cutouts.")
    p.add_argument("--version", action="version", version=f"astrozoo {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    # --debug also after the command: `astrozoo predict ... --debug`
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", parents=[debug], help="registered models with bands, input size, headline metric")
    s.add_argument("--task", help="only this task")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("info", parents=[debug], help="input spec, metrics and card summary of a model")
    s.add_argument("name", help="model or task name, or a model directory")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("predict", parents=[debug], help="run a model over FITS cutouts (or a catalogue)")
    s.add_argument("model", help="task name, model name, model directory or hf-hub:org/repo[@rev]")
    s.add_argument("inputs", nargs="*", help="FITS files, globs or directories (a table file "
                   "for catalogue models)")
    s.add_argument("-o", "--output", help="stream results to .fits, .ecsv or .parquet "
                   "(resumes an interrupted run of the same command; a finished one is kept)")
    s.add_argument("--catalog", help="catalogue of positions (ra/dec or x/y) for --image")
    s.add_argument("--image", action="append", metavar="BAND=PATH",
                   help="survey image of one band; repeat per band")
    s.add_argument("--bands", help="band names of the inputs' planes, comma-separated, where "
                   "the files do not name them")
    s.add_argument("--group", default="auto", metavar="PATTERN",
                   help="group per-band files into objects by file name, e.g. '{id}_{band}' "
                   "(default auto: that pattern when every file fits it)")
    s.add_argument("--no-group", action="store_true", help="one object per file")
    s.add_argument("--unit", help="flux unit of the inputs (nJy, nanomaggy, uJy...), "
                   "overriding the headers")
    s.add_argument("--zeropoint", type=float, help="AB zero point of the inputs' pixel values, "
                   "overriding the headers")
    s.add_argument("--uncalibrated", choices=("flag", "raise"), default="flag",
                   help="inputs stating no calibration: warn and flag them (default) or refuse")
    s.add_argument("--missing-band", choices=("raise", "unmeasured"), default="raise",
                   help="catalogue models: an absent band raises (default) or is not measured")
    s.add_argument("--max-missing", type=float, help="fraction of missing pixels above which a "
                   "row is flagged and gets no prediction (default 0.2)")
    s.add_argument("--score-incomplete", action="store_true",
                   help="predict for rows above --max-missing too")
    s.add_argument("--scale-max-rtol", type=float, help="largest relative pixel-scale "
                   "difference that is resampled rather than refused (default 0.25)")
    s.add_argument("--keep", help="input columns to carry into the output, comma-separated "
                   "(catalogue columns such as ra,dec; 'path' for files)")
    s.add_argument("--column", action="append", metavar="OURS=YOURS",
                   help="catalogue models: use column YOURS as OURS (e.g. flux_g=FLUX_G)")
    s.add_argument("--id-column", help="catalogue column to use as the id")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--chunk-size", type=int, help="rows per chunk of a streamed output "
                   "(default 4096; part of the job, keep it when resuming)")
    s.add_argument("--workers", type=int, help="input reader processes (default: by device)")
    s.add_argument("--device", help="cuda, mps or cpu (default: best available)")
    s.add_argument("--on-error", choices=("raise", "flag"), default="raise",
                   help="raise: stop at the first unreadable input, naming it (default, as in "
                   "Python); flag: write a flagged row with the reason and go on")
    s.add_argument("--max-failed", type=float, default=0.0, metavar="FRACTION",
                   help="with --on-error flag, exit 0 only if at most this fraction of rows "
                   "failed (default 0)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace a finished output file (an unfinished one is resumed)")
    s.add_argument("--tta", action="store_true", help="average over the 8 dihedral flips/rotations")
    s.add_argument("--dask", nargs="?", const="local", metavar="SCHEDULER",
                   help="run partitions of the catalogue on Dask: a new LocalCluster (no "
                        "value), or a scheduler address (tcp://host:8786); -o is a directory")
    s.add_argument("--dask-workers", type=int, help="workers of the LocalCluster (default: one "
                   "per GPU, or 2)")
    s.add_argument("--partition-rows", type=int, help="rows per partition with --dask "
                   "(default 10000)")
    s.add_argument("--tiles", help="with --dask: table of survey-image tiles, one row per tile "
                   "and one column per band holding that band's image path")
    s.add_argument("--all", action="store_true", help="print every row (without -o)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary "
                   "(failures are still reported)")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("finetune", parents=[debug], help="fine-tune a model on your labelled "
                       "cutouts (a table of FITS paths and labels)")
    s.add_argument("model", help="parent: task name, model name, model directory or hf-hub:...")
    s.add_argument("train", help="training table (.fits, .ecsv, .csv, .parquet) with a column of "
                   "cutout paths and the label column(s)")
    s.add_argument("-o", "--output", required=True, help="directory for the fine-tuned model")
    s.add_argument("--val", help="validation table, or a fraction of the training rows to hold "
                   "out (early stopping, best epoch)")
    s.add_argument("--head", choices=("binary", "classes", "regression", "mdn"),
                   help="default: the parent's kind (lens finding: binary)")
    s.add_argument("--label-column", default="label", help="label column(s), comma-separated "
                   "for several regression targets (default: label)")
    s.add_argument("--labels", help="class names in order (classes), the positive class "
                   "(binary) or target names (regression), comma-separated")
    s.add_argument("--path-column", help="column of cutout paths (default: path, file, ...)")
    s.add_argument("--freeze", default="none", help="none (default), backbone (head only), or "
                   "N: train the last N blocks and the head")
    s.add_argument("--layer-decay", type=float, default=0.75,
                   help="layer-wise learning-rate decay (default 0.75; 0: one rate)")
    s.add_argument("--bands", help="your bands, e.g. griz or g,r,i,z (default: the parent's)")
    s.add_argument("--pixel-scale", type=float, help="your arcsec/pixel (default: the parent's)")
    s.add_argument("--size", type=int, help="your cutout side in pixels (default: the parent's)")
    s.add_argument("--survey", help="survey preset of your data (wavelengths; e.g. des)")
    s.add_argument("--class-weight", choices=("balanced",), help="weight classes by their "
                   "inverse frequency")
    s.add_argument("--unlabeled", help="unlabelled cutouts (glob or directory) for one round of "
                   "pseudo-labelling")
    s.add_argument("--pseudo-threshold", type=float, default=0.95)
    s.add_argument("--epochs", type=int, help="default: enough for 300 steps, at least 10")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--patience", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--name", help="name of the new model")
    s.add_argument("--unit", help="flux unit of the cutouts, overriding the headers")
    s.add_argument("--zeropoint", type=float, help="AB zero point, overriding the headers")
    s.add_argument("--on-error", choices=("raise", "flag"), help="flag: leave unreadable "
                   "cutouts out of training (with a warning) instead of stopping")
    s.add_argument("--max-missing", type=float)
    s.add_argument("--scale-max-rtol", type=float)
    s.add_argument("--overwrite", action="store_true", help="replace a model in --output")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_cmd_finetune)

    s = sub.add_parser("download", parents=[debug], help="fetch and verify a model's files into the local cache")
    s.add_argument("name", help="model or task name, or hf-hub:org/repo[@rev]")
    s.set_defaults(func=_cmd_download)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        where = getattr(args, "output", None)
        print("astrozoo: interrupted" + (f"; rerun the same command to resume {where}"
                                         if where else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `astrozoo predict ... | head`: the reader has gone
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        from .exceptions import AstrozooError

        ordinary = (AstrozooError, KeyError, ValueError, TypeError, FileExistsError,
                    FileNotFoundError)
        if args.debug or not isinstance(e, ordinary):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"astrozoo: error: {msg}" + ("" if "\n" in str(msg) else
                                         "  (--debug for the traceback)"), file=sys.stderr)
        return EXIT_USAGE
