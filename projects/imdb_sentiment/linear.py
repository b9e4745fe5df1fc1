"""The course's classic sentiment models: bag-of-words, TF-IDF and NBSVM, each n-gram features and a logistic regression.

All three count the 1- to n-grams of a review's tokens (the tokens the LSTM reads)
over a vocabulary of the n-grams found in at least `min_count` of the training
reviews, then weigh the counts:

- `bow`: the counts as they are (unigrams by default);
- `tfidf`: 1 + log(count), times the n-gram's inverse document frequency
  log((1 + N) / (1 + df)) + 1, each review scaled to length 1 (uni+bigrams);
- `nbsvm` (Wang & Manning, 2012): whether the n-gram occurs (0 or 1), times its
  naive-Bayes log-count ratio r = log((p / |p|) / (q / |q|)), where p counts the
  positive training reviews holding each n-gram and q the negative ones, both plus
  ALPHA (uni+bigrams; `--ngrams 3` adds trigrams). A logistic regression instead of
  their SVM gives probabilities, as in mesnilgr/nbsvm.

The logistic regression is scikit-learn's liblinear, solved in its dual form (there
are far more n-grams than reviews). Its regularisation strength C is the value of
C_GRID with the best accuracy on the validation reviews, unless `--c` sets it; the
model is not refit on the validation reviews afterwards, so they stay unseen for an
ensemble to choose its weight on.

A trained model is two files in its run folder, and loading one runs no code:
`model.json` (a format marker, the kind, the n-gram length, the tokeniser, the
n-grams in feature order and the sha256 of the weights file) and `model.npz` (the
float32 arrays `coef`, `scale`, `intercept`, read with `allow_pickle=False`).
Loading checks the marker, the checksum, the array names, shapes and values, and
refuses anything else in one line.
"""

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.special import expit

from common import runs
from common.errors import UserError
from projects.imdb_sentiment import LINEAR_KINDS, PROJECT

FORMAT = f"{PROJECT} linear model"
MODEL_FILE, WEIGHTS_FILE = "model.json", "model.npz"
WEIGHT_SHAPES = {"coef": "n-grams", "scale": "n-grams", "intercept": "scalar"}
DEFAULT_NGRAMS = {"bow": 1, "tfidf": 2, "nbsvm": 2}
# The values of C tried on the validation split: around the best ones measured on IMDB (README).
C_GRID = {"bow": (0.01, 0.03, 0.1, 0.3, 1.0), "tfidf": (3.0, 10.0, 30.0, 100.0), "nbsvm": (0.1, 0.3, 1.0, 3.0)}
ALPHA = 1.0  # NBSVM's smoothing count, Wang & Manning's


def ngrams(tokens, n):
    """A review's n-grams of 1 to `n` tokens, the tokens joined by a space."""
    return [" ".join(tokens[start : start + size]) for size in range(1, n + 1) for start in range(len(tokens) - size + 1)]


def counter(n, vocabulary=None, min_count=1):
    """Counts of the 1- to n-grams of token lists: learnt (those in `min_count` reviews or more) or over a fixed `vocabulary`."""
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(analyzer=lambda tokens: ngrams(tokens, n), vocabulary=vocabulary, min_df=min_count, dtype=np.float32)


def feature_scale(kind, counts, labels):
    """What each n-gram's (transformed) count is multiplied by: 1, its inverse document frequency, or its log-count ratio."""
    if kind == "bow":
        return np.ones(counts.shape[1], np.float32)
    if kind == "tfidf":
        reviews_with = np.asarray((counts > 0).sum(axis=0)).ravel()
        return (np.log((1 + counts.shape[0]) / (1 + reviews_with)) + 1).astype(np.float32)
    return log_count_ratios(counts > 0, labels)


def log_count_ratios(present, labels, alpha=ALPHA):
    """NBSVM's r = log((p / |p|) / (q / |q|)): p = alpha + the positive reviews holding each n-gram, q the negative ones."""
    labels = np.asarray(labels).astype(bool)
    p = alpha + np.asarray(present[labels].sum(axis=0), np.float64).ravel()
    q = alpha + np.asarray(present[~labels].sum(axis=0), np.float64).ravel()
    return (np.log(p / p.sum()) - np.log(q / q.sum())).astype(np.float32)


def weigh(kind, counts, scale):
    """The features `kind`'s logistic regression reads, from a reviews x n-grams count matrix."""
    counts = sparse.csr_matrix(counts).astype(np.float32)  # a copy: the caller's counts stay as they are
    if kind == "nbsvm":
        counts.data[:] = 1.0  # binarised: whether the n-gram occurs
    elif kind == "tfidf":
        counts.data = 1 + np.log(counts.data)
    features = counts @ sparse.diags(scale)
    if kind == "tfidf":
        lengths = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
        features = sparse.diags(1 / np.maximum(lengths, 1e-12)) @ features
    return features.tocsr()


class LinearModel:
    """A trained bow, tfidf or nbsvm model: P(positive) = sigmoid(features . coef + intercept)."""

    def __init__(self, kind, ngrams, vocabulary, coef, scale, intercept, c=None, path=None):
        self.kind, self.ngrams, self.vocabulary, self.c, self.path = kind, ngrams, list(vocabulary), c, path
        self.coef, self.scale, self.intercept = coef.astype(np.float32), scale.astype(np.float32), np.float32(intercept)
        self.index = {ngram: i for i, ngram in enumerate(self.vocabulary)}
        self._counter = None

    def features(self, token_lists):
        if self._counter is None:
            self._counter = counter(self.ngrams, vocabulary=self.index)
        return weigh(self.kind, self._counter.transform(token_lists), self.scale)

    def probabilities(self, token_lists):
        """P(positive) of each review (its tokens)."""
        return expit(self.features(token_lists) @ self.coef + self.intercept).astype(np.float32)

    def knows(self, tokens):
        return any(ngram in self.index for ngram in ngrams(tokens, self.ngrams))

    def ngram_weights(self):
        """How much each n-gram moves the log-odds of "positive": bow per occurrence, nbsvm when present, tfidf per
        unit of 1 + log(count) before the review is scaled to length 1."""
        return self.coef * self.scale

    def top_ngrams(self, count=15):
        """([(n-gram, weight)] of the `count` most positive, most positive first; the same for the most negative)."""
        weights = self.ngram_weights()
        order = np.argsort(weights, kind="stable")
        positive = [(self.vocabulary[i], float(weights[i])) for i in order[::-1][:count] if weights[i] > 0]
        negative = [(self.vocabulary[i], float(weights[i])) for i in order[:count] if weights[i] < 0]
        return positive, negative

    def save(self, folder):
        """Write model.npz, then model.json naming its checksum; returns the model.json path."""
        folder = Path(folder)
        buffer = io.BytesIO()
        np.savez(buffer, coef=self.coef, scale=self.scale, intercept=self.intercept)
        weights = buffer.getvalue()
        with runs.atomic_path(folder / WEIGHTS_FILE) as partial:
            partial.write_bytes(weights)
        described = {
            "format": FORMAT, "kind": self.kind, "ngrams": self.ngrams, "c": self.c,
            "weights_sha256": hashlib.sha256(weights).hexdigest(), "vocabulary": self.vocabulary,
        }
        with runs.atomic_path(folder / MODEL_FILE) as partial:
            partial.write_text(json.dumps(described, ensure_ascii=False), encoding="utf-8")
        self.path = folder / MODEL_FILE
        return self.path


def fit(kind, fit_reviews, validation, ngram_length, min_count, c=None, seed=0):
    """Train `kind` on the `fit_reviews`; C is `c`, or the value of C_GRID[kind] most accurate on `validation`.

    Returns the model and {C: validation accuracy} of the values tried.
    """
    from sklearn.linear_model import LogisticRegression

    learner = counter(ngram_length, min_count=min_count)
    try:
        counts = learner.fit_transform(fit_reviews.tokens)
    except ValueError:  # scikit-learn's "no terms remain" when min_count leaves none
        raise UserError(f"no n-gram occurs in {min_count} or more training reviews (--min-count); give it more text") from None
    vocabulary = learner.get_feature_names_out().tolist()
    scale = feature_scale(kind, counts, fit_reviews.labels)
    untrained = LinearModel(kind, ngram_length, vocabulary, np.zeros(len(vocabulary)), scale, 0.0)
    x_fit = weigh(kind, counts, scale)
    x_validation = untrained.features(validation.tokens) if len(validation.labels) else None
    accuracies, best = {}, None
    for value in [c] if c else C_GRID[kind]:
        regression = LogisticRegression(C=value, solver="liblinear", dual=True, max_iter=1000, random_state=seed)
        regression.fit(x_fit, fit_reviews.labels)
        if x_validation is not None:
            accuracies[value] = float(np.mean(regression.predict(x_validation) == validation.labels))
            print(f"{kind}, C {value:g}: validation accuracy {accuracies[value]:.4f}", flush=True)
        if best is None or accuracies.get(value, 0) > accuracies.get(best[0], 0):
            best = (value, regression)
    value, regression = best
    return LinearModel(kind, ngram_length, vocabulary, regression.coef_.ravel(), scale, regression.intercept_[0], value), accuracies


def load(path):
    """The linear model of a `model.json` and the `model.npz` beside it, or one line saying why not."""
    path = Path(path)
    saved = runs.read_json(path)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise UserError(f"{path} is not a model of the {PROJECT} project (it lacks the {FORMAT!r} marker)")
    kind, ngram_length, vocabulary = saved.get("kind"), saved.get("ngrams"), saved.get("vocabulary")
    if (
        kind not in LINEAR_KINDS
        or type(ngram_length) is not int or ngram_length < 1
        or not isinstance(vocabulary, list) or not vocabulary or not all(isinstance(ngram, str) for ngram in vocabulary)
        or len(set(vocabulary)) != len(vocabulary)
        or not isinstance(saved.get("weights_sha256"), str)
    ):
        raise UserError(f"{path} is damaged: its kind, n-gram length, vocabulary or checksum is not what training writes")
    weights_path = path.with_name(WEIGHTS_FILE)
    try:
        raw = weights_path.read_bytes()
    except OSError:
        raise UserError(f"{weights_path} is missing or unreadable; a {kind} model needs the {WEIGHTS_FILE} saved beside its {MODEL_FILE}") from None
    if hashlib.sha256(raw).hexdigest() != saved["weights_sha256"]:
        raise UserError(f"{weights_path} is not the weights file {path.name} was saved with (its checksum differs); refused")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(f"{weights_path} is not a weights file this project wrote ({error})") from None
    expected_shapes = {"n-grams": (len(vocabulary),), "scalar": ()}
    for name, shape in WEIGHT_SHAPES.items():
        array = arrays.get(name)
        if array is None or array.dtype != np.float32 or array.shape != expected_shapes[shape] or not np.isfinite(array).all():
            raise UserError(f"{weights_path}: {name} should be finite float32 numbers of shape {expected_shapes[shape]} "
                            f"(one per n-gram of {path.name}); it is not, so the file is not this model's")
    if set(arrays) != set(WEIGHT_SHAPES):
        raise UserError(f"{weights_path} holds arrays a {kind} model does not have: {', '.join(sorted(set(arrays) - set(WEIGHT_SHAPES)))}")
    c = saved.get("c")
    return LinearModel(kind, ngram_length, vocabulary, arrays["coef"], arrays["scale"], arrays["intercept"], c, path)


def draw_top_ngrams(model, path, count=15):
    """Bars of the n-grams with the largest positive and negative weights."""
    from common import charts

    positive, negative = model.top_ngrams(count)
    figure, axes = charts.figure(width=11, height=0.3 * count + 1.5, columns=2)
    for panel, (pairs, colour, title) in zip(axes[0], ((positive, "#2ca02c", "most positive"), (negative, "#d62728", "most negative"))):
        names, weights = [name for name, _ in pairs][::-1], [weight for _, weight in pairs][::-1]
        panel.barh(range(len(pairs)), weights, color=colour)
        panel.set(yticks=range(len(pairs)), yticklabels=names, title=title, xlabel="weight: change in the log-odds of positive")
    figure.suptitle(f"{model.kind} (n-grams of 1 to {model.ngrams} words, {len(model.vocabulary):,} in the vocabulary): "
                    "the n-grams that weigh most")
    return charts.save(figure, path)
