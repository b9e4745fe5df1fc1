"""The IMDB sentiment LSTM end to end on tiny generated reviews, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors

from common import runs, text, word2vec_format
from common.cli import run_commands
from common.errors import UserError
from conftest import ROOT, assert_one_line_error
from projects.imdb_lstm import __main__ as imdb_cli
from projects.imdb_lstm import data
from projects.imdb_lstm import train as imdb
from projects.imdb_lstm.model import MaskedGlobalMaxPooling1D

TINY = ["--tiny", "--units", "16", "--batch-size", "32", "--lr", "1e-2"]


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


def run_with_stdin(stdin, *args):
    """`python -m <args>` with bytes on standard input."""
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)], cwd=ROOT, input=stdin, capture_output=True, timeout=300
    )


def run_imdb(*argv):
    """`python -m projects.imdb_lstm ...` in this process (no second start-up); returns the exit status."""
    with pytest.raises(SystemExit) as exit:
        run_commands("python -m projects.imdb_lstm", "", imdb_cli.COMMANDS, [str(a) for a in argv])
    return exit.value.code


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run, started from word vectors, shared by the tests that need a trained model."""
    from conftest import run_cli

    folder = tmp_path_factory.mktemp("imdb")
    vectors = write_vectors(folder / "vectors.txt")
    result = run_cli("projects.imdb_lstm", "train", *TINY, "--epochs", "3", "--embeddings", vectors, "--out", folder / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "run", result


def test_train_from_word_vectors_writes_a_complete_run_and_learns(trained):
    run_dir, result = trained
    for name in ("config.json", "metrics.csv", "model.keras", "best.keras", "vocabulary.txt", "summary.json", "samples/test_results.png"):
        assert (run_dir / name).exists(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
    assert summary["test_reviews"] == 200 and summary["train_reviews"] == 720
    assert summary["metrics"]["test_accuracy"] > 0.8, summary["metrics"]
    assert 0 < summary["embedding_coverage"] < 1  # the rare "name123" words have no vector
    assert "have a word vector" in result.stdout
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["embedding_dim"] is None  # as asked: the settings are not rewritten ...
    assert saved["resolved"]["embedding_dim"] == 8  # ... the dimension taken from the file is recorded beside them
    assert saved["resolved"]["embeddings"] == str(run_dir.parent / "vectors.txt")
    assert runs.run_config(run_dir / "model.keras", "resolved")["vocabulary"] == summary["vocabulary"]
    vocabulary = (run_dir / "vocabulary.txt").read_text().split("\n")
    assert len(vocabulary) - 1 == summary["vocabulary"] and "great" in vocabulary
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2] and metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert not (run_dir / "backup").exists()


@pytest.mark.backend_independent
def test_evaluate_scores_the_test_set_again(trained, cli):
    run_dir, _ = trained
    result = cli("projects.imdb_lstm", "evaluate", "--model", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    for fragment in ("accuracy", "precision", "recall", "F1", "confusion matrix"):
        assert fragment in result.stdout
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert evaluation["reviews"] == 200 and sum(map(sum, evaluation["confusion"])) == 200
    assert evaluation["accuracy"] == pytest.approx(summary["metrics"]["test_accuracy"], abs=1e-9)
    assert (run_dir / "samples" / "evaluation.png").exists()


@pytest.mark.backend_independent
def test_predict_reads_arguments_files_and_stdin(trained, tmp_path):
    run_dir, _ = trained
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"a superb caf\xe9 scene and a wonderful story\n")
    long_review = " ".join(["the film"] * 50_000 + ["great"])  # 100,001 words
    stdin = "\n".join(["!!! ... ???", "zzz qqq xyzzy \udcff", long_review]).encode(errors="surrogateescape")
    result = run_with_stdin(
        stdin, "projects.imdb_lstm", "predict", "--model", run_dir, "great superb wonderful film",
        "awful boring terrible worst", "-", "--file", latin1,
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 1, stderr[-3000:]  # one review held no words; the others were read
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "holds no words" in errors[0] and "!!!" in errors[0]
    assert "file(s) held bytes that are not UTF-8" in stderr and "standard input held bytes that are not UTF-8" in stderr
    assert "carries no information" in stderr and "xyzzy" in stderr
    lines = [line.split("\t") for line in stdout.strip().splitlines()]
    assert len(lines) == 5
    assert all(label in data.LABELS and 0.5 <= float(p) <= 1 for label, p, _ in lines)
    by_text = {excerpt.split()[0]: label for label, _, excerpt in lines}
    assert by_text["great"] == "positive" and by_text["awful"] == "negative" and by_text["a"] == "positive"


@pytest.mark.backend_independent
def test_commands_refuse_another_projects_model(tmp_path, capsys):
    import keras

    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    digits = runs.save_model(classifier, tmp_path / "digits.keras", "mnist_cnn")  # no vocabulary.txt: the model is the problem
    before = digits.read_bytes()
    for command, *flags in (("predict", "a great film"), ("evaluate", "--tiny")):
        assert run_imdb(command, "--model", digits, *flags) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: {digits} is a mnist_cnn model, not an imdb_lstm one; use it with python -m projects.mnist_cnn"
        ]
    assert digits.read_bytes() == before and sorted(tmp_path.iterdir()) == [digits]


def test_a_padded_review_scores_as_it_does_alone(trained):
    run_dir, _ = trained
    model = runs.load_model(run_dir / "model.keras", "imdb_lstm")
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
    np.testing.assert_allclose(np.asarray(pooled), [[-2.0, 1.0]])


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
        assert all((row[: n] > 0).all() and (row[n:] == 0).all() for row, n in zip(x, lengths))  # padding at the end
        np.testing.assert_array_equal(y, labels[chosen])
        first_epoch.extend(chosen.tolist())
    assert sorted(first_epoch) == list(range(500))
    assert batches[0][0].shape[1] != batches[1][0].shape[1]  # keeps the input length free on TensorFlow
    batches.on_epoch_end()
    assert sorted(np.concatenate(batches.batches).tolist()) == list(range(500))
    assert np.concatenate(batches.batches).tolist() != first_epoch  # a new order every epoch


@pytest.mark.backend_independent
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own, when it backs up TensorFlow variables
def test_own_folder_of_reviews_trains_from_random_vectors(tmp_path, capsys):
    folder = tmp_path / "mine"
    split = data.tiny_split(300, seed=3)
    for index, (review, label) in enumerate(zip(split.texts, split.labels)):
        (folder / data.LABELS[label][:3]).mkdir(parents=True, exist_ok=True)
        (folder / data.LABELS[label][:3] / f"{index}.txt").write_text(review)
    (folder / "pos" / "latin1.txt").write_bytes(b"a great caf\xe9")
    (folder / "neg" / "empty.txt").write_text("<br /> ... ")
    config = imdb.Config(reviews=str(folder), epochs=2, units=8, batch_size=32, lr=1e-2, out=str(tmp_path / "run"))
    run_dir = imdb.train(config)
    assert run_dir == tmp_path / "run"
    errors = capsys.readouterr().err
    assert "warning: 1 file(s) held bytes that are not UTF-8" in errors  # the latin-1 review, read all the same
    assert "warning: left out 1 of the" in errors  # the review without words
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["embeddings"] is None and summary["test_reviews"] in (59, 60)  # 20% of 302 held out, less the empty one
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["resolved"]["embedding_dim"] == 100 and saved["config"]["reviews"] == str(folder)
    assert config.embedding_dim is None and config.out == str(tmp_path / "run")  # the Config is not written to
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]


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


@pytest.mark.backend_independent
def test_bad_input_on_the_command_line_is_one_line(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("this is not a vectors file\n")
    result = cli("projects.imdb_lstm", "train", "--tiny", "--embeddings", tmp_path / "notes.txt", "--out", tmp_path / "run")
    assert_one_line_error(result, "is not a word2vec file")
    assert not (tmp_path / "run").exists()  # no run folder for a run that never started
    (tmp_path / "mine" / "positive").mkdir(parents=True)
    result = cli("projects.imdb_lstm", "train", "--reviews", tmp_path / "mine", "--out", tmp_path / "run")
    assert_one_line_error(result, "has no pos/ and neg/ folders")


@pytest.mark.backend_independent
def test_bench_starts_from_the_newest_default_word2vec_run(tmp_path, monkeypatch):
    from projects.imdb_lstm import bench

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
