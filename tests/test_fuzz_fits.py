"""A small derandomised profile of the FITS fuzz campaign (`benchmarks/fuzz_fits.py`, which runs
10,000+ cases): mutated and generated files give only astrozoo's documented errors, and what is
read agrees with astropy."""

import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "fuzz_fits", Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_fits.py")
fuzz_fits = importlib.util.module_from_spec(spec)
sys.modules["fuzz_fits"] = fuzz_fits  # its dataclasses look their module up
spec.loader.exec_module(fuzz_fits)


def test_fuzz_profile_finds_no_failure(tmp_path, capsys):
    assert fuzz_fits.campaign(300, seed=0, out=tmp_path) == 0
    out = capsys.readouterr().out
    assert "cases tried: 300" in out and "failures: 0" in out, out
