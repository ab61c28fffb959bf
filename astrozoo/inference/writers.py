"""Streaming, resumable catalogue output: FITS table, ECSV or Parquet, chosen by suffix.

Rows are written as they are predicted into ``<output>.partial/``: one chunk file per
``chunk_size`` rows, and, while a chunk fills, piece files of its next rows (the engine writes
one on a batch boundary about once a second), merged into the chunk file when it completes. So a
kill loses about a second of work even in a run of fewer rows than one chunk. A ``manifest.json``
records what the rows depend on (model, weights, inputs, options); a rerun with the same
manifest computes only the rows not stored yet, a rerun with another one refuses to mix
results. When every chunk exists they are streamed, one at a time (bounded memory), into
``<output>.tmp``, which is renamed to ``<output>``.

Every file (manifest, piece, chunk, output) is written to a temporary name in its own directory,
fsynced and renamed (`os.replace`), so under its final name it is either complete or absent,
whatever kills the process or the machine. Failed writes (disk full, read-only, quota) raise
`OutputError` naming the file, and keep every row stored so far for the rerun. `ChunkStore`
checks that the output directory takes files before anything is computed, and
`ChunkStore.check_space` that the disk holds the job once a batch shows the size of a row.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack

from ..exceptions import OutputError

__all__ = ["FORMATS", "output_format", "provenance", "ids_fingerprint", "ChunkStore",
           "read_table"]

#: Output suffix -> format.
FORMATS = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".ecsv": "ecsv",
           ".parquet": "parquet", ".pq": "parquet"}

_MANIFEST = "manifest.json"
#: Bytes on disk per byte of in-memory row of a text (ECSV) output: a float32 takes 4 bytes in
#: memory and about 12 characters as text.
_TEXT_EXPANSION = {"ecsv": 3}


def output_format(path: str | Path) -> str:
    """The format of `path` from its suffix; ValueError (before any work) if unsupported."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise ValueError(f"{path}: unsupported output suffix {suffix!r}; use one of "
                         f"{sorted(FORMATS)} (compressed files cannot be streamed)") from None


def provenance(model, *, tta: bool = False, runtime: str = "torch",
               date: str | None = None) -> dict[str, Any]:
    """Table metadata recording what produced a catalogue (FITS-safe 8-character keys).

    ``SHA256`` is the weights file's hash from the model's config; a model never saved has
    none recorded, so the hash of its in-memory parameters is used instead.
    """
    from .. import __version__

    spec = model.spec
    return {
        "ASTROZOO": __version__,
        "MODEL": model.name,
        "TASK": model.task,
        "SHA256": model.config.weights_sha256 or _state_sha256(model),
        "PRESET": spec.survey,
        "NORM": spec.normalization,
        "TTA": bool(tta),
        "RUNTIME": runtime,
        "DATE": date or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **model.output_meta(),
    }


def _state_sha256(model) -> str:
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def ids_fingerprint(ids: Iterable[str]) -> str:
    """sha256 of the ordered object ids: identifies an input set for resuming."""
    h = hashlib.sha256()
    for i in ids:
        h.update(str(i).encode())
        h.update(b"\0")
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; on success the file is fsynced and renamed
    to `path`, on failure removed. The rename is made durable by fsyncing the directory
    (POSIX only: Windows cannot open a directory)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":
        _fsync(path.parent)


def _probe(directory: Path) -> None:
    """Create and remove a file in `directory` (made if missing): the one test that also sees
    read-only mounts, ACLs and quotas, which permission bits and `os.access` do not. The file
    has no name (O_TMPFILE) or loses it at once, so a kill cannot leave it behind."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".astrozoo-probe-"):
            pass
    except OSError as e:
        raise OutputError(f"cannot write into this directory ({e.strerror or e}); nothing was "
                          "computed", directory) from e


class ChunkStore:
    """Chunk and piece files of one output being written, in ``<output>.partial/``.

    Creating one checks that the output's directory takes files (`OutputError` if not).

    Parameters
    ----------
    output : path
        Final output file; its suffix selects the format.
    manifest : dict
        JSON-serialisable description of the job; must equal the stored one to resume.
    n_rows, chunk_size : int
        Chunk ``k`` holds rows ``[k * chunk_size, min((k + 1) * chunk_size, n_rows))``.
    overwrite : bool
        Replace an existing complete `output` instead of refusing.
    """

    def __init__(self, output: str | Path, manifest: dict, n_rows: int, chunk_size: int,
                 overwrite: bool = False):
        self.output = Path(output)
        self.format = output_format(self.output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.n_rows, self.chunk_size = int(n_rows), int(chunk_size)
        manifest = {**manifest, "n_rows": self.n_rows, "chunk_size": self.chunk_size}
        if self.output.is_dir():
            raise OutputError("is a directory, not a file name", self.output)
        if self.output.exists() and not self.partial.exists() and not overwrite:
            raise FileExistsError(f"{self.output} exists (a finished run?); pass overwrite=True "
                                  "to replace it")
        _probe(self.output.parent)
        stored = self.partial / _MANIFEST
        if stored.is_file():
            old = json.loads(stored.read_text())
            diff = sorted(k for k in set(old) | set(manifest) if k != "date"
                          and old.get(k) != manifest.get(k))
            if diff:
                raise ValueError(
                    f"{self.partial} holds a partial run of a different job (differs in {diff}); "
                    "rerun with the original model, inputs and options to resume, or delete that "
                    "directory to start over")
            self.manifest = old  # keeps the original start date
        else:
            with self._reporting(stored):
                self.partial.mkdir(parents=True, exist_ok=True)
                with _atomic(stored) as tmp:
                    tmp.write_text(json.dumps(manifest, indent=1))
            self.manifest = manifest
        self._pieces = self._scan_pieces()

    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_size)

    def rows(self, k: int) -> range:
        return range(k * self.chunk_size, min((k + 1) * self.chunk_size, self.n_rows))

    def _path(self, k: int) -> Path:
        r = self.rows(k)
        return self.partial / f"chunk_{r.start:012d}_{r.stop:012d}.fits"

    def _piece_path(self, start: int, stop: int) -> Path:
        return self.partial / f"part_{start:012d}_{stop:012d}.fits"

    def _scan_pieces(self) -> dict[int, list[Path]]:
        """The piece files of each unfinished chunk that continue its first rows without a gap
        (pieces of a finished chunk are leftovers of a kill before their removal)."""
        by_start = {}
        for p in self.partial.glob("part_*.fits"):
            start, stop = (int(v) for v in p.stem.split("_")[1:])
            by_start[start] = (stop, p)
        pieces = {}
        for k in set(range(self.n_chunks)) - self.done():
            chain, at = [], self.rows(k).start
            while at in by_start and by_start[at][0] <= self.rows(k).stop:
                at, path = by_start[at]
                chain.append(path)
            pieces[k] = chain
        return pieces

    def done(self) -> set[int]:
        """Chunks already written completely (a killed run leaves at most a ``.tmp`` file)."""
        return {k for k in range(self.n_chunks) if self._path(k).is_file()}

    def pending(self, k: int) -> range:
        """The rows of chunk `k` not stored yet (empty when the chunk file exists)."""
        r = self.rows(k)
        if k not in self._pieces:
            return range(r.stop, r.stop)
        chain = self._pieces[k]
        return range(int(chain[-1].stem.split("_")[2]) if chain else r.start, r.stop)

    def write_rows(self, k: int, table: Table) -> None:
        """Store the next rows of chunk `k` (those right after the rows stored already). Rows
        that complete the chunk are merged with its pieces into the chunk file; others become a
        piece file. A failed write raises `OutputError` and leaves what was stored intact."""
        todo = self.pending(k)
        if not 0 < len(table) <= len(todo):
            raise ValueError(f"chunk {k} has {len(todo)} rows to store, got {len(table)}")
        stop = todo.start + len(table)
        if stop < todo.stop:
            path = self._piece_path(todo.start, stop)
            with self._reporting(path):
                self._write(path, table)
            self._pieces[k].append(path)
            return
        path = self._path(k)
        with self._reporting(path):
            parts = [self._read(p) for p in self._pieces[k]] + [table]
            self._write(path, vstack(parts, join_type="exact") if len(parts) > 1 else table)
        for p in self._pieces.pop(k):
            p.unlink()

    def check_space(self, row_bytes: float) -> None:
        """Raise `OutputError` if the disk cannot take the rest of the job: the rows still to
        store, plus the final file, which coexists with the chunks until it is complete.

        Parameters
        ----------
        row_bytes : float
            In-memory size of one output row (a bound on its size in a binary format).
        """
        todo = sum(len(self.pending(k)) for k in self._pieces)
        need = row_bytes * (todo + _TEXT_EXPANSION.get(self.format, 1) * self.n_rows)
        free = shutil.disk_usage(self.partial).free
        if need > free:
            raise OutputError(
                f"the disk holding it has {free / 2**20:.1f} MiB free, and about "
                f"{need / 2**20:.1f} MiB are needed for the {self.n_rows} rows of "
                f"{self.output.name} and their chunks; free space or choose another directory",
                self.output.parent)

    @contextlib.contextmanager
    def _reporting(self, path: Path) -> Iterator[None]:
        """A failed write as an `OutputError` naming the file and telling how to resume."""
        try:
            yield
        except OutputError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write ({e.strerror or e}); the rows stored so far are "
                              f"kept in {self.partial}: fix this and rerun the same command to "
                              "resume", path) from e

    @staticmethod
    def _write(path: Path, table: Table) -> None:
        table = table.copy(copy_data=False)
        table.meta = {"NERROR": int(np.count_nonzero(table["error"] != ""))}
        with _atomic(path) as tmp:
            table.write(tmp, format="fits", overwrite=True)

    @staticmethod
    def _read(path: Path) -> Table:
        t = Table.read(path, format="fits", character_as_bytes=False, mask_invalid=False)
        t.meta.clear()
        # FITS turns empty strings into masked values; the chunk stores "" for "no error".
        for name in t.colnames:
            if t[name].dtype.kind == "U" and hasattr(t[name], "filled"):
                t[name] = t[name].filled("")
        return t

    def read_chunk(self, k: int) -> Table:
        return self._read(self._path(k))

    def finalize(self, meta: dict) -> Path:
        """Stream every chunk, in order, into `output` (write then rename); drop the partial
        directory. The ``error`` column is kept only if some row has an error."""
        missing = sorted(set(range(self.n_chunks)) - self.done())
        if missing:
            raise RuntimeError(f"{self.partial}: chunks {missing[:5]}... are missing")
        with self._reporting(self.output), _atomic(self.output) as tmp:
            _WRITERS[self.format](self._chunks(), tmp, meta, self._widths(), self.n_rows)
        shutil.rmtree(self.partial)
        return self.output

    def _widths(self) -> dict[str, int]:
        """Widest value of each string column over all chunks (read from the FITS headers), so
        that fixed-width formats get one column layout; ``error`` gets width 0 if no row has an
        error."""
        widths: dict[str, int] = {}
        n_errors = 0
        for k in range(self.n_chunks):
            h = fits.getheader(self._path(k), 1)
            n_errors += h.get("NERROR", 0)
            for i in range(1, h["TFIELDS"] + 1):
                form = h[f"TFORM{i}"]
                if form.endswith("A"):
                    name = h[f"TTYPE{i}"]
                    widths[name] = max(widths.get(name, 0), int(form[:-1] or 1))
        if not n_errors:
            widths["error"] = 0
        return widths

    def _chunks(self) -> Iterable[Table]:
        for k in range(self.n_chunks):
            yield self.read_chunk(k)


def _conform(t: Table, widths: dict[str, int]) -> Table:
    """Give string columns their job-wide width and drop an all-empty ``error`` column."""
    if widths.get("error") == 0 and "error" in t.colnames:
        t.remove_column("error")
    for name, w in widths.items():
        if name in t.colnames and w:
            t[name] = t[name].astype(f"U{w}")
    return t


def _write_fits(chunks, path: Path, meta: dict, widths: dict, n_rows: int) -> None:
    # A StreamingHDU takes the binary-table header with the final row count, then the rows'
    # FITS bytes chunk by chunk, exactly as astropy lays them out for each chunk.
    shdu = None
    try:
        for t in chunks:
            t = _conform(t, widths)
            t.meta.update(meta)
            hdu = fits.table_to_hdu(t)
            buf = io.BytesIO()
            hdu.writeto(buf)
            start = len(fits.PrimaryHDU().header.tostring()) + len(hdu.header.tostring())
            raw = np.frombuffer(buf.getbuffer()[start:start + hdu.header["NAXIS1"] * len(t)],
                                dtype=np.uint8)
            if shdu is None:
                header = hdu.header.copy()
                header["NAXIS2"] = n_rows
                if path.exists():
                    path.unlink()
                shdu = fits.StreamingHDU(str(path), header)
            shdu.write(raw)
    finally:
        if shdu is not None:
            shdu.close()


def _write_ecsv(chunks, path: Path, meta: dict, widths: dict, n_rows: int) -> None:
    # The first chunk writes the ECSV header; the others append their data lines only. The
    # header block is the leading '#' lines plus the column-name line.
    with open(path, "w", newline="") as f:
        for i, t in enumerate(chunks):
            t = _conform(t, widths)
            t.meta.update(meta)
            buf = io.StringIO()
            t.write(buf, format="ascii.ecsv")
            text = buf.getvalue()
            if i:
                lines = text.splitlines(keepends=True)
                first = next(j for j, line in enumerate(lines) if not line.startswith("#"))
                text = "".join(lines[first + 1:])
            f.write(text)


def _write_parquet(chunks, path: Path, meta: dict, widths: dict, n_rows: int) -> None:
    # astropy writes each chunk (its metadata encodes multidimensional columns and string
    # widths, made job-wide by _conform); pyarrow appends them as row groups of one file.
    import pyarrow.parquet as pq

    writer = None
    scratch = path.with_name(path.name + ".chunk")
    try:
        for t in chunks:
            t = _conform(t, widths)
            t.meta.update(meta)
            t.write(scratch, format="parquet", overwrite=True)
            part = pq.read_table(scratch)
            if writer is None:
                writer = pq.ParquetWriter(path, part.schema)
            writer.write_table(part.replace_schema_metadata(writer.schema.metadata))
    finally:
        if writer is not None:
            writer.close()
        scratch.unlink(missing_ok=True)


_WRITERS = {"fits": _write_fits, "ecsv": _write_ecsv, "parquet": _write_parquet}


def read_table(path: str | Path, memmap: bool = True) -> Table:
    """Read an astrozoo catalogue back (FITS memory-mapped, NaN kept as NaN; strings as str).

    Parquet goes through pyarrow and the astropy metadata it carries: astropy's own Parquet
    reader flattens columns of three or more dimensions (e.g. N x H x W segmentation maps).
    """
    path = Path(path)
    fmt = output_format(path)
    if fmt == "fits":
        return Table.read(path, format="fits", memmap=memmap, character_as_bytes=False,
                          mask_invalid=False)
    if fmt == "ecsv":
        return Table.read(path, format="ascii.ecsv")
    return _read_parquet(path)


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq
    import yaml

    pt = pq.read_table(path)
    header = yaml.safe_load(pt.schema.metadata[b"table_meta_yaml"].decode())
    cols = {}
    for spec in header["datatype"]:
        name = spec["name"]
        col = pt.column(name).combine_chunks()
        sub = spec.get("subtype")
        if sub:  # fixed-size list of a multidimensional column, e.g. 'int16[4,4]'
            dtype, shape = sub.rstrip("]").split("[")
            shape = tuple(int(s) for s in shape.split(","))
            values = col.flatten().to_numpy(zero_copy_only=False).astype(dtype)
            cols[name] = values.reshape((len(col),) + shape)
        elif spec["datatype"] == "string":
            cols[name] = np.array(col.to_pylist(), dtype=str)
        else:
            cols[name] = col.to_numpy(zero_copy_only=False).astype(spec["datatype"])
    return Table(cols, meta=dict(header.get("meta", {})))
