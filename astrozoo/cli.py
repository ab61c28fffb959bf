"""The ``astrozoo`` command: list, info, predict, download.

Heavy imports (torch, astropy) happen inside the commands that need them, so ``astrozoo --help``
and ``astrozoo list`` answer quickly.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


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


def _cmd_info(args) -> int:
    from .cards import card_body
    from .hub import CARD_NAME, CONFIG_NAME, resolve_files
    from .registry import get_entry

    entry = get_entry(args.name)
    cfg = entry.config
    s = cfg.input_spec
    print(f"{cfg.name}  (task: {cfg.task}, architecture: {cfg.architecture}, licence: {cfg.license})")
    print(f"  weights: {entry.weights.describe()}  sha256 {entry.sha256}")
    print(f"  input:   {s.kind}, survey {s.survey}, bands {','.join(s.bands)}, unit {s.flux_unit}"
          + (f", {s.size}x{s.size} px at {s.pixel_scale}\"/px" if s.kind == "image" else "")
          + f", normalisation {s.normalization}")
    print(f"  outputs: {', '.join(cfg.outputs)}")
    for dataset, values in cfg.metrics.items():
        vals = ", ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}"
                         for k, v in values.items())
        print(f"  metrics [{dataset}]: {vals}")
    body = card_body((resolve_files(entry, (CONFIG_NAME, CARD_NAME)) / CARD_NAME).read_text())
    paras = [p.strip() for p in body.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    if paras:
        print("\n" + paras[0])
    return 0


def _parse_images(items):
    images = {}
    for item in items or ():
        band, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--image expects BAND=PATH, got {item!r}")
        images[band] = path
    return images


def _cmd_predict(args) -> int:
    from . import load

    model = load(args.model)
    images = _parse_images(args.image)
    if images and not args.catalog:
        raise SystemExit("--image needs --catalog (positions of the objects to cut out)")
    inputs = images if images else (args.inputs[0] if model.spec.kind == "catalog" else args.inputs)
    if not inputs:
        raise SystemExit("no inputs: give FITS paths/globs/directories, or --catalog with --image")
    opts = {}
    if args.bands:
        opts["bands"] = args.bands.split(",")
    if args.catalog:
        opts["catalog"] = args.catalog
    if args.id_column:
        opts["id_column"] = args.id_column
    table = model.predict(inputs, batch_size=args.batch_size, device=args.device,
                          progress=not args.quiet, output=args.output, on_error=args.on_error,
                          tta=args.tta, overwrite=args.overwrite, **opts)
    if args.output:
        if not args.quiet:
            print(f"wrote {len(table)} rows to {args.output}", file=sys.stderr)
    else:
        table.pprint(max_lines=-1 if args.all else 40, max_width=-1)
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
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="registered models with bands, input size, headline metric")
    s.add_argument("--task", help="only this task")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("info", help="input spec, metrics and card summary of a model")
    s.add_argument("name", help="model or task name")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("predict", help="run a model over FITS cutouts (or a catalogue)")
    s.add_argument("model", help="task name, model name, model directory or hf-hub:org/repo[@rev]")
    s.add_argument("inputs", nargs="*", help="FITS files, globs or directories (a table file "
                   "for catalogue models)")
    s.add_argument("-o", "--output", help="stream results to .fits, .ecsv or .parquet "
                   "(resumes an interrupted run of the same command)")
    s.add_argument("--catalog", help="catalogue of positions (ra/dec or x/y) for --image")
    s.add_argument("--image", action="append", metavar="BAND=PATH",
                   help="survey image of one band; repeat per band")
    s.add_argument("--bands", help="band names of the inputs, comma-separated, when files do not say")
    s.add_argument("--id-column", help="catalogue column to use as the id")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--device", help="cuda, mps or cpu (default: best available)")
    s.add_argument("--on-error", choices=("raise", "flag"), default="raise",
                   help="raise: stop at the first unreadable input, naming it (default, as in "
                   "Python); flag: write a flagged row with the reason and go on")
    s.add_argument("--overwrite", action="store_true",
                   help="replace a finished output file (an unfinished one is resumed)")
    s.add_argument("--tta", action="store_true", help="average over the 8 dihedral flips/rotations")
    s.add_argument("--all", action="store_true", help="print every row (without -o)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("download", help="fetch and verify a model's files into the local cache")
    s.add_argument("name", help="model or task name, or hf-hub:org/repo[@rev]")
    s.set_defaults(func=_cmd_download)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .exceptions import AstrozooError

    try:
        return args.func(args)
    except (AstrozooError, KeyError) as e:
        print(f"astrozoo: error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
