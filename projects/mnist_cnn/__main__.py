"""Command line of the MNIST CNN: `python -m projects.mnist_cnn train|evaluate|predict|bench|tune|compare-...`.

`bench` trains the default recipe on MNIST and on Fashion-MNIST and writes the
measured table and the prediction picture into this project's README (bench.py).
`tune` searches the training settings below on validation data (common/tune.py);
`compare-optimizers` and `compare-init` are the course's two classic experiments
(compare.py).
"""

from common import cli, tune
from projects.mnist_cnn import FOLDER, PROJECT
from projects.mnist_cnn.compare import CompareConfig, InitCompareConfig
from projects.mnist_cnn.data import CLASS_NAMES
from projects.mnist_cnn.train import Config, preset


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or .keras file (default: the newest trained model)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--dataset", choices=sorted(CLASS_NAMES), help="default: the one the model was trained on")
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument("--tiny", action="store_true", help="evaluate on the tiny generated set")


def add_predict_flags(parser):
    add_model_flag(parser)
    parser.add_argument("inputs", nargs="+", help="image files or folders (PNG, JPEG, ...; any size)")


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(CLASS_NAMES), default=["mnist", "fashion-mnist"],
        help="datasets to (re)measure (default: both)",
    )


def add_bench_distributed_flags(parser):
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument("--tiny", action="store_true", help="the tiny generated set (prints the table, leaves the README)")
    parser.add_argument("--epochs", type=cli.count, default=1, help="epochs each way trains (default: 1)")
    parser.add_argument("--backends", nargs="+", choices=("tensorflow", "jax"), default=["tensorflow", "jax"],
                        help="backends to measure (default: both)")
    parser.add_argument("--skip-reference", nargs="+", choices=("tensorflow", "jax"), default=[], metavar="BACKEND",
                        help="backends whose 1-process, 2-device reference is not run (JAX's all-reduce between two "
                             "logical CPU devices can stall for good on a 2-core machine); their rows compare the workers only")


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
    "train": cli.train_command(
        PROJECT, Config, "projects.mnist_cnn.train:train", "train the convnet (defaults: the recipe that reaches the README's figures)",
        defaults=preset,
    ),
    "evaluate": ("accuracy, per-class accuracy and confusion matrix on the test set", add_evaluate_flags,
                 "projects.mnist_cnn.train:evaluate"),
    "predict": ("read digits from your own image files or folders", add_predict_flags, "projects.mnist_cnn.predict:predict"),
    "bench": ("train the default recipe on MNIST and Fashion-MNIST, write the README table", add_bench_flags,
              "projects.mnist_cnn.bench:bench"),
    "bench-distributed": (
        "train one epoch as 1 process on 2 devices, 1 process and 2 processes; compare their weights, write the README table",
        add_bench_distributed_flags, "projects.mnist_cnn.bench_distributed:bench_distributed",
    ),
    "tune": tune.command(PROJECT, Config, "projects.mnist_cnn.train:train", SEARCH_SPACE, "val_accuracy", defaults=preset,
                         readme=FOLDER / "README.md"),
    "compare-optimizers": (
        "train one network with SGD, momentum, AdaGrad, RMSProp and Adam; plot and tabulate the curves",
        lambda parser: cli.add_config_flags(parser, CompareConfig),
        "projects.mnist_cnn.compare:compare_optimizers",
    ),
    "compare-init": (
        "train one network from zeros, small random, Xavier and He weights, with sigmoid and ReLU; curves and activation histograms",
        lambda parser: cli.add_config_flags(parser, InitCompareConfig),
        "projects.mnist_cnn.compare:compare_init",
    ),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.mnist_cnn", __doc__.splitlines()[0], COMMANDS)
