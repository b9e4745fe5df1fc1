"""Training word vectors with either engine, then exporting and scoring them.

`--engine keras` (the default) trains the CBOW model of `model.py` on the examples
`data.ExampleStream` draws; `--engine gensim` hands the very same token lists and
hyperparameters to gensim's Word2Vec (CBOW, `sg=0`), the reference. Either way the
run folder gets the vectors in word2vec text and binary formats, TSV files for the
TensorBoard projector, the scores on gensim's benchmark sets, the neighbours of a few
probe words and a map of them, and summary.json with the training throughput in
corpus words per second (every token, rare ones included, as gensim counts them).
"""

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import cli
from common.config import TrainConfig, distribute_option, option, require_at_least_one, require_not_negative
from common.errors import UserError
from projects.word2vec import PROJECT


@dataclass(frozen=True)
class Config(TrainConfig):
    SEVERAL_PROCESSES = True  # the Keras engine's --distribute spans a group of processes too (common.distributed)

    data_dir: str = option(None, "folder holding aclImdb_v1.tar.gz or aclImdb/ (default: $DATA_DIR, the Keras cache, then download)")
    corpus: str = option(None, "your own corpus instead of IMDB: a text file (a document per line) or a folder of .txt files")
    engine: str = option("keras", "keras: this project's CBOW; gensim: gensim's Word2Vec, the reference", choices=("keras", "gensim"))
    epochs: int = option(5, "passes over the corpus")
    batch_size: int = option(128, "blocks of 32 consecutive centres per training step (Keras engine; 8 with --tiny)")
    lr: float = option(0.025, "learning rate per word at the start, as in word2vec (alpha)")
    min_lr: float = option(1e-4, "learning rate per word at the end; it falls linearly (min_alpha)")
    vector_size: int = option(100, "dimensions of the word vectors")
    window: int = option(5, "largest distance between a centre and a context word; each centre draws its reach in 1..window")
    min_count: int = option(5, "words seen fewer times are dropped")
    negative: int = option(5, "negative words per centre")
    sample: float = option(1e-3, "subsampling threshold for frequent words (0: off)")
    shared_negatives: int = option(16, "negatives shared by each block of 32 centres (Keras engine); 0: --negative per centre")
    workers: int = option(2, "worker threads (gensim engine)")
    distribute: bool = distribute_option()

    def __post_init__(self):
        super().__post_init__()
        require_at_least_one(self, "vector_size", "window", "min_count", "negative", "workers")
        if self.distribute and self.engine == "gensim":
            raise UserError("--distribute trains the Keras engine; gensim's runs on one machine's threads (--workers)")
        require_not_negative(self, "shared_negatives", "sample")
        if not 0 < self.min_lr <= self.lr:
            raise UserError(f"--min-lr must be positive and at most --lr ({self.lr}), got {self.min_lr}")


# --tiny: steps of 256 centres. A step sums the updates of its centres (see model.py), and each of the planted
# corpus's 52 words is about 2% of any step's centres, in near-identical contexts: at the default 4,096 centres
# a word's summed update is a few hundred per-word updates in one direction, it overshoots, and the run diverges
# (measured: --batch-size 64 and more diverge there, 32 and less learn the planted topics).
TINY = {"batch_size": 8}


def recipe_defaults(chosen):
    """What sits under the --config file and the flags: --tiny's smaller steps (the defaults are the IMDB recipe)."""
    return TINY if chosen.get("tiny") else {}


def train(config, resume_dir=None, documents=None):
    """Train, export and score vectors; returns the run folder.

    `documents` (token lists) lets the benchmark tokenise the corpus once for both engines.
    """
    # Imported here, not at the top, so that `--help` answers without loading TensorFlow.
    from projects.word2vec import vectors

    started = time.time()
    if resume_dir is not None and config.engine == "gensim":
        raise UserError("gensim runs cannot be resumed (gensim keeps no checkpoints); start a new run")
    documents = documents if documents is not None else load_documents(config)
    corpus_words = sum(map(len, documents))
    run_dir = cli.open_run(PROJECT, config, resume_dir, resolved={"documents": len(documents), "corpus_words": corpus_words})
    engine = train_keras if config.engine == "keras" else train_gensim
    word_vectors, timing = engine(config, documents, run_dir)
    print(f"trained in {timing.seconds:.1f} s: {timing.samples_per_second:,.0f} corpus words/s ({config.engine} engine)")

    vectors.export(word_vectors, run_dir)
    metrics = vectors.scores(word_vectors)
    probes = [w for w in vectors.PROBES if w in word_vectors.key_to_index] or word_vectors.index_to_key[:4]
    nearest = vectors.nearest(word_vectors, probes)
    vectors.draw_map(word_vectors, probes, run_dir / "samples" / "neighbours.png")
    cli.finish_run(
        run_dir, config, started, timing, metrics,
        engine=config.engine, train_seconds=round(timing.seconds, 1), vocabulary=len(word_vectors),
        corpus_words=corpus_words, neighbours=nearest, resumed=resume_dir is not None,
    )
    print_scores(metrics, nearest)
    print(f"vectors saved in {run_dir}")
    return run_dir


def load_documents(config):
    """Token lists of the corpus a config names: --tiny, --corpus, or the IMDB training reviews."""
    from common.text import read_documents
    from projects.word2vec import data

    if config.tiny:
        texts, where = data.planted_documents(config.seed), "tiny planted corpus"
    elif config.corpus:
        texts, where = read_documents(config.corpus), config.corpus
    else:
        texts, where = data.imdb_documents(config.data_dir), "IMDB train reviews (pos, neg, unsup)"
    documents = data.tokenize_documents(texts)
    print(f"{where}: {len(texts):,} documents, {sum(map(len, documents)):,} words")
    return documents


@dataclass
class Timing:
    """What `cli.finish_run` reports as throughput: corpus words per second of training."""

    seconds: float
    words: int
    epoch_seconds: list = field(default_factory=list)

    @property
    def samples_per_second(self):
        return self.words / max(self.seconds, 1e-9)


def train_keras(config, documents, run_dir):
    """This project's CBOW on the documents; returns (KeyedVectors, Timing)."""
    from common import backend, callbacks, distributed
    from projects.word2vec import data, vectors
    from projects.word2vec.model import build_model

    vocabulary = data.build_vocabulary(documents, config.min_count)
    corpus = data.encode(documents, vocabulary, config.window)
    keep = data.keep_probabilities(vocabulary.counts, config.sample)
    steps_per_epoch = max(1, round(data.expected_blocks(corpus, keep) / config.batch_size))
    print(f"vocabulary {len(vocabulary):,} words; {len(corpus.ids):,} of them in the corpus; {steps_per_epoch:,} steps of "
          f"{config.batch_size * data.BLOCK:,} centres per epoch; backend {backend.name()}, {backend.describe_device()}")

    scope, replicas = backend.distribution_scope(config.distribute)
    with scope:
        model = build_model(len(vocabulary), config, steps_per_epoch * config.epochs, distributed=config.distribute)
    if config.batch_size % replicas:
        raise UserError(f"--batch-size {config.batch_size} must be a multiple of the {replicas} replicas")
    stream = data.ExampleStream(corpus, vocabulary, config, first_epoch=completed_epochs(run_dir))

    def batches():  # every worker of a group draws the same ones: the stream is seeded by the epoch
        while True:
            yield (next(stream),)

    run_callbacks, throughput = callbacks.standard(run_dir, steps_per_epoch, corpus.raw_words)
    if config.distribute:  # each process keeps its share of every batch (common.distributed)
        shares, steps, feeding = distributed.fit_stream(batches(), steps_per_epoch, config.epochs, model)
        training_data = {"x": shares, "steps_per_epoch": steps}
        run_callbacks = feeding + run_callbacks
    else:
        training_data = {"x": batches(), "steps_per_epoch": steps_per_epoch}
    started = time.perf_counter()
    try:
        model.fit(**training_data, epochs=config.epochs, callbacks=run_callbacks, shuffle=False,
                  verbose=1 if sys.stdout.isatty() else 2)
    finally:
        stream.close()
    seconds = time.perf_counter() - started
    if model.stop_training:
        raise UserError(f"training stopped early (loss became NaN); try a lower --lr. Run kept in {run_dir}")
    backend.localize(model)
    epochs_run = len(throughput.epoch_seconds)
    timing = Timing(seconds, corpus.raw_words * epochs_run, throughput.epoch_seconds)
    return vectors.keyed_vectors(vocabulary.words, model.vectors()), timing


def completed_epochs(run_dir):
    """Epochs an interrupted run already finished (rows of its metrics.csv)."""
    metrics = Path(run_dir) / "metrics.csv"
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0


def train_gensim(config, documents, run_dir):
    """gensim's Word2Vec (CBOW) with the same hyperparameters; returns (KeyedVectors, Timing)."""
    from gensim.models import Word2Vec

    model = Word2Vec(
        vector_size=config.vector_size, window=config.window, min_count=config.min_count, negative=config.negative,
        sample=config.sample, sg=0, cbow_mean=1, hs=0, alpha=config.lr, min_alpha=config.min_lr,
        workers=config.workers, seed=config.seed, epochs=config.epochs,
    )
    model.build_vocab(documents)
    started = time.perf_counter()
    model.train(documents, total_examples=model.corpus_count, epochs=config.epochs)
    seconds = time.perf_counter() - started
    raw_words = sum(map(len, documents)) * config.epochs
    return model.wv, Timing(seconds, raw_words, [seconds / config.epochs] * config.epochs)


def print_scores(metrics, nearest):
    print(f"analogy accuracy {metrics['analogy_accuracy']:.4f}; Spearman: WordSim353 {metrics['wordsim353_spearman']:.4f}, "
          f"SimLex-999 {metrics['simlex999_spearman']:.4f}")
    for word, found in nearest.items():
        print(f"  {word}: " + ", ".join(f"{n} ({s:.2f})" for n, s in found))


def evaluate(args):
    """Score saved vectors (--vectors, or the newest run's) and list the neighbours of the probe words
    (a --probe outside the vocabulary is warned about and skipped, and the exit status is then 1)."""
    from common import word2vec_format
    from projects.word2vec import vectors

    path = vectors.vectors_path(args.vectors)
    word_vectors = word2vec_format.load(path)
    print(f"{path}: {len(word_vectors):,} words, {word_vectors.vector_size} dimensions")
    if args.probe:
        probes = vectors.known_words(word_vectors, args.probe)
    else:
        probes = [w for w in vectors.PROBES if w in word_vectors.key_to_index]
    print_scores(vectors.scores(word_vectors), vectors.nearest(word_vectors, probes))
    return 1 if args.probe and len(probes) < len(args.probe) else 0
