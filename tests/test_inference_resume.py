"""Resuming a streamed prediction after the process was killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.table import Table

# subprocesses: left out of the fast loop (pytest -m 'not slow'); CI runs them
pytestmark = pytest.mark.slow

# A job slowed down per batch so that it can be killed half-way. It prints how many objects the
# network saw, so that the rerun can be shown to skip the finished chunks.
SCRIPT = r"""
import os, sys, time
import numpy as np, torch
from torch import nn
from astrozoo.config import InputSpec, ModelConfig
from astrozoo.inference import predict
from astrozoo.modeling import ZooModel


class Slow(ZooModel):
    seen = 0

    def __init__(self, config):
        super().__init__(config)
        self.conv = nn.Conv2d(2, 4, 3)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        Slow.seen += len(x)
        time.sleep(float(os.environ["SLEEP"]))
        return self.head(self.conv(x).relu().mean((-2, -1)))

    def postprocess(self, out):
        return {"p_lens": torch.sigmoid(out[:, 0]).numpy()}

torch.manual_seed(0)
cfg = ModelConfig(name="slow", task="lens-finding", architecture="slow", arch_kwargs={},
                  input_spec=InputSpec(bands=("g", "r"), size=8, pixel_scale=0.2),
                  outputs=("p_lens",))
x = np.random.default_rng(0).normal(5, 1, size=(120, 2, 8, 8)).astype(np.float32)
predict(Slow(cfg), x, bands=["g", "r"], output=sys.argv[1], batch_size=5, chunk_size=10, progress=False,
        num_workers=1)
print("seen", Slow.seen)
"""


def run(output, sleep):
    env = {**os.environ, "SLEEP": str(sleep)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(output)], env=env,
                            stdout=subprocess.PIPE, text=True)


def stored_rows(partial) -> int:
    """Rows stored in the part files (``part_<start>_<stop>.parquet``, contiguous from 0)."""
    spans = dict(tuple(int(v) for v in p.stem.split("_")[1:]) for p in partial.glob("part_*.parquet"))
    at = 0
    while at in spans:
        at = spans[at]
    return at


def test_resume_after_kill(tmp_path):
    out = tmp_path / "cat.parquet"
    partial = tmp_path / "cat.parquet.partial"
    proc = run(out, sleep=0.05)  # ~1.2 s for the 12 chunks once started
    try:
        deadline = time.monotonic() + 60
        while stored_rows(partial) < 30:
            assert proc.poll() is None and time.monotonic() < deadline, "job ended too early"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_done = stored_rows(partial)
    assert not out.exists() and 30 <= n_done < 120

    rerun = run(out, sleep=0)
    stdout, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0
    # Only the rows not stored were recomputed.
    assert int(stdout.split()[-1]) == 120 - n_done
    assert out.is_file() and not partial.exists()

    reference = tmp_path / "ref.fits"
    assert run(reference, sleep=0).wait(timeout=120) == 0
    import pyarrow.parquet as pq

    got = pq.read_table(out).to_pydict()
    ref = Table.read(reference, character_as_bytes=False)
    assert got["id"] == list(range(120))  # every row exactly once, in order
    np.testing.assert_allclose(got["p_lens"], ref["p_lens"], rtol=1e-6)
