"""Training, evaluation and prediction for the IMDB sentiment LSTM.

`train` builds the vocabulary from the training reviews, optionally starts the
embedding from word2vec vectors, fits the model with the shared callbacks
(resumable, logged, best model on validation accuracy), then keeps the best epoch's
weights and scores them once on the whole test set. The run folder gets the model,
`vocabulary.txt` (a saved model reads text through it), a picture of the test
results and summary.json. `evaluate` re-scores a saved model (accuracy, precision,
recall, F1, confusion matrix); `predict` labels your own text.
"""

import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from common import backend, callbacks, cli, images, runs, text, training, word2vec_format
from common.cli import option
from common.errors import UserError
from projects.imdb_lstm import data
from projects.imdb_lstm.model import build_model, compile_model, set_embeddings

PROJECT = "imdb_lstm"
DEFAULT_EMBEDDING_DIM = 100  # the word2vec project's default
INFERENCE_BATCH = 256


@dataclass
class Config(training.TrainingConfig):
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

    def __post_init__(self):
        super().__post_init__()
        cli.require_at_least_one(self, "vocabulary_size", "min_count", "max_length", "units")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise UserError(f"--embedding-dim must be at least 1, got {self.embedding_dim}")
        for name in ("embedding_dropout", "dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(self, name)}")
        if not 0 < self.test_split < 1:
            raise UserError(f"--test-split must be in (0, 1), got {self.test_split}")


def load_embeddings(config):
    """Word vectors of --embeddings (None without), checked against --embedding-dim; fills in the dimension."""
    if not config.embeddings:
        config.embedding_dim = config.embedding_dim or DEFAULT_EMBEDDING_DIM
        return None
    path = data.vectors_file(config.embeddings)
    vectors = word2vec_format.load(path)
    if config.embedding_dim is not None and config.embedding_dim != vectors.vector_size:
        raise UserError(
            f"{path} holds {vectors.vector_size}-dimensional vectors, but --embedding-dim is {config.embedding_dim}; "
            "leave --embedding-dim out to take the file's"
        )
    config.embedding_dim = vectors.vector_size
    print(f"word vectors: {path}, {len(vectors):,} words of {vectors.vector_size} dimensions")
    return vectors


def split_validation(reviews, labels, fraction, seed):
    if fraction <= 0:
        return (reviews, labels), None
    order = np.random.default_rng(seed).permutation(len(reviews))
    cut = min(len(order) - 1, max(1, int(round(len(order) * fraction))))
    pick = lambda indices: ([reviews[i] for i in indices], labels[indices])
    return pick(order[cut:]), pick(order[:cut])


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
    confusion = pd.DataFrame(
        result["confusion"], index=pd.Index(data.LABELS, name="true"), columns=pd.Index(data.LABELS, name="predicted")
    )
    print(f"{where}: accuracy {result['accuracy']:.4f}, precision {result['precision']:.4f}, "
          f"recall {result['recall']:.4f}, F1 {result['f1']:.4f}")
    print("confusion matrix:\n" + confusion.to_string())


def draw_results(labels, probabilities, result, path, title):
    """The confusion matrix beside histograms of P(positive) for the positive and the negative reviews."""
    image = Image.new("RGB", (900, 400), "white")
    draw = ImageDraw.Draw(image)
    font, small = ImageFont.load_default(size=18), ImageFont.load_default(size=14)
    draw.text((20, 12), title, fill="black", font=font)
    cell, left, top = 120, 150, 90
    for row in range(2):
        draw.text((20, top + row * cell + cell // 2 - 8), f"true {data.LABELS[row][:3]}", fill="black", font=small)
        total = max(1, sum(result["confusion"][row]))
        for column in range(2):
            count = result["confusion"][row][column]
            share = count / total
            shade = int(255 - 150 * share)
            colour = (shade, 255, shade) if row == column else (255, shade, shade)
            box = [left + column * cell, top + row * cell, left + (column + 1) * cell, top + (row + 1) * cell]
            draw.rectangle(box, fill=colour, outline="grey")
            draw.text((box[0] + 10, box[1] + 40), f"{count:,}\n{share:.1%}", fill="black", font=small)
    for column in range(2):
        draw.text((left + column * cell + 10, top - 22), f"pred {data.LABELS[column][:3]}", fill="black", font=small)

    bins, x0, y0, width, height = 20, 430, 340, 440, 240
    edges = np.linspace(0, 1, bins + 1)
    labels = np.asarray(labels).astype(bool)
    counts = [np.histogram(probabilities[labels == positive], edges)[0] for positive in (False, True)]
    tallest = max(1, max(c.max(initial=0) for c in counts))
    bar = width / bins
    for positive, colour in ((False, "#d62728"), (True, "#2ca02c")):
        for i, count in enumerate(counts[positive]):
            x = x0 + i * bar + (bar / 2 if positive else 0)
            draw.rectangle([x, y0 - count / tallest * height, x + bar / 2 - 1, y0], fill=colour)
    draw.line([x0, y0, x0 + width, y0], fill="black")
    for value in (0.0, 0.5, 1.0):
        draw.text((x0 + value * width - 10, y0 + 6), f"{value:.1f}", fill="black", font=small)
    draw.text((x0 + 120, y0 + 26), "P(positive) given by the model", fill="black", font=small)
    draw.text((x0, top - 22), "negative reviews", fill="#d62728", font=small)
    draw.text((x0 + 150, top - 22), "positive reviews", fill="#2ca02c", font=small)
    return images.save_image(image, path)


def best_epoch(run_dir):
    """(epoch number, validation accuracy) of the best epoch in metrics.csv, or (None, None)."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    if "val_accuracy" not in metrics or metrics.empty:
        return None, None
    best = int(metrics["val_accuracy"].idxmax())
    return int(metrics["epoch"][best]) + 1, float(metrics["val_accuracy"][best])


@dataclass
class Prepared:
    """The encoded reviews a run trains and is scored on, and how its embedding starts."""

    vocabulary: data.Vocabulary
    train: tuple  # (id arrays, labels)
    test: tuple
    matrix: np.ndarray = None  # the embedding's first weights, from --embeddings
    coverage: float = None  # share of the vocabulary with a word vector


def prepare(config):
    vectors = load_embeddings(config)
    reviews = data.load(config)
    print(reviews.description)
    if len(set(reviews.train.labels.tolist())) < 2:
        raise UserError("the training reviews are all of one label; training needs positive and negative ones")
    vocabulary = data.build_vocabulary(
        (text.tokenize(review) for review in reviews.train.texts), config.min_count, config.vocabulary_size
    )
    prepared = Prepared(
        vocabulary,
        data.encode_split(reviews.train, vocabulary, config.max_length, "training"),
        data.encode_split(reviews.test, vocabulary, config.max_length, "test"),
    )
    if vectors is not None:
        prepared.matrix, found = data.embedding_matrix(vectors, vocabulary, config.seed)
        prepared.coverage = found / len(vocabulary.words)
        print(f"{found:,} of the {len(vocabulary.words):,} vocabulary words ({prepared.coverage:.1%}) have a word vector; "
              "the others start random")
        if not found:
            data.warn("no vocabulary word has a vector in --embeddings; they all start random")
    return prepared


def train(args):
    started = time.time()
    config, resume_dir = cli.resolve_config(PROJECT, Config, args)
    prepared = prepare(config)
    vocabulary, (x_train, y_train), (x_test, y_test) = prepared.vocabulary, prepared.train, prepared.test
    run_dir = cli.open_run(PROJECT, config, resume_dir)
    vocabulary.save(run_dir / data.VOCABULARY_FILE)

    scope, replicas = backend.distribution_scope(config.distribute)
    if config.batch_size % replicas:
        raise UserError(f"--batch-size {config.batch_size} must be a multiple of the {replicas} replicas")
    (x_fit, y_fit), validation = split_validation(x_train, y_train, config.val_split, config.seed)
    batches = data.ReviewBatches(x_fit, y_fit, config.batch_size, shuffle=True, seed=config.seed, multiple=replicas)
    inference_batch = 2 * config.batch_size  # a multiple of the replicas, like the training batch
    validation_batches = None if validation is None else data.ReviewBatches(*validation, inference_batch, multiple=replicas)
    print(f"vocabulary {len(vocabulary.words):,} words; {len(x_fit):,} training, "
          f"{0 if validation is None else len(validation[0]):,} validation, {len(x_test):,} test reviews; "
          f"mean length {np.mean([len(r) for r in x_fit]):.0f} words (at most {config.max_length}); "
          f"backend {backend.name()}, {backend.describe_device()}")
    if replicas > 1:
        print(f"training on {replicas} replicas")
    with scope:
        model = build_model(len(vocabulary), config)
        if prepared.matrix is not None:
            set_embeddings(model, prepared.matrix, trainable=not config.freeze_embeddings)
        compile_model(model, config, len(batches))
    run_callbacks, throughput = callbacks.standard(
        run_dir, len(batches), len(batches.order), monitor="val_accuracy" if validation else None, patience=config.early_stopping
    )
    model.fit(
        batches,
        epochs=config.epochs,
        validation_data=validation_batches,
        callbacks=run_callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if callbacks.diverged(model, run_callbacks):
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    if (run_dir / "best.keras").is_file():
        model.load_weights(run_dir / "best.keras")
    runs.save_model(model, run_dir / "model.keras")

    epoch, val_accuracy = best_epoch(run_dir)
    result, tested = None, {}
    if config.final_test:
        probabilities = data.predict(model, x_test, inference_batch, multiple=replicas)
        result = score(y_test, probabilities)
        draw_results(y_test, probabilities, result, run_dir / "samples" / "test_results.png",
                     f"{len(y_test):,} test reviews: accuracy {result['accuracy']:.2%}, F1 {result['f1']:.4f}")
        tested = {"test_reviews": len(y_test), "confusion": result["confusion"]}
    cli.finish_run(
        run_dir,
        config,
        started,
        throughput,
        {f"test_{k}": v for k, v in (result or {}).items() if k != "confusion"},
        **tested,
        train_reviews=len(x_fit),
        best_epoch=epoch,
        best_val_accuracy=val_accuracy,
        vocabulary=len(vocabulary.words),
        embeddings=str(data.vectors_file(config.embeddings)) if config.embeddings else None,
        embedding_coverage=prepared.coverage,
        resumed=resume_dir is not None,
        replicas=replicas,
        parameters=model.count_params(),
    )
    if result:
        print_scores(result, f"test set, {len(y_test):,} reviews (weights of epoch {epoch or config.epochs})")
    print(f"run saved in {run_dir}")
    return run_dir


def model_and_vocabulary(given):
    """The model of --model, the vocabulary beside it and the settings it was trained with."""
    path = runs.model_path(PROJECT, given)
    vocabulary = data.Vocabulary.load(path.parent / data.VOCABULARY_FILE)
    saved = runs.run_config(path)
    return path, runs.load_model(path), vocabulary, saved


def evaluate(args):
    path, model, vocabulary, saved = model_and_vocabulary(args.model)
    max_length = saved.get("max_length", Config.max_length)
    if args.reviews:
        test, where = data.test_reviews(args.reviews), args.reviews
    else:
        # Without data flags the model is scored on the test set of the data it was trained on.
        own = not args.tiny and not args.data_dir
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
    probabilities = data.predict(model, x_test, INFERENCE_BATCH)
    result = score(y_test, probabilities)
    print_scores(result, f"{where} test set, {len(y_test):,} reviews")
    picture = draw_results(y_test, probabilities, result, path.parent / "samples" / "evaluation.png",
                           f"{len(y_test):,} test reviews: accuracy {result['accuracy']:.2%}, F1 {result['f1']:.4f}")
    runs.write_json(path.parent / "evaluation.json", {"source": str(where), "reviews": len(y_test), **result, "model": str(path)})
    print(f"\nsaved {path.parent / 'evaluation.json'} and {picture}")


def read_stdin():
    raw = sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        data.warn("standard input held bytes that are not UTF-8; they were decoded with U+FFFD in their place")
        return raw.decode("utf-8", errors="replace")


def gather_reviews(args):
    """Reviews from the arguments ("-" reads standard input), --file and, when nothing else is given, a pipe."""
    reviews = []
    reader = text.Reader()
    use_stdin = "-" in args.texts or (not args.texts and not args.file and not sys.stdin.isatty())
    for review in args.texts:
        if review != "-":
            reviews.append(review)
    for path in args.file or []:
        reviews.extend(text.read_documents(path, reader))
    reader.warn()
    if use_stdin:
        reviews.extend(line for line in read_stdin().splitlines() if line.strip())
    if not reviews:
        raise UserError("no review to read: pass texts as arguments, --file FILE, or pipe reviews to standard input")
    return reviews


def excerpt(review, size=60):
    flat = " ".join(review.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


def predict(args):
    reviews = gather_reviews(args)
    path, model, vocabulary, saved = model_and_vocabulary(args.model)
    max_length = saved.get("max_length", Config.max_length)
    kept, encoded, failures = [], [], 0
    for number, review in enumerate(reviews, 1):
        ids = data.encode(text.tokenize(review), vocabulary, max_length)
        if not len(ids):
            print(f"error: review {number} ({excerpt(review, 30)!r}) holds no words; nothing to predict", file=sys.stderr)
            failures += 1
            continue
        if (ids == data.OOV).all():
            data.warn(f"review {number} ({excerpt(review, 30)!r}): none of its words is in the model's vocabulary, "
                      "so its prediction carries no information")
        kept.append(review)
        encoded.append(ids)
    if encoded:
        for review, probability in zip(kept, data.predict(model, encoded, INFERENCE_BATCH)):
            positive = probability >= 0.5
            confidence = probability if positive else 1 - probability
            print(f"{data.LABELS[int(positive)]}\t{confidence:.4f}\t{excerpt(review)}")
    return 1 if failures else 0
