"""IMDB sentiment: every kind (bow, tfidf, nbsvm, the LSTM, the ensemble) trained end to end on tiny generated reviews.

The tiny reviews plant sentiment words (data.POSITIVE, data.NEGATIVE) among filler,
so a model that learned shows it: its accuracy, and the words it weighs most. One
run of each kind is trained per module and shared; commands run in this process.
"""

import io
import json
import os
import shutil
import sys
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors
from helpers import assert_one_line_error, file_bytes, run_command, run_subprocess

from common import runs, text, word2vec_format
from common.errors import UserError
from projects.imdb_sentiment import LINEAR_KINDS, bench, data, ensemble, linear, predict
from projects.imdb_sentiment import train as imdb
from projects.imdb_sentiment.model import MaskedGlobalMaxPooling1D

MODULE = "projects.imdb_sentiment"
TINY_LSTM = ["--tiny", "--units", "16", "--batch-size", "40", "--lr", "1e-2", "--epochs", "2"]  # 720 reviews: 18 full batches, one shape to compile
TINY_TEST = data.tiny_split(200, 1)  # the tiny test set of seed 0, as data.load makes it


def write_vectors(path, dimensions=8, binary=False):
    """Word vectors in word2vec format for the tiny reviews' words: sentiment along the first axis."""
    words = list(data.POSITIVE + data.NEGATIVE + data.FILLER) + ["unused"]
    rng = np.random.default_rng(0)
    matrix = rng.normal(0, 0.1, (len(words), dimensions)).astype(np.float32)
    matrix[: len(data.POSITIVE), 0] += 1.0
    matrix[len(data.POSITIVE) : len(data.POSITIVE) + len(data.NEGATIVE), 0] -= 1.0
    vectors = KeyedVectors(dimensions)
    vectors.add_vectors(words, matrix)
    vectors.save_word2vec_format(str(path), binary=binary)
    return path


def train_ok(*args):
    result = run_command(MODULE, "train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def summary_of(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def accuracy(probabilities, labels):
    return float(np.mean((np.asarray(probabilities) >= 0.5) == np.asarray(labels).astype(bool)))


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """One tiny LSTM run, started from word vectors: (run folder, what the command printed)."""
    folder = tmp_path_factory.mktemp("lstm")
    vectors = write_vectors(folder / "vectors.txt")
    result = train_ok(*TINY_LSTM, "--embeddings", vectors, "--out", folder / "run")
    return folder / "run", result


@pytest.fixture(scope="module")
def linear_runs(tmp_path_factory):
    """{kind: run folder} of one tiny run of each linear kind."""
    folder = tmp_path_factory.mktemp("linear")
    for kind in LINEAR_KINDS:
        train_ok("--kind", kind, "--tiny", "--out", folder / kind)
    return {kind: folder / kind for kind in LINEAR_KINDS}


@pytest.fixture(scope="module")
def ensemble_run(lstm_run, linear_runs, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ensemble") / "run"
    train_ok("--kind", "ensemble", "--members", lstm_run[0], linear_runs["nbsvm"], "--out", run_dir)
    return run_dir


# --- the LSTM ----------------------------------------------------------------------------------


def test_train_from_word_vectors_writes_a_complete_run_and_learns(lstm_run):
    run_dir, result = lstm_run
    for name in ("config.json", "metrics.csv", "model.keras", "best.keras", "vocabulary.txt", "summary.json", "samples/test_results.png"):
        assert (run_dir / name).exists(), name
    summary = summary_of(run_dir)
    assert summary["backend"] == keras.backend.backend()
    assert summary["test_reviews"] == 200 and summary["train_reviews"] == 720
    assert summary["metrics"]["test_accuracy"] > 0.8, summary["metrics"]
    assert 0 < summary["embedding_coverage"] < 1  # the rare "name123" words have no vector
    assert "have a word vector" in result.stdout
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["project"] == "imdb_sentiment" and saved["config"]["kind"] == "lstm"
    assert saved["config"]["embedding_dim"] is None  # as asked: the settings are not rewritten ...
    assert saved["resolved"]["embedding_dim"] == 8  # ... the dimension taken from the file is recorded beside them
    assert saved["resolved"]["embeddings"] == str(run_dir.parent / "vectors.txt")
    assert saved["resolved"]["tokeniser"] == data.TOKENISER and len(saved["resolved"]["split"]) == 16
    vocabulary = (run_dir / "vocabulary.txt").read_text().split("\n")
    assert len(vocabulary) - 1 == summary["vocabulary"] == saved["resolved"]["vocabulary"] and "great" in vocabulary
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1] and metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert not (run_dir / "backup").exists()


def test_loaded_word_vectors_stay_fixed_by_default(lstm_run):
    run_dir, _ = lstm_run
    vectors = KeyedVectors.load_word2vec_format(str(run_dir.parent / "vectors.txt"))
    vocabulary = data.Vocabulary.load(run_dir / "vocabulary.txt")
    embeddings = keras.ops.convert_to_numpy(runs.load_model(run_dir / "model.keras", "imdb_sentiment").get_layer("embedding").embeddings)
    known = [(index, word) for word, index in vocabulary.index.items() if word in vectors.key_to_index]
    assert len(known) > 20
    np.testing.assert_allclose(embeddings[[i for i, _ in known]], vectors[[w for _, w in known]], rtol=1e-6)


def test_a_padded_review_scores_as_it_does_alone(lstm_run):
    run_dir, _ = lstm_run
    model = runs.load_model(run_dir / "model.keras", "imdb_sentiment")
    vocabulary = data.Vocabulary.load(run_dir / "vocabulary.txt")
    review = data.encode(text.tokenize("the plot was dull but the actor was great"), vocabulary, 500)
    longer = data.encode(text.tokenize("a film " * 40 + "awful"), vocabulary, 500)
    alone = model.predict(review[None], verbose=0)
    padded = model.predict(data.pad([review, longer], len(longer) + 23), verbose=0)
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    # ... and in a bucketed batch, where predictions come back in the reviews' order
    together = data.predict(model, [longer, review, longer[:3]])
    np.testing.assert_allclose(together[1], alone[0, 0], atol=1e-5)


def test_masked_max_pooling_ignores_padding():
    inputs = np.array([[[-3.0, 1.0], [-2.0, 0.5], [0.0, 9.0]]], np.float32)
    mask = np.array([[True, True, False]])
    pooled = MaskedGlobalMaxPooling1D()(inputs, mask=mask)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled), [[-2.0, 1.0]])


@pytest.mark.backend_independent
def test_evaluate_scores_the_test_set_again(lstm_run):
    run_dir, _ = lstm_run
    result = run_command(MODULE, "evaluate", "--model", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    for fragment in ("accuracy", "precision", "recall", "F1", "confusion matrix"):
        assert fragment in result.stdout
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    (tn, fp), (fn, tp) = evaluation["confusion"]
    assert tn + fp == int((TINY_TEST.labels == 0).sum()) and fn + tp == int((TINY_TEST.labels == 1).sum())
    trained = predict.trained_model(run_dir)
    expected = accuracy(trained.probabilities([text.tokenize(r) for r in TINY_TEST.texts]), TINY_TEST.labels)
    assert evaluation["accuracy"] == pytest.approx(expected, abs=1e-9)
    assert evaluation["accuracy"] == pytest.approx((tn + tp) / 200, abs=1e-9)
    assert evaluation["accuracy"] == pytest.approx(summary_of(run_dir)["metrics"]["test_accuracy"], abs=1e-9)
    assert (run_dir / "samples" / "evaluation.png").exists()


@pytest.mark.backend_independent
def test_predict_reads_arguments_files_and_stdin(lstm_run, tmp_path, monkeypatch):
    run_dir, _ = lstm_run
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"a superb caf\xe9 scene and a wonderful story\n")
    long_review = " ".join(["the film"] * 50_000 + ["great"])  # 100,001 words
    stdin = "\n".join(["!!! ... ???", "zzz qqq xyzzy \udcff", long_review]).encode(errors="surrogateescape")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    result = run_command(
        MODULE, "predict", "--model", run_dir, "great superb wonderful film", "awful boring terrible worst", "-", "--file", latin1
    )
    assert result.returncode == 1, result.stderr[-3000:]  # one review held no words; the others were read
    error = assert_one_line_error(result, "holds no words", "!!!")
    assert error.startswith("error: review 4 ")
    assert "file(s) held bytes that are not UTF-8" in result.stderr and "standard input held bytes that are not UTF-8" in result.stderr
    assert "carries no information" in result.stderr and "xyzzy" in result.stderr
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [excerpt.split()[0] for _, _, excerpt in lines] == ["great", "awful", "a", "zzz", "the"]  # arguments, --file, stdin
    by_text = {excerpt.split()[0]: label for label, _, excerpt in lines}
    assert by_text["great"] == "positive" and by_text["awful"] == "negative" and by_text["a"] == "positive"


@pytest.mark.backend_independent
def test_commands_refuse_another_projects_model(tmp_path):
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    digits = runs.save_model(classifier, tmp_path / "digits.keras", "mnist_cnn")  # no vocabulary.txt: the model is the problem
    before = digits.read_bytes()
    for command, *flags in (("predict", "a great film"), ("evaluate", "--tiny")):
        result = run_command(MODULE, command, "--model", digits, *flags)
        assert result.returncode == 2 and result.stderr.splitlines() == [
            f"error: {digits} is a mnist_cnn model, not an imdb_sentiment one; use it with python -m projects.mnist_cnn"
        ]
    assert digits.read_bytes() == before and sorted(tmp_path.iterdir()) == [digits]


@pytest.mark.backend_independent
def test_runs_saved_under_the_old_project_name_still_load(lstm_run, tmp_path):
    """A run folder and model.keras saved when the project was imdb_lstm (no kind, tokeniser or split recorded)."""
    run_dir, _ = lstm_run
    old = tmp_path / "runs" / "imdb_lstm" / "20261122-110718"
    shutil.copytree(run_dir, old)
    saved = json.loads((old / "config.json").read_text())
    saved["project"] = "imdb_lstm"
    del saved["config"]["kind"], saved["config"]["ngrams"], saved["config"]["c"], saved["config"]["members"]
    del saved["resolved"]["tokeniser"], saved["resolved"]["split"]
    (old / "config.json").write_text(json.dumps(saved))
    with zipfile.ZipFile(run_dir / "model.keras") as new, zipfile.ZipFile(old / "model.keras", "w") as rewritten:
        for entry in new.namelist():
            rewritten.writestr(entry, json.dumps({"project": "imdb_lstm"}) if entry == runs.OWNER_ENTRY else new.read(entry))
    reviews = ["great superb wonderful film", "awful boring terrible worst"]
    by_folder, by_file = (run_command(MODULE, "predict", "--model", model, *reviews) for model in (old, old / "model.keras"))
    assert by_folder.returncode == by_file.returncode == 0, by_folder.stderr + by_file.stderr
    assert [line.split("\t")[0] for line in by_folder.stdout.splitlines()] == ["positive", "negative"]
    assert by_file.stdout == by_folder.stdout


@pytest.mark.backend_independent
def test_tokens_are_the_word2vec_projects_and_unknown_words_share_an_id():
    vocabulary = data.build_vocabulary([text.tokenize("A great film, a <br />GREAT film isn't it")], 2, 100)
    assert vocabulary.words == ["a", "film", "great"]  # most frequent first, then alphabetical
    ids = data.encode(text.tokenize("GREAT<br />film, isn't it"), vocabulary, 10)
    assert ids.tolist() == [4, 3, data.OOV, data.OOV]


@pytest.mark.backend_independent
def test_long_reviews_keep_their_start_and_end():
    assert data.truncate(list(range(100)), 20) == list(range(5)) + list(range(85, 100))
    assert data.truncate([1, 2, 3], 20) == [1, 2, 3]
    vocabulary = data.Vocabulary(["film"])
    ids = data.encode(text.tokenize("film " * 100_000), vocabulary, 500)
    assert ids.shape == (500,) and (ids == 2).all()


@pytest.mark.backend_independent
def test_batches_group_similar_lengths_and_pad_at_the_end():
    rng = np.random.default_rng(0)
    reviews = [np.arange(1, n + 1, dtype=np.int32) for n in rng.integers(1, 300, 500)]
    labels = rng.integers(0, 2, 500)
    batches = data.ReviewBatches(reviews, labels, batch_size=32, shuffle=True, seed=1)
    assert len(batches) == 16
    first_epoch = []
    for index in range(len(batches)):
        x, y = batches[index]
        chosen = batches.batches[index]
        lengths = batches.lengths[chosen]
        assert x.shape[1] % data.BUCKET == 0 or x.shape[1] == batches.lengths.max()
        assert x.shape[1] - lengths.max() < data.BUCKET  # padded only to its own longest review
        assert all((row[:n] > 0).all() and (row[n:] == 0).all() for row, n in zip(x, lengths))  # padding at the end
        np.testing.assert_array_equal(y, labels[chosen])
        first_epoch.extend(chosen.tolist())
    assert sorted(first_epoch) == list(range(500))
    assert batches[0][0].shape[1] != batches[1][0].shape[1]  # keeps the input length free on TensorFlow
    batches.on_epoch_end()
    assert sorted(np.concatenate(batches.batches).tolist()) == list(range(500))
    assert np.concatenate(batches.batches).tolist() != first_epoch  # a new order every epoch


@pytest.mark.backend_independent
def test_every_kind_gets_the_same_split_and_wordless_reviews_are_left_out(tmp_path, capsys):
    folder = tmp_path / "mine"
    split = data.tiny_split(300, seed=3)
    for index, (review, label) in enumerate(zip(split.texts, split.labels)):
        part = "test" if index < 60 else "train"
        (folder / part / data.LABELS[label][:3]).mkdir(parents=True, exist_ok=True)
        (folder / part / data.LABELS[label][:3] / f"{index}.txt").write_text(review)
    (folder / "train" / "pos" / "latin1.txt").write_bytes(b"a great caf\xe9")
    (folder / "train" / "neg" / "empty.txt").write_text("<br /> ... ")
    reviews = data.prepare(imdb.Config(reviews=str(folder), val_split=0.25, seed=5))
    errors = capsys.readouterr().err
    assert "warning: 1 file(s) held bytes that are not UTF-8" in errors  # the latin-1 review, read all the same
    assert "warning: left out 1 of the training reviews: they hold no words" in errors
    assert sorted(reviews.test.texts) == sorted(split.texts[:60])
    training = reviews.fit.texts + reviews.validation.texts
    assert sorted(training) == sorted(split.texts[60:] + ["a great caf\ufffd"]) and len(reviews.validation.texts) == 60
    assert not set(reviews.validation.texts) & set(reviews.fit.texts)
    written = dict(zip(split.texts, split.labels.tolist()))
    for part in (reviews.fit, reviews.validation, reviews.test):
        assert [written.get(review, label) for review, label in zip(part.texts, part.labels.tolist())] == part.labels.tolist()
    again = data.prepare(imdb.Config(reviews=str(folder), val_split=0.25, seed=5, kind="nbsvm"))
    assert again.fingerprint == reviews.fingerprint and again.validation.texts == reviews.validation.texts
    other_seed = data.prepare(imdb.Config(reviews=str(folder), val_split=0.25, seed=6))
    assert other_seed.test.texts == reviews.test.texts and set(other_seed.validation.texts) != set(reviews.validation.texts)
    assert other_seed.fingerprint != reviews.fingerprint


@pytest.mark.backend_independent
def test_bad_word_vector_files_are_clear_errors(tmp_path):
    good = write_vectors(tmp_path / "vectors.txt", dimensions=8)
    assert word2vec_format.load(good).vector_size == 8
    as_binary = write_vectors(tmp_path / "binary.txt", dimensions=8, binary=True)  # the name does not decide
    assert word2vec_format.load(as_binary)["great"][0] > 0.5
    (tmp_path / "notes.txt").write_text("this is not a vectors file\n")
    with pytest.raises(UserError, match="first line should be"):
        word2vec_format.load(tmp_path / "notes.txt")
    (tmp_path / "short.txt").write_text("2 8\ngreat 0.1 0.2\nawful 0.3\n")
    with pytest.raises(UserError, match="not a valid word2vec"):
        word2vec_format.load(tmp_path / "short.txt")
    (tmp_path / "cut.bin").write_bytes(as_binary.read_bytes()[:200])
    with pytest.raises(UserError, match="not a valid word2vec binary"):
        word2vec_format.load(tmp_path / "cut.bin")
    with pytest.raises(UserError, match="does not exist"):
        data.vectors_file(tmp_path / "missing.bin")
    word2vec_run = tmp_path / "word2vec_run"
    word2vec_run.mkdir()
    (word2vec_run / "vectors.bin").write_bytes(as_binary.read_bytes())
    assert data.vectors_file(word2vec_run) == word2vec_run / "vectors.bin"  # a run folder means its vectors.bin
    with pytest.raises(UserError, match="8-dimensional vectors, but --embedding-dim is 50"):
        data.load_embeddings(imdb.Config(embeddings=str(good), embedding_dim=50))
    assert data.load_embeddings(imdb.Config()) == (None, data.DEFAULT_EMBEDDING_DIM)  # no file: random vectors of 100


# --- bow, tfidf, nbsvm -------------------------------------------------------------------------


@pytest.mark.backend_independent
@pytest.mark.parametrize("kind", LINEAR_KINDS)
def test_each_linear_kind_learns_the_planted_words(linear_runs, kind):
    run_dir = linear_runs[kind]
    summary = summary_of(run_dir)
    assert summary["metrics"]["test_accuracy"] >= 0.9, summary["metrics"]
    trained = linear.load(run_dir / "model.json")
    probabilities = trained.probabilities([text.tokenize(review) for review in TINY_TEST.texts])
    assert accuracy(probabilities, TINY_TEST.labels) == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-9)
    words = [(weight, ngram) for ngram, weight in zip(trained.vocabulary, trained.ngram_weights()) if " " not in ngram]
    words.sort()
    assert {word for _, word in words[-len(data.POSITIVE) :]} == set(data.POSITIVE)  # the planted words weigh most
    assert {word for _, word in words[: len(data.NEGATIVE)]} == set(data.NEGATIVE)
    positive, negative = trained.top_ngrams(1)
    assert set(positive[0][0].split()) & set(data.POSITIVE) and set(negative[0][0].split()) & set(data.NEGATIVE)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["resolved"]["ngrams"] == trained.ngrams == linear.DEFAULT_NGRAMS[kind]
    assert saved["resolved"]["vocabulary"] == len(trained.vocabulary) == summary["vocabulary"]
    assert max(len(ngram.split()) for ngram in trained.vocabulary) == trained.ngrams
    by_c = summary["validation_accuracy_by_c"]
    assert [float(c) for c in by_c] == list(linear.C_GRID[kind]) and by_c[f"{trained.c:g}"] == max(by_c.values())
    assert (run_dir / "samples" / "top_ngrams.png").is_file() and (run_dir / "samples" / "test_results.png").is_file()


@pytest.mark.backend_independent
def test_c_is_chosen_on_the_validation_reviews():
    reviews = data.prepare(imdb.Config(tiny=True, kind="bow"))
    model, by_c = linear.fit("bow", reviews.fit, reviews.validation, 1, 2)
    assert list(by_c) == list(linear.C_GRID["bow"]) and len(set(by_c.values())) > 1  # the values of C score differently
    flipped = data.Tokenised(reviews.validation.texts, reviews.validation.tokens, 1 - reviews.validation.labels)
    other, other_by_c = linear.fit("bow", reviews.fit, flipped, 1, 2)
    assert other_by_c == pytest.approx({c: 1 - value for c, value in by_c.items()})
    assert by_c[model.c] == max(by_c.values()) and other_by_c[other.c] == max(other_by_c.values()) and other.c != model.c


@pytest.mark.backend_independent
def test_nbsvm_log_count_ratios_are_wang_and_mannings():
    reviews = [["good", "good", "movie"], ["good", "plot", "great"], ["bad", "movie"], ["bad", "bad", "plot"]]
    labels = np.array([1, 1, 0, 0])
    counts = linear.counter(1).fit(reviews)
    assert counts.get_feature_names_out().tolist() == ["bad", "good", "great", "movie", "plot"]
    presence = counts.transform(reviews) > 0
    # p = 1 + positive reviews holding the word = [1, 3, 2, 2, 2] (sum 10); q for the negative = [3, 1, 1, 2, 2] (sum 9)
    expected = np.log([(1 / 10) / (3 / 9), (3 / 10) / (1 / 9), (2 / 10) / (1 / 9), (2 / 10) / (2 / 9), (2 / 10) / (2 / 9)])
    ratios = linear.log_count_ratios(presence, labels)
    np.testing.assert_allclose(ratios, expected, rtol=1e-6)
    features = linear.weigh("nbsvm", counts.transform([["good", "good", "movie", "unknown"]]), ratios).toarray()
    np.testing.assert_allclose(features, [[0, expected[1], 0, expected[3], 0]], rtol=1e-6)  # "good" twice counts once
    assert linear.ngrams(["not", "a", "good", "film"], 3) == [
        "not", "a", "good", "film", "not a", "a good", "good film", "not a good", "a good film"
    ]


@pytest.mark.backend_independent
def test_saved_linear_models_predict_the_same_probabilities(tmp_path):
    reviews = data.prepare(imdb.Config(tiny=True, kind="tfidf"))
    for kind in LINEAR_KINDS:
        model, _ = linear.fit(kind, reviews.fit, reviews.validation, linear.DEFAULT_NGRAMS[kind], 2, c=1.0)
        path = model.save(tmp_path / kind)
        loaded = linear.load(path)
        in_memory, from_disk = model.probabilities(reviews.test.tokens), loaded.probabilities(reviews.test.tokens)
        np.testing.assert_array_equal(from_disk, in_memory)
        assert loaded.kind == kind and loaded.vocabulary == model.vocabulary and accuracy(from_disk, reviews.test.labels) >= 0.9


@pytest.mark.backend_independent
def test_predict_and_evaluate_read_the_kind_from_the_run(linear_runs):
    run_dir = linear_runs["nbsvm"]
    result = run_command(MODULE, "predict", "--model", run_dir, "a great and superb film", "...", "awful and dull")
    assert result.returncode == 1  # the review without words is an error; the others are labelled
    assert_one_line_error(result, "review 2", "holds no words")
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["positive", "negative"]
    result = run_command(MODULE, "evaluate", "--model", run_dir / "model.json")
    assert result.returncode == 0, result.stderr
    top = result.stdout[result.stdout.index("weigh most") :].splitlines()[2].split()  # the most positive and most negative
    assert set(top) & set(data.POSITIVE) and set(top) & set(data.NEGATIVE)
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(summary_of(run_dir)["metrics"]["test_accuracy"], abs=1e-9)
    assert (run_dir / "samples" / "top_ngrams.png").stat().st_size > 10_000


@pytest.mark.backend_independent
def test_tampered_or_foreign_model_files_are_refused_without_running_code(linear_runs, tmp_path):
    model_json = json.loads((linear_runs["nbsvm"] / "model.json").read_text())
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    def tampered(name, weights=None, described=None, same_checksum=False):
        folder = tmp_path / name
        shutil.copytree(linear_runs["nbsvm"], folder)
        if weights is not None:
            buffer = io.BytesIO()
            np.savez(buffer, **weights)
            (folder / "model.npz").write_bytes(buffer.getvalue())
            if not same_checksum:
                import hashlib

                described = {**(described or model_json), "weights_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
        if described is not None:
            (folder / "model.json").write_text(json.dumps(described))
        return folder

    with np.load(linear_runs["nbsvm"] / "model.npz") as archive:
        weights = {name: archive[name] for name in archive.files}
    edited = {**weights, "coef": weights["coef"] * -1}
    cases = {
        "edited weights": (tampered("edited", edited, same_checksum=True), "checksum differs"),
        "pickled object": (tampered("pickled", {**weights, "coef": np.array([Payload()], dtype=object)}), "not a weights file"),
        "wrong shape": (tampered("shape", {**weights, "coef": weights["coef"][:-1]}), "shape"),
        "extra array": (tampered("extra", {**weights, "bias": weights["coef"]}), "does not have: bias"),
        "no marker": (tampered("foreign", described={**model_json, "format": "something else"}), "is not a model of the"),
        "duplicate n-grams": (tampered("duplicates", described={**model_json, "vocabulary": ["a"] * len(model_json["vocabulary"])}), "damaged"),
    }
    for name, (folder, fragment) in cases.items():
        before = file_bytes(folder)
        result = run_command(MODULE, "predict", "--model", folder, "a great film")
        assert_one_line_error(result, fragment)
        assert file_bytes(folder) == before, name
    (tmp_path / "notes.json").write_text('{"lr": 0.1}')
    assert_one_line_error(run_command(MODULE, "predict", "--model", tmp_path / "notes.json", "a great film"), "is not a model of the")
    assert not marker.exists()


# --- the ensemble ------------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_ensemble_mixes_its_members_probabilities_with_the_saved_weight(ensemble_run, lstm_run, linear_runs):
    summary, saved = summary_of(ensemble_run), json.loads((ensemble_run / ensemble.FILE).read_text())
    assert saved["kinds"] == ["lstm", "nbsvm"] and saved["weight"] == summary["weight"]
    loaded = predict.trained_model(ensemble_run)
    members = [lstm_run[0] / "model.keras", linear_runs["nbsvm"] / "model.json"]
    assert [member.path.resolve() for member in loaded.members] == [member.resolve() for member in members]
    tokens = [text.tokenize(review) for review in TINY_TEST.texts]
    first, second = (member.probabilities(tokens) for member in loaded.members)
    mixed = summary["weight"] * first + (1 - summary["weight"]) * second
    assert summary["metrics"]["test_accuracy"] == pytest.approx(accuracy(mixed, TINY_TEST.labels), abs=1e-9)
    assert summary["metrics"]["test_loss"] == pytest.approx(imdb.score(TINY_TEST.labels, mixed)["loss"], rel=1e-6)
    np.testing.assert_allclose(loaded.probabilities(tokens), mixed, atol=1e-6)
    result = run_command(MODULE, "evaluate", "--model", ensemble_run)
    assert result.returncode == 0, result.stderr
    assert f"weight {summary['weight']:.2f} on the lstm" in result.stdout


@pytest.mark.backend_independent
def test_ensemble_weight_is_the_most_accurate_on_validation():
    labels = np.ones(4)
    first, second = np.array([0.9, 0.9, 0.9, 0.4]), np.array([0.2, 0.6, 0.6, 0.9])
    # All four right needs w * 0.9 + (1 - w) * 0.2 >= 0.5 (w >= 0.43) and w * 0.4 + (1 - w) * 0.9 >= 0.5 (w <= 0.8)
    weight, validation_accuracy = ensemble.choose_weight(first, second, labels)
    assert validation_accuracy == 1.0 and 0.43 <= weight <= 0.8
    assert ensemble.choose_weight(first, second, 1 - labels)[0] not in np.round(np.arange(0.43, 0.81, 0.01), 2)


@pytest.mark.backend_independent
def test_ensemble_weight_follows_validation_labels_not_test_labels(ensemble_run, lstm_run, linear_runs, tmp_path, monkeypatch):
    real_prepare, weights = data.prepare, {}
    for part in ("test", "validation"):
        def flipped(config, part=part):
            reviews = real_prepare(config)
            getattr(reviews, part).labels = 1 - getattr(reviews, part).labels
            return reviews

        monkeypatch.setattr(data, "prepare", flipped)
        train_ok("--kind", "ensemble", "--members", lstm_run[0], linear_runs["nbsvm"], "--no-final-test", "--out", tmp_path / part)
        weights[part] = summary_of(tmp_path / part)["weight"]
    assert weights["test"] == summary_of(ensemble_run)["weight"] != weights["validation"]


@pytest.mark.backend_independent
def test_ensemble_refuses_members_that_split_or_read_reviews_differently(lstm_run, linear_runs, ensemble_run, tmp_path):
    other_seed = tmp_path / "seed1"
    train_ok("--kind", "bow", "--tiny", "--seed", "1", "--out", other_seed)
    other_tokeniser = tmp_path / "tokeniser"
    shutil.copytree(linear_runs["nbsvm"], other_tokeniser)
    saved = json.loads((other_tokeniser / "config.json").read_text())
    saved["resolved"]["tokeniser"] = "whitespace"
    (other_tokeniser / "config.json").write_text(json.dumps(saved))
    cases = (
        ((lstm_run[0], other_seed), "different splits"),
        ((lstm_run[0], other_tokeniser), "different tokenisers"),
        ((lstm_run[0], lstm_run[0] / "model.keras"), "twice"),
        ((lstm_run[0], ensemble_run), "is an ensemble itself"),
    )
    for members, fragment in cases:
        result = run_command(MODULE, "train", "--kind", "ensemble", "--members", *members, "--out", tmp_path / "refused")
        assert_one_line_error(result, fragment)
        assert not (tmp_path / "refused").exists()


# --- bad input and the benchmark ----------------------------------------------------------------


@pytest.mark.backend_independent
def test_settings_of_another_kind_are_refused_in_one_line(tmp_path):
    out = tmp_path / "never"
    cases = (
        (("train", "--kind", "svm"), "invalid choice: 'svm' (choose from 'bow', 'tfidf', 'nbsvm', 'lstm', 'ensemble')"),
        (("train", "--kind", "nbsvm", "--embeddings", "vectors.bin"), "--embeddings applies to the LSTM (--kind lstm), not to --kind nbsvm"),
        (("train", "--kind", "bow", "--mixed-precision", "--epochs", "3"), "--epochs and --mixed-precision apply to the LSTM"),
        (("train", "--kind", "tfidf", "--resume"), "--resume applies to the LSTM"),
        (("tune", "--kind", "nbsvm"), "tune applies to the LSTM"),
        (("train", "--ngrams", "3"), "--ngrams applies to the linear models (--kind bow, tfidf, nbsvm), not to --kind lstm"),
        (("train", "--kind", "ensemble"), "needs --members RUN RUN"),
        (("train", "--kind", "ensemble", "--members", "a", "b", "--seed", "3"), "an ensemble reads its members' reviews and split"),
        (("train", "--kind", "nbsvm", "--val-split", "0"), "chooses its C on the validation split"),
    )
    for args, fragment in cases:
        assert_one_line_error(run_command(MODULE, *args, "--out", out), fragment)
    assert not out.exists()


@pytest.mark.backend_independent
def test_bad_input_on_the_command_line_is_one_line(tmp_path):
    result = run_subprocess("-m", MODULE, "train", "--kind", "nbsvm", "--embeddings", "vectors.bin", "--out", tmp_path / "run")
    assert_one_line_error(result, "--embeddings applies to the LSTM")  # as a user sees it: one line, no traceback
    (tmp_path / "notes.txt").write_text("this is not a vectors file\n")
    result = run_command(MODULE, "train", "--tiny", "--embeddings", tmp_path / "notes.txt", "--out", tmp_path / "run")
    assert_one_line_error(result, "is not a word2vec file")
    assert not (tmp_path / "run").exists()  # no run folder for a run that never started
    (tmp_path / "mine" / "positive").mkdir(parents=True)
    result = run_command(MODULE, "train", "--kind", "bow", "--reviews", tmp_path / "mine", "--out", tmp_path / "run")
    assert_one_line_error(result, "has no pos/ and neg/ folders")


@pytest.mark.backend_independent
def test_bench_trains_every_kind_on_one_split(monkeypatch, tmp_path):
    trained = []

    def fake_train(config):
        trained.append(config)
        return tmp_path / config.kind

    monkeypatch.setattr(bench, "train", fake_train)
    runs_by_kind = bench.train_every_kind({"data_dir": "imdb/"}, {"embeddings": "vectors.bin"})
    assert [config.kind for config in trained] == ["bow", "tfidf", "nbsvm", "lstm", "ensemble"]
    assert all(config.data_dir == "imdb/" for config in trained) and trained[3].embeddings == "vectors.bin"
    assert trained[4].members == [str(tmp_path / "lstm"), str(tmp_path / "nbsvm")]
    assert all(config == imdb.Config(kind=config.kind, data_dir="imdb/") for config in trained[:3])  # default recipes
    assert runs_by_kind == {config.kind: tmp_path / config.kind for config in trained}


@pytest.mark.backend_independent
def test_bench_writes_one_table_of_every_kind(lstm_run, linear_runs, ensemble_run, tmp_path):
    (tmp_path / "README.md").write_text("# results\n<!-- bench:start -->\nold\n<!-- bench:end -->\nafter\n")
    trained = {**linear_runs, "lstm": lstm_run[0], "ensemble": ensemble_run}
    rows = bench.write_results(trained, tmp_path, "Tiny reviews.")
    readme = (tmp_path / "README.md").read_text()
    assert "old" not in readme and readme.endswith("<!-- bench:end -->\nafter\n")
    table = [line.split("|")[1:-1] for line in readme.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [cells[0].strip().split(":")[0] for cells in table] == list(trained)
    for cells, (kind, run_dir) in zip(table, trained.items()):
        assert cells[1].strip() == f"{summary_of(run_dir)['metrics']['test_accuracy'] * 100:.2f}%", kind
    sizes = {  # model.keras and vocabulary.txt; model.json and model.npz
        kind: sum(path.stat().st_size for path in [*run_dir.glob("model.*"), *run_dir.glob("vocabulary.txt")])
        for kind, run_dir in trained.items() if kind != "ensemble"
    }
    assert {row["kind"]: row["bytes"] for row in rows if row["kind"] != "ensemble"} == sizes
    assert rows[-1]["bytes"] == sizes["lstm"] + sizes["nbsvm"] + (ensemble_run / ensemble.FILE).stat().st_size
    assert all(row["reviews per second"] > 0 and row["test reviews"] == 200 for row in rows)
    for picture in ("kinds.png", "top_ngrams.png", "test_results.png"):
        assert (tmp_path / "assets" / picture).stat().st_size > 10_000


@pytest.mark.backend_independent
def test_bench_starts_from_the_newest_default_word2vec_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "RUNS_DIR", tmp_path)
    assert bench.newest_word2vec_run() is None
    kinds = {
        "default": ({"engine": "keras"}, {}),
        "gensim": ({"engine": "gensim"}, {}),
        "tiny": ({"engine": "keras"}, {"tiny": True}),
        "own_corpus": ({"engine": "keras"}, {"corpus": "my_texts/"}),
        "no_vectors": ({"engine": "keras"}, {}),
    }
    for age, (name, (summary, config)) in enumerate(kinds.items()):
        run_dir = tmp_path / "word2vec" / name
        runs.write_json(run_dir / "config.json", {"config": config})
        if name != "no_vectors":
            (run_dir / "vectors.bin").write_bytes(b"")
        os.utime(runs.write_json(run_dir / "summary.json", summary), (1000 + age, 1000 + age))
    assert bench.newest_word2vec_run() == tmp_path / "word2vec" / "default"
