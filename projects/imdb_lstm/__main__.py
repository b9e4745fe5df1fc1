"""Command line of the IMDB sentiment LSTM: `python -m projects.imdb_lstm train|evaluate|predict|bench|tune`.

`bench` finds the newest word2vec vectors trained on IMDB by the word2vec project
(training them with that project's default recipe when there are none), trains the
default recipe starting from them and again from random word vectors, and writes
both results and the picture of the test results into this project's README.
`tune` searches the training settings on the validation split (common/tune.py).
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from common import cli, runs, tune
from common.errors import UserError
from common.report import update_readme
from projects.imdb_lstm import train as imdb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def add_model_flag(parser):
    parser.add_argument("--model", help="run folder or .keras file beside its vocabulary.txt (default: the newest trained model)")


def add_evaluate_flags(parser):
    add_model_flag(parser)
    parser.add_argument("--reviews", help="folder of labelled reviews to score: its test/ part, or all its pos/ and neg/")
    parser.add_argument("--data-dir", help="folder holding aclImdb_v1.tar.gz or aclImdb/ (scores the IMDB test set)")
    parser.add_argument("--tiny", action="store_true", help="score the tiny generated test set")


def add_predict_flags(parser):
    add_model_flag(parser)
    parser.add_argument("texts", nargs="*", help='reviews, one per argument; "-" reads standard input, one review per line')
    parser.add_argument("--file", action="append", help="a text file (one review per line) or a folder (one review per .txt file); repeatable")


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder holding aclImdb_v1.tar.gz or aclImdb/")
    parser.add_argument("--embeddings", help="word vectors to use (default: the newest word2vec run's, trained first if there is none)")


def newest_word2vec_run():
    """The newest finished word2vec run of the Keras engine on IMDB (not --tiny, no --corpus), or None."""
    found = []
    for summary_file in (runs.RUNS_DIR / "word2vec").glob("*/summary.json"):
        run_dir = summary_file.parent
        try:
            summary, config = runs.read_json(summary_file), runs.read_json(run_dir / "config.json").get("config", {})
        except UserError:
            continue  # a damaged run is no candidate
        if summary.get("engine") == "keras" and not config.get("tiny") and not config.get("corpus") and (run_dir / "vectors.bin").is_file():
            found.append(run_dir)
    return max(found, key=lambda run_dir: (run_dir / "summary.json").stat().st_mtime, default=None)


def word2vec_vectors(data_dir):
    run_dir = newest_word2vec_run()
    if run_dir is None:
        print("no word2vec vectors trained on IMDB yet: training them with the word2vec project's default recipe")
        command = [sys.executable, "-m", "projects.word2vec", "train"] + (["--data-dir", data_dir] if data_dir else [])
        if subprocess.run(command, cwd=ROOT).returncode != 0:
            raise UserError("training the word2vec vectors failed (see above)")
        run_dir = newest_word2vec_run()
        if run_dir is None:
            raise UserError(f"word2vec training finished but left no vectors.bin under {runs.RUNS_DIR / 'word2vec'}")
    return run_dir / "vectors.bin"


def shown(path):
    """A path as the README shows it: relative to the repository when it lies inside it."""
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def bench_row(name, run_dir):
    summary = runs.read_json(run_dir / "summary.json")
    metrics = summary["metrics"]
    coverage = f" ({summary['embedding_coverage']:.0%} of the vocabulary)" if summary.get("embedding_coverage") is not None else ""
    return (
        f"| {name}{coverage} | {metrics['test_accuracy'] * 100:.2f}% | {metrics['test_f1']:.4f} "
        f"| {summary['epochs']} (best {summary['best_epoch']}) | {summary['wall_seconds'] / 60:.1f} min "
        f"| {summary['train_samples_per_second']:.0f} | {summary['backend']} | {summary['device']} | `{run_dir.name}` |"
    )


def bench(args):
    vectors = Path(args.embeddings) if args.embeddings else word2vec_vectors(args.data_dir)
    with_vectors = imdb.train(argparse.Namespace(embeddings=str(vectors), data_dir=args.data_dir))
    random_start = imdb.train(argparse.Namespace(data_dir=args.data_dir))
    (HERE / "assets").mkdir(exist_ok=True)
    shutil.copy(with_vectors / "samples" / "test_results.png", HERE / "assets" / "test_results.png")
    table = "\n".join(
        [
            f"Word vectors: `{shown(vectors)}`.",
            "",
            "| word vectors | test accuracy (25,000 reviews) | F1 | epochs | wall time | train reviews/s | backend | hardware | run |",
            "|---|---|---|---|---|---|---|---|---|",
            bench_row("word2vec", with_vectors),
            bench_row("random", random_start),
        ]
    )
    update_readme(HERE / "README.md", "bench", table)
    print(table)


# What `tune` searches by default, around the recipe the flags describe.
SEARCH_SPACE = {
    "lr": tune.Range(5e-4, 5e-3, log=True),
    "batch_size": tune.Choice((64, 128, 256)),
    "dropout": tune.Range(0.1, 0.5),
    "embedding_dropout": tune.Range(0.1, 0.4),
    "weight_decay": tune.Choice((0.0, 1e-2, 1e-1)),
}

COMMANDS = {
    "train": ("train the sentiment LSTM (defaults: the recipe that reaches the README's figures)", cli.train_flags(imdb.Config), imdb.train),
    "evaluate": ("accuracy, precision, recall, F1 and confusion matrix on the whole test set", add_evaluate_flags, imdb.evaluate),
    "predict": ("label your own reviews positive or negative", add_predict_flags, imdb.predict),
    "bench": ("train the default recipe from word2vec and from random vectors, write the README table", add_bench_flags, bench),
    "tune": tune.command(imdb.PROJECT, imdb.Config, imdb.train, SEARCH_SPACE, "val_accuracy"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.imdb_lstm", __doc__.splitlines()[0], COMMANDS)
