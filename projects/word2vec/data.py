"""The corpus, its vocabulary, and the CBOW training examples the Keras engine learns from.

Both engines see the same documents of tokens (`common.text.tokenize`). The Keras
engine then does what word2vec.c and gensim do, vectorised with NumPy a chunk of
the corpus at a time instead of word by word:

- words rarer than `min_count` are dropped before windows are drawn;
- frequent words are subsampled: a word with count c is kept with probability
  (sqrt(c / t) + 1) * t / c, t = sample * corpus words (Mikolov et al.'s formula as
  the C tool and gensim use it);
- each kept word is a centre whose context is up to `window` kept words either side,
  the reach drawn uniformly from 1..window per centre ("dynamic window"), never
  crossing a document boundary;
- `negative` words per centre are drawn from the unigram distribution raised to 0.75,
  through a lookup table as in word2vec.c.

Examples come in blocks of consecutive centres (`cbow_blocks`), the shape the model
turns into matrix products.
"""

import collections
import queue
import threading
from dataclasses import dataclass

import numpy as np

from common import datasets, text
from common.errors import UserError

IMDB_PARTS = ("train/unsup", "train/pos", "train/neg")  # 75,000 reviews; the test half stays unseen
MAX_DOCUMENT_WORDS = 10000  # gensim's limit per sentence; longer documents are split so both engines agree
NEGATIVE_TABLE_SIZE = 10_000_000
CHUNK_WORDS = 1_000_000
BLOCK = 32  # centres that share one row of words (and, by default, their negatives)


def imdb_documents(explicit_dir=None):
    """The raw texts of the IMDB training reviews, labelled and unlabelled."""
    root = datasets.extracted("aclImdb", "aclImdb_v1.tar.gz", "aclImdb", explicit_dir)
    reader = text.Reader()
    documents = []
    for part in IMDB_PARTS:
        files = sorted((root / part).glob("*.txt"))
        if not files:
            raise UserError(f"{root / part} holds no reviews; delete {root} so it is extracted again")
        documents.extend(reader.read(path) for path in files)
    reader.warn()
    return documents


def planted_documents(seed=0, topics=6, words_per_topic=8, documents=600, length=40):
    """A tiny corpus with a structure to find: each document mixes one topic's words with common filler.

    Word "t3w5" belongs to topic 3; words of one topic share contexts, so their
    vectors should end up closer to each other than to other topics' words.
    """
    rng = np.random.default_rng(seed)
    filler = [f"the{i}" for i in range(4)]
    texts = []
    for _ in range(documents):
        topic = rng.integers(topics)
        vocabulary = [f"t{topic}w{i}" for i in range(words_per_topic)] + filler
        texts.append(" ".join(rng.choice(vocabulary, size=length)))
    return texts


def tokenize_documents(texts):
    """Token lists, empty documents dropped and long ones split at MAX_DOCUMENT_WORDS."""
    documents = []
    for body in texts:
        tokens = text.tokenize(body)
        documents.extend(tokens[i : i + MAX_DOCUMENT_WORDS] for i in range(0, len(tokens), MAX_DOCUMENT_WORDS))
    if not documents:
        raise UserError("the corpus holds no words")
    return documents


@dataclass
class Vocabulary:
    words: list  # most frequent first
    counts: np.ndarray

    def __post_init__(self):
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self):
        return len(self.words)


def build_vocabulary(documents, min_count):
    counts = collections.Counter()
    for tokens in documents:
        counts.update(tokens)
    kept = sorted(((c, w) for w, c in counts.items() if c >= min_count), key=lambda item: (-item[0], item[1]))
    if not kept:
        raise UserError(f"no word occurs {min_count} times or more (--min-count); the corpus is too small")
    return Vocabulary([w for _, w in kept], np.array([c for c, _ in kept], np.int64))


@dataclass
class EncodedCorpus:
    """The corpus as vocabulary ids, rare words removed; `document` numbers each word's document."""

    ids: np.ndarray
    document: np.ndarray
    raw_words: int  # every token, rare ones included: what throughput is counted in


def encode(documents, vocabulary, window):
    index = vocabulary.index
    encoded = [[index[w] for w in tokens if w in index] for tokens in documents]
    lengths = np.array([len(ids) for ids in encoded], np.int64)
    if lengths.sum() <= window or lengths.max(initial=0) < 2:
        raise UserError(
            f"the corpus holds {lengths.sum()} words of the vocabulary, smaller than one window "
            f"(--window {window} words either side); give it more text"
        )
    return EncodedCorpus(
        ids=np.fromiter((i for ids in encoded for i in ids), np.int32, int(lengths.sum())),
        document=np.repeat(np.arange(len(encoded), dtype=np.int32), lengths),
        raw_words=sum(map(len, documents)),
    )


def keep_probabilities(counts, sample):
    """Chance that each word survives subsampling (1 for all when `sample` is 0)."""
    if sample <= 0:
        return np.ones(len(counts))
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1) * threshold / counts)


def negative_table(counts, size=NEGATIVE_TABLE_SIZE):
    """Word ids laid out so that a uniform draw from the table follows counts ** 0.75."""
    cumulative = np.cumsum(counts.astype(np.float64) ** 0.75)
    cumulative /= cumulative[-1]
    return np.searchsorted(cumulative, (np.arange(size) + 0.5) / size).astype(np.int32)


def cbow_blocks(ids, document, keep, window, table, rng, negatives=5, shared=16, block=BLOCK):
    """CBOW examples for a stretch of the corpus, as blocks of `block` consecutive centres, in random block order.

    Returns a dict of arrays, one row per block:
    - "words" (blocks, block + 2 * window): the block's kept words with `window` more on
      each side, so that every centre's context lies inside its own row (centre i of the
      block sits at column window + i);
    - "context" (blocks, block, 2): the first and last column of each centre's context,
      a contiguous stretch (the centre itself left out) since subsampled words are
      gone and the reach stops at the document's ends. A centre without context (or a
      filler centre after the corpus ends) has first > last;
    - "negatives": (blocks, shared) words every centre of the block scores against
      (`shared` > 0), or (blocks, block, negatives) words of its own (`shared` 0).
    """
    kept = rng.random(len(ids)) < keep[ids]
    ids, document = ids[kept], document[kept]
    count = len(ids)
    blocks = -(-count // block)
    span = block + 2 * window
    centres = np.arange(count)
    # documents are numbered in corpus order, so each one's first and last word are a search away
    first = np.searchsorted(document, document, side="left")
    last = np.searchsorted(document, document, side="right") - 1
    reach = rng.integers(1, window + 1, count)
    column = centres % block + window
    bounds = np.zeros((blocks * block, 2), np.int32)
    bounds[:, 0] = 1  # filler centres: an empty stretch
    bounds[:count, 0] = column - (centres - np.maximum(centres - reach, first))
    bounds[:count, 1] = column + (np.minimum(centres + reach, last) - centres)
    padded = np.zeros(blocks * block + 2 * window, np.int32)  # word 0 fills the ends, outside every context
    padded[window : window + count] = ids
    words = padded[(np.arange(blocks) * block)[:, None] + np.arange(span)]
    shape = (blocks, shared) if shared else (blocks, block, negatives)
    order = rng.permutation(blocks)
    return {
        "words": words[order],
        "context": bounds.reshape(blocks, block, 2)[order],
        "negatives": table[rng.integers(0, len(table), shape)],
    }


def expected_blocks(corpus, keep):
    """Blocks of centres an epoch yields on average."""
    return float(keep[corpus.ids].sum()) / BLOCK


class ExampleStream:
    """Endless batches of CBOW examples, one corpus pass per epoch, prepared by a background thread.

    Epoch e draws its randomness from (seed, e), so a run resumed at epoch e sees the
    examples it would have seen. NumPy does the work with the interpreter lock
    released, so preparing the next chunk overlaps with the training step.
    """

    def __init__(self, corpus, vocabulary, config, first_epoch=0, prefetch=4):
        self.corpus = corpus
        self.keep = keep_probabilities(vocabulary.counts, config.sample)
        self.table = negative_table(vocabulary.counts)
        self.config = config
        self.first_epoch = first_epoch
        self.batches = queue.Queue(maxsize=prefetch)
        self.stopped = threading.Event()
        threading.Thread(target=self._fill, daemon=True).start()

    def _chunks(self):
        epoch = self.first_epoch
        size = len(self.corpus.ids)
        config = self.config
        while True:
            rng = np.random.default_rng([config.seed, epoch])
            for start in range(0, size, CHUNK_WORDS):
                stop = min(size, start + CHUNK_WORDS)
                yield cbow_blocks(
                    self.corpus.ids[start:stop], self.corpus.document[start:stop], self.keep, config.window,
                    self.table, rng, config.negative, config.shared_negatives,
                )
            epoch += 1

    def _put(self, item):
        while not self.stopped.is_set():
            try:
                self.batches.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self):
        batch = self.config.batch_size
        left = None
        for chunk in self._chunks():
            if left is not None:
                chunk = {name: np.concatenate([left[name], chunk[name]]) for name in chunk}
            whole = len(chunk["words"]) - len(chunk["words"]) % batch
            for start in range(0, whole, batch):
                if not self._put({name: array[start : start + batch] for name, array in chunk.items()}):
                    return
            left = {name: array[whole:] for name, array in chunk.items()}

    def __iter__(self):
        return self

    def __next__(self):
        return self.batches.get()

    def close(self):
        self.stopped.set()
