"""Scale-out: partitions, a 2-worker Dask LocalCluster equal to the single-process run row for
row, retries, reruns, a worker killed mid-run, and LSDB over a HATS catalogue from hats-import."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from astropy.table import Table, vstack

import astrozoo
from astrozoo.exceptions import InputError, OutputError
from astrozoo.scaleout import partition_catalog
from astrozoo.tasks.lens_finding.simulate import BANDS, simulate

distributed = pytest.importorskip("distributed")
dask_mod = pytest.importorskip("astrozoo.scaleout.dask")

N_TILE, NX = 40, 8  # objects per tile, laid out on an 8 x 5 grid of 64-pixel cells


def _tile(d, k):
    """One survey tile (g, r, i images) of simulated cutouts and its catalogue."""
    from astrozoo.examples.fields import write_tile

    images, labels, _ = simulate(N_TILE, 500 + k, lens_fraction=0.3)
    # tiles a degree apart: other HEALPix pixels
    paths, cat = write_tile(images, BANDS, d, name=f"tile{k}", ra=150.0 + k, ncols=NX,
                            first_id=1000 * k)
    cat.rename_column("id", "objid")
    cat["lens"] = labels
    return paths, cat


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiles")
    (p0, c0), (p1, c1) = _tile(d, 0), _tile(d, 1)
    cat = vstack([c0, c1])
    cat = cat[np.random.default_rng(0).permutation(len(cat))]  # tiles interleaved in the rows
    model = astrozoo.load("lens-finding")
    ref = vstack([model.predict(p0, catalog=c0, progress=False),
                  model.predict(p1, catalog=c1, progress=False)])
    ref = ref[[list(ref["id"]).index(i) for i in cat["objid"]]]  # in catalogue order
    return [p0, p1], cat, ref


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _same(result, ref):
    assert list(result["id"]) == list(ref["id"])
    np.testing.assert_array_equal(result["flags"], ref["flags"])
    # batches differ between the runs: float rounding only
    np.testing.assert_allclose(result["p_lens"], ref["p_lens"], rtol=0, atol=1e-6)


def test_partitions_cover_every_row_once_by_tile_and_sky(survey, tmp_path):
    tiles, cat, _ = survey
    parts = partition_catalog(cat, tiles, max_rows=15)
    rows = np.concatenate([p.rows for p in parts])
    assert sorted(rows) == list(range(len(cat)))
    for p in parts:  # each partition opens one tile: the one its rows were simulated on
        assert len(p) <= 15
        k = int(p.key[1:5])
        assert p.images == tiles[k] and set(cat["objid"][p.rows] // 1000) == {k}
    # within a tile, a partition is a compact patch: smaller than the tile
    one = [p for p in parts if p.key.startswith("t0000")][0]
    assert np.ptp(cat["ra"][one.rows]) < 0.9 * np.ptp(cat["ra"][cat["objid"] < 1000]) or \
        np.ptp(cat["dec"][one.rows]) < 0.9 * np.ptp(cat["dec"][cat["objid"] < 1000])
    assert [p.key for p in partition_catalog(cat, tiles, max_rows=15)] == [p.key for p in parts]
    with pytest.raises(InputError, match="ra/dec"):
        partition_catalog(Table({"x": [1.0], "y": [2.0]}), tiles)
    with pytest.raises(ValueError, match="images="):  # refused before any cluster starts
        dask_mod.predict_dask("lens-finding", cat, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_two_workers_equal_the_single_process_run(survey, client, tmp_path):
    tiles, cat, ref = survey
    out = tmp_path / "out"
    result = dask_mod.predict_dask("lens-finding", cat, out, images=tiles, scheduler=client,
                                   max_rows=12, progress=False)
    _same(result, ref)
    files = sorted(out.glob("part-*.parquet"))
    assert len(files) == 8  # 40 rows per tile in partitions of at most 12
    # both workers took part, each keeping one model
    assert sum(client.run(lambda: len(dask_mod._MODELS)).values()) == 2

    # a rerun skips every finished partition ...
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    files[3].unlink()
    again = dask_mod.predict_dask("lens-finding", cat, out, images=tiles, scheduler=client,
                                  max_rows=12, progress=False)
    _same(again, ref)
    assert all(f.stat().st_mtime_ns == t for f, t in mtimes.items() if f != files[3])
    assert files[3].exists()
    # ... and another job in the same directory is refused
    with pytest.raises(OutputError, match="another job"):
        dask_mod.predict_dask("lens-finding", cat, out, images=tiles, scheduler=client,
                              max_rows=12, progress=False, tta=True)


def test_cli_predict_dask_with_a_tiles_table(survey, client, tmp_path):
    from astrozoo.cli import main

    tiles, cat, ref = survey
    cat.write(tmp_path / "cat.ecsv")
    Table(rows=[[t[b] for b in BANDS] for t in tiles], names=BANDS).write(tmp_path / "tiles.ecsv")
    out = tmp_path / "cli"
    status = main(["predict", "lens-finding", "--catalog", str(tmp_path / "cat.ecsv"),
                   "--tiles", str(tmp_path / "tiles.ecsv"), "--dask", client.scheduler.address,
                   "--partition-rows", "25", "-o", str(out), "-q"])
    assert status == 0
    _same(dask_mod.read_partitions(out), ref)
    assert len(list(out.glob("part-*.parquet"))) == 4
    with pytest.raises(ValueError, match="need --dask"):
        main(["predict", "lens-finding", "--catalog", str(tmp_path / "cat.ecsv"),
              "--image", f"g={tiles[0]['g']}", "--tiles", "x.ecsv", "--debug"])


def test_catalogue_model_on_dask(client, tmp_path):
    from astrozoo.tasks.photoz.sdss import load_sdss

    t = load_sdss("test")[:300]
    t["dec"] = np.linspace(-10, 10, len(t))
    t["ra"] = np.linspace(0, 40, len(t))
    model = astrozoo.load("photoz-sdss")
    ref = model.predict(t, unit="nanomaggy", progress=False)
    result = dask_mod.predict_dask("photoz-sdss", t, tmp_path / "pz", scheduler=client,
                                   max_rows=70, unit="nanomaggy", progress=False)
    assert list(result["id"]) == list(ref["id"])
    for c in ("z_mean", "z_lo68", "mdn_mu"):
        np.testing.assert_allclose(result[c], ref[c], rtol=1e-5, atol=1e-6)
    assert len(list((tmp_path / "pz").glob("part-*.parquet"))) == 5


def test_failing_partition_is_retried_alone(survey, tmp_path, monkeypatch):
    tiles, cat, ref = survey
    real, log = dask_mod.run_partition, tmp_path / "attempts.txt"

    def flaky(job, part, rows):  # the first attempt at t0001-00001 fails
        # Dask pickles the task function: the attempts are counted in a file, not a closure
        with open(log, "a") as f:
            f.write(part.key + "\n")
        if part.key == "t0001-00001" and log.read_text().count(part.key) == 1:
            raise OSError("transient read failure")
        return real(job, part, rows)

    monkeypatch.setattr(dask_mod, "run_partition", flaky)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        result = dask_mod.predict_dask("lens-finding", cat, tmp_path / "a", images=tiles,
                                       scheduler=c, max_rows=12, progress=False)
        _same(result, ref)
        attempts = log.read_text().split()
        assert attempts.count("t0001-00001") == 2
        assert len(attempts) == 9 and len(set(attempts)) == 8  # no other partition redone

        # a partition that keeps failing: named in the error, the others kept for the rerun
        def broken(job, part, rows):
            if part.key == "t0000-00002":
                raise OSError("disk gone")
            return real(job, part, rows)

        monkeypatch.setattr(dask_mod, "run_partition", broken)
        with pytest.raises(dask_mod.PartitionError, match="t0000-00002.*disk gone"):
            dask_mod.predict_dask("lens-finding", cat, tmp_path / "b", images=tiles,
                                  scheduler=c, max_rows=12, retries=1, progress=False)
        written = sorted((tmp_path / "b").glob("part-*.parquet"))
        assert len(written) == 7
        monkeypatch.setattr(dask_mod, "run_partition", real)
        _same(dask_mod.predict_dask("lens-finding", cat, tmp_path / "b", images=tiles,
                                    scheduler=c, max_rows=12, progress=False), ref)
    cluster.close()


def test_killed_worker_every_row_arrives_exactly_once(survey, tmp_path):
    tiles, cat, ref = survey
    out = tmp_path / "k"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        box = {}

        def run():
            try:
                box["t"] = dask_mod.predict_dask("lens-finding", cat, out, images=tiles,
                                                 scheduler=c, max_rows=4, progress=False)
            except BaseException as e:  # noqa: BLE001 - re-raised by the test below
                box["e"] = e

        th = threading.Thread(target=run)
        th.start()
        deadline = time.time() + 120
        while not list(out.glob("part-*.parquet")) and time.time() < deadline:
            time.sleep(0.02)
        victim = next(iter(c.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        done_at_kill = len(list(out.glob("part-*.parquet")))
        th.join(300)
    cluster.close()
    assert "e" not in box, box.get("e")
    assert 0 < done_at_kill < 20  # killed mid-run: 20 partitions of 4 rows
    _same(box["t"], ref)
    from astrozoo.inference.writers import read_table

    rows = np.concatenate([read_table(f)["row"] for f in out.glob("part-*.parquet")])
    assert sorted(rows) == list(range(len(cat)))  # every row exactly once
    assert not list(out.glob("*.tmp"))


def _hats_catalog(tmp_path, table):
    """A small HATS catalogue written by hats-import (several HEALPix partitions)."""
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "src.parquet"
    table.write(src, format="parquet")
    args = ImportArguments(output_path=tmp_path, output_artifact_name="cat",
                           input_file_list=[str(src)], file_reader="parquet",
                           ra_column="ra", dec_column="dec", pixel_threshold=60,
                           highest_healpix_order=7, progress_bar=False,
                           tmp_dir=tmp_path / "tmp")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        pipeline_with_client(args, c)
    cluster.close()
    return pytest.importorskip("lsdb").open_catalog(tmp_path / "cat")


def test_lsdb_photoz_and_lens_finding_equal_single_process(survey, tmp_path):
    pytest.importorskip("lsdb")
    from astrozoo.scaleout.lsdb import predict_catalog
    from astrozoo.tasks.photoz.sdss import load_sdss

    t = load_sdss("test")[:240]
    rng = np.random.default_rng(4)
    t["ra"], t["dec"] = rng.uniform(20, 30, len(t)), rng.uniform(-5, 5, len(t))
    t = t["id", "ra", "dec", *[c for c in t.colnames if c.startswith(("flux_", "extinction_"))]]
    cat = _hats_catalog(tmp_path / "pz", t)
    assert cat.npartitions > 1
    got = predict_catalog("photoz-sdss", cat, prefix="pz_", unit="nanomaggy").compute()
    ref = astrozoo.load("photoz-sdss").predict(t, unit="nanomaggy", progress=False)
    z = dict(zip(ref["id"].tolist(), ref["z_mean"]))
    mu = dict(zip(ref["id"].tolist(), ref["mdn_mu"][:, 1]))
    assert sorted(got["id"]) == sorted(ref["id"])
    np.testing.assert_allclose(got["pz_z_mean"], [z[i] for i in got["id"]], rtol=1e-5)
    np.testing.assert_allclose(got["pz_mdn_mu_1"], [mu[i] for i in got["id"]], rtol=1e-5)

    tiles, pos, lens_ref = survey
    lcat = _hats_catalog(tmp_path / "lens", pos)
    got = predict_catalog("lens-finding", lcat, images=tiles).compute()
    p = dict(zip(lens_ref["id"].tolist(), lens_ref["p_lens"]))
    assert sorted(got["objid"]) == sorted(pos["objid"])
    np.testing.assert_allclose(got["p_lens"], [p[i] for i in got["objid"]], atol=1e-6)
    with pytest.raises(ValueError, match="images="):
        predict_catalog("lens-finding", lcat)
