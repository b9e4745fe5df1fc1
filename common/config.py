"""What a user asks of a run: the settings every project's Config builds on.

A Config is a frozen dataclass: what the user asked for (defaults, a `--config`
file, typed flags), checked once in `__post_init__` and never changed afterwards.
What a run works out for itself (data sizes, an alphabet, an image size, the
weights it found) is recorded beside it in config.json under "resolved"
(`cli.open_run`). Its defaults *are* the project's recommended recipe.

This module imports no deep-learning library, so a command's `--help` and its
argument errors answer at once.
"""

from dataclasses import dataclass, field
from typing import ClassVar

from common.errors import UserError

OPTIMIZERS = ("adagrad", "adam", "momentum", "nesterov", "rmsprop", "sgd")  # built in common/training.py
SCHEDULES = ("constant", "piecewise", "exponential", "cosine", "one-cycle")
ONE_CYCLE_RISE = 0.3  # one-cycle climbs from lr / 25 to lr over this share of the steps


def option(default, help, **argparse_kwargs):
    """A config field with its help text (and e.g. `choices`) for the command line."""
    return field(default=default, metadata={"help": help, **argparse_kwargs})


def mixed_precision_option(default=False, help="mixed float16 (GPU) / bfloat16 (CPU) precision, with loss scaling for float16"):
    """The `--mixed-precision` setting, for the projects that support it (None: the project decides by the hardware)."""
    return option(default, help, type=bool)


def distribute_option():
    """The `--distribute` setting, for the projects that support it."""
    return option(False, "replicate over all GPUs (MirroredStrategy on TensorFlow, DataParallel on JAX)")


def group_option():
    """`--distribute` for the custom-step projects: across a group of processes, each on one device."""
    return option(False, "train as one process of a group (common.launch, or a cluster's variables; see the README), "
                         "each on its share of every batch; a process alone trains on one device")


@dataclass(frozen=True)
class TrainConfig:
    """Settings every project shares; projects derive their Config and set their own defaults.

    `SEVERAL_PROCESSES` (a class constant, not a setting): whether `--distribute` also spans a
    group of processes (`common.launch`), each reading its own share of every batch.
    """

    SEVERAL_PROCESSES: ClassVar[bool] = False

    data_dir: str = option(None, "folder with the dataset files (default: $DATA_DIR, the Keras cache, then download)")
    out: str = option(None, "run folder to create (default: runs/<project>/<timestamp>)")
    epochs: int = option(10, "training epochs")
    batch_size: int = option(128, "examples per training step")
    lr: float = option(1e-3, "peak learning rate")
    seed: int = option(0, "random seed for weights, data order and augmentation")
    tiny: bool = option(False, "train on a tiny generated data set, to try the whole pipeline in seconds")

    def __post_init__(self):
        require_at_least_one(self, "epochs", "batch_size")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class CustomStepConfig(TrainConfig):
    """Settings of the projects that train through `common.loop` (custom steps)."""

    checkpoint_every: int = option(200, "save a checkpoint every N steps (and at least every 2 minutes and at each epoch's end)")

    def __post_init__(self):
        super().__post_init__()
        require_at_least_one(self, "checkpoint_every")


@dataclass(frozen=True)
class FitConfig(TrainConfig):
    """Settings of the projects trained with `model.fit`: how to optimise (common/training.py builds it)."""

    optimizer: str = option("adam", "optimizer (momentum and nesterov: SGD with momentum 0.9)", choices=OPTIMIZERS)
    lr_schedule: str = option("cosine", "how the learning rate changes over the run", choices=SCHEDULES)
    warmup: float = option(
        0.05, "share of all steps over which the learning rate rises linearly from 0 to --lr "
        f"(one-cycle instead rises from lr/25 over its first {ONE_CYCLE_RISE * 100:.0f}%% of the steps)"
    )
    weight_decay: float = option(
        0.0, "weight decay: each step shrinks the weights by lr x this, apart from the gradient (so adam with it is AdamW; "
        "plain sgd: L2 regularisation); biases and batch-norm scales are left alone (0: off)"
    )
    clipnorm: float = option(0.0, "clip the gradients' global norm to this (0: off)")
    early_stopping: int = option(0, "stop when the validation metric has not improved for this many epochs, keeping the best weights (0: off)")
    val_split: float = option(0.1, "fraction of the training set held out for validation")
    final_test: bool = option(True, "score the test set once training ends (tune's trials leave it out: they are scored on validation data)")

    def __post_init__(self):
        super().__post_init__()
        check_choice("--optimizer", self.optimizer, OPTIMIZERS)
        check_choice("--lr-schedule", self.lr_schedule, SCHEDULES)
        if not 0 <= self.warmup < 1:
            raise UserError(f"--warmup must be in [0, 1) (a share of all steps), got {self.warmup}")
        require_not_negative(self, "weight_decay", "clipnorm", "early_stopping")
        if not 0 <= self.val_split < 1:
            raise UserError(f"--val-split must be in [0, 1), got {self.val_split}")
        if self.early_stopping and not self.val_split:
            raise UserError("--early-stopping watches the validation split; give --val-split a positive fraction")


def flag(name):
    """A setting's command-line spelling: batch_size -> --batch-size."""
    return "--" + name.replace("_", "-")


def require_at_least_one(config, *names):
    """A clear error for the first of these whole-number settings that is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise UserError(f"{flag(name)} must be at least 1, got {getattr(config, name)}")


def require_not_negative(config, *names):
    """A clear error for the first of these settings that is below 0."""
    for name in names:
        if getattr(config, name) < 0:
            raise UserError(f"{flag(name)} must not be negative, got {getattr(config, name)}")


def require_fraction(config, *names):
    """A clear error for the first of these settings outside [0, 1)."""
    for name in names:
        if not 0 <= getattr(config, name) < 1:
            raise UserError(f"{flag(name)} must be in [0, 1), got {getattr(config, name)}")


def check_choice(flag_name, value, accepted):
    if value not in accepted:
        raise UserError(f"{flag_name} must be one of {', '.join(map(str, accepted))}; got {value!r}")
