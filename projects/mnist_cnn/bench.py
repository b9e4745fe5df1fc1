"""The benchmark: the default recipe on MNIST and on Fashion-MNIST, measured into the README.

Each dataset trains with its preset (train.PRESETS) and ends with the run's own
evaluation on the full 10,000-image test set. `runs/mnist_cnn/bench.json` remembers
each dataset's latest bench run, so re-measuring one dataset keeps the other's row.
The MNIST run's picture of test predictions becomes the README's.
"""

import shutil
from pathlib import Path

import pandas as pd

from common import report, runs
from common.report import markdown_table, update_readme
from projects.mnist_cnn import FOLDER, PROJECT
from projects.mnist_cnn.train import PRESETS, Config, train


def bench(args):
    """Train the default recipe per dataset; the table lists each dataset's latest bench run."""
    record = runs.RUNS_DIR / PROJECT / "bench.json"
    latest = runs.read_json(record) if record.is_file() else {}
    for dataset in args.datasets:
        run_dir = train(Config(**{**PRESETS[dataset], "dataset": dataset, "data_dir": args.data_dir}))
        latest[dataset] = str(run_dir)
        runs.write_json(record, latest)
        if dataset == "mnist":
            (FOLDER / "assets").mkdir(exist_ok=True)
            shutil.copy(run_dir / "samples" / "test_predictions.png", FOLDER / "assets" / "test_predictions.png")
    table = markdown_table(pd.DataFrame([row(dataset, Path(latest[dataset])) for dataset in sorted(latest, reverse=True)]))
    update_readme(FOLDER / "README.md", "bench", table)
    print(table)


def row(dataset, run_dir):
    """One dataset's line of the README table, from its run's summary.json."""
    summary = runs.read_json(run_dir / "summary.json")
    return {
        "dataset": dataset,
        "test accuracy (10,000 images)": f"{summary['metrics']['test_accuracy'] * 100:.2f}%",
        "epochs": summary["epochs"],
        **report.run_columns(run_dir, summary, "images"),
    }
