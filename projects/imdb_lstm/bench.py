"""The benchmark on the real IMDB data, and the README table it writes.

`bench` finds the newest word2vec vectors trained on IMDB by the word2vec project
(training them with that project's default recipe when there are none), trains the
default recipe starting from them and again from random word vectors, and writes
both results and the picture of the test results into this project's README.
"""

import shutil
from pathlib import Path

import pandas as pd

from common import report, runs
from common.errors import UserError
from projects.imdb_lstm import FOLDER
from projects.imdb_lstm.train import Config, train


def bench(args):
    vectors = Path(args.embeddings) if args.embeddings else word2vec_vectors(args.data_dir)
    with_vectors = train(Config(embeddings=str(vectors), data_dir=args.data_dir))
    random_start = train(Config(data_dir=args.data_dir))
    (FOLDER / "assets").mkdir(exist_ok=True)
    shutil.copy(with_vectors / "samples" / "test_results.png", FOLDER / "assets" / "test_results.png")
    table = pd.DataFrame([result_row("word2vec", with_vectors), result_row("random", random_start)])
    text = f"Word vectors: `{report.shown_path(vectors)}`.\n\n{report.markdown_table(table)}"
    report.update_readme(FOLDER / "README.md", "bench", text)
    print(text)


def word2vec_vectors(data_dir):
    """The vectors.bin of the newest word2vec run on IMDB, trained first when there is none."""
    run_dir = newest_word2vec_run()
    if run_dir is None:
        print("no word2vec vectors trained on IMDB yet: training them with the word2vec project's default recipe")
        report.train_other_project("word2vec", *(["--data-dir", data_dir] if data_dir else []))
        run_dir = newest_word2vec_run()
        if run_dir is None:
            raise UserError(f"word2vec training finished but left no vectors.bin under {runs.RUNS_DIR / 'word2vec'}")
    return run_dir / "vectors.bin"


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


def result_row(name, run_dir):
    """One row of the README table: a run's test scores, length, speed and hardware."""
    summary = runs.read_json(run_dir / "summary.json")
    metrics = summary["metrics"]
    coverage = f" ({summary['embedding_coverage']:.0%} of the vocabulary)" if summary.get("embedding_coverage") is not None else ""
    return {
        "word vectors": name + coverage,
        "test accuracy (25,000 reviews)": f"{metrics['test_accuracy'] * 100:.2f}%",
        "F1": f"{metrics['test_f1']:.4f}",
        "epochs": f"{summary['epochs']} (best {summary['best_epoch']})",
        **report.run_columns(run_dir, summary, "reviews"),
    }
