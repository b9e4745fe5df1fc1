"""Command line of the MNIST CNN: `python -m projects.mnist_cnn train|evaluate|predict|bench|tune|compare-...`.

`bench` trains the default recipe on MNIST and on Fashion-MNIST and writes the
measured table and the prediction picture into this project's README. `tune`
searches the training settings below on validation data (common/tune.py);
`compare-optimizers` and `compare-init` are the course's two classic experiments
(compare.py).
"""

import argparse
import shutil
from pathlib import Path

from common import cli, runs, tune
from common.report import update_readme

from projects.mnist_cnn import compare
from projects.mnist_cnn import train as mnist

HERE = Path(__file__).resolve().parent


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or .keras file (default: the newest trained model)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--dataset", choices=sorted(mnist.data.CLASS_NAMES), help="default: the one the model was trained on")
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument("--tiny", action="store_true", help="evaluate on the tiny generated set")


def add_predict_flags(parser):
    add_model_flag(parser)
    parser.add_argument("inputs", nargs="+", help="image files or folders (PNG, JPEG, ...; any size)")


def bench_row(dataset, run_dir):
    summary = runs.read_json(run_dir / "summary.json")
    return (
        f"| {dataset} | {summary['metrics']['test_accuracy'] * 100:.2f}% | {summary['epochs']} "
        f"| {summary['wall_seconds'] / 60:.1f} min | {summary['train_samples_per_second']:.0f} "
        f"| {summary['backend']} | {summary['device']} | `{run_dir.name}` |"
    )


def bench(args):
    """Train the default recipe per dataset; the table lists each dataset's latest bench run."""
    record = runs.RUNS_DIR / mnist.PROJECT / "bench.json"
    latest = runs.read_json(record) if record.is_file() else {}
    for dataset in args.datasets:
        run_dir = mnist.train(argparse.Namespace(dataset=dataset, data_dir=args.data_dir))
        latest[dataset] = str(run_dir)
        runs.write_json(record, latest)
        if dataset == "mnist":
            (HERE / "assets").mkdir(exist_ok=True)
            shutil.copy(run_dir / "samples" / "test_predictions.png", HERE / "assets" / "test_predictions.png")
    table = "\n".join(
        [
            "| dataset | test accuracy (10,000 images) | epochs | wall time | train images/s | backend | hardware | run |",
            "|---|---|---|---|---|---|---|---|",
            *(bench_row(dataset, Path(latest[dataset])) for dataset in sorted(latest, reverse=True)),
        ]
    )
    update_readme(HERE / "README.md", "bench", table)
    print(table)


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(mnist.data.CLASS_NAMES), default=["mnist", "fashion-mnist"],
        help="datasets to (re)measure (default: both)",
    )


# What `tune` searches by default: the settings short runs can judge. Augmentation is
# left out: it pays off over many epochs, so two-epoch trials would always drop it.
SEARCH_SPACE = {
    "lr": tune.Range(1e-3, 2e-2, log=True),
    "batch_size": tune.Choice((128, 256, 512)),
    "lr_schedule": tune.Choice(("cosine", "one-cycle", "piecewise")),
    "warmup": tune.Range(0.0, 0.2),
    "weight_decay": tune.Choice((0.0, 1e-3, 1e-2, 1e-1)),
    "dropout": tune.Range(0.1, 0.5),
}

COMMANDS = {
    "train": ("train the convnet (defaults: the recipe that reaches the README's figures)", cli.train_flags(mnist.Config), mnist.train),
    "evaluate": ("accuracy, per-class accuracy and confusion matrix on the test set", add_evaluate_flags, mnist.evaluate),
    "predict": ("read digits from your own image files or folders", add_predict_flags, mnist.predict),
    "bench": ("train the default recipe on MNIST and Fashion-MNIST, write the README table", add_bench_flags, bench),
    "tune": tune.command(
        mnist.PROJECT, mnist.Config, mnist.train, SEARCH_SPACE, "val_accuracy", defaults=mnist.preset, readme=HERE / "README.md"
    ),
    "compare-optimizers": (
        "train one network with SGD, momentum, AdaGrad, RMSProp and Adam; plot and tabulate the curves",
        lambda parser: cli.add_config_flags(parser, compare.CompareConfig),
        compare.compare_optimizers,
    ),
    "compare-init": (
        "train one network from zeros, small random, Xavier and He weights, with sigmoid and ReLU; curves and activation histograms",
        lambda parser: cli.add_config_flags(parser, compare.InitCompareConfig),
        compare.compare_init,
    ),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.mnist_cnn", __doc__.splitlines()[0], COMMANDS)
