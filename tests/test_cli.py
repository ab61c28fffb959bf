"""The ``astrozoo`` command, run as users run it (subprocess), and the README's commands."""

import re
import shutil

import pytest
from astropy.table import Table

from astrozoo.examples import DATA_DIR
from astrozoo.registry import default_model

from conftest import REPO, run_cli, run_python

# subprocesses: left out of the fast loop (pytest -m 'not slow'); CI runs them
pytestmark = pytest.mark.slow

LENS = default_model("lens-finding")


def _readme_commands():
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- setup:start -->\n```bash\n(.*?)```", text, re.S).group(1)
    return [l for l in block.splitlines() if l and not l.startswith("#")]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    demo, tests = _readme_commands()
    assert "astrozoo predict" in demo and "pytest" in tests
    assert tests in (REPO / ".ci" / "run").read_text()


def test_readme_demo_runs_and_finds_the_lenses():
    demo, _ = _readme_commands()
    args = demo.split(".venv/bin/astrozoo ", 1)[1].split()
    res = run_cli(*args)
    truth = Table.read(DATA_DIR / "truth.ecsv")
    lines = {l.split()[0]: l.split() for l in res.stdout.splitlines() if l.startswith("obj")}
    assert set(lines) == set(truth["id"])
    p = {k: float(v[1]) for k, v in lines.items()}
    lens_p = [p[i] for i, y in zip(truth["id"], truth["is_lens"]) if y]
    other_p = [p[i] for i, y in zip(truth["id"], truth["is_lens"]) if not y]
    assert min(lens_p) > max(other_p), p


def test_help_does_not_import_torch():
    res = run_python("import sys\nfrom astrozoo.cli import main\ntry:\n    main(['--help'])\n"
                     "except SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)")
    assert "TORCH False" in res.stdout and "predict" in res.stdout


def test_list_and_info():
    out = run_cli("list").stdout
    assert re.search(rf"lens-finding\s+{LENS}\*\s+gri\s+64x64", out)
    assert re.search(r"photo-z\s+photoz-sdss\*\s+ugriz\s+catalogue", out)
    assert re.search(r"auroc=0\.9\d+", out) and re.search(r"sigma_mad=0\.0\d+", out)
    info = run_cli("info", "lens-finding").stdout
    assert LENS in info and "bands g,r,i" in info and "sha256" in info and "metrics [" in info


def test_predict_to_file_in_every_layout(tmp_path):
    paths = sorted(str(p) for p in (DATA_DIR / "mef").glob("*.fits"))
    for out in ("out.fits", "out.ecsv", "out.parquet"):
        run_cli("predict", "lens-finding", *paths, "-o", tmp_path / out, "--quiet")
        t = Table.read(tmp_path / out)
        assert list(t["id"]) == [f"obj{i:02d}" for i in range(8)]
        assert ((t["p_lens"] >= 0) & (t["p_lens"] <= 1)).all()
        assert t.meta["MODEL"] == LENS
    cube = Table.read(tmp_path / "out.fits")
    run_cli("predict", LENS, str(DATA_DIR / "cube"), "-o", tmp_path / "cube.fits", "--quiet")
    assert abs(Table.read(tmp_path / "cube.fits")["p_lens"] - cube["p_lens"]).max() < 1e-4


def test_predict_stops_at_a_bad_file_or_flags_it_when_asked(tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    good = sorted(str(p) for p in (DATA_DIR / "mef").glob("*.fits"))[:2]
    # the default is the API's: stop, naming the file
    res = run_cli("predict", "lens-finding", good[0], bad, check=False)
    assert res.returncode != 0 and "broken.fits" in res.stderr
    res = run_cli("predict", "lens-finding", good[0], bad, good[1], "-o", tmp_path / "o.ecsv",
                  "--quiet", "--on-error", "flag", check=False)
    assert res.returncode == 1 and "1 failed" in res.stderr  # a failed row is not success
    t = Table.read(tmp_path / "o.ecsv")
    assert list(t["id"]) == ["obj00", "broken", "obj01"]
    assert "broken.fits" in t["error"][1] and not t["error"][0]


def test_unknown_model_is_a_clear_error():
    res = run_cli("info", "no-such-model", check=False)
    assert res.returncode == 2 and "unknown model or task 'no-such-model'" in res.stderr


def test_summary_and_exit_status_when_rows_fail(tmp_path):
    bad = [tmp_path / f"bad{i}.fits" for i in range(3)]
    for b in bad:
        b.write_bytes(b"not FITS at all")
    res = run_cli("predict", "lens-finding", *bad, "--on-error", "flag", "-q", check=False)
    assert res.returncode == 1
    assert "3 rows, 0 flagged, 3 failed" in res.stderr and "Traceback" not in res.stderr
    good = str(DATA_DIR / "mef" / "obj00.fits")
    res = run_cli("predict", "lens-finding", good, bad[0], "--on-error", "flag",
                  "--max-failed", "0.5", check=False)
    assert res.returncode == 0 and "2 rows, 0 flagged, 1 failed" in res.stderr


def test_ordinary_mistakes_are_one_line(tmp_path):
    cases = [("predict", "lens-finding", str(DATA_DIR / "mfe")),           # misspelt directory
             ("predict", "lens-finding", str(DATA_DIR / "mef"), "--device", "cuda:0"),
             ("predict", "lens-finding", str(DATA_DIR / "mef"), "--batch-size", "0"),
             ("info", "no-such-model")]
    for args in cases:
        res = run_cli(*args, check=False)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        assert res.stderr.startswith("astrozoo: error:"), res.stderr
    assert "no such file or directory" in run_cli(*cases[0], check=False).stderr
    res = run_cli(*cases[2], "--debug", check=False)
    assert "Traceback" in res.stderr


def test_rerun_of_a_finished_output_is_a_no_op(tmp_path):
    out = tmp_path / "o.fits"
    run_cli("predict", "lens-finding", str(DATA_DIR / "mef"), "-o", out, "-q")
    res = run_cli("predict", "lens-finding", str(DATA_DIR / "mef"), "-o", out)
    assert res.returncode == 0 and "already complete" in res.stderr
    res = run_cli("predict", "lens-finding", str(DATA_DIR / "cube") + "/obj0[0-3].fits", "-o",
                  out, check=False)
    assert res.returncode == 2 and "--overwrite" in res.stderr and "Traceback" not in res.stderr


def test_piped_output_and_interrupt(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("astrozoo")
    res = subprocess.run(f"{exe} predict lens-finding {DATA_DIR / 'mef'} --all -q | head -n 1",
                         shell=True, capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and "Traceback" not in res.stderr and res.stdout.split()[0] == "id"
    from astrozoo import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_predict", interrupted)  # Ctrl-C in the middle of a run
    assert cli.main(["predict", "lens-finding", "x.fits", "-o", "o.fits"]) == 130
    assert "rerun the same command to resume o.fits" in capsys.readouterr().err


def test_every_option_has_a_flag_and_per_band_folders_work(tmp_path):
    helptext = run_cli("predict", "--help").stdout
    for flag in ("--unit", "--zeropoint", "--missing-band", "--scale-max-rtol", "--chunk-size",
                 "--workers", "--group", "--keep", "--uncalibrated", "--max-missing",
                 "--max-failed", "--column", "--bands"):
        assert flag in helptext, flag
    out = tmp_path / "pb.ecsv"
    run_cli("predict", "lens-finding", str(DATA_DIR / "perband"), "-o", out, "-q",
            "--keep", "path")
    t = Table.read(out)
    assert list(t["id"]) == [f"obj{i:02d}" for i in range(8)] and "_g.fits" in t["path"][0]


def test_info_on_a_directory_and_catalogue_columns(tmp_path):
    d = tmp_path / "mine"
    shutil.copytree(REPO / "astrozoo" / "weights" / LENS, d)
    info = run_cli("info", d).stdout
    assert LENS in info and f"local:{d}" in info and "scale-free" in info
    assert "flux_err_<b>" in run_cli("info", "photo-z").stdout


def test_offline_hub_lookups_answer_at_once(tmp_path):
    import time

    t0 = time.perf_counter()
    res = run_cli("download", "hf-hub:astro/none", check=False,
                  env={"HF_HOME": str(tmp_path), "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert res.returncode == 2 and "cannot be reached" in res.stderr
    assert time.perf_counter() - t0 < 15  # huggingface_hub's own retries take ~23 s more


def test_readme_documents_every_output_flag():
    from astrozoo.io import Flag

    section = (REPO / "README.md").read_text().split("<!-- flags:start -->")[1]
    for f in Flag:
        assert f"| {int(f)} | `{f.name}` |" in section, f.name
