"""Streaming, resumable catalogue output: FITS table, ECSV or Parquet, chosen by suffix.

Rows are encoded once, by the output format's own writer, as they are predicted: each write of
the engine (a completed chunk of ``chunk_size`` rows, or the rows of a chunk being filled,
about once a second) becomes a part file ``part_<start>_<stop>.<suffix>`` in
``<output>.partial/``, in the output's format. So a kill loses about a second of work. A
``manifest.json`` records what the rows depend on (model, weights, inputs, options); a rerun
with the same manifest computes only the rows not stored yet, a rerun with another one refuses
to mix results. When every row is stored, the parts are joined, one at a time (bounded memory),
into ``<output>.tmp``, which is renamed to ``<output>``:

- FITS: the binary-table header with the final row count, then each part's row bytes as they
  are (a byte copy; string columns whose widths are known in advance, such as ``id``, are
  written at the job's width, so parts share one row layout).
- ECSV: the header, then each part's data lines (a text copy).
- Parquet: each part's Arrow columns as row groups of one ``pyarrow.parquet.ParquetWriter``
  (about ``chunk_size`` rows each). Parquet pages cannot be moved between files, so pyarrow
  decodes and writes them again; no row goes through astropy.

Only a part whose layout differs from the job's is re-encoded: when some row has an ``error``
message (the column exists only then) or a string column of unknown width is wider elsewhere.

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
           "read_table", "read_meta", "column_names", "write_parquet"]

#: Output suffix -> format.
FORMATS = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".ecsv": "ecsv",
           ".parquet": "parquet", ".pq": "parquet"}

_MANIFEST = "manifest.json"
_SUFFIX = {"fits": ".fits", "ecsv": ".ecsv", "parquet": ".parquet"}
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
    """Part files of one output being written, in ``<output>.partial/``.

    Creating one checks that the output's directory takes files (`OutputError` if not).

    Parameters
    ----------
    output : path
        Final output file; its suffix selects the format.
    manifest : dict
        JSON-serialisable description of the job; must equal the stored one to resume.
    n_rows, chunk_size : int
        Chunk ``k`` holds rows ``[k * chunk_size, min((k + 1) * chunk_size, n_rows))``; a part
        file never spans two chunks.
    overwrite : bool
        Replace an existing complete `output` instead of refusing.
    widths : dict, optional
        Job-wide width (characters) of string columns known in advance (e.g. ``{"id": 12}``),
        so that every part has the same row layout.
    """

    def __init__(self, output: str | Path, manifest: dict, n_rows: int, chunk_size: int,
                 overwrite: bool = False, widths: dict[str, int] | None = None):
        self.output = Path(output)
        self.format = output_format(self.output)
        self.partial = self.output.with_name(self.output.name + ".partial")
        self.n_rows, self.chunk_size = int(n_rows), int(chunk_size)
        self.widths = dict(widths or {})
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
        self._parts = self._scan_parts()

    @property
    def n_chunks(self) -> int:
        return -(-self.n_rows // self.chunk_size)

    def rows(self, k: int) -> range:
        return range(k * self.chunk_size, min((k + 1) * self.chunk_size, self.n_rows))

    def _part_path(self, start: int, stop: int) -> Path:
        return self.partial / f"part_{start:012d}_{stop:012d}{_SUFFIX[self.format]}"

    def _scan_parts(self) -> dict[int, list[Path]]:
        """The part files of each chunk that continue its first rows without a gap (a killed
        run leaves at most a ``.tmp`` file, which is not a part)."""
        by_start = {}
        for p in self.partial.glob(f"part_*{_SUFFIX[self.format]}"):
            start, stop = (int(v) for v in p.stem.split("_")[1:])
            by_start[start] = (stop, p)
        parts = {}
        for k in range(self.n_chunks):
            chain, at = [], self.rows(k).start
            while at in by_start and by_start[at][0] <= self.rows(k).stop:
                at, path = by_start[at]
                chain.append(path)
            parts[k] = chain
        return parts

    def _stored(self, k: int) -> int:
        chain = self._parts[k]
        return int(chain[-1].stem.split("_")[2]) if chain else self.rows(k).start

    def done(self) -> set[int]:
        """Chunks whose rows are all stored."""
        return {k for k in range(self.n_chunks) if self._stored(k) == self.rows(k).stop}

    def pending(self, k: int) -> range:
        """The rows of chunk `k` not stored yet."""
        return range(self._stored(k), self.rows(k).stop)

    def write_rows(self, k: int, table: Table) -> None:
        """Store the next rows of chunk `k` (those right after the rows stored already) as a
        part file. A failed write raises `OutputError` and leaves what was stored intact."""
        todo = self.pending(k)
        if not 0 < len(table) <= len(todo):
            raise ValueError(f"chunk {k} has {len(todo)} rows to store, got {len(table)}")
        path = self._part_path(todo.start, todo.start + len(table))
        table = _conform(table.copy(copy_data=False), self.widths)
        with self._reporting(path), _atomic(path) as tmp:
            _PART_WRITERS[self.format](table, tmp)
        self._parts[k].append(path)

    def check_space(self, row_bytes: float) -> None:
        """Raise `OutputError` if the disk cannot take the rest of the job: the rows still to
        store, plus the final file, which coexists with the parts until it is complete.

        Parameters
        ----------
        row_bytes : float
            In-memory size of one output row (a bound on its size in a binary format).
        """
        todo = sum(len(self.pending(k)) for k in range(self.n_chunks))
        need = row_bytes * _TEXT_EXPANSION.get(self.format, 1) * (todo + self.n_rows)
        free = shutil.disk_usage(self.partial).free
        if need > free:
            raise OutputError(
                f"the disk holding it has {free / 2**20:.1f} MiB free, and about "
                f"{need / 2**20:.1f} MiB are needed for the {self.n_rows} rows of "
                f"{self.output.name} and their parts; free space or choose another directory",
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

    def finalize(self, meta: dict) -> Path:
        """Join every part, in order, into `output` (write then rename); drop the partial
        directory. The ``error`` column is kept only if some row has an error."""
        missing = sorted(set(range(self.n_chunks)) - self.done())
        if missing:
            raise RuntimeError(f"{self.partial}: chunks {missing[:5]}... are missing")
        parts = [p for k in range(self.n_chunks) for p in self._parts[k]]
        with self._reporting(self.output), _atomic(self.output) as tmp:
            _JOINERS[self.format](parts, tmp, meta, self.n_rows, self.chunk_size)
        shutil.rmtree(self.partial)
        return self.output


def _conform(t: Table, widths: dict[str, int]) -> Table:
    """Drop an all-empty ``error`` column; give string columns at least their width in
    `widths` (numpy keeps the widest value's width otherwise)."""
    if "error" in t.colnames and not np.any(t["error"] != ""):
        t.remove_column("error")
    for name, w in widths.items():
        if name in t.colnames and t[name].dtype.kind == "U" and t[name].dtype.itemsize < 4 * w:
            t[name] = np.asarray(t[name]).astype(f"U{w}")
    return t


def _reencode(t: Table, like: Table) -> Table:
    """`t` in the column layout of the zero-row table `like`: its string widths, and an
    empty ``error`` column where `like` has one and `t` has not."""
    if "error" in like.colnames and "error" not in t.colnames:
        t["error"] = np.zeros(len(t), like["error"].dtype)
    t = t[like.colnames]
    for name in like.colnames:
        if like[name].dtype.kind == "U" and t[name].dtype != like[name].dtype:
            t[name] = np.asarray(t[name]).astype(like[name].dtype)
    return t


def _template(first: Table, widths: dict[str, int], with_error: bool, meta: dict) -> Table:
    """The job's zero-row table: `first`'s columns at the job-wide string `widths`, the
    ``error`` column (last) if some part has one, and the metadata `meta`."""
    t = first[:0].copy()
    if "error" in t.colnames:
        t.remove_column("error")
    if with_error:
        t["error"] = np.zeros(0, f"U{max(widths.get('error', 1), 1)}")
    for name, w in widths.items():
        if name in t.colnames and t[name].dtype.kind == "U":
            t[name] = np.zeros(0, f"U{max(w, 1)}")
    t.meta.clear()
    t.meta.update(meta)
    return t


# ---- FITS: astropy encodes each part; the job's file is its header + the parts' row bytes ----

def _write_fits_part(table: Table, path: Path) -> None:
    table.meta.clear()
    table.write(path, format="fits", overwrite=True)


def _fits_layout(header) -> dict:
    return {k: header[k] for k in header if k in ("NAXIS1", "TFIELDS", "PCOUNT")
            or (k[:1] == "T" and k[-1:].isdigit())}


def _fits_rows(path: Path) -> tuple[fits.Header, bytes]:
    """A part's binary-table header and the bytes of its rows, undecoded."""
    with open(path, "rb") as f:
        fits.Header.fromfile(f)  # the empty primary HDU
        header = fits.Header.fromfile(f)
        return header, f.read(header["NAXIS1"] * header["NAXIS2"])


def _read_fits(path: Path) -> Table:
    t = Table.read(path, format="fits", character_as_bytes=False, mask_invalid=False)
    t.meta.clear()
    # FITS turns empty strings into masked values; the parts store "" for "no error".
    for name in t.colnames:
        if t[name].dtype.kind == "U" and hasattr(t[name], "filled"):
            t[name] = t[name].filled("")
    return t


def _join_fits(parts, path: Path, meta: dict, n_rows: int, chunk_size: int) -> None:
    # Only the parts' headers are read to fix the job's layout; a StreamingHDU then takes the
    # header with the final row count and every part's row bytes, re-encoding only the parts
    # laid out otherwise.
    headers = [fits.getheader(p, 1) for p in parts]
    widths: dict[str, int] = {}
    for h in headers:
        for i in range(1, h["TFIELDS"] + 1):
            if h[f"TFORM{i}"].endswith("A"):
                name = h[f"TTYPE{i}"]
                widths[name] = max(widths.get(name, 0), int(h[f"TFORM{i}"][:-1] or 1))
    with_error = "error" in widths
    like = _template(_read_fits(parts[0])[:0], widths, with_error, meta)
    header = fits.table_to_hdu(like).header
    layout = _fits_layout(header)
    header["NAXIS2"] = n_rows
    path.unlink(missing_ok=True)
    shdu = fits.StreamingHDU(str(path), header)
    try:
        for p, h in zip(parts, headers):
            if _fits_layout(h) == layout:
                raw = _fits_rows(p)[1]
            else:
                hdu = fits.table_to_hdu(_reencode(_read_fits(p), like))
                raw = _fits_rows_of(hdu)
            shdu.write(np.frombuffer(raw, dtype=np.uint8))
    finally:
        shdu.close()


def _fits_rows_of(hdu) -> bytes:
    buf = io.BytesIO()
    hdu.writeto(buf)
    start = len(fits.PrimaryHDU().header.tostring()) + len(hdu.header.tostring())
    return bytes(buf.getbuffer()[start:start + hdu.header["NAXIS1"] * hdu.header["NAXIS2"]])


# ---- ECSV: astropy encodes each part; the job's file is one header + the parts' data lines ----

def _write_ecsv_part(table: Table, path: Path) -> None:
    table.meta.clear()
    table.write(path, format="ascii.ecsv", overwrite=True)


def _ecsv_split(text_or_path) -> tuple[list[str], int]:
    """Header lines (the ``#`` block and the column-name line) of an ECSV file, and the byte
    offset where its data lines start."""
    f = open(text_or_path, "rb") if isinstance(text_or_path, Path) else io.BytesIO(text_or_path)
    with f:
        lines = []
        while True:
            line = f.readline().decode()
            lines.append(line)
            if not line.startswith("#") or not line:
                return lines, f.tell()


def _ecsv_layout(lines: list[str]) -> tuple[str, ...]:
    """The column declarations (``# datatype:`` block) and the column-name line."""
    out, inside = [], False
    for line in lines:
        if line.startswith("# datatype:"):
            inside = True
        elif inside and line.startswith("# ") and not line.startswith("# -") \
                and not line.startswith("#   "):
            inside = False
        if inside or not line.startswith("#"):
            out.append(line)
    return tuple(out)


def _ecsv_text(t: Table) -> bytes:
    buf = io.StringIO()
    t.write(buf, format="ascii.ecsv")
    return buf.getvalue().encode()


def _join_ecsv(parts, path: Path, meta: dict, n_rows: int, chunk_size: int) -> None:
    heads = [_ecsv_split(p) for p in parts]
    with_error = any('name: error,' in line for lines, _ in heads for line in lines)
    like = _template(Table.read(parts[0], format="ascii.ecsv")[:0], {}, with_error, meta)
    text = _ecsv_text(like)
    layout = _ecsv_layout(_ecsv_split(text)[0])
    with open(path, "wb") as out:
        out.write(text)
        for p, (lines, offset) in zip(parts, heads):
            if _ecsv_layout(lines) == layout:
                with open(p, "rb") as f:
                    f.seek(offset)
                    shutil.copyfileobj(f, out)
            else:
                t = _reencode(Table.read(p, format="ascii.ecsv"), like)
                t.meta.clear()
                data = _ecsv_text(t)
                out.write(data[_ecsv_split(data)[1]:])


# ---- Parquet: pyarrow encodes each part from the numpy columns; one ParquetWriter joins ----

def _to_arrow(table: Table):
    """`table` as a pyarrow Table laid out as astropy's Parquet writer lays it out (the
    ``table_meta_yaml`` and ``table::len::`` metadata, multidimensional columns as flattened
    fixed-size lists), so astropy and `read_table` read it back exactly; built here straight
    from the numpy columns, without astropy's writer (which needs a file per table)."""
    import pyarrow as pa
    from astropy.table.meta import get_yaml_from_table

    arrays, md = [], {}
    for name in table.colnames:
        v = np.asarray(table[name])
        if v.dtype.kind == "U":
            arrays.append(pa.array(v, pa.string()))
            md[f"table::len::{name}"] = str(v.dtype.itemsize // 4)
            continue
        v = v.astype(v.dtype.newbyteorder("<"), copy=False)
        if v.ndim > 1:
            size = int(np.prod(v.shape[1:]))
            arrays.append(pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(v).reshape(-1)), size))
        else:
            arrays.append(pa.array(v))
    md["table_meta_yaml"] = "\n".join(get_yaml_from_table(table))
    return pa.Table.from_arrays(arrays, names=list(table.colnames)).replace_schema_metadata(
        {k.encode(): v.encode() for k, v in md.items()})


def write_parquet(table: Table, path: str | Path) -> None:
    """Write `table` as one Parquet file (pyarrow, laid out as astropy's writer does)."""
    import pyarrow.parquet as pq

    pq.write_table(_to_arrow(table), path)


def _write_parquet_part(table: Table, path: Path) -> None:
    table.meta.clear()
    write_parquet(table, path)


def _join_parquet(parts, path: Path, meta: dict, n_rows: int, chunk_size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(p) for p in parts]  # footers only
    widths: dict[str, int] = {}
    for s in schemas:
        for k, v in (s.metadata or {}).items():
            if k.startswith(b"table::len::"):
                name = k[12:].decode()
                widths[name] = max(widths.get(name, 0), int(v))
    with_error = any("error" in s.names for s in schemas)
    like = _template(_read_parquet(parts[0])[:0], widths, with_error, meta)
    schema = _to_arrow(like).schema
    writer = pq.ParquetWriter(path, schema)
    try:
        batch, rows = [], 0
        for p in parts:
            t = pq.read_table(p)
            if with_error and "error" not in t.column_names:
                t = t.append_column("error", pa.array([""] * len(t), pa.string()))
            batch.append(t.select(schema.names).cast(schema))
            rows += len(t)
            if rows >= chunk_size:  # row groups of about chunk_size rows, whatever the parts
                writer.write_table(pa.concat_tables(batch), row_group_size=rows)
                batch, rows = [], 0
        if batch:
            writer.write_table(pa.concat_tables(batch), row_group_size=rows)
    finally:
        writer.close()


_PART_WRITERS = {"fits": _write_fits_part, "ecsv": _write_ecsv_part,
                 "parquet": _write_parquet_part}
_JOINERS = {"fits": _join_fits, "ecsv": _join_ecsv, "parquet": _join_parquet}


def read_table(path: str | Path, memmap: bool = True, columns=None) -> Table:
    """Read an astrozoo catalogue back (FITS memory-mapped, NaN kept as NaN; strings as str).

    Parquet goes through pyarrow and the astropy metadata it carries: astropy's own Parquet
    reader flattens columns of three or more dimensions (e.g. N x H x W segmentation maps).

    Parameters
    ----------
    columns : list of str, optional
        Read only these columns (in a Parquet or ECSV file, the others are not decoded).
    """
    path = Path(path)
    fmt = output_format(path)
    if fmt == "fits":
        t = Table.read(path, format="fits", memmap=memmap, character_as_bytes=False,
                       mask_invalid=False)
        return t[list(columns)] if columns is not None else t
    if fmt == "ecsv":
        if columns is None:
            return Table.read(path, format="ascii.ecsv")
        return Table.read(path, format="ascii.ecsv", include_names=list(columns))
    return _read_parquet(path, columns)


def column_names(path: str | Path) -> list[str]:
    """The column names of an astrozoo catalogue, from its header or footer alone."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "fits":
        h = fits.getheader(path, 1)
        return [h[f"TTYPE{i}"] for i in range(1, h["TFIELDS"] + 1)]
    if fmt == "ecsv":
        return list(Table.read("".join(_ecsv_split(path)[0]), format="ascii.ecsv").colnames)
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def read_meta(path: str | Path) -> dict:
    """The table metadata of an astrozoo catalogue (its provenance), read from the file's
    header (FITS, ECSV) or footer (Parquet) alone."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "fits":
        return dict(Table.read(path, format="fits", memmap=True).meta)
    if fmt == "ecsv":
        lines, _ = _ecsv_split(path)
        return dict(Table.read("".join(lines), format="ascii.ecsv").meta)
    import pyarrow.parquet as pq
    import yaml

    md = pq.read_schema(path).metadata
    return dict(yaml.safe_load(md[b"table_meta_yaml"].decode()).get("meta", {}))


def _read_parquet(path: Path, columns=None) -> Table:
    import pyarrow.parquet as pq
    import yaml

    pt = pq.read_table(path, columns=None if columns is None else list(columns))
    header = yaml.safe_load(pt.schema.metadata[b"table_meta_yaml"].decode())
    cols = {}
    for spec in header["datatype"]:
        name = spec["name"]
        if name not in pt.column_names:
            continue
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
