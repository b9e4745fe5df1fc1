"""What trained word vectors do for users: nearest neighbours, scores, exports and a map.

Vectors are gensim `KeyedVectors`, whatever engine trained them. They are written
the way other tools read them: the word2vec text and binary formats (the IMDB
project loads these) and a pair of TSV files for the TensorBoard embedding
projector. They are scored with gensim's own evaluation functions on the benchmark
sets gensim ships: the Google analogy questions (questions-words.txt), WordSim353
and SimLex-999. The `neighbours` command lists the words closest to the ones given.
"""

import itertools
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from common import charts, runs, word2vec_format
from common.errors import UserError, warn
from projects.word2vec import PROJECT

PROBES = ("great", "awful", "actor", "funny", "music", "boring")
PROJECTOR_WORDS = 10000
VECTORS_FILE = "vectors.bin"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def neighbours(args):
    """The `neighbours` command: the --top nearest words to each word given.

    A word outside the vocabulary gets one warning line and the others are still
    listed; the exit status is then 1 (2, and nothing listed, when none is known).
    """
    word_vectors = word2vec_format.load(vectors_path(args.vectors))
    words = known_words(word_vectors, [w.lower() for w in args.words])
    for word, found in nearest(word_vectors, words, args.top).items():
        print(f"{word}: " + ", ".join(f"{n} ({s:.2f})" for n, s in found))
    return 0 if len(words) == len(args.words) else 1


def known_words(vectors, words):
    """The words in the vocabulary, with a warning for each other one; none known is an error."""
    missing = [w for w in words if w not in vectors.key_to_index]
    if len(missing) == len(words):
        raise UserError(f"not in the vocabulary: {', '.join(missing)}")
    for word in missing:
        warn(f"{word}: not in the vocabulary; skipped")
    return [w for w in words if w in vectors.key_to_index]


def vectors_path(given):
    """--vectors: a run folder, a .bin/.txt file, or the newest run's vectors."""
    return runs.model_path(PROJECT, given, VECTORS_FILE, flag="--vectors")


def keyed_vectors(words, matrix):
    vectors = KeyedVectors(matrix.shape[1], dtype=np.float32)
    vectors.add_vectors(list(words), np.asarray(matrix, np.float32))
    return vectors


def export(vectors, folder, projector_words=PROJECTOR_WORDS):
    """vectors.txt, vectors.bin and projector/{vectors,metadata}.tsv (the most frequent words) in `folder`."""
    folder = Path(folder)
    for name, binary in (("vectors.txt", False), ("vectors.bin", True)):
        with runs.atomic_path(folder / name) as partial:
            vectors.save_word2vec_format(str(partial), binary=binary)
    words = vectors.index_to_key[:projector_words]
    with runs.atomic_path(folder / "projector" / "vectors.tsv") as partial:
        np.savetxt(partial, vectors[words], delimiter="\t", fmt="%.5f")
    with runs.atomic_path(folder / "projector" / "metadata.tsv") as partial:
        partial.write_text("\n".join(words) + "\n", encoding="utf-8")


def scores(vectors):
    """Analogy accuracy and Spearman correlations on WordSim353 and SimLex-999, gensim's way.

    A test set none of whose words are in the vocabulary (a tiny corpus) scores NaN.
    """
    result = {"analogy_accuracy": float("nan")}
    try:
        accuracy, sections = vectors.evaluate_word_analogies(datapath("questions-words.txt"))
        if sections[-1]["correct"] or sections[-1]["incorrect"]:  # gensim says 0.0 when it could ask no question
            result["analogy_accuracy"] = accuracy
    except (ValueError, ZeroDivisionError):
        pass
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        try:
            _, spearman, oov_percent = vectors.evaluate_word_pairs(datapath(file))
            result[f"{name}_spearman"], result[f"{name}_oov_percent"] = spearman.statistic, oov_percent
        except ValueError:  # no pair with both words in the vocabulary
            result[f"{name}_spearman"], result[f"{name}_oov_percent"] = float("nan"), 100.0
    return {k: float(v) for k, v in result.items()}


def nearest(vectors, words, top=5):
    """{word: [(neighbour, cosine), ...]}; a word outside the vocabulary is a clear error."""
    missing = [w for w in words if w not in vectors.key_to_index]
    if missing:
        raise UserError(f"not in the vocabulary: {', '.join(missing)}")
    return {w: [(n, float(s)) for n, s in vectors.most_similar(w, topn=top)] for w in words}


def draw_map(vectors, probes, path, top=6):
    """A 2-D map (principal components) of probe words, each with its nearest neighbours, in one colour per probe."""
    groups = {w: [w] + [n for n, _ in vectors.most_similar(w, topn=top)] for w in probes if w in vectors.key_to_index}
    if not groups:
        return None
    words = [w for group in groups.values() for w in group]
    points = vectors[words] / np.linalg.norm(vectors[words], axis=1, keepdims=True)
    points = points - points.mean(axis=0)
    _, _, components = np.linalg.svd(points, full_matrices=False)
    xy = points @ components[:2].T
    colours = [colour for colour, group in zip(itertools.cycle(PALETTE), groups.values()) for _ in group]
    is_probe = [rank == 0 for group in groups.values() for rank in range(len(group))]
    figure, axes = charts.figure(8, 8)
    axes = axes[0, 0]
    axes.scatter(xy[:, 0], xy[:, 1], s=[60 if probe else 15 for probe in is_probe], c=colours)
    for (x, y), word, colour, probe in zip(xy, words, colours, is_probe):
        axes.annotate(word, (x, y), xytext=(5, 3), textcoords="offset points", color=colour,
                      fontsize=13 if probe else 10, fontweight="bold" if probe else "normal")
    axes.set(xlabel="first principal component", ylabel="second principal component", xticks=[], yticks=[])
    axes.margins(0.12)
    return charts.save(figure, path)
