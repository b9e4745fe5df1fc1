"""Label your own reviews positive or negative with a trained model of any kind.

Reviews come from the arguments, from `--file` (a text file, one review per line, or
a folder, one review per .txt file) and from standard input (`-`, or a pipe when
nothing else is given). Each prints as one tab-separated line: the label, its
probability, and the review's beginning.

`trained_model` reads a model as its run saved it, and every kind answers the same
`probabilities(token lists)`: the LSTM (`model.keras` and the `vocabulary.txt`
beside it, cut to the length it was trained on), bow, tfidf and nbsvm (`model.json`
and `model.npz`, see linear.py) and an ensemble (`ensemble.json`, which loads its two
members).
"""

import sys
from pathlib import Path

from common import runs, text
from common.errors import UserError, warn
from projects.imdb_sentiment import PROJECT, data, ensemble, linear, model
from projects.imdb_sentiment.train import Config

MODEL_FILES = {"lstm": "model.keras", "bow": linear.MODEL_FILE, "tfidf": linear.MODEL_FILE, "nbsvm": linear.MODEL_FILE,
               "ensemble": ensemble.FILE}


def predict(args):
    """Print the label of every review; exit status 1 when a review holds no words (the others are still labelled)."""
    reviews = gather_reviews(args)
    trained = trained_model(args.model)
    kept, tokenised, failures = [], [], 0
    for number, review in enumerate(reviews, 1):
        tokens = text.tokenize(review)
        if not tokens:
            print(f"error: review {number} ({excerpt(review, 30)!r}) holds no words; nothing to predict", file=sys.stderr)
            failures += 1
            continue
        if not trained.knows(tokens):
            warn(f"review {number} ({excerpt(review, 30)!r}): none of its words is in the model's vocabulary, "
                 "so its prediction carries no information")
        kept.append(review)
        tokenised.append(tokens)
    if tokenised:
        for review, probability in zip(kept, trained.probabilities(tokenised)):
            positive = probability >= 0.5
            confidence = probability if positive else 1 - probability
            print(f"{data.LABELS[int(positive)]}\t{confidence:.4f}\t{excerpt(review)}")
    return 1 if failures else 0


class LstmModel:
    """A trained LSTM, with the vocabulary and the review length it was trained with."""

    kind = "lstm"

    def __init__(self, path):
        self.path = Path(path)
        self.network = model.load(path)  # first: another project's model is refused before its vocabulary is looked for
        self.vocabulary = data.Vocabulary.load(self.path.parent / data.VOCABULARY_FILE)
        self.max_length = runs.run_config(path).get("max_length", Config.max_length)

    def probabilities(self, token_lists):
        """P(positive) of each review (its tokens)."""
        return data.predict(self.network, [data.encode(tokens, self.vocabulary, self.max_length) for tokens in token_lists])

    def knows(self, tokens):
        return any(token in self.vocabulary.index for token in tokens)


def trained_model(given, member_of=None):
    """The model --model names: a run folder or its model file (none: the newest run's), of whatever kind.

    `member_of` names the ensemble that lists it: an ensemble is no member.
    """
    path = model_file(given)
    if path.suffix == ".keras":
        return LstmModel(path)
    saved = runs.read_json(path)
    marker = saved.get("format") if isinstance(saved, dict) else None
    if marker == linear.FORMAT:
        return linear.load(path)
    if marker == ensemble.FORMAT and member_of is None:
        members, weight = ensemble.read(path)
        return ensemble.Ensemble(path, [trained_model(member, member_of=path) for member in members], weight)
    if marker == ensemble.FORMAT:
        raise UserError(f"{path}, a member of {member_of}, is an ensemble itself; the members of an ensemble are single models")
    raise UserError(f"{path} is not a model of the {PROJECT} project; pass a run folder, or the model.keras, model.json or ensemble.json in one")


def model_file(given):
    """The model file of --model: the newest run's when not given; a run folder's by the kind its config.json names."""
    if given is None:
        found = [path for name in set(MODEL_FILES.values()) for path in (runs.RUNS_DIR / PROJECT).glob(f"*/{name}")]
        if not found:
            raise UserError(f"no trained {PROJECT} model under {runs.RUNS_DIR / PROJECT}; train one first or pass --model")
        return max(found, key=lambda path: path.stat().st_mtime)
    path = Path(given)
    if path.is_dir():
        runs.check_owner(PROJECT, path / "config.json", path)
        kind = runs.run_config(path / "config.json").get("kind", "lstm")
        path = path / MODEL_FILES.get(kind, "model.keras")
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a run folder, or the model.keras, model.json or ensemble.json in one")
    return path


def run_settings(trained):
    """The settings the model's run was trained with (an ensemble's: its first member's, whose reviews it shares)."""
    return runs.run_config(trained.members[0].path if trained.kind == "ensemble" else trained.path)


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


def read_stdin():
    raw = sys.stdin.buffer.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        warn("standard input held bytes that are not UTF-8; they were decoded with U+FFFD in their place")
        return raw.decode("utf-8", errors="replace")


def excerpt(review, size=60):
    flat = " ".join(review.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"
