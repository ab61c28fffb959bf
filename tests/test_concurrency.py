"""Concurrency (issue 16, item 7): processes sharing one model and one huggingface_hub cache.

Four processes start together (a file barrier), each downloads ``hf-hub:astro/pz`` from the
loopback Hub (`hubserver.HubServer`) into the same empty ``HF_HOME`` and predicts into its own
output file. huggingface_hub serialises the downloads of a blob with a file lock and moves each
finished ``.incomplete`` file into place, so the cache ends with one correct copy; astrozoo's
sha256 check guards the weights either way.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from astrozoo.inference.writers import read_table
from astrozoo.modeling import load
from astrozoo.registry import get_entry

from conftest import REPO
from hubserver import HubServer

# subprocesses: left out of the fast loop (pytest -m 'not slow'); CI runs them
pytestmark = pytest.mark.slow

SMALL = "photoz-lsst"  # the smallest bundled weights (0.75 MB)
N_PROCESSES = 4

WORKER = """
import sys, time, pathlib
import numpy as np, torch
torch.set_num_threads(1)
import astrozoo
import astrozoo.inference, astrozoo.tasks.photoz.image_model  # imports before the barrier

tmp, i = pathlib.Path(sys.argv[1]), sys.argv[2]
(tmp / f"ready{i}").touch()
t0 = time.monotonic()
while not (tmp / "go").exists():  # start together, so that the downloads overlap
    if time.monotonic() - t0 > 120:
        sys.exit("no go signal")
    time.sleep(0.005)
model = astrozoo.load("hf-hub:astro/pz")
model.predict(np.load(tmp / "x.npy"), bands=list(model.spec.bands), unit="nJy", device="cpu",
              num_workers=0, progress=False, output=str(tmp / f"out{i}.fits"))
print("DONE", i)
"""


def _inputs(spec, n=6):
    rng = np.random.default_rng(1)
    s = spec.size
    r2 = ((np.mgrid[:s, :s] - (s - 1) / 2) ** 2).sum(0)
    profile = np.exp(-np.sqrt(r2) / rng.uniform(1.5, 5, (n, 1, 1, 1)))
    return (rng.uniform(5, 100, (n, len(spec.bands), 1, 1)) * profile
            + rng.normal(0, 2, (n, len(spec.bands), s, s))).astype(np.float32)


def _reference(x, spec):
    """The single-process result, with the workers' one thread (same float rounding)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return load(SMALL).predict(x, bands=list(spec.bands), unit="nJy", device="cpu",
                                   num_workers=0, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_four_processes_share_one_hub_cache(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(get_entry(SMALL).weights.bundled_dir, repo)
    spec = load(SMALL).spec
    x = _inputs(spec)
    np.save(tmp_path / "x.npy", x)
    home = tmp_path / "hf_home"
    server = HubServer({"astro/pz": repo})
    # hold each download open for a moment so the four contend for the same blob
    handler = server._httpd.RequestHandlerClass
    get = handler.do_GET
    handler.do_GET = lambda self: (time.sleep(0.3), get(self))[1]
    with server as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), HF_ENDPOINT=url,
                   HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(i)], env=env,
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(N_PROCESSES)]
        try:
            deadline = time.monotonic() + 120
            while not all((tmp_path / f"ready{i}").exists() for i in range(N_PROCESSES)):
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                assert time.monotonic() < deadline, "workers did not start"
                time.sleep(0.01)
            (tmp_path / "go").touch()
            results = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    for i, (p, (out, err)) in enumerate(zip(procs, results)):
        assert p.returncode == 0 and f"DONE {i}" in out, err
    weights_gets = [r for r in server.requests if r.startswith("GET /astro/pz/resolve/main/model")]
    assert weights_gets, server.requests

    ref = _reference(x, spec)
    for i in range(N_PROCESSES):
        t = read_table(tmp_path / f"out{i}.fits")
        assert len(t) == len(x) and list(t["id"]) == list(ref["id"])
        for c in ref.colnames:
            assert np.array_equal(np.asarray(t[c]), np.asarray(ref[c]), equal_nan=True), (i, c)

    cache = home / "hub" / "models--astro--pz"
    blobs = sorted((cache / "blobs").iterdir())
    assert len(blobs) == 3  # config.json, model.safetensors, README.md: one copy each
    for b in blobs:  # each blob is named by the ETag the Hub sent: the sha256 of its content
        assert hashlib.sha256(b.read_bytes()).hexdigest() == b.name
    assert not [p for p in home.rglob("*") if p.name.endswith(".incomplete")]
    snapshot = next((cache / "snapshots").iterdir())
    assert (snapshot / "model.safetensors").resolve().name == get_entry(SMALL).sha256
