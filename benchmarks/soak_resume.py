"""Kill/resume soak: streamed predictions SIGKILLed at random times and resumed lose nothing.

For each output format (FITS, ECSV, Parquet) a child process runs ``predict(..., output=...)``
with the bundled ``photoz-sdss`` model over the bundled SDSS catalogue; the parent SIGKILLs it at
a random time between 0 and the uninterrupted run's duration (counted from when the child
starts predicting, so that no kill is wasted on imports), reruns the same job, and kills again
until a run finishes; a kill that comes after the job had finished is not counted. Then it
starts a fresh job, until the format has its share of the kills. Jobs alternate between
chunks of 1500 rows (chunk files and their merges) and one chunk larger than the job (only
piece files: a run of fewer rows than one chunk). Every finished file must hold each id exactly
once, in input order, with every value bit for bit equal to an uninterrupted run's (same batch
size: a resumed run computes the same batches); after a kill, a file under the output's name
must already be that complete file.

    nice -n 10 .venv/bin/python benchmarks/soak_resume.py [--kills 54] [--rows 6000] [--seed 0]

Prints the kills, resumes, jobs, mismatches and wall time; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMATS = (".fits", ".ecsv", ".parquet")
BATCH, CHUNKS = 250, (1500, 8192)


def child(output: str, rows: int, chunk: int) -> None:
    """One run of the job; prints READY when imports and loading are done."""
    import torch

    import astrozoo
    from astrozoo.inference import predict
    from astrozoo.tasks.photoz.sdss import load_sdss

    torch.set_num_threads(1)  # the same arithmetic in every run
    model = astrozoo.load("photoz-sdss")
    table = load_sdss()[:rows]
    print("READY", flush=True)
    t0 = time.perf_counter()
    predict(model, table, output=output, batch_size=BATCH, chunk_size=chunk, progress=False)
    print("TIME", time.perf_counter() - t0, flush=True)
    os._exit(0)  # no interpreter teardown: a kill after this point would test nothing


class Job:
    """Child processes running the job to `output`."""

    def __init__(self, output: Path, rows: int, chunk: int):
        self.output, self.rows, self.chunk = output, rows, chunk
        self.partial = output.with_name(output.name + ".partial")

    def start(self) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(self.output),
                                 "--rows", str(self.rows), "--chunk", str(self.chunk)],
                                stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if line.strip() != "READY":
            raise RuntimeError(f"child failed before predicting (status {proc.wait()})")
        return proc

    def run(self) -> float:
        """An uninterrupted run; its predict time in seconds."""
        proc = self.start()
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"uninterrupted run failed (status {proc.returncode})")
        return float(out.split()[-1])


def identical(path: Path, reference) -> list[str]:
    """What differs between the table in `path` and `reference`: ids not exactly once and in
    order, or any column not bit for bit equal."""
    from astrozoo.inference import read_table

    t = read_table(path)
    problems = []
    ids = [str(i) for i in t["id"]]
    if len(set(ids)) != len(ids) or ids != [str(i) for i in reference["id"]]:
        problems.append("ids")
    if t.colnames != reference.colnames:
        problems.append(f"columns {t.colnames}")
    for name in set(t.colnames) & set(reference.colnames):
        # native byte order (FITS is big-endian); bits compared, so NaN equals NaN
        a, b = (np.ascontiguousarray(x[name]).astype(x[name].dtype.newbyteorder("="))
                for x in (t, reference))
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            problems.append(name)
    return problems


def soak(kills: int, rows: int, seed: int) -> int:
    from astrozoo.inference import read_table

    rng = random.Random(seed)
    share = -(-kills // len(FORMATS))
    counts = {"kills": 0, "resumes": 0, "jobs": 0, "mismatches": 0, "kills_in_finalize": 0,
              "kills_leaving_pieces": 0, "kills_after_rename": 0, "kills_too_late": 0}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak_resume_") as tmp:
        tmp = Path(tmp)
        for suffix in FORMATS:
            ref_path = tmp / f"reference{suffix}"
            duration = Job(ref_path, rows, CHUNKS[0]).run()
            reference = read_table(ref_path)
            print(f"{suffix}: uninterrupted run {duration:.2f} s", flush=True)
            done = 0
            while done < share:
                job = Job(tmp / f"cat{suffix}", rows, CHUNKS[counts["jobs"] % len(CHUNKS)])
                job.output.unlink(missing_ok=True)
                shutil.rmtree(job.partial, ignore_errors=True)
                counts["jobs"] += 1
                while True:
                    counts["resumes"] += job.partial.exists()
                    proc = job.start()
                    try:
                        proc.wait(timeout=rng.uniform(0, duration))
                    except subprocess.TimeoutExpired:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait()
                    proc.stdout.close()
                    if proc.returncode == 0:
                        break
                    if proc.returncode != -signal.SIGKILL:
                        raise RuntimeError(f"child failed with status {proc.returncode}")
                    if job.output.exists() and not job.partial.exists():
                        counts["kills_too_late"] += 1  # the job had finished: not a kill of it
                        continue
                    counts["kills"] += 1
                    done += 1
                    names = [p.name for p in job.partial.iterdir()] if job.partial.exists() else []
                    counts["kills_leaving_pieces"] += any(n.startswith("part_") for n in names)
                    counts["kills_in_finalize"] += job.output.with_name(
                        job.output.name + ".tmp").exists()
                    if job.output.exists():  # renamed, partial not yet removed: complete
                        counts["kills_after_rename"] += 1
                        counts["mismatches"] += bool(identical(job.output, reference))
                problems = identical(job.output, reference)
                if problems:
                    print(f"{suffix}: job {counts['jobs']} differs in {problems}", flush=True)
                counts["mismatches"] += bool(problems)
                if job.partial.exists():
                    counts["mismatches"] += 1
                    print(f"{suffix}: {job.partial} left behind", flush=True)
            print(f"{suffix}: {done} kills so far {counts}", flush=True)
    wall = time.perf_counter() - t_start
    print(f"kills {counts['kills']}  resumes {counts['resumes']}  jobs {counts['jobs']}  "
          f"formats {len(FORMATS)} ({', '.join(FORMATS)})  rows/job {rows}  "
          f"mismatches {counts['mismatches']}  wall {wall:.0f} s")
    print(f"kills leaving piece files {counts['kills_leaving_pieces']}  "
          f"kills while writing the final file {counts['kills_in_finalize']}  "
          f"kills after its rename {counts['kills_after_rename']}  "
          f"kills after the job had finished (not counted) {counts['kills_too_late']}")
    return 1 if counts["mismatches"] else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=54, help="kills in all, shared by the formats")
    p.add_argument("--rows", type=int, default=6000, help="catalogue rows per job")
    p.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", metavar="OUTPUT", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.rows, args.chunk)
        return 0
    return soak(args.kills, args.rows, args.seed)


if __name__ == "__main__":
    sys.exit(main())
