"""Word vectors as gensim `KeyedVectors`: export, scoring and a picture.

Whatever engine trained them, vectors are written the way other tools read them:
the word2vec text and binary formats (the IMDB project loads these) and a pair of
TSV files for the TensorBoard embedding projector. They are scored with gensim's
own evaluation functions on the benchmark sets gensim ships: the Google analogy
questions (questions-words.txt), WordSim353 and SimLex-999.
"""

from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from PIL import Image, ImageDraw, ImageFont

from common import images, runs
from common.errors import UserError

PROBES = ("great", "awful", "actor", "funny", "music", "boring")
PROJECTOR_WORDS = 10000


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
        result["analogy_accuracy"], _ = vectors.evaluate_word_analogies(datapath("questions-words.txt"))
    except (ValueError, ZeroDivisionError):
        pass
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        try:
            _, spearman, oov_percent = vectors.evaluate_word_pairs(datapath(file))
            result[f"{name}_spearman"], result[f"{name}_oov_percent"] = spearman.statistic, oov_percent
        except ValueError:  # no pair with both words in the vocabulary
            result[f"{name}_spearman"], result[f"{name}_oov_percent"] = float("nan"), 100.0
    return {k: float(v) for k, v in result.items()}


def neighbours(vectors, words, top=5):
    """{word: [(neighbour, cosine), ...]}; a word outside the vocabulary is a clear error."""
    missing = [w for w in words if w not in vectors.key_to_index]
    if missing:
        raise UserError(f"not in the vocabulary: {', '.join(missing)}")
    return {w: [(n, float(s)) for n, s in vectors.most_similar(w, topn=top)] for w in words}


def draw_map(vectors, probes, path, top=6, size=900):
    """A 2-D map (principal components) of probe words, each with its nearest neighbours, in one colour per probe."""
    groups = {w: [w] + [n for n, _ in vectors.most_similar(w, topn=top)] for w in probes if w in vectors.key_to_index}
    if not groups:
        return None
    words = [w for group in groups.values() for w in group]
    points = vectors[words] / np.linalg.norm(vectors[words], axis=1, keepdims=True)
    points = points - points.mean(axis=0)
    _, _, components = np.linalg.svd(points, full_matrices=False)
    xy = points @ components[:2].T
    margin = 90
    xy = (xy - xy.min(axis=0)) / np.maximum(np.ptp(xy, axis=0), 1e-9) * (size - 2 * margin) + margin
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    at = 0
    for colour, group in zip(palette * 4, groups.values()):
        for rank, word in enumerate(group):
            x, y = xy[at]
            at += 1
            radius = 6 if rank == 0 else 3
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
            draw.text((x + 7, y - 9), word, fill=colour, font=ImageFont.load_default(size=20) if rank == 0 else font)
    return images.save_image(image, path)
