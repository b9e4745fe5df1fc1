"""Training and evaluation of every kind of sentiment model: bow, tfidf, nbsvm, the LSTM and an ensemble.

All kinds read the same reviews through the same tokeniser, train on the same
reviews, choose what they choose (the LSTM its best epoch, the linear models their
C, the ensemble its weight) on the same held-out validation reviews, and are scored
once on the same whole test set (`data.prepare`).

`train` for the LSTM builds the vocabulary from the training reviews, optionally
starts the embedding from word2vec vectors, fits the model with the shared callbacks
(resumable, logged, best model on validation accuracy), then keeps the best epoch's
weights. For bow, tfidf and nbsvm it fits the n-gram model of linear.py; for an
ensemble it loads two trained runs and weighs them (ensemble.py). Every run folder
gets the model, a picture of the test results and summary.json; config.json
records, under "resolved", what the run worked out (the vocabulary's size, the
embedding's dimension, the chosen C or weight) and the split's fingerprint and the
tokeniser. `evaluate` re-scores a saved model of any kind (accuracy, precision,
recall, F1, confusion matrix) and, for the linear kinds, shows the n-grams that
weigh most.
"""

import dataclasses
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from common import cli, runs
from common.config import (FitConfig, check_choice, distribute_option, flag, mixed_precision_option, option,
                           require_at_least_one, require_fraction)
from common.errors import UserError
from projects.imdb_sentiment import KINDS, LINEAR_KINDS, PROJECT


@dataclass(frozen=True)
class Config(FitConfig):
    SEVERAL_PROCESSES = True  # the LSTM's --distribute spans a group of processes too (common.distributed)
    kind: str = option("lstm", "what to train: bow, tfidf or nbsvm (n-gram counts and logistic regression), the lstm, "
                       "or an ensemble of two trained runs (--members)", choices=KINDS)
    data_dir: str = option(None, "folder holding aclImdb_v1.tar.gz or aclImdb/ (default: $DATA_DIR, the Keras cache, then download)")
    reviews: str = option(None, "your own labelled reviews instead of IMDB: a folder with pos/ and neg/ (or train/ and test/ holding them)")
    test_split: float = option(0.2, "fraction of --reviews held out as the test set when it has no test/ folder")
    val_split: float = option(0.1, "fraction of the training reviews held out for validation (the LSTM's best epoch, the linear models' C, the ensemble's weight)")
    min_count: int = option(2, "the LSTM's words seen fewer times, and the linear models' n-grams found in fewer training reviews, are out of the vocabulary")
    ngrams: int = option(None, "bow, tfidf, nbsvm: n-grams of 1 to this many words (none: 1 for bow, 2 for tfidf and nbsvm)", type=int)
    c: float = option(None, "bow, tfidf, nbsvm: the logistic regression's inverse regularisation strength C (none: the best of a few on the validation split)", type=float)
    members: list = option(None, "--kind ensemble: two trained runs (folders or model files) of the same split, e.g. an lstm and an nbsvm run",
                           nargs=2, metavar="RUN", type=str)
    embeddings: str = option(None, "word vectors to start from: a word2vec .bin or .txt file, or a word2vec run folder; none: random vectors")
    embedding_dim: int = option(None, "dimensions of the word vectors; none given: the --embeddings file's, else 100", type=int)
    freeze_embeddings: bool = option(True, "keep loaded word vectors fixed (--no-freeze-embeddings fine-tunes them, "
                                           "which fits them to the training reviews and scored lower on the test reviews)")
    vocabulary_size: int = option(40000, "most frequent training words kept; the rest share one out-of-vocabulary id")
    max_length: int = option(500, "words kept of a longer review: the first quarter from its start, the rest from its end")
    units: int = option(128, "LSTM units per direction, and of the dense layer after the pooling")
    embedding_dropout: float = option(0.25, "spatial dropout: share of word-vector dimensions dropped per review")
    dropout: float = option(0.3, "dropout before the classifier")
    epochs: int = option(9, "training epochs")
    batch_size: int = option(128, "reviews per training step")
    lr: float = option(2e-3, "peak learning rate")
    clipnorm: float = option(5.0, "clip the gradients' global norm to this (0: off): keeps an LSTM's rare huge gradients from undoing its training")
    mixed_precision: bool = mixed_precision_option()
    distribute: bool = distribute_option()

    def __post_init__(self):
        super().__post_init__()
        check_choice("--kind", self.kind, KINDS)
        refuse_settings_of_other_kinds(self)
        require_at_least_one(self, "vocabulary_size", "min_count", "max_length", "units")
        for name in ("embedding_dim", "ngrams"):
            if getattr(self, name) is not None:
                require_at_least_one(self, name)
        require_fraction(self, "embedding_dropout", "dropout")
        if not 0 < self.test_split < 1:
            raise UserError(f"--test-split must be in (0, 1), got {self.test_split}")
        if self.c is not None and not self.c > 0:
            raise UserError(f"--c must be positive, got {self.c}")
        if self.kind in LINEAR_KINDS and self.c is None and not self.val_split:
            raise UserError(f"--kind {self.kind} chooses its C on the validation split: give --val-split a positive fraction, or --c")
        if self.kind == "ensemble" and (not isinstance(self.members, (list, tuple)) or len(self.members) != 2):
            raise UserError("--kind ensemble needs --members RUN RUN: two trained runs of the same split (an lstm and an nbsvm run, say)")


# The settings each kind reads; setting another one away from its default is refused, not ignored.
SHARED_SETTINGS = ("out", "seed", "tiny", "data_dir", "reviews", "test_split", "val_split", "final_test")
LINEAR_SETTINGS = ("min_count", "ngrams", "c")
SETTINGS = {
    **{kind: ("kind", *SHARED_SETTINGS, *LINEAR_SETTINGS) for kind in LINEAR_KINDS},
    "lstm": tuple(f.name for f in dataclasses.fields(Config) if f.name not in ("ngrams", "c", "members")),
    "ensemble": ("kind", "out", "data_dir", "final_test", "members"),  # it reads its members' reviews and split
}


def refuse_settings_of_other_kinds(config):
    """One line naming the settings given away from their defaults that `config.kind` does not use, and who uses them."""
    unused = {}
    for item in dataclasses.fields(config):
        if item.name not in SETTINGS[config.kind] and getattr(config, item.name) != item.default:
            users = tuple(kind for kind in KINDS if item.name in SETTINGS[kind])
            unused.setdefault(users, []).append(flag(item.name))
    if unused:
        parts = [f"{' and '.join(flags)} appl{'y' if len(flags) > 1 else 'ies'} to {describe_kinds(users)}" for users, flags in unused.items()]
        raise UserError(f"{'; '.join(parts)}, not to --kind {config.kind}"
                        + (" (an ensemble reads its members' reviews and split)" if config.kind == "ensemble" else ""))


def describe_kinds(kinds):
    if kinds == ("lstm",):
        return "the LSTM (--kind lstm)"
    if kinds == LINEAR_KINDS:
        return f"the linear models (--kind {', '.join(LINEAR_KINDS)})"
    return "--kind " + ", ".join(kinds)


def train(config, resume_dir=None):
    """Train what `config` asks for (or continue the LSTM run `resume_dir`); returns the run folder."""
    if resume_dir is not None and config.kind != "lstm":
        raise UserError(f"--resume applies to the LSTM (--kind lstm); --kind {config.kind} trains in one go, with nothing to resume")
    if config.kind == "ensemble":
        return train_ensemble(config)
    if config.kind in LINEAR_KINDS:
        return train_linear(config)
    return train_lstm(config, resume_dir)


def train_lstm(config, resume_dir=None):
    # Imported here, not at the top, so that `--help` answers without loading TensorFlow.
    from common import backend, callbacks, distributed
    from projects.imdb_sentiment import data, model as network

    started = time.time()
    vectors, embedding_dim = data.load_embeddings(config)
    reviews = data.prepare(config)
    vocabulary = data.build_vocabulary(reviews.fit.tokens + reviews.validation.tokens, config.min_count, config.vocabulary_size)
    x_fit, x_validation, x_test = (
        [data.encode(tokens, vocabulary, config.max_length) for tokens in part.tokens]
        for part in (reviews.fit, reviews.validation, reviews.test)
    )
    matrix, coverage = data.starting_embeddings(vectors, vocabulary, config.seed)
    vectors_file = str(data.vectors_file(config.embeddings)) if config.embeddings else None
    run_dir = cli.open_run(
        PROJECT, config, resume_dir,
        resolved={"embedding_dim": embedding_dim, "embeddings": vectors_file, "vocabulary": len(vocabulary.words),
                  "tokeniser": data.TOKENISER, "split": reviews.fingerprint},
    )
    vocabulary.save(run_dir / data.VOCABULARY_FILE)

    scope, replicas = backend.distribution_scope(config.distribute)
    if config.batch_size % replicas:
        raise UserError(f"--batch-size {config.batch_size} must be a multiple of the {replicas} replicas")
    batches = data.ReviewBatches(x_fit, reviews.fit.labels, config.batch_size, shuffle=True, seed=config.seed, multiple=replicas)
    inference_batch = 2 * config.batch_size  # a multiple of the replicas, like the training batch
    validation = None
    if len(x_validation):
        validation = data.ReviewBatches(x_validation, reviews.validation.labels, inference_batch, multiple=replicas)
    print(f"vocabulary {len(vocabulary.words):,} words; {len(x_fit):,} training, {len(x_validation):,} validation, "
          f"{len(x_test):,} test reviews; mean length {np.mean([len(r) for r in x_fit]):.0f} words (at most {config.max_length}); "
          f"backend {backend.name()}, {backend.describe_device()}")
    if replicas > 1:
        print(f"training on {replicas} replicas")
    with scope:
        model = network.build_model(len(vocabulary), embedding_dim, config)
        if matrix is not None:
            network.set_embeddings(model, matrix, trainable=not config.freeze_embeddings)
        network.compile_model(model, config, len(batches))
    run_callbacks, throughput = callbacks.standard(
        run_dir, len(batches), len(batches.order), monitor="val_accuracy" if validation else None, patience=config.early_stopping
    )
    training_data = {"x": batches}
    if config.distribute:  # each process keeps its share of every batch (common.distributed)
        shares, steps, feeding = distributed.fit_shares(batches, config.epochs, model)
        training_data = {"x": shares, "steps_per_epoch": steps, "shuffle": False}
        run_callbacks = feeding + run_callbacks
    model.fit(
        **training_data, epochs=config.epochs, validation_data=validation, callbacks=run_callbacks, verbose=1 if sys.stdout.isatty() else 2
    )
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    backend.localize(model)
    if (run_dir / "best.keras").is_file():
        model.load_weights(run_dir / "best.keras")
    runs.save_model(model, run_dir / "model.keras", PROJECT)

    epoch, val_accuracy = best_epoch(run_dir)
    result, tested = None, {}
    if config.final_test:
        probabilities = data.predict(model, x_test, inference_batch, multiple=replicas)
        result, tested = score_test_set(reviews.test.labels, probabilities, run_dir)
    cli.finish_run(
        run_dir, config, started, throughput,
        {f"test_{k}": v for k, v in (result or {}).items() if k != "confusion"},
        **tested,
        train_reviews=len(x_fit),
        best_epoch=epoch,
        best_val_accuracy=val_accuracy,
        vocabulary=len(vocabulary.words),
        embeddings=vectors_file,
        embedding_coverage=coverage,
        resumed=resume_dir is not None,
        replicas=replicas,
        parameters=model.count_params(),
    )
    if result:
        print_scores(result, f"test set, {len(x_test):,} reviews (weights of epoch {epoch or config.epochs})")
    print(f"run saved in {run_dir}")
    return run_dir


def train_linear(config):
    """Fit bow, tfidf or nbsvm on the training reviews, C chosen on the validation reviews, and score it on the test set."""
    import sklearn

    from common import backend
    from projects.imdb_sentiment import data, linear

    started = time.time()
    reviews = data.prepare(config)
    ngrams = config.ngrams or linear.DEFAULT_NGRAMS[config.kind]
    print(f"{config.kind}: n-grams of 1 to {ngrams} words found in {config.min_count} or more of the {len(reviews.fit.labels):,} "
          f"training reviews; C chosen on {len(reviews.validation.labels):,} validation reviews; {len(reviews.test.labels):,} test reviews")
    fitting = time.time()
    model, accuracies = linear.fit(config.kind, reviews.fit, reviews.validation, ngrams, config.min_count, config.c, config.seed)
    fit_seconds = time.time() - fitting
    run_dir = cli.open_run(
        PROJECT, config,
        resolved={"ngrams": ngrams, "vocabulary": len(model.vocabulary), "c": model.c,
                  "tokeniser": data.TOKENISER, "split": reviews.fingerprint},
    )
    model.save(run_dir)
    linear.draw_top_ngrams(model, run_dir / "samples" / "top_ngrams.png")
    result, tested = None, {}
    if config.final_test:
        result, tested = score_test_set(reviews.test.labels, model.probabilities(reviews.test.tokens), run_dir)
    cli.finish_run(
        run_dir, config, started, SimpleNamespace(samples_per_second=len(reviews.fit.labels) / fit_seconds, epoch_seconds=[]),
        {f"test_{k}": v for k, v in (result or {}).items() if k != "confusion"},
        **tested,
        epochs=None,
        backend="scikit-learn",
        versions={**backend.versions(), "scikit-learn": sklearn.__version__},
        kind=config.kind,
        train_reviews=len(reviews.fit.labels),
        fit_seconds=round(fit_seconds, 2),
        c=model.c,
        validation_accuracy_by_c={f"{c:g}": accuracy for c, accuracy in accuracies.items()},
        best_val_accuracy=accuracies.get(model.c),
        vocabulary=len(model.vocabulary),
    )
    print(f"{len(model.vocabulary):,} n-grams in the vocabulary; C {model.c:g}; fitted in {fit_seconds:.1f} s")
    if result:
        print_scores(result, f"test set, {len(reviews.test.labels):,} reviews")
    print(f"run saved in {run_dir}")
    return run_dir


def train_ensemble(config):
    """Weigh two trained runs' probabilities on their validation reviews, and score the mixture on the test set."""
    from projects.imdb_sentiment import data, ensemble, predict

    started = time.time()
    members = [predict.trained_model(member, member_of="the ensemble to train") for member in config.members]
    settings, split = ensemble.check_members(members, {name: getattr(Config, name) for name in ensemble.SPLIT_SETTINGS})
    saved_data_dir = predict.run_settings(members[0]).get("data_dir")
    reviews = data.prepare(Config(**settings, data_dir=config.data_dir or saved_data_dir))
    if split and reviews.fingerprint != split:
        raise UserError(f"the reviews found now are not the ones {members[0].path} was trained on (their fingerprint differs); "
                        "point --data-dir at the data it was trained on")
    validation = [member.probabilities(reviews.validation.tokens) for member in members]
    weight, val_accuracy = ensemble.choose_weight(*validation, reviews.validation.labels)
    kinds = [member.kind for member in members]
    print(f"weight {weight:.2f} on the {kinds[0]} ({members[0].path}), {1 - weight:.2f} on the {kinds[1]} ({members[1].path}): "
          f"validation accuracy {val_accuracy:.4f} on {len(reviews.validation.labels):,} reviews, against "
          + " and ".join(f"{np.mean((p >= 0.5) == reviews.validation.labels):.4f} alone" for p in validation))
    run_dir = cli.open_run(
        PROJECT, config,
        resolved={"weight": weight, "members": [str(m.path) for m in members], "kinds": kinds, "data": settings,
                  "tokeniser": data.TOKENISER, "split": reviews.fingerprint},
    )
    ensemble.save(run_dir, members, weight)
    result, tested, alone = None, {}, {}
    if config.final_test:
        tests = [member.probabilities(reviews.test.tokens) for member in members]
        result, tested = score_test_set(reviews.test.labels, ensemble.combine(*tests, weight), run_dir)
        alone = {f"{kind} ({member.path})": score(reviews.test.labels, p)["accuracy"] for kind, member, p in zip(kinds, members, tests)}
    cli.finish_run(
        run_dir, config, started, SimpleNamespace(samples_per_second=0.0, epoch_seconds=[]),
        {f"test_{k}": v for k, v in (result or {}).items() if k != "confusion"},
        **tested,
        epochs=None,
        kind="ensemble",
        weight=weight,
        members=[str(m.path) for m in members],
        best_val_accuracy=val_accuracy,
        members_test_accuracy=alone,
    )
    if result:
        print_scores(result, f"test set, {len(reviews.test.labels):,} reviews")
        print("alone: " + "; ".join(f"{name} {accuracy:.4f}" for name, accuracy in alone.items()))
    print(f"run saved in {run_dir}")
    return run_dir


def score_test_set(labels, probabilities, run_dir):
    """The scores on the test set, drawn into the run's samples/test_results.png; (scores, what summary.json adds)."""
    result = score(labels, probabilities)
    draw_results(labels, probabilities, result, run_dir / "samples" / "test_results.png")
    return result, {"test_reviews": len(labels), "confusion": result["confusion"]}


def evaluate(args):
    """Score a saved model on a test set: the one of the data it was trained on, or --reviews, --data-dir, --tiny."""
    from projects.imdb_sentiment import data, linear, predict

    trained = predict.trained_model(args.model)
    path = trained.path
    if args.reviews:
        test, where = data.test_reviews(args.reviews), args.reviews
    else:
        # Without data flags the model is scored on the test set of the data it was trained on.
        saved, own = predict.run_settings(trained), not args.tiny and not args.data_dir
        config = Config(
            tiny=args.tiny or (own and saved.get("tiny", False)),
            reviews=saved.get("reviews") if own else None,
            data_dir=args.data_dir or (saved.get("data_dir") if own else None),
            test_split=saved.get("test_split", Config.test_split),
            seed=saved.get("seed", 0),
        )
        test = data.load(config, with_train=False).test
        where = "tiny generated" if config.tiny else config.reviews or "IMDB"
    test = data.tokenise(test, "test")
    probabilities = trained.probabilities(test.tokens)
    result = score(test.labels, probabilities)
    print_scores(result, f"{where} test set, {len(test.labels):,} reviews ({trained.kind} model {path})")
    pictures = [draw_results(test.labels, probabilities, result, path.parent / "samples" / "evaluation.png")]
    if trained.kind in LINEAR_KINDS:
        print_top_ngrams(trained)
        pictures.append(linear.draw_top_ngrams(trained, path.parent / "samples" / "top_ngrams.png"))
    if trained.kind == "ensemble":
        print(f"weight {trained.weight:.2f} on the {trained.members[0].kind}, {1 - trained.weight:.2f} on the {trained.members[1].kind}")
    runs.write_json(path.parent / "evaluation.json", {"source": str(where), "reviews": len(test.labels), **result, "model": str(path)})
    print(f"\nsaved {path.parent / 'evaluation.json'}, {' and '.join(map(str, pictures))}")


def print_top_ngrams(trained, count=15):
    import pandas as pd

    positive, negative = trained.top_ngrams(count)
    rows = max(len(positive), len(negative))
    column = lambda pairs, index: pairs[index] if index < len(pairs) else ("", np.nan)
    table = pd.DataFrame(
        [(*column(positive, i), *column(negative, i)) for i in range(rows)],
        columns=["most positive", "weight", "most negative", "weight "],
    )
    print(f"\nthe n-grams that weigh most (weight: how much each moves the log-odds of positive):\n"
          + table.to_string(index=False, float_format=lambda v: f"{v:+.3f}", na_rep=""))


def best_epoch(run_dir):
    """(epoch number, validation accuracy) of the best epoch in metrics.csv, or (None, None)."""
    import pandas as pd

    metrics = pd.read_csv(run_dir / "metrics.csv")
    if "val_accuracy" not in metrics or metrics.empty:
        return None, None
    best = int(metrics["val_accuracy"].idxmax())
    return int(metrics["epoch"][best]) + 1, float(metrics["val_accuracy"][best])


def score(labels, probabilities):
    """Accuracy, precision, recall and F1 of "positive", log loss, and the confusion matrix [[TN, FP], [FN, TP]]."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(probabilities) >= 0.5
    tp, fp = int((predicted & labels).sum()), int((predicted & ~labels).sum())
    fn, tn = int((~predicted & labels).sum()), int((~predicted & ~labels).sum())
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    return {
        "accuracy": (tp + tn) / max(len(labels), 1),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "loss": float(-np.mean(np.where(labels, np.log(p), np.log(1 - p)))),
        "confusion": [[tn, fp], [fn, tp]],
    }


def print_scores(result, where):
    import pandas as pd

    from projects.imdb_sentiment.data import LABELS

    confusion = pd.DataFrame(result["confusion"], index=pd.Index(LABELS, name="true"), columns=pd.Index(LABELS, name="predicted"))
    print(f"{where}: accuracy {result['accuracy']:.4f}, precision {result['precision']:.4f}, "
          f"recall {result['recall']:.4f}, F1 {result['f1']:.4f}")
    print("confusion matrix:\n" + confusion.to_string())


def draw_results(labels, probabilities, result, path):
    """The confusion matrix beside histograms of P(positive) for the negative and the positive reviews."""
    from common import charts
    from projects.imdb_sentiment.data import LABELS

    figure, axes = charts.figure(width=10, height=4.2, columns=2)
    matrix_axes, histogram_axes = axes[0]
    confusion = np.array(result["confusion"])
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    # Right answers in green, wrong ones in red, darker for a larger share of their true class.
    colours = np.ones((2, 2, 3))
    for row in range(2):
        for column in range(2):
            channels = [0, 2] if row == column else [1, 2]
            colours[row, column, channels] = 1 - 0.6 * shares[row, column]
            matrix_axes.text(column, row, f"{confusion[row, column]:,}\n{shares[row, column]:.1%}", ha="center", va="center")
    matrix_axes.imshow(colours)
    matrix_axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=[f"pred {label[:3]}" for label in LABELS],
                    yticklabels=[f"true {label[:3]}" for label in LABELS], title="confusion matrix")

    labels = np.asarray(labels).astype(bool)
    edges = np.linspace(0, 1, 21)
    histogram_axes.hist([probabilities[~labels], probabilities[labels]], edges, color=["#d62728", "#2ca02c"],
                        label=["negative reviews", "positive reviews"])
    histogram_axes.set(xlim=(0, 1), xlabel="P(positive) given by the model", ylabel="reviews")
    histogram_axes.legend()
    figure.suptitle(f"{len(labels):,} test reviews: accuracy {result['accuracy']:.2%}, F1 {result['f1']:.4f}")
    return charts.save(figure, path)
