"""word2vec on tiny corpora: the example generator, one training step by hand, a tiny run (interrupted and
resumed) that must learn its planted topics, gensim's engine, export, the commands, the bench table and bad input."""

import contextlib
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import text, word2vec_format
from common.errors import UserError
from helpers import assert_one_line_error, run_command
from projects.word2vec import bench, data, train, vectors
from projects.word2vec.model import build_model, negative_sampling_loss

TOPICS, PER_TOPIC = 6, 8  # the tiny planted corpus: word "t3w5" is word 5 of topic 3, plus 4 filler words
PLANTED = [f"t{t}w{w}" for t in range(TOPICS) for w in range(PER_TOPIC)]


def corpus_of(documents, min_count=1, window=2):
    vocabulary = data.build_vocabulary(documents, min_count)
    return vocabulary, data.encode(documents, vocabulary, window)


def assert_planted_topics_learned(word_vectors, top=7):
    """Each planted word's `top` nearest neighbours (by cosine, computed here) are mostly of its own topic, and
    words of one topic point the same way, unlike words of different topics (not all vectors alike)."""
    words = word_vectors.index_to_key
    unit = word_vectors[words] / np.linalg.norm(word_vectors[words], axis=1, keepdims=True)
    cosine = unit @ unit.T
    topic = [w.split("w")[0] if w in PLANTED else "filler" for w in words]  # "t3" for "t3w5"
    shares, within, across = [], [], []
    for i, word in enumerate(words):
        if word not in PLANTED:
            continue
        others = [j for j in range(len(words)) if j != i]
        nearest = sorted(others, key=lambda j: -cosine[i, j])[:top]
        shares.append(np.mean([topic[j] == topic[i] for j in nearest]))
        within += [cosine[i, j] for j in others if topic[j] == topic[i]]
        across += [cosine[i, j] for j in others if words[j] in PLANTED and topic[j] != topic[i]]
    chance = (PER_TOPIC - 1) / (len(words) - 1)  # 7 topic mates among the 51 other words
    assert np.mean(shares) > max(0.9, 6 * chance), np.mean(shares)
    assert np.mean(within) > np.mean(across) + 0.5, (np.mean(within), np.mean(across))


def neighbours_line(word_vectors, word, top):
    """What `neighbours` should print for `word`: its nearest words by cosine, computed here."""
    others = [w for w in word_vectors.index_to_key if w != word]
    vector = word_vectors[word]
    cosines = [float(vector @ word_vectors[w] / np.linalg.norm(vector) / np.linalg.norm(word_vectors[w])) for w in others]
    order = np.argsort(cosines)[::-1][:top]
    return f"{word}: " + ", ".join(f"{others[i]} ({cosines[i]:.2f})" for i in order)


# --- the examples -----------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_tokenizer_strips_html_and_lowercases():
    assert text.tokenize("A <br /><br />GREAT film, isn't it? 10/10 'quoted'") == [
        "a", "great", "film", "isn't", "it", "10", "10", "quoted"
    ]


@pytest.mark.backend_independent
def test_contexts_stay_inside_window_and_document_and_leave_out_the_centre():
    # Every word distinct, so a context word equal to its centre could only be the centre itself.
    documents = [[f"w{i}" for i in range(start, start + 30)] for start in (0, 30, 60)]
    vocabulary, corpus = corpus_of(documents)
    window, block = 3, 8
    position = {vocabulary.index[f"w{i}"]: i for i in range(90)}  # id -> position in the corpus
    blocks = data.cbow_blocks(
        corpus.ids, corpus.document, np.ones(len(vocabulary)), window, data.negative_table(vocabulary.counts, 1000),
        np.random.default_rng(0), negatives=4, shared=0, block=block,
    )
    assert blocks["words"].shape == (12, block + 2 * window) and blocks["context"].shape == (12, block, 2)
    assert blocks["negatives"].shape == (12, block, 4)
    reaches, centres = [], []
    for words, bounds in zip(blocks["words"], blocks["context"]):
        for i, (first, last) in enumerate(bounds):
            if first > last:
                continue  # filler after the last centre
            centre = position[words[window + i]]
            centres.append(centre)
            context = [position[words[c]] for c in range(first, last + 1) if c != window + i]
            assert context, "every centre has some context"
            assert centre not in context
            assert all(abs(w - centre) <= window for w in context)
            assert all(w // 30 == centre // 30 for w in context), "no context across documents"
            reaches.append(max(abs(w - centre) for w in context))
    assert sorted(centres) == list(range(90))
    assert set(reaches) == {1, 2, 3}, "the reach is drawn anew per centre"


@pytest.mark.backend_independent
def test_negatives_follow_the_unigram_distribution_to_the_power_three_quarters():
    counts = np.array([1000, 300, 100, 10], np.int64)
    size = 100_000
    table = data.negative_table(counts, size)
    expected = counts**0.75 / (counts**0.75).sum()
    # Each word fills its share of the table, give or take one entry.
    np.testing.assert_allclose(np.bincount(table, minlength=4) / size, expected, atol=1 / size)
    assert np.all(np.diff(table) >= 0) and table.dtype == np.int32


@pytest.mark.backend_independent
def test_subsampling_keeps_frequent_words_less_often():
    counts = np.array([100_000, 1_000, 10], np.int64)
    keep = data.keep_probabilities(counts, 1e-3)
    threshold = 1e-3 * counts.sum()
    assert keep[0] == pytest.approx((np.sqrt(counts[0] / threshold) + 1) * threshold / counts[0])
    assert keep[0] < keep[1] and keep[2] == 1.0
    assert np.all(data.keep_probabilities(counts, 0) == 1)
    ids = np.zeros(50_000, np.int32)
    blocks = data.cbow_blocks(ids, np.zeros_like(ids), keep, 2, np.zeros(10, np.int32), np.random.default_rng(0), block=10)
    centres = (blocks["context"][..., 1] >= blocks["context"][..., 0]).sum()  # filler slots have first > last
    assert abs(centres / len(ids) - keep[0]) < 0.01


# --- the model's math -------------------------------------------------------------------------


def test_loss_skips_a_negative_equal_to_its_centre_and_slots_without_context():
    def loss(*args):
        return float(keras.ops.convert_to_numpy(negative_sampling_loss(*args)))

    scores = np.zeros((1, 2, 3), np.float32)  # one block of 2 centres, each with 2 negatives of its own
    centres = np.array([[1, 5]])
    log2 = np.log(2.0)
    both = np.array([[True, True]])
    distinct = np.array([[[2, 3], [6, 7]]])
    assert loss(scores, centres, distinct, both, 2) == pytest.approx(3 * log2, rel=1e-5)
    clash = np.array([[[1, 3], [6, 7]]])  # the first centre drew itself once
    assert loss(scores, centres, clash, both, 2) == pytest.approx(2.5 * log2, rel=1e-5)
    assert loss(scores, centres, distinct, np.array([[True, False]]), 2) == pytest.approx(1.5 * log2, rel=1e-5)
    shared = np.zeros((1, 2, 5), np.float32)  # 4 negatives shared by the block, each counted 2 / 4
    assert loss(shared, centres, np.array([[[2, 3, 4, 6]]]), both, 2) == pytest.approx(3 * log2, rel=1e-5)


def word2vec_step(input_vectors, output_vectors, block, negative, lr):
    """word2vec.c's CBOW update for each centre of `block`, summed: the tables after one step of the Keras model,
    and the loss, the mean over the block's centres."""
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    words, bounds, negatives = block["words"][0], block["context"][0], block["negatives"][0]
    window = (len(words) - len(bounds)) // 2
    new_input, new_output = input_vectors.copy(), output_vectors.copy()
    loss = 0.0
    for i, (first, last) in enumerate(bounds):
        context = [words[c] for c in range(first, last + 1) if c != window + i]
        if not context:
            continue
        centre = words[window + i]
        mean = input_vectors[context].mean(axis=0)
        drawn = negatives if negatives.ndim == 1 else negatives[i]
        weight = negative / len(drawn)  # shared negatives each count negative / (how many are shared)
        error = np.zeros_like(mean)
        for word, label, scale in [(centre, 1, 1.0)] + [(n, 0, weight) for n in drawn if n != centre]:
            score = mean @ output_vectors[word]
            loss -= scale * np.log(sigmoid(score if label else -score))
            g = scale * (label - sigmoid(score))
            error += g * output_vectors[word]
            new_output[word] += lr * g * mean
        for word in context:  # each context word gets the whole error of the mean, as word2vec.c does
            new_input[word] += lr * error
    return new_input, new_output, loss / len(bounds)


@pytest.mark.parametrize("shared", [0, 4], ids=["own negatives", "shared negatives"])
def test_one_training_step_is_word2vecs_update_summed_over_the_centres(shared):
    vocabulary, dimensions, window, negative, lr = 12, 4, 2, 3, 0.05
    rng = np.random.default_rng(3)
    ids = rng.integers(0, vocabulary, data.BLOCK).astype(np.int32)
    document = np.repeat(np.arange(3, dtype=np.int32), [15, 1, 16])  # word 15 is a document alone: no context
    block = data.cbow_blocks(ids, document, np.ones(vocabulary), window, np.arange(vocabulary, dtype=np.int32), rng,
                             negatives=negative, shared=shared)
    assert block["words"].shape == (1, data.BLOCK + 2 * window)
    config = train.Config(batch_size=1, lr=lr, min_lr=lr / 10, vector_size=dimensions, window=window,
                          negative=negative, shared_negatives=shared)
    model = build_model(vocabulary, config, total_steps=100)
    input_vectors = rng.normal(0, 0.5, (vocabulary, dimensions)).astype(np.float32)
    output_vectors = rng.normal(0, 0.5, (vocabulary, dimensions)).astype(np.float32)
    model.word_vectors.embeddings.assign(input_vectors)
    model.output_vectors.embeddings.assign(output_vectors)

    history = model.fit(block, batch_size=1, epochs=1, shuffle=False, verbose=0)

    expected_input, expected_output, expected_loss = word2vec_step(input_vectors, output_vectors, block, negative, lr)
    assert history.history["loss"] == [pytest.approx(expected_loss, rel=1e-5)]
    assert not np.allclose(expected_input, input_vectors, atol=1e-3)  # the step moves the vectors
    np.testing.assert_allclose(model.vectors(), expected_input, atol=2e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.copy(model.output_vectors.embeddings)), expected_output,
                               atol=2e-5)


# --- a tiny Keras run, interrupted and resumed ------------------------------------------------


@contextlib.contextmanager
def ctrl_c_at(epoch, batch):
    """Ctrl-C (KeyboardInterrupt) once training step `batch` of `epoch` (both from 0) has been reported to the callbacks."""
    callbacks, where = keras.callbacks.CallbackList, {}
    epoch_begin, batch_end = callbacks.on_epoch_begin, callbacks.on_train_batch_end

    def on_epoch_begin(self, number, logs=None):
        where["epoch"] = number
        epoch_begin(self, number, logs)

    def on_train_batch_end(self, index, logs=None):
        batch_end(self, index, logs)
        if (where.get("epoch"), index) == (epoch, batch):
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callbacks, "on_epoch_begin", on_epoch_begin)
        patch.setattr(callbacks, "on_train_batch_end", on_train_batch_end)
        yield


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`train --tiny` as a user types it (5 epochs of 25 steps), stopped with Ctrl-C in its second epoch,
    then `train --resume`: the run the tests below read.

    Keras reports steps 8 at a time (steps_per_execution); the backup is saved every 6 steps reported
    and at each epoch's end. Ctrl-C lands right after the report of epoch 1's first 8 steps, after
    their backup: the resumed run reloads those weights and runs epoch 1 again from its start.
    """
    run_dir = tmp_path_factory.mktemp("word2vec") / "run"
    with ctrl_c_at(epoch=1, batch=7):
        stopped = run_command("projects.word2vec", "train", "--tiny", "--out", run_dir)
    when_stopped = {
        "epochs": list(pd.read_csv(run_dir / "metrics.csv")["epoch"]),
        "backup": sorted(p.name for p in (run_dir / "backup").glob("*")),
        "files": sorted(p.name for p in run_dir.iterdir()),
    }
    resumed = run_command("projects.word2vec", "train", "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return run_dir, stopped, when_stopped, resumed


def test_a_tiny_run_stopped_with_ctrl_c_resumes_from_its_backup(tiny_run):
    run_dir, stopped, when_stopped, resumed = tiny_run
    assert stopped.returncode == 130 and stopped.stderr.splitlines()[-1] == "interrupted; continue with --resume"
    assert when_stopped["epochs"] == [0] and when_stopped["backup"], when_stopped
    assert "summary.json" not in when_stopped["files"] and "vectors.bin" not in when_stopped["files"]
    assert f"resuming {run_dir}" in resumed.stdout
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2, 3, 4], "epoch 0 is not run again"
    # From fresh weights the second epoch would start over from 6 log 2 (4.2); from the backup it goes on from the first.
    assert metrics["loss"][1] < metrics["loss"][0] - 0.5 and metrics["loss"][0] < 6 * np.log(2), list(metrics["loss"])
    assert not (run_dir / "backup").exists(), "the backup goes once the run finishes"
    assert json.loads((run_dir / "summary.json").read_text())["resumed"] is True


def test_the_tiny_run_learns_its_planted_topics(tiny_run):
    """Its own recipe, not the IMDB one (whose 4,096-centre steps diverge on 52 words)."""
    assert_planted_topics_learned(word2vec_format.load(tiny_run[0] / "vectors.bin"))


def test_the_run_exports_vectors_that_reload_alike_and_summarises_itself(tiny_run):
    run_dir = tiny_run[0]
    binary, txt = word2vec_format.load(run_dir / "vectors.bin"), word2vec_format.load(run_dir / "vectors.txt")
    assert len(binary) == 52 and binary.vector_size == 100 and binary.index_to_key == txt.index_to_key
    assert set(binary.index_to_key) == set(PLANTED) | {f"the{i}" for i in range(4)}
    np.testing.assert_allclose(txt.vectors, binary.vectors, atol=1e-5)
    np.testing.assert_allclose(np.loadtxt(run_dir / "projector" / "vectors.tsv", delimiter="\t"), binary.vectors, atol=1e-5)
    assert (run_dir / "projector" / "metadata.tsv").read_text().splitlines() == binary.index_to_key
    with Image.open(run_dir / "samples" / "neighbours.png") as image:
        assert image.format == "PNG" and min(image.size) > 100

    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["engine"], summary["vocabulary"], summary["corpus_words"], summary["epochs"]) == ("keras", 52, 24_000, 5)
    # Corpus words per second of training, as gensim counts them: every word of the corpus, every epoch trained
    # (by the resumed run: epochs 1 to 4).
    seconds = summary["train_seconds"]
    assert summary["train_samples_per_second"] == pytest.approx(4 * 24_000 / seconds, rel=0.06 / seconds + 1e-3)
    # No probe word is in the tiny corpus: the summary lists the most frequent words' neighbours instead.
    expected = {w: [n for n, _ in binary.most_similar(w, topn=5)] for w in binary.index_to_key[:4]}
    assert {w: [n for n, _ in found] for w, found in summary["neighbours"].items()} == expected


@pytest.mark.backend_independent
def test_neighbours_and_evaluate_read_the_trained_run(tiny_run):
    run_dir = tiny_run[0]
    word_vectors = word2vec_format.load(run_dir / "vectors.bin")
    result = run_command("projects.word2vec", "neighbours", "--vectors", run_dir, "t0w1", "--top", "3")
    assert result.returncode == 0 and result.stdout.splitlines() == [neighbours_line(word_vectors, "t0w1", 3)], result
    assert all(found.startswith("t0w") for found in result.stdout.split(": ")[1].split(", ")), result.stdout
    assert_one_line_error(run_command("projects.word2vec", "neighbours", "--vectors", run_dir, "nosuchword"),
                          "not in the vocabulary: nosuchword")

    result = run_command("projects.word2vec", "evaluate", "--vectors", run_dir, "--probe", "t2w3")
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[0] == f"{run_dir / 'vectors.bin'}: 52 words, 100 dimensions", result
    # None of the benchmarks' words is in the tiny corpus: no score, rather than a score of 0.
    assert lines[1] == "analogy accuracy nan; Spearman: WordSim353 nan, SimLex-999 nan"
    assert lines[2] == "  " + neighbours_line(word_vectors, "t2w3", 5)


# --- gensim's engine, export, the commands ----------------------------------------------------


@pytest.mark.backend_independent
def test_gensim_engine_learns_the_planted_topics_from_the_command_line(tmp_path):
    run_dir = tmp_path / "run"
    result = run_command("projects.word2vec", "train", "--tiny", "--engine", "gensim", "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["engine"], summary["vocabulary"], summary["corpus_words"]) == ("gensim", 52, 24_000)
    word_vectors = word2vec_format.load(run_dir / "vectors.bin")
    assert word_vectors.vector_size == 100
    assert_planted_topics_learned(word_vectors)
    assert (run_dir / "projector" / "metadata.tsv").read_text().splitlines() == word_vectors.index_to_key


@pytest.mark.backend_independent
def test_export_round_trips_through_gensim(tmp_path):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "don't", "café"]
    original = vectors.keyed_vectors(words, rng.normal(size=(5, 7)).astype(np.float32))
    vectors.export(original, tmp_path)
    for name in ("vectors.txt", "vectors.bin"):
        loaded = word2vec_format.load(tmp_path / name)
        assert loaded.index_to_key == words
        np.testing.assert_allclose(loaded[words], original[words], atol=1e-5)
    assert (tmp_path / "projector" / "metadata.tsv").read_text(encoding="utf-8") == "\n".join(words) + "\n"
    projected = np.loadtxt(tmp_path / "projector" / "vectors.tsv", delimiter="\t")
    np.testing.assert_allclose(projected, original[words], atol=1e-5)
    vectors.export(original, tmp_path / "few", projector_words=3)  # the projector gets the first (most frequent) words
    assert (tmp_path / "few" / "projector" / "metadata.tsv").read_text().splitlines() == words[:3]
    assert np.loadtxt(tmp_path / "few" / "projector" / "vectors.tsv", delimiter="\t").shape == (3, 7)


@pytest.mark.backend_independent
def test_scores_count_only_the_benchmark_questions_the_vocabulary_can_answer():
    # With just the four words of one analogy question, the fourth is the only possible answer: always right.
    question = vectors.keyed_vectors(["athens", "greece", "baghdad", "iraq"], np.eye(4, dtype=np.float32))
    scores = vectors.scores(question)
    assert scores["analogy_accuracy"] == 1.0
    assert np.isnan(scores["wordsim353_spearman"]) and scores["wordsim353_oov_percent"] == 100.0
    unknown = vectors.scores(vectors.keyed_vectors(["t0w0", "t0w1", "the0"], np.eye(3, dtype=np.float32)))
    assert all(np.isnan(unknown[k]) for k in ("analogy_accuracy", "wordsim353_spearman", "simlex999_spearman")), unknown


@pytest.mark.backend_independent
def test_neighbours_lists_the_known_words_and_warns_about_the_others(tmp_path):
    def neighbours(*args):
        result = run_command("projects.word2vec", "neighbours", "--vectors", path, *args)
        return result.returncode, result.stdout, result.stderr.splitlines()

    words = ["good", "great", "bad", "film"]
    matrix = np.array([[1, 0.1, 0], [0.9, 0.3, 0.1], [-1, 0.2, 0], [0.1, 0, 1]], np.float32)
    vectors.export(vectors.keyed_vectors(words, matrix), tmp_path)
    path = tmp_path / "vectors.txt"
    word_vectors = word2vec_format.load(path)
    before = path.read_bytes()
    status, out, err = neighbours("good", "nosuchword", "FILM", "--top", "2")
    assert status == 1 and out.splitlines() == [neighbours_line(word_vectors, w, 2) for w in ("good", "film")], (status, out)
    assert out.startswith("good: great (0.97), film"), out
    assert err == ["warning: nosuchword: not in the vocabulary; skipped"]
    assert neighbours("nosuchword", "other") == (2, "", ["error: not in the vocabulary: nosuchword, other"])
    for top in ("0", "-5", "two"):
        status, out, err = neighbours("good", "--top", top)
        assert status == 2 and out == "" and len(err) == 1 and err[0].startswith("error: argument --top: "), err
    assert path.read_bytes() == before


@pytest.mark.backend_independent
def test_resume_refuses_another_projects_run_and_leaves_it_untouched(tmp_path):
    run_dir = tmp_path / "captcha-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"project": "captcha", "config": {}}))
    (run_dir / "metrics.csv").write_text("epoch,loss\n0,1.5\n")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    result = run_command("projects.word2vec", "train", "--resume", run_dir)
    assert_one_line_error(result, str(run_dir), "captcha run, not a word2vec one")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_corpus_files_bad_bytes_and_too_small(tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("the film was great\nthe plot was thin\n")
    (folder / "b.txt").write_bytes(b"caf\xe9 au lait and the film")
    assert text.read_documents(folder) == ["the film was great\nthe plot was thin\n", "caf\ufffd au lait and the film"]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: 1 file(s) held bytes that are not UTF-8 (e.g. {folder / 'b.txt'}); they were decoded with U+FFFD in their place"
    ]
    (tmp_path / "empty.txt").write_text("  \n<br />\n")
    with pytest.raises(UserError, match="no words"):
        data.tokenize_documents(text.read_documents(tmp_path / "empty.txt"))
    with pytest.raises(UserError, match="holds 3 words of the vocabulary, smaller than one window"):
        corpus_of([["just", "three", "words"]], window=5)


@pytest.mark.backend_independent
def test_bad_corpus_is_one_line_on_the_command_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = run_command("projects.word2vec", "train", "--corpus", empty, "--out", tmp_path / "run")
    assert (result.returncode, result.stderr) == (2, "error: the corpus holds no words\n"), result.stderr[-3000:]  # that line alone
    result = run_command("projects.word2vec", "train", "--corpus", tmp_path / "missing", "--out", tmp_path / "run")
    assert_one_line_error(result, f"{tmp_path / 'missing'} does not exist")
    assert_one_line_error(run_command("projects.word2vec", "evaluate", "--vectors", empty), "not a word2vec")
    assert not (tmp_path / "run").exists(), "no run folder for a corpus that cannot be read"


@pytest.mark.backend_independent
def test_unsupported_flags_are_refused_in_one_line():
    result = run_command("projects.word2vec", "train", "--tiny", "--mixed-precision")
    assert_one_line_error(result, "unrecognized arguments", "--mixed-precision")
    assert result.returncode == 2
    result = run_command("projects.word2vec", "train", "--tiny", "--engine", "gensim", "--distribute")
    assert_one_line_error(result, "--distribute trains the Keras engine")


# --- the bench table ----------------------------------------------------------------------------


@pytest.mark.backend_independent
def test_bench_table_compares_each_engine_with_gensim():
    def summary(analogy, wordsim, speed):
        return {
            "metrics": {"analogy_accuracy": analogy, "wordsim353_spearman": wordsim, "simlex999_spearman": 0.25},
            "train_seconds": 63.4, "train_samples_per_second": speed, "corpus_words": 17_553_694, "vocabulary": 50_509,
            "epochs": 5, "device": "CPU", "backend": "tensorflow", "neighbours": {"great": [["wonderful", 0.8], ["fine", 0.7]]},
        }

    table = bench.results(
        {"gensim": (Path("runs/word2vec/1"), summary(0.2, 0.4, 1_000_000.0)),
         "keras": (Path("runs/word2vec/2"), summary(0.1, 0.3, 500_000.0))},
        "4.4.0",
    )
    lines = table.splitlines()
    assert lines[0].startswith("Corpus: 17,553,694 words, vocabulary 50,509; 5 epochs; CPU;") and "gensim 4.4.0" in lines[0]
    assert lines[2] == ("| engine | analogy accuracy | WordSim353 Spearman | SimLex-999 Spearman | training time "
                        "| corpus words/s | run |")
    assert lines[3] == "|---|---|---|---|---|---|---|"
    assert lines[4] == "| gensim | 0.200 (100%) | 0.400 (100%) | 0.250 | 63 s | 1,000,000 (100%) | `1` |"
    assert lines[5] == "| keras | 0.100 (50%) | 0.300 (75%) | 0.250 | 63 s | 500,000 (50%) | `2` |"
    assert lines[-1] == "Nearest neighbours (Keras engine): *great*: wonderful, fine"
