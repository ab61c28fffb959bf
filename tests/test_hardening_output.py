"""No data lost: atomic output files, resuming after kills and errors, disk full, read-only."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest
import torch
from astropy.table import Table
from torch import nn

from astrozoo.config import InputSpec, ModelConfig
from astrozoo.exceptions import OutputError
from astrozoo.inference import predict, read_table
from astrozoo.inference import writers
from astrozoo.modeling import ZooModel

BANDS = ("g", "r")
N, BATCH = 40, 8  # fewer rows than one chunk of the default size (4096)

# The model and inputs of every test here. The SIGKILL test runs this source in a child process
# too, so that the parent can resume with the very same weights.
MODEL_SOURCE = r'''
import os, time
import numpy as np, torch
from torch import nn
from astrozoo.config import InputSpec, ModelConfig
from astrozoo.modeling import ZooModel


class Counting(ZooModel):
    """Counts the rows it sees; can fail, sleep or SIGKILL its process at a given batch."""

    def __init__(self, config):
        super().__init__(config)
        self.conv = nn.Conv2d(2, 4, 3)
        self.head = nn.Linear(4, 3)
        self.seen = self.batches = 0
        self.fail_at = self.kill_at = None
        self.sleep = 0.0

    def forward(self, x):
        if self.batches == self.kill_at:
            os.kill(os.getpid(), 9)
        if self.batches == self.fail_at:
            raise RuntimeError("simulated failure")
        time.sleep(self.sleep)
        self.batches += 1
        self.seen += len(x)
        return self.head(self.conv(x).relu().mean((-2, -1)))

    def postprocess(self, out):
        return {"p_lens": torch.sigmoid(out[:, 0]).numpy(), "score": out[:, 1:].numpy()}


def build():
    torch.manual_seed(0)
    cfg = ModelConfig(name="counting", task="lens-finding", architecture="counting",
                      arch_kwargs={}, input_spec=InputSpec(bands=("g", "r"), size=8,
                                                           pixel_scale=0.2),
                      outputs=("p_lens",))
    x = np.random.default_rng(0).normal(5, 1, size=(40, 2, 8, 8)).astype(np.float32)
    return Counting(cfg), x
'''
_ns: dict = {}
exec(compile(MODEL_SOURCE, "model_source", "exec"), _ns)
build = _ns["build"]


def run(model, x, out, **kw):
    kw = {"bands": BANDS, "batch_size": BATCH, "progress": False, "num_workers": 0,
          "read_back": True, **kw}
    return predict(model, x, output=out, **kw)


@pytest.fixture(scope="module")
def reference():
    model, x = build()
    return predict(model, x, bands=BANDS, batch_size=BATCH, progress=False, num_workers=0)


def assert_identical(table, reference):
    """Every row once, in order, and every value bit for bit."""
    assert [str(i) for i in table["id"]] == [str(i) for i in reference["id"]]
    for name in ("p_lens", "score", "flags", "n_bad_pixels"):
        # native byte order: FITS is big-endian, and read memory-mapped
        a, b = (np.asarray(t[name]).astype(t[name].dtype.newbyteorder("="))
                for t in (table, reference))
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name


def files(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".parquet"])
def test_a_crash_while_writing_the_output_leaves_the_old_file_or_none(suffix, reference,
                                                                      tmp_path, monkeypatch):
    out = tmp_path / f"cat{suffix}"
    model, x = build()
    first = run(model, x[:10], out)  # a finished output of another job, to be overwritten
    real = writers._JOINERS[writers.output_format(out)]

    def crash_before_the_rename(parts, path, *args):
        real(parts, path, *args)
        assert path.exists()  # the temporary file is written, not renamed yet
        raise RuntimeError("simulated crash")

    monkeypatch.setitem(writers._JOINERS, writers.output_format(out), crash_before_the_rename)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(model, x, out, chunk_size=16, overwrite=True)
    # Under its name the output is still the old, complete file; no temporary file is left.
    assert files(tmp_path) == [out.name, out.name + ".partial"]
    assert_identical(read_table(out), first)
    stored = files(tmp_path / f"{out.name}.partial")  # the manifest and the parts of 3 chunks
    assert stored[0] == "manifest.json" and len(stored) >= 1 + 3
    assert all(p.startswith("part_") and p.endswith(suffix) for p in stored[1:])

    monkeypatch.setitem(writers._JOINERS, writers.output_format(out), real)
    model.seen = 0
    assert_identical(run(model, x, out, chunk_size=16), reference)
    assert model.seen == 0 and files(tmp_path) == [out.name]  # only the file was rewritten


def test_every_file_is_fsynced_then_renamed(tmp_path, monkeypatch):
    events = []
    fsync, replace = writers._fsync, os.replace
    monkeypatch.setattr(writers, "_fsync", lambda p: (events.append(("fsync", p.name)), fsync(p)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", a.name, b.name)),
                                                     replace(a, b)))
    monkeypatch.setattr("astrozoo.inference.engine.FLUSH_SECONDS", 0.0)  # a piece per batch
    model, x = build()
    run(model, x, tmp_path / "cat.parquet", chunk_size=16)
    renamed = [e[2] for e in events if e[0] == "replace"]
    # manifest; one part per batch of 8, in the output's format (chunks of 16 hold two each)
    assert renamed == ["manifest.json", *(f"part_{a:012d}_{a + 8:012d}.parquet"
                                          for a in range(0, 40, 8)), "cat.parquet"]
    for i, e in enumerate(events):
        if e[0] == "replace":  # the data is on disk before the rename, the rename after it
            assert events[i - 1] == ("fsync", e[1]) and events[i + 1][0] == "fsync"
            assert events[i + 1][1] in ("cat.parquet.partial", tmp_path.name)


def test_a_run_stopped_by_an_error_keeps_its_batches_and_resumes_exactly(reference, tmp_path):
    out = tmp_path / "cat.fits"
    model, x = build()
    model.fail_at = 3
    with pytest.raises(RuntimeError, match="simulated failure"):
        run(model, x, out)
    # Fewer rows than one chunk: the 3 batches computed are kept as a piece file.
    assert files(out.with_name("cat.fits.partial")) == ["manifest.json",
                                                        "part_000000000000_000000000024.fits"]
    assert not out.exists()
    model.fail_at, model.seen = None, 0
    assert_identical(run(model, x, out, batch_size=BATCH), reference)
    assert model.seen == N - 24


@pytest.mark.slow  # a subprocess
def test_a_sigkilled_run_of_fewer_rows_than_a_chunk_keeps_its_batches(tmp_path):
    out = tmp_path / "cat.ecsv"
    # 0.4 s a batch and a write at least every FLUSH_SECONDS (1 s): by the kill, in the forward
    # pass of the 5th batch, at least 2 batches are on disk, whatever the machine's load.
    child = MODEL_SOURCE + f"""
from astrozoo.inference import predict
model, x = build()
model.sleep, model.kill_at = 0.4, 4
predict(model, x, bands=("g", "r"), output={str(out)!r}, batch_size={BATCH}, progress=False,
        num_workers=0)
"""
    proc = subprocess.run([sys.executable, "-c", child], timeout=120, capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists()
    pieces = [p for p in files(tmp_path / "cat.ecsv.partial") if p.startswith("part_")]
    stored = int(pieces[-1].split("_")[2].split(".")[0])
    assert 2 * BATCH <= stored < N and stored % BATCH == 0, pieces

    model, x = build()
    t = run(model, x, out)
    assert model.seen == N - stored  # the stored rows were not recomputed
    mem = predict(model, x, bands=BANDS, batch_size=BATCH, progress=False, num_workers=0)
    assert [str(i) for i in t["id"]] == [str(i) for i in range(N)]
    np.testing.assert_allclose(t["p_lens"], mem["p_lens"], rtol=1e-6)  # another process
    np.testing.assert_allclose(t["score"], mem["score"], rtol=1e-6)


def _refuses_before_compute(out, match):
    model, x = build()
    with pytest.raises(OutputError, match=match) as info:
        run(model, x, out)
    assert model.seen == 0
    return info.value


def test_a_read_only_directory_is_refused_before_compute(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        try:
            (ro / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("permission bits do not stop this user (root): see the EROFS test")
        err = _refuses_before_compute(ro / "cat.fits", r"ro: cannot write into this directory "
                                      r"\(Permission denied\); nothing was computed")
        assert err.path == str(ro) and files(ro) == []
    finally:
        ro.chmod(0o700)


def test_a_read_only_file_system_is_refused_before_compute(tmp_path, monkeypatch):
    # What a read-only mount answers to anyone, root included: EROFS on creating a file.
    ro = tmp_path / "ro"
    ro.mkdir()
    real_open, real_mkdir = os.open, os.mkdir

    def read_only(call):
        def refuse(path, *args, **kw):
            if str(path).startswith(str(ro)):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return call(path, *args, **kw)

        return refuse

    monkeypatch.setattr(os, "open", read_only(real_open))
    monkeypatch.setattr(os, "mkdir", read_only(real_mkdir))
    err = _refuses_before_compute(ro / "cat.parquet", "ro: cannot write into this directory "
                                  r"\(Read-only file system\)")
    assert err.path == str(ro) and isinstance(err, OSError)


Usage = namedtuple("Usage", "total used free")


def test_a_disk_too_small_for_the_job_is_refused_after_one_batch(reference, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "cat.fits"
    model, x = build()
    # A row of this model weighs 8 (id) + 4 + 8 + 8 + 8 + 4 (error) = 40 bytes in memory:
    # 40 rows still to store and 40 in the final file need 3200 bytes.
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**6, 10**6 - 3000, 3000))
    with pytest.raises(OutputError, match=r"has 0\.0 MiB free, and about 0\.0 MiB are needed "
                       r"for the 40 rows of cat.fits.*free space") as info:
        run(model, x, out)
    assert info.value.path == str(tmp_path)
    assert model.seen == BATCH  # one batch, not the job
    assert files(out.with_name("cat.fits.partial")) == ["manifest.json"]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**6, 10**6 - 3200, 3200))
    assert_identical(run(model, x, out), reference)


def _enospc(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@pytest.mark.parametrize("failing", ["chunk", "output"])
def test_disk_full_during_the_run_names_the_file_and_the_rerun_completes(
        failing, reference, tmp_path, monkeypatch):
    out = tmp_path / "cat.ecsv"
    model, x = build()
    if failing == "chunk":
        # The disk fills up under the third chunk file: its data is written, and fsync (where
        # write-back and network file systems report it) says ENOSPC.
        synced, real = [], writers._fsync

        def full_from_the_third(path):
            synced.extend([path] if path.name.endswith(".ecsv.tmp") else [])
            if len(synced) >= 3:
                assert path.stat().st_size > 0
                raise _enospc(path)
            real(path)

        monkeypatch.setattr(writers, "_fsync", full_from_the_third)
        at, n_chunks = "cat.ecsv.partial/part_000000000016_000000000024.ecsv", 2
    else:  # ... or while the final file is written
        def full(parts, path, *args):
            raise _enospc(path)

        monkeypatch.setitem(writers._JOINERS, "ecsv", full)
        at, n_chunks = "cat.ecsv", 5
    with pytest.raises(OutputError, match=r": cannot write \(No space left on device\); the "
                       r"rows stored so far are kept in .*cat.ecsv.partial: fix this and rerun "
                       r"the same command to resume") as info:
        run(model, x, out, chunk_size=8)
    assert info.value.path == str(tmp_path / at)
    # The finished chunks are kept; no temporary file is left to fill the disk further.
    assert files(tmp_path) == ["cat.ecsv.partial"]
    assert len(files(tmp_path / "cat.ecsv.partial")) == 1 + n_chunks

    monkeypatch.undo()
    model.seen = 0
    assert_identical(run(model, x, out, chunk_size=8), reference)
    assert model.seen == N - 8 * n_chunks


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    from astrozoo.cli import main
    from astrozoo.tasks.photoz.sdss import load_sdss

    catalog = tmp_path / "cat.ecsv"
    load_sdss()[:20].write(catalog)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**6, 10**6, 0))
    status = main(["predict", "photoz-sdss", str(catalog), "-o", str(tmp_path / "z.parquet"),
                   "--quiet", "--device", "cpu", "--unit", "nanomaggy"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"astrozoo: error: {tmp_path}: the disk holding it has 0.0 MiB free")
