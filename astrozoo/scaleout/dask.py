"""Survey-scale inference on a Dask cluster (the ``dask`` extra).

One partition (`astrozoo.scaleout.partitions`) is one Dask task. Each worker process loads the
model once and keeps it (on its own GPU where there are several: worker ``i`` takes GPU
``i mod n``); each task writes its rows to ``part-<key>.parquet`` in the output directory,
atomically (temporary name, fsync, rename), so a partition's file is complete or absent. A task
that raises is retried (`retries`); a worker that dies has its tasks rescheduled by the Dask
scheduler; a rerun of the same job skips the partitions whose files exist. Because every
partition has exactly one file name, a partition computed twice (a worker lost after writing)
still contributes its rows once.

Dask's own machinery does the scheduling, retries and worker restarts; what is written here is
only what Dask cannot know: which rows form a partition, the per-worker model cache and the
atomic, idempotent per-partition write.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from ..exceptions import AstrozooError, OutputError
from ..io.catalog import _ID_COLUMNS, as_table, find_column
from .partitions import (Partition, check_images, partition_catalog,
                         partitions_fingerprint)

__all__ = ["predict_dask", "read_partitions", "PartitionError", "JOB_FILE"]

JOB_FILE = "_astrozoo_job.json"
_MODELS: dict = {}  # per worker process: the one model it keeps loaded


class PartitionError(AstrozooError, RuntimeError):
    """Partitions that failed after their retries; the others are written and kept, and a
    rerun of the same job computes only the failed ones."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        lines = "; ".join(f"{k}: {v}" for k, v in sorted(failures.items())[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} partition(s) failed after retries: {lines}{more}. "
                         "The other partitions are written; rerun the same call to retry them.")


@dataclass(frozen=True)
class _Job:
    """What a worker needs to run any partition of the job (small, picklable)."""

    model: str  # registered name or local directory the worker loads
    sha256: str
    out: str
    device: str | None
    threads: int | None
    predict_kwargs: dict


def _worker_device(job: _Job):
    if job.device is not None:
        return job.device
    import torch

    n = torch.cuda.device_count()
    if n > 1:  # one worker per GPU: LocalCluster names its workers 0, 1, ...
        from distributed import get_worker

        name = get_worker().name
        return f"cuda:{int(name) % n}" if str(name).isdigit() else None
    return None


def _worker_model(job: _Job):
    """The worker's loaded model for `job` (loaded on first use, then reused)."""
    key = (job.model, job.sha256)
    if key not in _MODELS:
        import torch

        from .. import load
        from ..inference.writers import provenance

        if job.threads:
            torch.set_num_threads(job.threads)
        model = load(job.model)
        sha = provenance(model)["SHA256"]
        if sha != job.sha256:
            raise AstrozooError(f"the worker loaded {job.model!r} with weights {sha[:12]}..., "
                                f"not the job's {job.sha256[:12]}...: is the model directory "
                                "or Hub cache the same on every node?")
        _MODELS.clear()  # one model per worker: a new job's model replaces the last one
        _MODELS[key] = model
    return _MODELS[key]


def run_partition(job: _Job, part: Partition, rows: Table) -> int:
    """Predict one partition and write ``part-<key>.parquet`` atomically; the rows written.

    Idempotent: a partition whose file exists (an earlier attempt finished) is not redone.
    """
    from ..inference.writers import _atomic, write_parquet

    path = Path(job.out) / f"part-{part.key}.parquet"
    if path.exists():
        return len(part)
    model = _worker_model(job)
    kw = {"num_workers": 0, **job.predict_kwargs, "device": _worker_device(job),
          "progress": False}
    if part.images is not None:
        table = model.predict(part.images, catalog=rows, **kw)
    else:
        table = model.predict(rows, **kw)
    table["row"] = np.asarray(part.rows, np.int64)
    table.meta["PARTKEY"] = part.key
    with _atomic(path) as tmp:
        write_parquet(table, tmp)
    return len(table)


def read_partitions(output) -> Table:
    """The job's rows from its partition files, in catalogue order (the ``row`` column, then
    dropped), with the provenance metadata of the run."""
    from ..inference.writers import _read_parquet

    files = sorted(Path(output).glob("part-*.parquet"))
    if not files:
        raise OutputError("no partition files (part-*.parquet)", output)
    parts = [_read_parquet(f) for f in files]
    table = vstack(parts, metadata_conflicts="silent")
    table = table[np.argsort(np.asarray(table["row"]), kind="stable")]
    table.remove_column("row")
    table.meta.pop("PARTKEY", None)
    if "error" in table.colnames and not np.any(table["error"] != ""):
        del table["error"]
    return table


def _client(scheduler, n_workers):
    """(client, owned): a Client on `scheduler` (None: a new LocalCluster of `n_workers`
    processes; an address; a Cluster such as dask-jobqueue's; or a Client)."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, False
    if scheduler is None or scheduler == "local":
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster), True
    return Client(scheduler), True


def _model_ref(model, output: Path) -> tuple[str, object]:
    """(what workers load, the loaded model): a registered name or directory as given; a
    model object not loadable by name is saved once under ``<output>/_model``."""
    from .. import load
    from ..modeling import ZooModel
    from ..registry import get_entry, is_registered

    if not isinstance(model, ZooModel):
        return str(model), load(model)
    if is_registered(model.name) and get_entry(model.name).sha256 == model.config.weights_sha256:
        return model.name, model
    target = output / "_model"
    if not target.exists():
        output.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target)
    return str(target), model


def predict_dask(model, catalog, output, *, images=None, scheduler=None, n_workers: int | None = None,
                 max_rows: int = 10_000, retries: int = 2, overwrite: bool = False,
                 device=None, threads_per_worker: int | None = None, progress: bool = True,
                 read: bool = True, **predict_kwargs) -> Table | None:
    """Run `model` over a large catalogue on a Dask cluster, one partition per task.

    Parameters
    ----------
    model : str, path or ZooModel
        What `astrozoo.load` takes; a model object that is not a registered one is saved to
        ``<output>/_model`` for the workers (which must see `output`).
    catalog : Table or path
        Positions (image models, with `images`) or photometry (catalogue models).
    output : path
        Directory of the results: ``part-<key>.parquet`` per partition (together a Parquet
        dataset that pyarrow, pandas and Dask read) and the job file ``_astrozoo_job.json``.
    images : dict, list of dict or Table, optional
        Survey-image tiles (``{band: path}`` each; `astrozoo.scaleout.partitions.as_tiles`).
    scheduler : None, "local", str, Cluster or Client
        None / "local": a `distributed.LocalCluster` of `n_workers` processes, closed at the
        end. An address (``"tcp://host:8786"``), a Cluster object (``dask_jobqueue.SLURMCluster``,
        ``dask_cuda.LocalCUDACluster``) or a Client: used as is. Every worker must be able to
        read the images and write to `output` (a shared file system on HPC).
    n_workers : int, optional
        Workers of a new LocalCluster: the number of GPUs, or 2 without one.
    max_rows : int
        Rows per partition (`partition_catalog`).
    retries : int
        Attempts a failing partition gets beyond its first.
    overwrite : bool
        Discard the results of another job in `output`; without it such a directory is
        refused. Rerunning the same job (same model, weights, rows and options) skips the
        partitions already written.
    device : str, optional
        Every worker's device (default: each worker its own GPU where there are several,
        else the best available).
    threads_per_worker : int, optional
        torch threads in each worker (default: torch's default).
    progress : bool
        A tqdm bar over partitions.
    read : bool
        Return the whole result as a Table (`read_partitions`); False returns None and leaves
        the results in `output` only (for catalogues too large for memory).
    **predict_kwargs
        Passed to `ZooModel.predict` in each task (``batch_size``, ``on_error``, ``tta``,
        ``id_column``, ``keep``, ...).

    Returns
    -------
    astropy.table.Table or None
        Row for row what ``model.predict`` gives on the whole catalogue in one process.

    Raises
    ------
    PartitionError
        When partitions still fail after their retries (the others are kept).
    OutputError
        When `output` holds another job's results and `overwrite` is False.
    """
    from tqdm.auto import tqdm

    from ..inference.writers import _atomic, provenance

    out = Path(output)
    ref, loaded = _model_ref(model, out)
    check_images(loaded, images)
    out.mkdir(parents=True, exist_ok=True)
    table = as_table(catalog)
    id_column = predict_kwargs.get("id_column")
    if id_column is None and find_column(table, _ID_COLUMNS) is None:
        # ids of a catalogue without an id column are its row numbers: keep them global
        table = table.copy(copy_data=False)
        table["id"] = np.arange(len(table))
    parts = partition_catalog(table, images, max_rows=max_rows, flux_unit=loaded.spec.flux_unit)
    sha = provenance(loaded)["SHA256"]
    identity = {"model": loaded.name, "sha256": sha, "rows": len(table),
                "plan_sha256": partitions_fingerprint(parts),
                "options": json.dumps(predict_kwargs, sort_keys=True, default=repr)}
    job_file = out / JOB_FILE
    if job_file.exists():
        previous = json.loads(job_file.read_text())
        if previous != identity:
            if not overwrite:
                raise OutputError(f"holds the results of another job (model "
                                  f"{previous.get('model')}, {previous.get('rows')} rows); pass "
                                  "overwrite=True to replace them", out)
            for f in out.glob("part-*.parquet"):
                f.unlink()
    with _atomic(job_file) as tmp:
        tmp.write_text(json.dumps(identity, indent=1))

    todo = [p for p in parts if not (out / f"part-{p.key}.parquet").exists()]
    job = _Job(ref, sha, str(out.resolve()), None if device is None else str(device),
               threads_per_worker, dict(predict_kwargs))
    if todo:
        _run(job, todo, table, scheduler, n_workers, retries,
             tqdm(total=len(parts), initial=len(parts) - len(todo), unit="partition",
                  desc=f"{loaded.name} (dask)", disable=not progress))
    return read_partitions(out) if read else None


def _run(job, todo, table, scheduler, n_workers, retries, bar) -> None:
    from distributed import as_completed

    if n_workers is None:
        import torch

        n_workers = torch.cuda.device_count() or 2
    client, owned = _client(scheduler, n_workers)
    failures = {}
    try:
        futures = {client.submit(run_partition, job, p, table[p.rows], retries=retries,
                                 key=f"astrozoo-{p.key}-{os.urandom(4).hex()}", pure=False): p
                   for p in todo}
        with bar:
            for fut in as_completed(futures):
                if fut.status == "error":
                    exc = fut.exception()
                    failures[futures[fut].key] = f"{type(exc).__name__}: {exc}"
                bar.update(1)
    finally:
        if owned:
            cluster = client.cluster
            client.close()
            if cluster is not None and scheduler in (None, "local"):
                cluster.close()
    if failures:
        raise PartitionError(failures)
