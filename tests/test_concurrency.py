"""Four processes load one model from one Hub cache at the same time (all downloading into it)
and predict into their own output files: the cache ends with one correct blob, the four
outputs are bitwise equal and match a single in-process run to float32 rounding."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from astrozoo.hub import sha256_file
from astrozoo.inference.writers import read_table
from astrozoo.registry import default_model, get_entry

from conftest import REPO
from hubserver import HubServer

pytestmark = pytest.mark.slow  # subprocesses

LENS = default_model("lens-finding")
JOB = """
import sys, numpy as np, astrozoo
m = astrozoo.load("hf-hub:astro/lens")
x = np.random.default_rng(0).normal(0, 1, (40, *m.spec.shape)).astype(np.float32) * 5
x[:, :, 28:36, 28:36] += 200.0
m.predict(x, bands=list(m.spec.bands), unit="nJy", progress=False, output=sys.argv[1],
          batch_size=8)
"""


def test_four_processes_share_one_hub_cache(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(get_entry(LENS).weights.bundled_dir, repo)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": "1"}
    outs = [tmp_path / f"out{k}.parquet" for k in range(4)]
    with HubServer({"astro/lens": repo}) as url:
        env["HF_ENDPOINT"] = url
        procs = [subprocess.Popen([sys.executable, "-c", JOB, str(o)], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for o in outs]
        results = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    blobs = list((tmp_path / "hf" / "hub" / "models--astro--lens" / "blobs").iterdir())
    weights = [b for b in blobs if b.stat().st_size > 100_000]
    assert len(weights) == 1 and sha256_file(weights[0]) == sha256_file(repo / "model.safetensors")
    import astrozoo

    m = astrozoo.load(LENS)  # the same weights, bundled, in this one process
    x = np.random.default_rng(0).normal(0, 1, (40, *m.spec.shape)).astype(np.float32) * 5
    x[:, :, 28:36, 28:36] += 200.0
    ref = m.predict(x, bands=list(m.spec.bands), unit="nJy", progress=False, batch_size=8)
    tables = [read_table(o) for o in outs]
    # float32 rounding only: this process runs other thread counts than the workers (1 thread)
    np.testing.assert_allclose(np.asarray(tables[0]["p_lens"]), np.asarray(ref["p_lens"]),
                               rtol=1e-5, atol=1e-7)
    for t in tables[1:]:
        assert t.colnames == tables[0].colnames and len(t) == 40
        for c in t.colnames:
            np.testing.assert_array_equal(np.asarray(t[c]), np.asarray(tables[0][c]))
    assert not list(tmp_path.glob("*.partial"))
