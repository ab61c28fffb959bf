"""Time the README's two set-up commands in a fresh clone (issue: setup under 10 minutes).

    python benchmarks/time_setup.py [--keep]

Clones the committed repository (HEAD) into a temporary directory, runs each command from the
README's set-up block there with a fresh virtual environment, and writes the timings to
``benchmarks/results/setup.md``. pip's download cache on the machine is used as it is, so record
whether it was warm: a first install also downloads torch's CUDA wheels (several GB).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup:start -->\n```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keep", action="store_true", help="keep the clone")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="astrozoo-setup-"))
    rows = []
    try:
        for i, cmd in enumerate(readme_commands(), 1):
            clone = tmp / f"clone{i}"
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            t0 = time.perf_counter()
            res = subprocess.run(["bash", "-c", cmd], cwd=clone, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            # stdout's last line is the command's answer (the demo table, pytest's summary)
            tail = res.stdout.strip().splitlines()[-1:]
            rows.append((i, cmd, dt, res.returncode, tail[0] if tail else ""))
            print(f"command {i}: {dt:.0f} s, exit {res.returncode}: {tail}")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    lines = ["| command | wall time | exit | last line of output |", "| --- | ---: | ---: | --- |"]
    for i, cmd, dt, rc, tail in rows:
        lines.append(f"| {i}. `{cmd.split('&&')[-1].strip()}` | {dt / 60:.1f} min | {rc} | "
                     f"`{tail[:80].replace('|', '/')}` |")
    lines.append("\nMeasured by `benchmarks/time_setup.py` in fresh clones with fresh virtual "
                 "environments on the 2-core development machine, with pip's download cache warm "
                 "(a cold first install also downloads torch's CUDA wheels, several GB).")
    (ROOT / "benchmarks" / "results" / "setup.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
