"""Training and evaluation of the IMDB sentiment LSTM.

`train` builds the vocabulary from the training reviews, optionally starts the
embedding from word2vec vectors, fits the model with the shared callbacks
(resumable, logged, best model on validation accuracy), then keeps the best epoch's
weights and scores them once on the whole test set. The run folder gets the model,
`vocabulary.txt` (a saved model reads text through it), a picture of the test
results and summary.json; config.json records, under "resolved", the embedding's
dimension, the vectors file and the vocabulary's size. `evaluate` re-scores a saved
model (accuracy, precision, recall, F1, confusion matrix).
"""

import sys
import time
from dataclasses import dataclass

import numpy as np

from common import cli, datasets, runs
from common.config import FitConfig, distribute_option, mixed_precision_option, option, require_at_least_one, require_fraction
from common.errors import UserError
from projects.imdb_lstm import PROJECT


@dataclass(frozen=True)
class Config(FitConfig):
    data_dir: str = option(None, "folder holding aclImdb_v1.tar.gz or aclImdb/ (default: $DATA_DIR, the Keras cache, then download)")
    reviews: str = option(None, "your own labelled reviews instead of IMDB: a folder with pos/ and neg/ (or train/ and test/ holding them)")
    test_split: float = option(0.2, "fraction of --reviews held out as the test set when it has no test/ folder")
    val_split: float = option(0.1, "fraction of the training reviews held out for validation and the best-model checkpoint")
    embeddings: str = option(None, "word vectors to start from: a word2vec .bin or .txt file, or a word2vec run folder; none: random vectors")
    embedding_dim: int = option(None, "dimensions of the word vectors; none given: the --embeddings file's, else 100", type=int)
    freeze_embeddings: bool = option(False, "keep loaded word vectors fixed instead of fine-tuning them")
    vocabulary_size: int = option(40000, "most frequent training words kept; the rest share one out-of-vocabulary id")
    min_count: int = option(2, "training words seen fewer times are out of the vocabulary")
    max_length: int = option(500, "words kept of a longer review: the first quarter from its start, the rest from its end")
    units: int = option(128, "LSTM units per direction, and of the dense layer after the pooling")
    embedding_dropout: float = option(0.25, "spatial dropout: share of word-vector dimensions dropped per review")
    dropout: float = option(0.3, "dropout before the classifier")
    epochs: int = option(8, "training epochs")
    batch_size: int = option(128, "reviews per training step")
    lr: float = option(2e-3, "peak learning rate")
    clipnorm: float = option(5.0, "clip the gradients' global norm to this (0: off): keeps an LSTM's rare huge gradients from undoing its training")
    mixed_precision: bool = mixed_precision_option()
    distribute: bool = distribute_option()

    def __post_init__(self):
        super().__post_init__()
        require_at_least_one(self, "vocabulary_size", "min_count", "max_length", "units")
        if self.embedding_dim is not None:
            require_at_least_one(self, "embedding_dim")
        require_fraction(self, "embedding_dropout", "dropout")
        if not 0 < self.test_split < 1:
            raise UserError(f"--test-split must be in (0, 1), got {self.test_split}")


def train(config, resume_dir=None):
    """Train the recipe `config` describes (or continue `resume_dir`); returns the run folder."""
    # Imported here, not at the top, so that `--help` answers without loading TensorFlow.
    from common import backend, callbacks
    from projects.imdb_lstm import data, model as network

    started = time.time()
    vectors, embedding_dim = data.load_embeddings(config)
    vocabulary, (x_train, y_train), (x_test, y_test) = data.prepare(config)
    matrix, coverage = data.starting_embeddings(vectors, vocabulary, config.seed)
    vectors_file = str(data.vectors_file(config.embeddings)) if config.embeddings else None
    run_dir = cli.open_run(
        PROJECT, config, resume_dir,
        resolved={"embedding_dim": embedding_dim, "embeddings": vectors_file, "vocabulary": len(vocabulary.words)},
    )
    vocabulary.save(run_dir / data.VOCABULARY_FILE)

    scope, replicas = backend.distribution_scope(config.distribute)
    if config.batch_size % replicas:
        raise UserError(f"--batch-size {config.batch_size} must be a multiple of the {replicas} replicas")
    kept, held_out = datasets.holdout(len(x_train), config.val_split, config.seed)
    x_fit, y_fit = data.pick(x_train, y_train, kept)
    batches = data.ReviewBatches(x_fit, y_fit, config.batch_size, shuffle=True, seed=config.seed, multiple=replicas)
    inference_batch = 2 * config.batch_size  # a multiple of the replicas, like the training batch
    validation = None
    if len(held_out):
        validation = data.ReviewBatches(*data.pick(x_train, y_train, held_out), inference_batch, multiple=replicas)
    print(f"vocabulary {len(vocabulary.words):,} words; {len(x_fit):,} training, {len(held_out):,} validation, "
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
    model.fit(
        batches, epochs=config.epochs, validation_data=validation, callbacks=run_callbacks, verbose=1 if sys.stdout.isatty() else 2
    )
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    if (run_dir / "best.keras").is_file():
        model.load_weights(run_dir / "best.keras")
    runs.save_model(model, run_dir / "model.keras", PROJECT)

    epoch, val_accuracy = best_epoch(run_dir)
    result, tested = None, {}
    if config.final_test:
        probabilities = data.predict(model, x_test, inference_batch, multiple=replicas)
        result = score(y_test, probabilities)
        draw_results(y_test, probabilities, result, run_dir / "samples" / "test_results.png")
        tested = {"test_reviews": len(y_test), "confusion": result["confusion"]}
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
        print_scores(result, f"test set, {len(y_test):,} reviews (weights of epoch {epoch or config.epochs})")
    print(f"run saved in {run_dir}")
    return run_dir


def evaluate(args):
    """Score a saved model on a test set: the one of the data it was trained on, or --reviews, --data-dir, --tiny."""
    from projects.imdb_lstm import data, predict

    path, model, vocabulary, max_length = predict.trained_model(args.model)
    if args.reviews:
        test, where = data.test_reviews(args.reviews), args.reviews
    else:
        # Without data flags the model is scored on the test set of the data it was trained on.
        saved, own = runs.run_config(path), not args.tiny and not args.data_dir
        config = Config(
            tiny=args.tiny or (own and saved.get("tiny", False)),
            reviews=saved.get("reviews") if own else None,
            data_dir=args.data_dir or (saved.get("data_dir") if own else None),
            test_split=saved.get("test_split", Config.test_split),
            seed=saved.get("seed", 0),
        )
        test = data.load(config, with_train=False).test
        where = "tiny generated" if config.tiny else config.reviews or "IMDB"
    x_test, y_test = data.encode_split(test, vocabulary, max_length, "test")
    probabilities = data.predict(model, x_test)
    result = score(y_test, probabilities)
    print_scores(result, f"{where} test set, {len(y_test):,} reviews")
    picture = draw_results(y_test, probabilities, result, path.parent / "samples" / "evaluation.png")
    runs.write_json(path.parent / "evaluation.json", {"source": str(where), "reviews": len(y_test), **result, "model": str(path)})
    print(f"\nsaved {path.parent / 'evaluation.json'} and {picture}")


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

    from projects.imdb_lstm.data import LABELS

    confusion = pd.DataFrame(result["confusion"], index=pd.Index(LABELS, name="true"), columns=pd.Index(LABELS, name="predicted"))
    print(f"{where}: accuracy {result['accuracy']:.4f}, precision {result['precision']:.4f}, "
          f"recall {result['recall']:.4f}, F1 {result['f1']:.4f}")
    print("confusion matrix:\n" + confusion.to_string())


def draw_results(labels, probabilities, result, path):
    """The confusion matrix beside histograms of P(positive) for the negative and the positive reviews."""
    from common import charts
    from projects.imdb_lstm.data import LABELS

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
