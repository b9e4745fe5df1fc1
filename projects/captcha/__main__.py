"""Command line of the captcha reader: `python -m projects.captcha train|evaluate|predict|export|bench|tune`.

`bench` trains the default recipe, which ends by reading 10,000 freshly generated
held-out captchas, and writes the measured table and the picture of what was read
into this project's README. `tune` searches the training settings on the validation
captchas (common/tune.py).
"""

import shutil
from pathlib import Path

from common import cli, runs, tune
from common.report import update_readme

from projects.captcha import train as captcha

HERE = Path(__file__).resolve().parent


def add_model_flags(parser):
    parser.add_argument("--model", help="run folder or .keras file, trained or exported (default: the newest trained model)")
    parser.add_argument(
        "--beam-width", type=int, help="beam search keeping this many readings; 0: greedy (default: greedy, or an export's own)"
    )


def add_evaluate_flags(parser):
    add_model_flags(parser)
    parser.add_argument("--data-dir", help="folder of labelled captchas to score (default: generated held-out captchas)")
    parser.add_argument("--count", type=int, help="generated captchas to score (default: as many as training's final test)")
    parser.add_argument("--seed", type=int, help="seed of the generated captchas (default: the run's, i.e. its held-out set)")


def add_predict_flags(parser):
    add_model_flags(parser)
    parser.add_argument("inputs", nargs="+", help="captcha image files or folders (PNG, JPEG, ...)")


def add_export_flags(parser):
    add_model_flags(parser)
    parser.add_argument("--out", help="the .keras file to write (default: inference.keras beside the model)")


def bench(args):
    run_dir = captcha.train(args)
    summary = runs.read_json(run_dir / "summary.json")
    metrics = summary["metrics"]
    (HERE / "assets").mkdir(exist_ok=True)
    shutil.copy(run_dir / "samples" / "test_predictions.png", HERE / "assets" / "test_predictions.png")
    table = "\n".join(
        [
            "| held-out captchas | full-sequence accuracy | character accuracy | training captchas | wall time "
            "| train captchas/s | inference captchas/s | backend | hardware | run |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {summary['test_captchas']:,} | {metrics['test_sequence_accuracy'] * 100:.2f}% "
            f"| {metrics['test_character_accuracy'] * 100:.2f}% | {summary['training_captchas']:,} "
            f"| {summary['wall_seconds'] / 60:.1f} min | {summary['train_samples_per_second']:.0f} "
            f"| {summary['inference_captchas_per_second']:.0f} | {summary['backend']} | {summary['device']} | `{run_dir.name}` |",
        ]
    )
    update_readme(HERE / "README.md", "bench", table)
    print(table)


def add_bench_flags(parser):
    pass  # the bench measures the default recipe, nothing else


# What `tune` searches by default. Each trial is a few short epochs, so the search favours
# settings that pay off early; the alphabet, sizes and lengths are the data's, not searched.
SEARCH_SPACE = {
    "lr": tune.Range(5e-4, 5e-3, log=True),
    "batch_size": tune.Choice((32, 64, 128)),
    "dropout": tune.Range(0.0, 0.3),
    "rnn_units": tune.Choice((64, 128, 192)),
    "weight_decay": tune.Choice((0.0, 1e-3, 1e-2)),
}

COMMANDS = {
    "train": ("train the reader (defaults: the recipe that reaches the README's figures)", cli.train_flags(captcha.Config), captcha.train),
    "evaluate": ("full-sequence and per-character accuracy, and the most confused characters", add_evaluate_flags, captcha.evaluate),
    "predict": ("read your own captcha images, files or folders", add_predict_flags, captcha.predict),
    "export": ("write an inference-only model (decoding built in) and check that it reads the same", add_export_flags, captcha.export),
    "bench": ("train the default recipe, read 10,000 held-out captchas, write the README table", add_bench_flags, bench),
    "tune": tune.command(captcha.PROJECT, captcha.Config, captcha.train, SEARCH_SPACE, "val_sequence_accuracy"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.captcha", __doc__.splitlines()[0], COMMANDS)
