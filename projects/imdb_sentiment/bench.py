"""The benchmark on the real IMDB data: every kind trained in one run, and the README table and pictures it writes.

`bench` trains bow, tfidf and nbsvm, the LSTM starting from the newest word2vec
vectors trained on IMDB by the word2vec project (training them with that project's
default recipe when there are none), and the ensemble of that LSTM and NBSVM, each
with its default recipe on the same split. Then it loads every saved model again and
labels the test reviews from their text, timed, and writes one table (test accuracy,
F1, training time, reviews labelled per second, size on disk) and a picture
comparing the kinds into this project's README.
"""

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import report, runs
from common.errors import UserError
from projects.imdb_sentiment import FOLDER, LINEAR_KINDS, data, predict
from projects.imdb_sentiment.train import Config, score, train

DESCRIPTIONS = {
    "bow": "bow: word counts",
    "tfidf": "tfidf: uni+bigrams",
    "nbsvm": "nbsvm: uni+bigrams",
    "lstm": "lstm: word2vec start",
    "ensemble": "ensemble: lstm + nbsvm",
}


def bench(args):
    vectors = Path(args.embeddings) if args.embeddings else word2vec_vectors(args.data_dir)
    trained = train_every_kind({"data_dir": args.data_dir}, {"embeddings": str(vectors)})
    write_results(trained, FOLDER, f"LSTM word vectors: `{report.shown_path(vectors)}`.")


def train_every_kind(settings, lstm_settings):
    """{kind: run folder} of every kind trained with its default recipe, plus `settings` (all) and `lstm_settings` (the LSTM)."""
    trained = {kind: train(Config(kind=kind, **settings)) for kind in LINEAR_KINDS}
    trained["lstm"] = train(Config(**settings, **lstm_settings))
    members = [str(trained["lstm"]), str(trained["nbsvm"])]
    trained["ensemble"] = train(Config(kind="ensemble", members=members, data_dir=settings.get("data_dir")))
    return trained


def write_results(trained, folder, note=""):
    """Time every trained model labelling the test reviews, then write the table and pictures into `folder`'s README and assets/."""
    from common import backend

    test_sets = {}
    rows = [measure(kind, run_dir, test_sets) for kind, run_dir in trained.items()]
    assets = Path(folder) / "assets"
    assets.mkdir(exist_ok=True)
    draw_comparison(rows, assets / "kinds.png")
    shutil.copy(trained["nbsvm"] / "samples" / "top_ngrams.png", assets / "top_ngrams.png")
    shutil.copy(trained["ensemble"] / "samples" / "test_results.png", assets / "test_results.png")
    table = pd.DataFrame([shown(row) for row in rows])
    test_reviews = rows[0]["test reviews"]
    text = "\n\n".join([
        "![Test accuracy, training time and prediction speed of every kind](assets/kinds.png)",
        f"{note} Every kind trained and scored on the {test_reviews:,} test reviews in one run on {backend.describe_device()}. "
        "Training time: the whole train command (reading and tokenising the reviews too); the ensemble's includes its "
        "members'. Predictions: the saved model loaded again, labelling the test reviews from their text. Size: the files "
        "the model loads.",
        report.markdown_table(table),
        "![The ensemble on the test reviews: confusion matrix, and P(positive) for the negative (red) and positive (green) "
        "reviews](assets/test_results.png)",
    ])
    report.update_readme(Path(folder) / "README.md", "bench", text)
    print(text)
    return rows


def measure(kind, run_dir, test_sets):
    """A trained run's figures: its test scores and training time from summary.json, then its speed and size measured here.

    `test_sets` keeps the test reviews read so far, by the settings that found them.
    """
    summary = runs.read_json(run_dir / "summary.json")
    model = predict.trained_model(run_dir)
    settings = data_settings(model)
    key = tuple(sorted(settings.items()))
    if key not in test_sets:
        test_sets[key] = data.load(Config(**settings), with_train=False).test
    test = test_sets[key]
    started = time.perf_counter()
    reviews = data.tokenise(test, "test")
    probabilities = model.probabilities(reviews.tokens)
    seconds = time.perf_counter() - started
    check = score(reviews.labels, probabilities)["accuracy"]
    if abs(check - summary["metrics"]["test_accuracy"]) > 1e-3:
        raise UserError(f"{run_dir}: the saved model scores {check:.4f} on the test set, but training scored it "
                        f"{summary['metrics']['test_accuracy']:.4f}; the saved model is not the trained one")
    members = [runs.read_json(Path(path).parent / "summary.json") for path in summary.get("members", [])]
    return {
        "kind": kind,
        "accuracy": summary["metrics"]["test_accuracy"],
        "f1": summary["metrics"]["test_f1"],
        "training seconds": summary["wall_seconds"] + sum(member["wall_seconds"] for member in members),
        "reviews per second": len(reviews.labels) / seconds,
        "bytes": sum(path.stat().st_size for path in model_files(model)),
        "test reviews": len(reviews.labels),
        "weight": summary.get("weight"),
        "run": run_dir,
    }


def data_settings(model):
    """The settings that find a model's test reviews again: those of its run (an ensemble's: its first member's)."""
    saved = predict.run_settings(model)
    return {name: saved.get(name, getattr(Config, name)) for name in ("tiny", "reviews", "data_dir", "test_split", "seed")}


def model_files(model):
    """Every file a trained model reads when it is loaded: its own and, for an ensemble, its members'."""
    if model.kind == "ensemble":
        return [model.path, *(path for member in model.members for path in model_files(member))]
    beside = {"lstm": data.VOCABULARY_FILE}.get(model.kind, "model.npz")
    return [model.path, model.path.parent / beside]


def shown(row):
    """A row of the README table."""
    kind = DESCRIPTIONS[row["kind"]] + (f" (weight {row['weight']:.2f} on the lstm)" if row["weight"] is not None else "")
    members = " (members' included)" if row["kind"] == "ensemble" else ""
    return {
        "kind": kind,
        f"test accuracy ({row['test reviews']:,} reviews)": f"{row['accuracy'] * 100:.2f}%",
        "F1": f"{row['f1']:.4f}",
        "training time": duration(row["training seconds"]) + members,
        "predictions (reviews/s)": f"{row['reviews per second']:,.0f}",
        "size on disk": f"{row['bytes'] / 1e6:.1f} MB",
        "run": f"`{Path(row['run']).name}`",
    }


def duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def draw_comparison(rows, path):
    """Test accuracy, training time and prediction speed of every kind, side by side."""
    from common import charts

    figure, axes = charts.figure(width=13, height=4, columns=3)
    names = [row["kind"] for row in rows]
    colours = ["#1f77b4" if row["kind"] in LINEAR_KINDS else "#ff7f0e" for row in rows]
    accuracies = np.array([row["accuracy"] * 100 for row in rows])
    panels = (
        (accuracies, "test accuracy (%)", False),
        (np.array([row["training seconds"] for row in rows]), "training time (s, log scale)", True),
        (np.array([row["reviews per second"] for row in rows]), "reviews labelled per second (log scale)", True),
    )
    for panel, (values, title, log) in zip(axes[0], panels):
        panel.bar(names, values, color=colours)
        panel.set(title=title)
        if log:
            panel.set_yscale("log")
        else:
            panel.set_ylim(max(0, accuracies.min() - 3), min(100, accuracies.max() + 1))
        for x, value in enumerate(values):
            panel.annotate(f"{value:.2f}" if not log else f"{value:,.0f}", (x, value), ha="center", va="bottom", fontsize=8)
        panel.tick_params(axis="x", labelrotation=30)
    figure.suptitle(f"IMDB sentiment, {rows[0]['test reviews']:,} test reviews: linear models (blue), LSTM and ensemble (orange)")
    return charts.save(figure, path)


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
