"""Labelled reviews, their vocabulary, length-bucketed batches, and word vectors to start from.

Reviews come from the Large Movie Review Dataset (25,000 train and 25,000 test
reviews, `aclImdb_v1.tar.gz` via the dataset registry), from a folder of your own
(`pos/` and `neg/`, optionally under `train/` and `test/`), or, with `--tiny`, from a
small generated set with planted sentiment words. Text is tokenised by
`common.text.tokenize`, the tokeniser the word2vec project trains its vectors on, so
the vectors' words and the reviews' words are the same strings. Every kind of model
reads the same tokens and is trained, validated and tested on the same reviews
(`prepare`): a review without a single word is left out, then a seeded share of the
training reviews is held out for validation. A run records the split's fingerprint
and the tokeniser, so that an ensemble can refuse members trained on different ones.

The vocabulary comes from the training reviews only: id 0 pads, id 1 stands for any
word outside the vocabulary, ids 2... are the words seen at least `min_count` times,
most frequent first. A review longer than `max_length` words keeps its first quarter
and its last three quarters of that budget: openings and verdicts both carry
sentiment, and the end carries more (Sun et al., 2019, found head + tail the best cut
for IMDB).

An LSTM's time on a CPU grows with the padded length, so `ReviewBatches` puts reviews
of similar length together and pads each batch (at the end, which masks and cuDNN
need) only to its longest review, rounded up to a multiple of `BUCKET` words so that
there are few distinct shapes to compile.
"""

import collections
import hashlib
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from common import datasets, runs, text, word2vec_format
from common.errors import UserError, warn

PAD, OOV = 0, 1
LABELS = ("negative", "positive")
BUCKET = 32
INFERENCE_BATCH = 256
VOCABULARY_FILE = "vocabulary.txt"
DEFAULT_EMBEDDING_DIM = 100  # the word2vec project's default
# What decides the tokens, recorded with every run: members of an ensemble must read text alike.
TOKENISER = f"common.text.tokenize: lower case, tags {text.HTML_TAG.pattern}, tokens {text.TOKEN.pattern}"


@dataclass
class Split:
    texts: list
    labels: np.ndarray  # 1 positive, 0 negative


@dataclass
class Reviews:
    train: Split
    test: Split
    description: str


@dataclass
class Tokenised:
    texts: list
    tokens: list  # each review's tokens
    labels: np.ndarray


@dataclass
class Prepared:
    """The reviews every kind of model is trained on (`fit`), validated on and tested on."""

    fit: Tokenised
    validation: Tokenised
    test: Tokenised
    fingerprint: str  # of the reviews and labels in each part


# --- reading reviews ----------------------------------------------------------------------


def read_labelled(folder, reader):
    """The reviews of `folder`/pos and `folder`/neg, every text file one review."""
    texts, labels = [], []
    for label, name in ((1, "pos"), (0, "neg")):
        if (Path(folder) / name).is_dir():
            files = text.text_files(Path(folder) / name)
            texts.extend(reader.read(path) for path in files)
            labels.extend([label] * len(files))
    if not texts:
        raise UserError(f"{folder} holds no reviews: put them as .txt files in {folder}/pos and {folder}/neg")
    return Split(texts, np.array(labels, np.int32))


def pick(items, labels, indices):
    """The items (reviews or their id arrays) and labels at `indices`."""
    return [items[i] for i in indices], labels[indices]


def imdb(data_dir=None, with_train=True):
    """The labelled IMDB reviews (the unlabelled train/unsup ones are the word2vec project's)."""
    root = datasets.extracted("aclImdb", "aclImdb_v1.tar.gz", "aclImdb", data_dir)
    print(f"reading the IMDB reviews in {root}")
    reader = text.Reader()
    train = read_labelled(root / "train", reader) if with_train else Split([], np.zeros(0, np.int32))
    test = read_labelled(root / "test", reader)
    reader.warn()
    return Reviews(train, test, f"IMDB ({root}): {len(train.texts):,} train, {len(test.texts):,} test reviews")


def own_reviews(folder, test_split, seed):
    """A folder with pos/ and neg/, or with train/ and test/ each holding them (test/ optional)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--reviews {folder} is not a folder")
    reader = text.Reader()
    if (folder / "train").is_dir():
        train = read_labelled(folder / "train", reader)
        test = read_labelled(folder / "test", reader) if (folder / "test").is_dir() else None
    elif (folder / "pos").is_dir() or (folder / "neg").is_dir():
        train, test = read_labelled(folder, reader), None
    else:
        raise UserError(f"{folder} has no pos/ and neg/ folders (nor train/ and test/ folders holding them)")
    reader.warn()
    where = f"{folder}/test"
    if test is None:
        kept, held_out = datasets.holdout(len(train.texts), test_split, seed)
        train, test = Split(*pick(train.texts, train.labels, kept)), Split(*pick(train.texts, train.labels, held_out))
        where = f"{test_split:.0%} of {folder} held out"
    return Reviews(train, test, f"{folder}: {len(train.texts):,} train, {len(test.texts):,} test reviews ({where})")


def test_reviews(folder):
    """Reviews to score from a folder: its test/ part if it has one, else all of its pos/ and neg/."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--reviews {folder} is not a folder")
    reader = text.Reader()
    split = read_labelled(folder / "test" if (folder / "test").is_dir() else folder, reader)
    reader.warn()
    return split


POSITIVE = ("great", "wonderful", "superb", "loved", "brilliant", "moving", "excellent", "beautiful")
NEGATIVE = ("awful", "boring", "terrible", "hated", "dull", "worst", "waste", "poor")
FILLER = ("the", "film", "movie", "plot", "actor", "scene", "story", "and", "a", "was", "it", "this", "of", "with", "but", "very")


def tiny_split(count, seed):
    """Generated reviews of 5 to 30 words: filler, rare names, and 1-3 words of their sentiment (sometimes one of the other).

    At most 30 words, so that every batch of them pads to one width (the LSTM compiles once per width on JAX).
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count).astype(np.int32)
    texts = []
    for label in labels:
        words = list(rng.choice(FILLER, rng.integers(4, 25)))
        words += [f"name{rng.integers(1000)}" for _ in range(rng.integers(0, 3))]
        words += list(rng.choice(POSITIVE if label else NEGATIVE, rng.integers(1, 4)))
        if rng.random() < 0.15:
            words.append(rng.choice(NEGATIVE if label else POSITIVE))
        rng.shuffle(words)
        texts.append(" ".join(words))
    return Split(texts, labels)


def load(config, with_train=True):
    """The train and test reviews a config asks for: --tiny, --reviews, or IMDB (its test half only, if asked)."""
    if config.tiny:
        train, test = tiny_split(800, config.seed), tiny_split(200, config.seed + 1)
        return Reviews(train, test, f"tiny generated reviews: {len(train.texts)} train, {len(test.texts)} test")
    if config.reviews:
        return own_reviews(config.reviews, config.test_split, config.seed)
    return imdb(config.data_dir, with_train)


def prepare(config):
    """The training reviews split into `fit` and `validation` (a seeded `config.val_split` held out), and the test reviews."""
    reviews = load(config)
    print(reviews.description)
    train = tokenise(reviews.train, "training")
    if len(set(train.labels.tolist())) < 2:
        raise UserError("the training reviews are all of one label; training needs positive and negative ones")
    kept, held_out = datasets.holdout(len(train.tokens), config.val_split, config.seed)
    fit, validation = subset(train, kept), subset(train, held_out)
    test = tokenise(reviews.test, "test")
    return Prepared(fit, validation, test, fingerprint(fit, validation, test))


def tokenise(split, what):
    """A split's reviews with their tokens; reviews without a single word are left out, with a warning."""
    tokens = [text.tokenize(review) for review in split.texts]
    kept = [i for i, review in enumerate(tokens) if review]
    if len(kept) < len(tokens):
        warn(f"left out {len(tokens) - len(kept)} of the {what} reviews: they hold no words")
    if not kept:
        raise UserError(f"none of the {what} reviews holds a word")
    return subset(Tokenised(split.texts, tokens, split.labels), kept)


def subset(reviews, indices):
    return Tokenised([reviews.texts[i] for i in indices], [reviews.tokens[i] for i in indices], reviews.labels[indices])


def fingerprint(*parts):
    """A short hash of the reviews and labels of each part, in order: equal for the same split of the same reviews."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(f"part of {len(part.texts)}\n".encode())
        for review, label in zip(part.texts, part.labels):
            digest.update(f"{label}\t{review}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


# --- vocabulary and encoding --------------------------------------------------------------


class Vocabulary:
    """Words by id: 0 pads, 1 is any other word, word i of `words` is id i + 2."""

    def __init__(self, words):
        self.words = list(words)
        self.index = {word: i + 2 for i, word in enumerate(self.words)}

    def __len__(self):
        return len(self.words) + 2  # rows of the embedding table

    def save(self, path):
        with runs.atomic_path(path) as partial:
            partial.write_text("".join(f"{word}\n" for word in self.words), encoding="utf-8")

    @classmethod
    def load(cls, path):
        if not Path(path).is_file():
            raise UserError(f"{path} is missing; a model needs the vocabulary.txt it was trained with, from its run folder")
        try:
            return cls(Path(path).read_text(encoding="utf-8").splitlines())
        except UnicodeDecodeError:
            raise UserError(f"{path} is not a vocabulary written by this project (not UTF-8 text)") from None


def build_vocabulary(token_lists, min_count, size):
    counts = collections.Counter()
    for tokens in token_lists:
        counts.update(tokens)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))[:size]
    if not kept:
        raise UserError(f"no word occurs {min_count} times or more in the training reviews (--min-count); give it more text")
    return Vocabulary(kept)


def truncate(tokens, max_length):
    """At most `max_length` tokens: the first quarter of the budget from the start, the rest from the end."""
    if len(tokens) <= max_length:
        return tokens
    head = max_length // 4
    return tokens[:head] + tokens[len(tokens) - (max_length - head) :]


def encode(tokens, vocabulary, max_length):
    return np.array([vocabulary.index.get(t, OOV) for t in truncate(tokens, max_length)], np.int32)


# --- batches --------------------------------------------------------------------------------


def pad(reviews, width):
    batch = np.zeros((len(reviews), width), np.int32)
    for row, review in enumerate(reviews):
        batch[row, : len(review)] = review
    return batch


class ReviewBatches(keras.utils.PyDataset):
    """Batches of reviews of similar length, each padded at the end to its own longest review.

    With `shuffle`, every epoch sorts the reviews by length plus a random jitter of up
    to one bucket, cuts them into batches and shuffles the batches, so batches differ
    from epoch to epoch but padding stays small. Without it the order is fixed (by
    length) and `order` maps predictions back to the reviews. `multiple` trims the
    last batch to a multiple of the replicas that share each batch.
    """

    def __init__(self, reviews, labels=None, batch_size=128, shuffle=False, seed=0, multiple=1):
        super().__init__()
        self.reviews, self.labels = reviews, None if labels is None else np.asarray(labels, np.float32)
        self.lengths = np.array([len(r) for r in reviews])
        self.batch_size, self.shuffle, self.seed, self.multiple = batch_size, shuffle, seed, multiple
        self.epoch = 0
        self._plan()

    def _width(self, batch):
        longest = int(self.lengths[batch].max())
        return min(-(-longest // BUCKET) * BUCKET, int(self.lengths.max()))

    def _plan(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        key = self.lengths + (rng.uniform(0, BUCKET, len(self.lengths)) if self.shuffle else 0)
        order = np.argsort(key, kind="stable")
        order = order[: len(order) - len(order) % self.multiple]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        # Keras' TensorFlow adapter fixes the input shape from the first two batches: when
        # they differ in length, the length stays free; otherwise other lengths would fail.
        widths = [self._width(b) for b in batches]
        other = next((i for i in range(2, len(batches)) if widths[i] != widths[0]), None)
        if widths[1:2] == widths[:1] and other is not None:
            batches[1], batches[other] = batches[other], batches[1]
        self.batches = batches
        self.order = np.concatenate(batches) if batches else np.zeros(0, np.int64)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        batch = self.batches[index]
        x = pad([self.reviews[i] for i in batch], self._width(batch))
        return x if self.labels is None else (x, self.labels[batch])

    def on_epoch_end(self):
        if self.shuffle:
            self.epoch += 1
            self._plan()


def predict(model, reviews, batch_size=INFERENCE_BATCH, multiple=1):
    """P(positive) for each review (id arrays), in the reviews' order.

    With `multiple` replicas (and a batch size they divide), copies of the first
    review fill the last batch up to a multiple of them; their scores are dropped.
    """
    filled = list(reviews) + [reviews[0]] * (-len(reviews) % multiple)
    batches = ReviewBatches(filled, batch_size=batch_size)
    probabilities = np.zeros(len(filled), np.float32)
    probabilities[batches.order] = model.predict(batches, verbose=0).reshape(-1)
    return probabilities[: len(reviews)]


# --- word vectors ----------------------------------------------------------------------------


def vectors_file(path):
    """--embeddings: a word2vec .bin or .txt file, or a word2vec run folder (its vectors.bin)."""
    path = Path(path)
    if path.is_dir():
        path = path / "vectors.bin"
    if not path.is_file():
        raise UserError(f"--embeddings {path} does not exist; pass a word2vec .bin or .txt file or a word2vec run folder")
    return path


def load_embeddings(config):
    """(word vectors of --embeddings or None, the embedding's dimension), checked against --embedding-dim."""
    if not config.embeddings:
        return None, config.embedding_dim or DEFAULT_EMBEDDING_DIM
    path = vectors_file(config.embeddings)
    vectors = word2vec_format.load(path)
    if config.embedding_dim is not None and config.embedding_dim != vectors.vector_size:
        raise UserError(
            f"{path} holds {vectors.vector_size}-dimensional vectors, but --embedding-dim is {config.embedding_dim}; "
            "leave --embedding-dim out to take the file's"
        )
    print(f"word vectors: {path}, {len(vectors):,} words of {vectors.vector_size} dimensions")
    return vectors, vectors.vector_size


def starting_embeddings(vectors, vocabulary, seed):
    """The embedding table's first rows and the share of the vocabulary with a word vector; (None, None) without vectors.

    A row is the word's vector where there is one, else small random values.
    """
    if vectors is None:
        return None, None
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, float(vectors.vectors.std()), (len(vocabulary), vectors.vector_size)).astype(np.float32)
    matrix[PAD] = 0.0
    found = [word for word in vocabulary.words if word in vectors.key_to_index]
    if found:
        matrix[[vocabulary.index[w] for w in found]] = vectors[found]
    coverage = len(found) / len(vocabulary.words)
    print(f"{len(found):,} of the {len(vocabulary.words):,} vocabulary words ({coverage:.1%}) have a word vector; "
          "the others start random")
    if not found:
        warn("no vocabulary word has a vector in --embeddings; they all start random")
    return matrix, coverage
