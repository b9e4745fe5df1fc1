"""word2vec on tiny corpora: the example generator, the model, both engines, export, the bench table and bad input."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import text, word2vec_format
from common.errors import UserError
from conftest import assert_one_line_error
from projects.word2vec import bench, data, train, vectors


def corpus_of(documents, min_count=1, window=2):
    vocabulary = data.build_vocabulary(documents, min_count)
    return vocabulary, data.encode(documents, vocabulary, window)


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


def test_the_model_averages_exactly_the_context_it_is_given():
    from projects.word2vec.model import context_mask

    bounds = np.array([[[0, 3], [2, 2], [1, 0]]], np.int32)  # block of 3 in a span of 5 (window 1)
    mask = np.asarray(context_mask(bounds, 5))
    np.testing.assert_array_equal(mask[0], [[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])


@pytest.mark.backend_independent
def test_negatives_follow_the_unigram_distribution_to_the_power_three_quarters():
    counts = np.array([1000, 300, 100, 10], np.int64)
    table = data.negative_table(counts)
    draws = table[np.random.default_rng(0).integers(0, len(table), 200_000)]
    expected = counts**0.75 / (counts**0.75).sum()
    observed = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(observed, expected, atol=0.005)


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


def test_loss_skips_a_negative_equal_to_its_centre_and_slots_without_context():
    from projects.word2vec.model import negative_sampling_loss

    scores = np.zeros((1, 2, 3), np.float32)  # one block of 2 centres, each with 2 negatives of its own
    centres = np.array([[1, 5]])
    log2 = np.log(2.0)
    both = np.array([[True, True]])
    distinct = np.array([[[2, 3], [6, 7]]])
    assert float(negative_sampling_loss(scores, centres, distinct, both, 2)) == pytest.approx(3 * log2, rel=1e-5)
    clash = np.array([[[1, 3], [6, 7]]])  # the first centre drew itself once
    assert float(negative_sampling_loss(scores, centres, clash, both, 2)) == pytest.approx(2.5 * log2, rel=1e-5)
    assert float(negative_sampling_loss(scores, centres, distinct, np.array([[True, False]]), 2)) == pytest.approx(1.5 * log2, rel=1e-5)
    shared = np.zeros((1, 2, 5), np.float32)  # 4 negatives shared by the block, each counted 2 / 4
    assert float(negative_sampling_loss(shared, centres, np.array([[[2, 3, 4, 6]]]), both, 2)) == pytest.approx(3 * log2, rel=1e-5)


def planted_similarity(word_vectors, topics=6, words=8):
    """Mean cosine between words of the same topic, and between words of different topics."""
    names = [f"t{t}w{w}" for t in range(topics) for w in range(words)]
    unit = word_vectors[names] / np.linalg.norm(word_vectors[names], axis=1, keepdims=True)
    cosine = unit @ unit.T
    topic = np.repeat(np.arange(topics), words)
    same = (topic[:, None] == topic[None, :]) & ~np.eye(len(names), dtype=bool)
    return cosine[same].mean(), cosine[topic[:, None] != topic[None, :]].mean()


def test_keras_engine_learns_a_planted_structure(tmp_path):
    documents = data.tokenize_documents(data.planted_documents(seed=1))
    config = train.Config(tiny=True, epochs=4, batch_size=4, sample=0, min_count=1)
    word_vectors, timing = train.train_keras(config, documents, tmp_path)
    within, across = planted_similarity(word_vectors)
    assert within > across + 0.3, (within, across)
    assert timing.words == 4 * 24_000 and timing.samples_per_second > 0


def test_the_tiny_word2vec_run_learns_its_planted_structure(tmp_path):
    """`train --tiny` as a user types it (its own recipe, not the IMDB one, whose 4,096-centre steps diverge on
    52 words): the loss falls, and the planted words' nearest neighbours are mostly words of their own topic."""
    from projects.word2vec.__main__ import main

    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        main(["train", "--tiny", "--out", str(run_dir)])
    assert exited.value.code == 0
    losses = pd.read_csv(run_dir / "metrics.csv")["loss"]
    assert losses.iloc[-1] < losses.iloc[0] < 5, list(losses)  # 6 log 2 = 4.2 at the start, when every score is 0
    word_vectors = word2vec_format.load(run_dir / "vectors.bin")
    topics, per_topic, top = 6, 8, 7
    same = []
    for t in range(topics):
        for w in range(per_topic):
            found = [n for n, _ in word_vectors.most_similar(f"t{t}w{w}", topn=top)]
            same.append(np.mean([n.startswith(f"t{t}w") for n in found]))
    chance = (per_topic - 1) / (len(word_vectors) - 1)  # 7 topic mates among the 51 other words
    assert np.mean(same) > max(0.8, 4 * chance), (np.mean(same), chance)


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
    assert (tmp_path / "projector" / "metadata.tsv").read_text().split("\n")[:5] == words
    assert np.loadtxt(tmp_path / "projector" / "vectors.tsv", delimiter="\t").shape == (5, 7)


@pytest.mark.parametrize("engine", [pytest.param("gensim", marks=pytest.mark.backend_independent), "keras"])
def test_both_engines_train_export_and_evaluate_from_the_command_line(cli, tmp_path, engine):
    run_dir = tmp_path / "run"
    result = cli("projects.word2vec", "train", "--tiny", "--engine", engine, "--epochs", "2", "--batch-size", "16",
                 "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("vectors.txt", "vectors.bin", "projector/vectors.tsv", "samples/neighbours.png", "summary.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["engine"] == engine and summary["vocabulary"] == 52 and summary["train_samples_per_second"] > 0
    result = cli("projects.word2vec", "neighbours", "--vectors", run_dir, "t0w1", "--top", "3")
    assert result.returncode == 0 and result.stdout.startswith("t0w1: "), result.stderr[-2000:]
    result = cli("projects.word2vec", "neighbours", "--vectors", run_dir, "nosuchword")
    assert_one_line_error(result, "not in the vocabulary: nosuchword")


@pytest.mark.backend_independent
def test_neighbours_lists_the_known_words_and_warns_about_the_others(tmp_path, capsys):
    from projects.word2vec.__main__ import main

    def neighbours(*args):
        with pytest.raises(SystemExit) as exited:
            main(["neighbours", "--vectors", str(path), *args])
        out, err = capsys.readouterr()
        return exited.value.code, out, err.splitlines()

    path = tmp_path / "vectors.txt"
    vectors.export(vectors.keyed_vectors(["good", "bad", "film"], np.eye(3, dtype=np.float32) + 0.1), tmp_path)
    before = path.read_bytes()
    status, out, err = neighbours("good", "nosuchword", "film", "--top", "2")
    assert status == 1 and [line.split(":")[0] for line in out.splitlines()] == ["good", "film"], (status, out)
    assert err == ["warning: nosuchword: not in the vocabulary; skipped"]
    assert neighbours("nosuchword", "other") == (2, "", ["error: not in the vocabulary: nosuchword, other"])
    for top in ("0", "-5", "two"):
        status, out, err = neighbours("good", "--top", top)
        assert status == 2 and out == "" and len(err) == 1 and err[0].startswith("error: argument --top: "), err
    assert path.read_bytes() == before


@pytest.mark.backend_independent
def test_resume_refuses_another_projects_run_and_leaves_it_untouched(cli, tmp_path):
    run_dir = tmp_path / "captcha-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"project": "captcha", "config": {}}))
    (run_dir / "metrics.csv").write_text("epoch,loss\n0,1.5\n")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    result = cli("projects.word2vec", "train", "--resume", run_dir)
    assert_one_line_error(result, str(run_dir), "captcha run, not a word2vec one")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


@pytest.mark.backend_independent
def test_corpus_files_bad_bytes_and_too_small(tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("the film was great\nthe plot was thin\n")
    (folder / "b.txt").write_bytes(b"caf\xe9 au lait and the film")
    texts = text.read_documents(folder)
    assert len(texts) == 2 and "\ufffd" in texts[1]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "not UTF-8" in warnings[0], warnings
    (tmp_path / "empty.txt").write_text("  \n<br />\n")
    with pytest.raises(UserError, match="no words"):
        data.tokenize_documents(text.read_documents(tmp_path / "empty.txt"))
    with pytest.raises(UserError, match="smaller than"):
        corpus_of([["just", "three", "words"]], window=5)


@pytest.mark.backend_independent
def test_bad_corpus_is_one_line_on_the_command_line(cli, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert_one_line_error(cli("projects.word2vec", "train", "--corpus", empty), "no words")
    assert_one_line_error(cli("projects.word2vec", "train", "--corpus", tmp_path / "missing"), "does not exist")
    assert_one_line_error(cli("projects.word2vec", "evaluate", "--vectors", empty), "not a word2vec")


@pytest.mark.backend_independent
def test_unsupported_flags_are_refused_in_one_line(cli):
    for unsupported in ("--distribute", "--mixed-precision"):
        assert_one_line_error(cli("projects.word2vec", "train", "--tiny", unsupported), "unrecognized arguments", unsupported)


@pytest.mark.backend_independent
def test_bench_table_compares_each_engine_with_gensim():
    def summary(analogy, wordsim, speed):
        return {
            "metrics": {"analogy_accuracy": analogy, "wordsim353_spearman": wordsim, "simlex999_spearman": 0.25},
            "train_seconds": 63.4, "train_samples_per_second": speed, "corpus_words": 17_553_694, "vocabulary": 50_509,
            "epochs": 5, "device": "CPU", "backend": "tensorflow", "neighbours": {"great": [["wonderful", 0.8], ["fine", 0.7]]},
        }

    text = bench.results(
        {"gensim": (Path("runs/word2vec/1"), summary(0.2, 0.4, 1_000_000.0)),
         "keras": (Path("runs/word2vec/2"), summary(0.1, 0.3, 500_000.0))},
        "4.4.0",
    )
    lines = text.splitlines()
    assert lines[0].startswith("Corpus: 17,553,694 words, vocabulary 50,509; 5 epochs; CPU;") and "gensim 4.4.0" in lines[0]
    assert lines[2] == ("| engine | analogy accuracy | WordSim353 Spearman | SimLex-999 Spearman | training time "
                        "| corpus words/s | run |")
    assert lines[3] == "|---|---|---|---|---|---|---|"
    assert lines[4] == "| gensim | 0.200 (100%) | 0.400 (100%) | 0.250 | 63 s | 1,000,000 (100%) | `1` |"
    assert lines[5] == "| keras | 0.100 (50%) | 0.300 (75%) | 0.250 | 63 s | 500,000 (50%) | `2` |"
    assert lines[-1] == "Nearest neighbours (Keras engine): *great*: wonderful, fine"
