"""Label your own reviews positive or negative with a trained model.

Reviews come from the arguments, from `--file` (a text file, one review per line, or
a folder, one review per .txt file) and from standard input (`-`, or a pipe when
nothing else is given). Each prints as one tab-separated line: the label, its
probability, and the review's beginning. A model reads text through the
`vocabulary.txt` of its run folder, cut to the length it was trained on.
"""

import sys

from common import runs, text
from common.errors import UserError, warn
from projects.imdb_lstm import PROJECT, data, model
from projects.imdb_lstm.train import Config


def predict(args):
    """Print the label of every review; exit status 1 when a review holds no words (the others are still labelled)."""
    reviews = gather_reviews(args)
    _, network, vocabulary, max_length = trained_model(args.model)
    kept, encoded, failures = [], [], 0
    for number, review in enumerate(reviews, 1):
        ids = data.encode(text.tokenize(review), vocabulary, max_length)
        if not len(ids):
            print(f"error: review {number} ({excerpt(review, 30)!r}) holds no words; nothing to predict", file=sys.stderr)
            failures += 1
            continue
        if (ids == data.OOV).all():
            warn(f"review {number} ({excerpt(review, 30)!r}): none of its words is in the model's vocabulary, "
                 "so its prediction carries no information")
        kept.append(review)
        encoded.append(ids)
    if encoded:
        for review, probability in zip(kept, data.predict(network, encoded)):
            positive = probability >= 0.5
            confidence = probability if positive else 1 - probability
            print(f"{data.LABELS[int(positive)]}\t{confidence:.4f}\t{excerpt(review)}")
    return 1 if failures else 0


def trained_model(given):
    """(path, model, vocabulary, max_length) of --model: the model, the vocabulary beside it, the length it reads."""
    path = runs.model_path(PROJECT, given)
    network = model.load(path)  # first: another project's model is refused before its vocabulary is looked for
    vocabulary = data.Vocabulary.load(path.parent / data.VOCABULARY_FILE)
    max_length = runs.run_config(path).get("max_length", Config.max_length)
    return path, network, vocabulary, max_length


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
