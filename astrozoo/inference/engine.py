"""The batched inference engine behind `ZooModel.predict` and `ZooModel.embed`.

A torch DataLoader reads whole batches from the input pipeline (`astrozoo.io.open_inputs`) in
worker processes while the model computes, so reading FITS overlaps the forward pass; the
batches go to the device (pinned memory on CUDA), through ``model.preprocess`` in float32, the
network (optionally under autocast, in ``channels_last``, compiled, or over the 8 dihedral
copies), and ``model.postprocess``. Rows come back in input order, either as one astropy Table
or streamed to a resumable file (`astrozoo.inference.writers`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch
from astropy.table import Table
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..exceptions import InputError
from ..io.flags import Flag
from .tta import tta_outputs
from .writers import ChunkStore, ids_fingerprint, output_format, provenance, read_meta, read_table

__all__ = ["predict", "embed", "select_device", "amp_dtype", "reader_count",
           "DEFAULT_ON_ERROR"]

_ON_ERROR = ("raise", "flag")
#: The one default of the API and the CLI: stop at the first unreadable input, naming it. A
#: wrong or missing row in a catalogue is worse than a stopped run; skipping bad rows
#: (``"flag"``) is a choice the user states.
DEFAULT_ON_ERROR = "raise"


def select_device(device=None) -> torch.device:
    """`device` as a `torch.device`; ``None`` or ``"auto"`` picks cuda, then mps, then cpu."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but torch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or leave it unset")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} was asked for, but MPS is not available")
    return dev


def amp_dtype(device: torch.device, amp="auto") -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`, or None for float32.

    ``"auto"``: bfloat16 on GPUs that support it, else float16 (CUDA and MPS); float32 on CPU,
    where autocast is slower than float32 on most machines. ``True``: as ``"auto"`` but also
    bfloat16 on CPU. ``False``/``None``: float32. ``"bf16"``, ``"fp16"`` or a dtype: that one.
    """
    if amp is None or amp is False:
        return None
    if isinstance(amp, torch.dtype):
        return amp
    named = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if isinstance(amp, str) and amp in named:
        return named[amp]
    if amp is True or amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if amp is True else None
    raise ValueError(f"amp must be 'auto', True, False, 'bf16', 'fp16' or a torch dtype, "
                     f"not {amp!r}")


class _Item(NamedTuple):
    data: torch.Tensor
    ids: list
    n_bad_pixels: np.ndarray
    flags: np.ndarray
    errors: list
    extra: dict


class BatchDataset(Dataset):
    """The batches of a CutoutSet as DataLoader items (use with ``batch_size=None``).

    Reading a whole batch per item lets the input pipeline vectorise and keeps the DataLoader's
    per-item overhead off each object. The CutoutSet reaches worker processes by pickling.
    """

    def __init__(self, cutouts, batches: list[np.ndarray]):
        self.cutouts = cutouts
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> _Item | InputError:
        try:
            b = self.cutouts.read_batch(self.batches[k])
        except InputError as e:
            return e  # re-raised as it is by the main process (see _loader)
        data = torch.from_numpy(np.ascontiguousarray(b.data, dtype=np.float32))
        return _Item(data, list(b.ids), np.asarray(b.n_bad_pixels, np.int64),
                     np.asarray(b.flags, np.int64), list(b.errors),
                     self.cutouts.extra_columns(self.batches[k]))


def _open(inputs, spec, on_error: str, io_options: dict):
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, not {on_error!r}")
    if hasattr(inputs, "read_batch") and hasattr(inputs, "ids"):
        return inputs  # already opened: a CutoutSet is used as it is
    from ..io import open_inputs

    return open_inputs(inputs, spec, on_error=on_error, **io_options)


def _split(rows: range, batch_size: int) -> list[np.ndarray]:
    return [np.arange(s, min(s + batch_size, rows.stop), dtype=np.int64)
            for s in range(rows.start, rows.stop, batch_size)]


class _Runner:
    """A model set up for batched inference on one device."""

    def __init__(self, model, device, amp, channels_last, compile: bool, tta: bool,
                 runtime: str = "torch"):
        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime must be 'torch' or 'onnx', not {runtime!r}")
        self.model = model
        self.session = None
        if runtime == "onnx":
            if tta or compile:
                raise ValueError(f"{model.name}: runtime='onnx' runs without tta and compile")
            from ..export import onnx_session

            self.session, device, amp = onnx_session(model), "cpu", False
        self.device = select_device(device)
        self.image = model.spec.kind == "image"
        if tta and not self.image:
            raise ValueError(f"{model.name}: test-time augmentation needs image inputs")
        self.tta = tta
        self.amp = amp_dtype(self.device, amp)
        # channels_last helps convolutions on GPU tensor cores; on CPU it is measured no faster.
        self.channels_last = (self.image and self.device.type == "cuda"
                              if channels_last == "auto" else bool(channels_last))
        model.eval().to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(model) if compile else model

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    def _input(self, data: torch.Tensor) -> torch.Tensor:
        x = data.to(self.device, non_blocking=True)
        x = self.model.preprocess(x)  # float32, outside autocast: medians and asinh need it
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def raw(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw output (B, ...) on the CPU in float32, and with TTA the 8 copies (8, B, ...)."""
        if self.session is not None:  # the exported graph includes the preprocessing
            from ..export import INPUT_NAME

            return torch.from_numpy(self.session.run(None, {INPUT_NAME: data.numpy()})[0]), None
        x = self._input(data)
        with self._autocast():
            if not self.tta:
                return self.forward(x).float().cpu(), None
            outs = tta_outputs(self.forward, x).float()
            return self.model.combine_tta(outs).float().cpu(), outs.cpu()

    @torch.inference_mode()
    def features(self, data: torch.Tensor) -> torch.Tensor:
        x = self._input(data)
        with self._autocast():
            if self.tta:
                return tta_outputs(self.model.forward_features, x).float().mean(0).cpu()
            return self.model.forward_features(x).float().cpu()

    def columns(self, data: torch.Tensor) -> dict[str, np.ndarray]:
        raw, outs = self.raw(data)
        cols = self.model.check_outputs(dict(self.model.postprocess(raw)))
        if outs is not None:
            # The spread over orientations of each scalar float column.
            per = [self.model.postprocess(o) for o in outs]
            for name, v in list(cols.items()):
                v = np.asarray(v)
                if v.ndim == 1 and v.dtype.kind == "f":
                    cols[f"{name}_tta_std"] = np.std([np.asarray(p[name]) for p in per], axis=0)
        return cols


def reader_count(read_s: float, consumer_s: float, consumer_cpu_s: float, remaining: int,
                 cores: int | None = None) -> int:
    """Reader processes for the rest of a run, from one batch's measured times.

    Parameters
    ----------
    read_s : float
        Wall time to read the batch in-process.
    consumer_s, consumer_cpu_s : float
        Wall and CPU time (all threads of this process) of everything done with the batch
        after reading it: transfer, preprocessing, forward, postprocessing, writing.
    remaining : int
        Batches left.
    cores : int, optional
        CPU cores this process may use (default: its affinity).

    Returns
    -------
    int
        0 when reading is negligible (under 5% of the consumer's time), when fewer than 2
        batches remain, or when the consumer keeps the cores busy itself (a CPU forward: a
        reader would only compete with its threads). Otherwise enough readers for reading to
        keep up with the consumer (``ceil(read / consumer)``, plus one for jitter), within the
        cores the consumer leaves idle: an accelerator's forward holds no host core, so reading
        sets the pace and scales with cores.
    """
    if remaining < 2 or read_s <= 0.05 * consumer_s:
        return 0
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = consumer_cpu_s / max(consumer_s, 1e-9)  # host cores the consumer keeps busy
    idle = int((cores or 1) - busy + 0.2)  # a core the consumer uses 80% of is taken
    need = math.ceil(read_s / max(consumer_s, 1e-9)) + 1
    return max(0, min(idle, need, remaining))


def _loader(runner: _Runner, cutouts, batches: list[np.ndarray], num_workers,
            prefetch_factor: int) -> Iterator[_Item]:
    """The batches, in order: read ahead by `num_workers` DataLoader workers, or with "auto"
    by as many as the first batches' measured read and compute times call for (`reader_count`;
    the first two batches are read in-process to measure them, the second after warm-up)."""
    if num_workers != "auto":
        yield from _dataloader(runner, cutouts, batches, int(num_workers), prefetch_factor)
        return
    dataset, n_probe = BatchDataset(cutouts, batches), min(2, len(batches))
    times = (0.0, 0.0, 0.0)
    for k in range(n_probe):
        t0 = time.perf_counter()
        item = dataset[k]
        read_s = time.perf_counter() - t0
        if isinstance(item, InputError):
            raise item
        w0, c0 = time.perf_counter(), time.process_time()
        yield item  # the caller computes and stores this batch before asking for the next
        times = (read_s, time.perf_counter() - w0, time.process_time() - c0)
    workers = reader_count(*times, remaining=len(batches) - n_probe)
    yield from _dataloader(runner, cutouts, batches[n_probe:], workers, prefetch_factor)


def _dataloader(runner: _Runner, cutouts, batches: list[np.ndarray], workers: int,
                prefetch_factor: int) -> Iterator[_Item]:
    """The batches, read ahead by `workers` DataLoader processes, in order."""
    if not batches:
        return
    # Reading ahead needs a next batch: a single batch is read in-process, without a fork.
    workers = min(workers, len(batches) - 1)
    loader = DataLoader(BatchDataset(cutouts, batches), batch_size=None, shuffle=False,
                        num_workers=workers, pin_memory=runner.device.type == "cuda",
                        prefetch_factor=prefetch_factor if workers else None)
    it = iter(loader)
    try:
        for item in it:
            # Raised here rather than in the worker, the user gets the input pipeline's own
            # InputError (not torch's re-wrapped copy).
            if isinstance(item, InputError):
                raise item
            yield item
    finally:
        del it  # stops the workers now, not when the traceback is collected


def _rows(item: _Item, cols: dict[str, Any], score_incomplete: bool) -> dict[str, np.ndarray]:
    """One batch's output rows: id, carried input columns, task columns, then the input
    pipeline's quality columns. Unreadable rows, and rows with too many missing pixels (unless
    `score_incomplete`), get NaN predictions."""
    errors = [None if e is None else " ".join(str(e).split()) for e in item.errors]
    bad = np.array([e is not None for e in errors])
    flags = np.asarray(item.flags)  # the DataLoader may have made tensors of the arrays
    if not score_incomplete:
        bad |= (flags & Flag.TOO_MANY_MISSING) != 0
    ids = np.asarray(item.ids)
    out = {"id": ids if ids.dtype.kind in "iub" else ids.astype(str),
           **{k: np.asarray(v) for k, v in item.extra.items()}}
    for name, v in cols.items():
        v = np.asarray(v)
        if bad.any() and v.dtype.kind == "f":  # no prediction for an unreadable object
            v = np.where(bad.reshape((-1,) + (1,) * (v.ndim - 1)), np.nan, v).astype(v.dtype)
        out[name] = v
    out["n_bad_pixels"] = np.asarray(item.n_bad_pixels)
    out["flags"] = flags
    out["error"] = np.array([e or "" for e in errors], dtype=str)
    return out


def _table(parts: list[dict[str, np.ndarray]], meta: dict) -> Table:
    return Table({k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, meta=meta)


def _progress(model, total: int, initial: int, progress: bool) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not progress, unit="obj",
                desc=model.name, dynamic_ncols=True, smoothing=0.1)


#: Seconds between writes of the rows of a chunk being filled: what a kill can lose.
FLUSH_SECONDS = 1.0


class _Pending:
    """Rows computed but not stored yet, all of one chunk: stored when the chunk is complete
    and otherwise, on a batch boundary, once `FLUSH_SECONDS` have passed since the last write
    (a piece file), so that a kill loses about a second of work, not a chunk."""

    def __init__(self, store: ChunkStore):
        self.store = store
        self.parts: list[dict[str, np.ndarray]] = []
        self.k = None
        self.last = time.monotonic()

    def add(self, k: int, rows: dict[str, np.ndarray], complete: bool) -> None:
        self.k = k
        self.parts.append(rows)
        if complete or time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.store.write_rows(self.k, _table(self.parts, {}))
            self.parts = []
        self.last = time.monotonic()


def predict(model, inputs, *, batch_size: int = 256, device=None, progress: bool = True,
            output=None, on_error: str = DEFAULT_ON_ERROR, tta: bool = False, num_workers="auto",
            prefetch_factor: int = 2, amp="auto", channels_last="auto", compile: bool = False,
            chunk_size: int | None = None, overwrite: bool = False, read_back: bool = False,
            score_incomplete: bool = False, runtime: str = "torch", **io_options):
    """Run `model` over `inputs`: one row per object, in input order.

    Parameters
    ----------
    model : ZooModel
        Moved to `device` (and to channels-last memory format where used) and put in eval
        mode.
    inputs
        Anything `astrozoo.io.open_inputs` accepts, or an opened CutoutSet (used as is).
    batch_size : int
        Objects per forward pass; results do not depend on it beyond float rounding.
    device : str or torch.device, optional
        Default: cuda, then mps, then cpu.
    progress : bool
        Show a tqdm bar with objects/s and the time left.
    output : path, optional
        Stream rows to this file (``.fits``, ``.ecsv`` or ``.parquet``) in chunks of
        `chunk_size` rows, with bounded memory. Rerunning the same call after an interruption
        resumes: the rows stored are kept (a kill loses about the last `FLUSH_SECONDS` of
        work) and every row ends up written exactly once, with the values of an uninterrupted
        run. The file appears complete or not at all (written under a temporary name, fsynced,
        renamed). A directory that takes no files raises `OutputError` before anything is
        computed, a disk too small for the job after the first batch, a failed write (disk
        full) when it happens, keeping the rows stored for the rerun.
    on_error : {"raise", "flag"}
        ``"raise"``: an unreadable input stops the run with an `InputError` naming the file.
        ``"flag"``: its row gets NaN predictions, the READ_ERROR flag and the reason in
        ``error``.
    tta : bool
        Combine the outputs over the 8 flips and quarter turns (``model.combine_tta``) and add
        ``<column>_tta_std``, the spread over them, for each scalar float column.
    num_workers : int or "auto"
        DataLoader worker processes reading inputs. "auto": chosen from the first two batches'
        measured read and compute times (`reader_count`): none on a CPU whose cores the forward
        keeps busy, enough to keep an accelerator fed otherwise.
    prefetch_factor : int
        Batches each worker reads ahead.
    amp : "auto", bool, "bf16", "fp16" or torch.dtype
        Autocast precision of the network (`amp_dtype`); preprocessing stays float32.
    channels_last : "auto" or bool
        Channels-last memory format for image models (auto: on CUDA).
    compile : bool
        Run the network through `torch.compile` (pays off on long GPU runs).
    chunk_size : int, optional
        Rows per chunk of a streamed output (default 4096; a part file never spans two, and a
        Parquet row group holds about one). Part of the job's identity:
        a resumed run must use the same value.
    overwrite : bool
        Replace an existing finished `output`. Without it, rerunning a job whose `output` is
        finished returns that file's table (nothing is recomputed); a finished output of another
        job (model, weights, TTA or inputs differ) is refused.
    read_back : bool
        With `output`: return the table read back from the file (memory-mapped for FITS)
        instead of its path. Off by default: a catalogue of millions of rows is not read again
        just to be returned.
    score_incomplete : bool
        Predict for rows with more than ``max_missing`` of their pixels missing
        (`Flag.TOO_MANY_MISSING`) too; by default they get NaN predictions.
    runtime : {"torch", "onnx"}
        ``"onnx"``: preprocessing and network run in onnxruntime on the CPU, from the model
        exported by `astrozoo.export.export_onnx` (the ``onnx`` extra; no TTA, `amp` or
        `compile`). Recorded in the provenance, so a resumed run keeps its runtime.
    **io_options
        Passed to `astrozoo.io.open_inputs` (``bands=``, ``catalog=``, ``id_column=``, ...).

    Returns
    -------
    astropy.table.Table or pathlib.Path
        ``id``, the task's columns, ``n_bad_pixels``, ``flags`` and, when some input could not
        be read, ``error`` (empty where fine). ``meta`` records the provenance (ASTROZOO,
        MODEL, TASK, SHA256, PRESET, NORM, TTA, DATE). With `output`, the output's path (or,
        with `read_back`, the table read back from it; `astrozoo.inference.read_table` reads
        it later, whole or some columns).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if output is not None:
        output_format(output)  # an unsupported suffix fails before any work
    cutouts = _open(inputs, model.spec, on_error, io_options)
    n = len(cutouts)
    if not n:
        raise ValueError(f"{model.name}: no input objects")
    runner = _Runner(model, device, amp, channels_last, compile, tta, runtime)
    meta = provenance(model, tta=tta, runtime=runtime)
    if output is None:
        bar = _progress(model, n, 0, progress)
        parts = []
        with bar:
            for item in _loader(runner, cutouts, _split(range(n), batch_size), num_workers,
                                prefetch_factor):
                parts.append(_rows(item, runner.columns(item.data), score_incomplete))
                bar.update(len(item.ids))
        table = _table(parts, meta)
        if not np.any(table["error"] != ""):
            del table["error"]
        return table

    # Independent of batch_size, so that a rerun with another batch size still resumes.
    chunk_size = chunk_size or 4096
    meta["IDS256"] = ids_fingerprint(cutouts.ids)
    if _finished_output(output, meta, overwrite):
        return read_table(output) if read_back else Path(output)
    manifest = {"model": meta["MODEL"], "sha256": meta["SHA256"], "tta": bool(tta),
                "ids_sha256": meta["IDS256"], "date": meta["DATE"]}
    # Ids are known in advance: every part stores them at the job's width (one FITS layout).
    store = ChunkStore(output, manifest, n, chunk_size, overwrite=overwrite,
                       widths={"id": max(len(str(i)) for i in cutouts.ids)})
    meta["DATE"] = store.manifest["date"]  # a resumed job keeps its start date
    # The batches start where each chunk's stored rows end: the same batches as in an
    # uninterrupted run of this batch size, since rows are only stored on batch boundaries.
    plan = [(k, idx) for k in range(store.n_chunks)
            for idx in _split(store.pending(k), batch_size)]
    bar = _progress(model, n, n - sum(len(idx) for _, idx in plan), progress)
    with bar:
        pending = _Pending(store)
        items = _loader(runner, cutouts, [idx for _, idx in plan], num_workers,
                        prefetch_factor) if plan else ()
        try:
            # items first: its exhaustion ends the loop, which stops the DataLoader workers.
            for item, (k, idx) in zip(items, plan, strict=True):
                rows = _rows(item, runner.columns(item.data), score_incomplete)
                if idx is plan[0][1]:  # the first batch shows what a row weighs
                    store.check_space(sum(v.nbytes for v in rows.values()) / len(idx))
                pending.add(k, rows, complete=idx[-1] + 1 == store.rows(k).stop)
                bar.update(len(idx))
        except BaseException:
            # Keep what was computed when the run stops on an error or Ctrl-C; if that write
            # fails too (disk full), the error the user needs is the first one.
            with contextlib.suppress(Exception):
                pending.flush()
            raise
    store.finalize(meta)
    return read_table(output) if read_back else Path(output)


def _finished_output(output, meta: dict, overwrite: bool) -> bool:
    """Whether `output` is the finished output of this very job (same model, weights, TTA and
    inputs, read from its header or footer), so that a rerun is a no-op. A finished output of
    another job is refused unless `overwrite`."""
    output = Path(output)
    if overwrite or not output.exists() or output.with_name(output.name + ".partial").exists():
        return False
    stored = read_meta(output)
    keys = ("MODEL", "SHA256", "TTA", "IDS256")
    old = {k: stored.get(k, stored.get(k.lower())) for k in keys}
    if all(str(old[k]) == str(meta[k]) for k in keys):
        return True
    diff = [k for k in keys if str(old[k]) != str(meta[k])]
    raise FileExistsError(f"{output} is the finished output of another job (it differs in "
                          f"{diff}); pass overwrite=True (CLI --overwrite) to replace it")


def embed(model, inputs, *, batch_size: int = 256, device=None, progress: bool = True,
          on_error: str = DEFAULT_ON_ERROR, tta: bool = False, num_workers="auto",
          prefetch_factor: int = 2, amp="auto", channels_last="auto",
          **io_options) -> np.ndarray:
    """Backbone embeddings (``model.forward_features``) of `inputs`, (N, D) float32 in input
    order; rows of unreadable inputs (``on_error="flag"``) are NaN. With `tta`, the mean over
    the 8 dihedral copies (an orientation-invariant embedding). Other parameters as `predict`.
    """
    cutouts = _open(inputs, model.spec, on_error, io_options)
    if not len(cutouts):
        raise ValueError(f"{model.name}: no input objects")
    runner = _Runner(model, device, amp, channels_last, False, tta)
    out = []
    with _progress(model, len(cutouts), 0, progress) as bar:
        for item in _loader(runner, cutouts, _split(range(len(cutouts)), batch_size),
                            num_workers, prefetch_factor):
            f = runner.features(item.data).numpy().astype(np.float32)
            f[[e is not None for e in item.errors]] = np.nan
            out.append(f)
            bar.update(len(item.ids))
    return np.concatenate(out)
