"""Command line of the captcha reader: `python -m projects.captcha train|evaluate|predict|export|bench|tune`."""

from common import cli, tune
from projects.captcha import PROJECT
from projects.captcha.train import Config

# What `tune` searches by default. Each trial is a few short epochs, so the search favours
# settings that pay off early; the alphabet, sizes and lengths are the data's, not searched.
SEARCH_SPACE = {
    "lr": tune.Range(5e-4, 5e-3, log=True),
    "batch_size": tune.Choice((32, 64, 128)),
    "dropout": tune.Range(0.0, 0.3),
    "rnn_units": tune.Choice((64, 128, 192)),
    "weight_decay": tune.Choice((0.0, 1e-3, 1e-2)),
}


def add_model_flags(parser):
    parser.add_argument("--model", help="run folder or .keras file, trained or exported (default: the newest trained model)")
    parser.add_argument(
        "--beam-width", type=int, help="beam search keeping this many readings; 0: greedy (default: greedy, or an export's own)"
    )


def add_evaluate_flags(parser):
    add_model_flags(parser)
    parser.add_argument("--data-dir", help="folder of labelled captchas to score (default: generated held-out captchas)")
    parser.add_argument("--count", type=cli.count, help="generated captchas to score (default: as many as training's final test)")
    parser.add_argument("--seed", type=int, help="seed of the generated captchas (default: the run's, i.e. its held-out set)")


def add_predict_flags(parser):
    add_model_flags(parser)
    parser.add_argument("inputs", nargs="+", help="captcha image files or folders (PNG, JPEG, ...)")


def add_export_flags(parser):
    add_model_flags(parser)
    parser.add_argument("--out", help="the .keras file to write (default: inference.keras beside the model)")
    cli.add_overwrite_flag(parser)


def add_no_flags(parser):
    """The bench measures the default recipe, nothing else."""


COMMANDS = {
    "train": cli.train_command(
        PROJECT, Config, "projects.captcha.train:train", "train the reader (defaults: the recipe that reaches the README's figures)"
    ),
    "evaluate": (
        "full-sequence and per-character accuracy, and the most confused characters",
        add_evaluate_flags,
        "projects.captcha.train:evaluate",
    ),
    "predict": ("read your own captcha images, files or folders", add_predict_flags, "projects.captcha.predict:predict"),
    "export": (
        "write an inference-only model (decoding built in) and check that it reads the same",
        add_export_flags,
        "projects.captcha.predict:export",
    ),
    "bench": (
        "train the default recipe, read 10,000 held-out captchas, write the README table",
        add_no_flags,
        "projects.captcha.bench:bench",
    ),
    "tune": tune.command(PROJECT, Config, "projects.captcha.train:train", SEARCH_SPACE, "val_sequence_accuracy"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.captcha", __doc__.splitlines()[0], COMMANDS)
