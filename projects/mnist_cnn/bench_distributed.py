"""The scale-out check: MNIST trained by one process and by a group of two, compared weight for weight.

For each backend it trains one epoch three ways, with the same global batch and order
(`common.distributed.GlobalBatches`):
- one process on 2 logical CPU devices (`CPU_DEVICES=2 ... --distribute`), the reference,
  with one compute thread like each worker (the number of threads decides how sums are
  split up, so their rounding, which Adam's first steps magnify);
- one worker through `common.launch`, one device with every core;
- two workers through `common.launch`, one device and one core each, on 127.0.0.1.
Every worker saves the example indices it read and its final weights
(`DISTRIBUTED_CHECK_DIR`); the table says how far the two workers' weights are from each
other and from the reference's, whether the workers read disjoint examples that together
cover the training set, and what each way trained per second. Each run is a separate
process with a time limit, so a group that hangs fails the check instead of stalling it.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from common import runs
from common.launch import thread_variables
from common.report import markdown_table, update_readme
from projects.mnist_cnn import FOLDER

TIME_LIMIT = 3600  # seconds for one training run
REFERENCE = "1 process, 2 devices"
WAYS = {  # name: (processes, devices per process)
    REFERENCE: (1, 2),
    "1 process, 1 device": (1, 1),
    "2 processes, 1 device each": (2, 1),
}


def command(way, flags):
    processes, devices = WAYS[way]
    train = ["-m", "projects.mnist_cnn", "train", "--distribute", *flags]
    if devices > 1:
        return [sys.executable, *train], {"CPU_DEVICES": str(devices), **thread_variables(1, os.environ)}
    return [sys.executable, "-m", "common.launch", "--workers", str(processes), "--", *train[1:]], {}


def train_way(way, backend, flags, folder):
    """One training run of `way` under `backend`; its run folder and check folder."""
    run_dir, check_dir = folder / "run", folder / "check"
    argv, extra = command(way, [*flags, "--out", str(run_dir)])
    env = {**os.environ, **extra, "KERAS_BACKEND": backend, "DISTRIBUTED_CHECK_DIR": str(check_dir)}
    print(f"{backend}, {way}: {' '.join(argv[1:])}", flush=True)
    subprocess.run(argv, env=env, check=True, timeout=TIME_LIMIT)
    return run_dir, check_dir


def weights(check_dir, rank):
    with np.load(check_dir / f"worker{rank}-weights.npz") as saved:
        return [saved[key] for key in sorted(saved.files, key=lambda k: int(k[1:]))]


def largest_difference(first, second):
    return max(float(np.abs(a.astype(np.float64) - b).max()) for a, b in zip(first, second))


def row(backend, way, run_dir, check_dir, reference_dir):
    if run_dir is None:
        return {"backend": backend, "way": way, "train images/s": "not run (--skip-reference)"}
    summary = runs.read_json(run_dir / "summary.json")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    train_images = runs.read_json(run_dir / "config.json")["resolved"]["train_images"]
    result = {
        "backend": backend,
        "way": way,
        "train images/s": f"{summary['train_samples_per_second']:.0f}",
        "wall time": f"{summary['wall_seconds'] / 60:.1f} min",
        "validation accuracy": f"{metrics['val_accuracy'].iloc[-1] * 100:.2f}%",
        "largest weight difference from the reference (first row)":
            f"{largest_difference(weights(check_dir, 0), weights(reference_dir, 0)):.1e}" if reference_dir else "",
        "between the workers": "",
        "examples read by both workers": "",
    }
    if WAYS[way][0] == 2:
        reads = [np.load(check_dir / f"worker{rank}-reads.npy") for rank in (0, 1)]
        both = np.intersect1d(reads[0], reads[1]).size
        covered = np.union1d(reads[0], reads[1]).size
        result["between the workers"] = f"{largest_difference(weights(check_dir, 0), weights(check_dir, 1)):.1e}"
        result["examples read by both workers"] = f"{both} (together {covered:,} of {train_images:,})"
    return result


def bench_distributed(args):
    """Train one epoch each way on each backend; print the table, and write it into the README (full data)."""
    flags = ["--epochs", str(args.epochs), "--no-final-test"] + (["--tiny"] if args.tiny else [])
    if args.data_dir:
        flags += ["--data-dir", args.data_dir]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as scratch:
        for backend in args.backends:
            folders = {way: Path(scratch) / backend / str(index) for index, way in enumerate(WAYS)}
            skipped = [REFERENCE] if backend in args.skip_reference else []
            results = {way: (None, None) if way in skipped else train_way(way, backend, flags, folders[way]) for way in WAYS}
            reference = results[REFERENCE][1]
            rows += [row(backend, way, *results[way], reference) for way in WAYS]
    table = markdown_table(pd.DataFrame(rows).fillna(""))
    print(table)
    if not args.tiny:
        update_readme(FOLDER / "README.md", "bench-distributed", table)
    return 0
