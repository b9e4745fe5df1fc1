"""The Tang-poetry writer end to end on a tiny generated corpus whose second lines all start with 明.

One tiny model is trained per module and shared. The tests check that it learns the
planted regularity, that the NumPy decoder computes what the Keras model computes,
that constrained decoding always gives the exact form and ends, acrostics, the
n-gram baseline's probabilities, deduplication before the split, reproducible
generation after save and load, resuming a crashed run, and one-line errors.
"""

import json
import re

import keras
import numpy as np
import pandas as pd
import pytest

from common import runs
from helpers import assert_one_line_error, run_command
from projects.tang_poetry import data, generate, ngram, rhyme
from projects.tang_poetry.model import Stepper, perplexity

POETRY = "projects.tang_poetry"
EPOCHS = 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run: its folder."""
    run_dir = tmp_path_factory.mktemp("tang") / "run"
    result = run_command(POETRY, "train", "--tiny", "--epochs", EPOCHS, "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def loaded(trained):
    return generate.load(trained)


@pytest.fixture(scope="module")
def tiny():
    corpus = data.prepare(data.tiny_corpus(0))
    return corpus, data.Vocabulary.build(corpus.train, 100)


def test_model_learns_that_the_second_line_starts_with_the_planted_character(loaded, tiny):
    corpus, _ = tiny
    x, y, _ = data.sequences(corpus.validation, loaded.vocabulary, 25)
    p = keras.ops.convert_to_numpy(loaded.model.predict(x, verbose=0))
    planted = loaded.vocabulary.ids[data.PLANTED]
    # Position 6 reads the comma after the first line; the next character opens line two.
    assert (y[:, 6] == planted).all()
    assert (p[:, 6].argmax(axis=1) == planted).all()
    assert p[:, 6, planted].mean() > 0.8
    # Elsewhere in a line the planted character is one of ~28 equally likely ones.
    assert p[:, 8, planted].mean() < 0.2


def test_validation_perplexity_is_reported_and_matches_the_model(trained, loaded, tiny):
    corpus, _ = tiny
    metrics = pd.read_csv(trained / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(EPOCHS))
    summary = json.loads((trained / "summary.json").read_text())
    x, y, _ = data.sequences(corpus.validation, loaded.vocabulary, 25)
    # Computed here from the model's probabilities of the characters alone (not ， 。 or END).
    p = keras.ops.convert_to_numpy(loaded.model.predict(x, verbose=0))
    keep = (y != data.PAD) & ~np.isin(y, data.FORCED)
    expected = float(np.exp(-np.log(np.take_along_axis(p, y[..., None], -1)[..., 0][keep]).mean()))
    assert summary["metrics"]["val_perplexity"] == pytest.approx(expected, rel=1e-4)
    assert perplexity(loaded.model, x, y) == pytest.approx(expected, rel=1e-4)
    # 19 of a poem's 20 characters are drawn from 28: a model that learned the corpus is near 28^(19/20) = 23.7.
    assert expected < 26 and metrics["val_perplexity"].iloc[-1] < metrics["val_perplexity"].iloc[0]
    # The metric logged during training, at the epoch whose weights were kept (the lowest validation loss).
    assert metrics.loc[metrics["val_loss"].idxmin(), "val_perplexity"] == pytest.approx(expected, rel=1e-4)


def test_decoder_carrying_the_state_computes_what_the_model_computes(loaded, tiny):
    corpus, _ = tiny
    x, _, _ = data.sequences(corpus.test[:3], loaded.vocabulary, 25)
    expected = keras.ops.convert_to_numpy(loaded.model.predict(x, verbose=0))
    stepper = Stepper(loaded.model)
    stepper.reset(len(x))
    for position in range(x.shape[1]):
        np.testing.assert_allclose(stepper.step(x[:, position]), expected[:, position], atol=2e-5)


@pytest.mark.parametrize("form", list(data.FORMS))
def test_constrained_decoding_always_gives_the_exact_form_and_ends(loaded, form):
    length, count = data.FORMS[form]
    vocabulary = loaded.vocabulary
    poems = generate.write(Stepper(loaded.model), len(vocabulary), 16, form, temperature=3.0, seed=1)
    pattern = "".join(f"[^，。]{{{length}}}" + ("，" if line % 2 == 0 else "。") for line in range(count))
    for ids in poems:
        assert data.END not in ids and data.UNKNOWN not in ids and data.START not in ids
        assert re.fullmatch(pattern, vocabulary.decode(ids)), vocabulary.decode(ids)
    assert len({tuple(ids) for ids in poems}) == len(poems)


def test_free_poems_always_end(loaded):
    vocabulary = loaded.vocabulary
    poems = generate.write(Stepper(loaded.model), len(vocabulary), 16, "free", temperature=2.0, seed=2, max_tokens=12)
    for ids in poems:
        assert 1 <= len(ids) <= 11
        text = generate.as_text(ids, vocabulary)
        assert text.endswith("。") and "，，" not in text and not text.startswith(("，", "。"))


def test_rhyme_steers_the_even_lines_into_one_rhyme_group(loaded):
    vocabulary = loaded.vocabulary
    groups = generate.rhyme_groups(vocabulary)
    write = lambda rhyme_groups: [vocabulary.decode(ids) for ids in generate.write(
        Stepper(loaded.model), len(vocabulary), 40, "5-lushi", temperature=1.5, seed=4, rhyme_groups=rhyme_groups)]
    assert rhyme.share(write(groups)) == 1.0
    assert rhyme.share(write(None)) < 0.2  # the tiny corpus's characters are drawn at random: four even lines rarely rhyme
    assert rhyme.rhymes("床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。")
    assert not rhyme.rhymes("白日依山盡，黃河入海流。欲窮千里目，更上一層天。")


def test_acrostic_lines_start_with_the_given_characters(trained):
    result = run_command(POETRY, "generate", "--model", trained, "--form", "7-jueju", "--acrostic", "春夏秋冬", "--n", "3",
                         "--temperature", "2")
    assert result.returncode == 0, result.stderr
    poems = result.stdout.split("\n\n")[:3]
    for poem in poems:
        lines = re.split("[，。]", poem.replace("\n", ""))[:-1]
        assert [line[0] for line in lines] == list("春夏秋冬") and all(len(line) == 7 for line in lines), poem
    saved = sorted((trained / "samples").glob("poems-*.txt"))[-1].read_text()
    assert saved == "\n\n".join(poems) + "\n"


def test_prefix_and_start_are_kept_and_simplified_characters_are_converted(trained):
    result = run_command(POETRY, "generate", "--model", trained, "--prefix", "山水風", "--n", "2")
    assert result.returncode == 0, result.stderr
    assert all(poem.startswith("山水風") for poem in result.stdout.split("\n\n")[:2])
    result = run_command(POETRY, "generate", "--model", trained, "--start", "风云", "--n", "2", "--form", "5-lushi")
    assert result.returncode == 0, result.stderr
    assert [poem[0] for poem in result.stdout.split("\n\n")[:2]] == ["風", "雲"]
    assert "风 read as 風" in result.stderr


@pytest.mark.backend_independent
def test_an_ambiguous_simplified_character_becomes_the_traditional_one_the_model_finds_likelier(capsys):
    # 发 stands for 發 (to send) and 髮 (hair); 云 for 雲 and 云, of which only 雲 is known here.
    vocabulary = data.Vocabulary(list(data.SPECIAL) + ["發", "髮", "雲"])
    for likelier, other in (("發", "髮"), ("髮", "發")):
        likelihood = np.zeros(len(vocabulary))
        likelihood[[vocabulary.ids[likelier], vocabulary.ids[other]]] = 0.6, 0.4
        ids = generate.known_ids("发云", vocabulary, "traditional", "--start", likelihood)
        assert ids == [vocabulary.ids[likelier], vocabulary.ids["雲"]]
        assert f"发 read as {likelier} (the likelier" in capsys.readouterr().err


def test_save_load_generate_gives_the_same_poems_for_a_seed(trained, loaded, tmp_path):
    resaved = runs.save_model(loaded.model, tmp_path / "model.keras", "tang_poetry")
    reloaded = runs.load_model(resaved, "tang_poetry")
    write = lambda model, seed: generate.write(Stepper(model), len(loaded.vocabulary), 4, "5-lushi", seed=seed)
    assert write(reloaded, 7) == write(loaded.model, 7)
    assert write(reloaded, 8) != write(loaded.model, 7)
    first, second = (run_command(POETRY, "generate", "--model", trained, "--seed", "5") for _ in range(2))
    assert first.returncode == 0 and first.stdout.split("\n\n")[:4] == second.stdout.split("\n\n")[:4]


def test_evaluate_beats_the_ngram_model_on_the_test_poems(trained, loaded, tiny):
    result = run_command(POETRY, "evaluate", "--model", trained)
    assert result.returncode == 0, result.stderr
    report = json.loads((trained / "evaluation.json").read_text())
    corpus, _ = tiny
    x, y, _ = data.sequences(corpus.test, loaded.vocabulary, 25)
    assert report["lstm_perplexity"] == pytest.approx(perplexity(loaded.model, x, y), rel=1e-6)
    # The n-gram figure, recomputed here from a model of the order evaluate chose.
    encode = lambda poems: [loaded.vocabulary.encode(p) for p in poems]
    baseline = ngram.KneserNey(report["ngram_order"], len(loaded.vocabulary)).fit(encode(corpus.train))
    assert report["ngram_perplexity"] == pytest.approx(baseline.perplexity(encode(corpus.test)))
    assert report["lstm_perplexity"] < 0.9 * report["ngram_perplexity"]


@pytest.mark.backend_independent
@pytest.mark.parametrize("order", [3, 4, 5])
def test_ngram_probabilities_over_the_vocabulary_sum_to_one(tiny, order):
    corpus, vocabulary = tiny
    model = ngram.KneserNey(order, len(vocabulary)).fit([vocabulary.encode(p) for p in corpus.train])
    seen = vocabulary.encode(corpus.train[0])[:7]
    unseen = [vocabulary.ids["明"]] * 4  # a context never seen: the model backs off
    for context in ([], seen, unseen, [data.UNKNOWN, data.UNKNOWN]):
        p = model.distribution(context)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        assert p[data.PAD] == p[data.START] == 0 and (np.delete(p, [data.PAD, data.START]) > 0).all()
        assert [model.probability(context, t) for t in range(len(vocabulary))] == pytest.approx(list(p), abs=1e-15)
    # After a first line's comma the planted character is the likeliest next one.
    assert model.distribution(seen).argmax() == vocabulary.ids[data.PLANTED]


@pytest.mark.backend_independent
def test_sampling_follows_temperature_top_k_and_top_p():
    p = np.array([[0.5, 0.3, 0.15, 0.05]] * 4000)
    allowed = np.array([True, True, True, True])
    share = lambda drawn: np.bincount(drawn, minlength=4) / len(drawn)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(share(generate.sample(p, allowed, 1.0, 0, 1.0, rng)), p[0], atol=0.03)
    assert (generate.sample(p, allowed, 1.0, 1, 1.0, rng) == 0).all()
    assert set(generate.sample(p, allowed, 1.0, 2, 1.0, rng)) == {0, 1}
    assert set(generate.sample(p, allowed, 1.0, 0, 0.8, rng)) == {0, 1}  # 0.5 + 0.3 hold 0.8 of the probability
    cold = p[0] ** 2 / (p[0] ** 2).sum()  # temperature 0.5 squares the probabilities
    np.testing.assert_allclose(share(generate.sample(p, allowed, 0.5, 0, 1.0, rng)), cold, atol=0.03)
    assert (generate.sample(p, np.array([False, False, True, True]), 1.0, 1, 1.0, rng) == 2).all()


@pytest.mark.backend_independent
def test_kneser_ney_matches_a_hand_computed_bigram():
    # Sequences (START a b END), (START a a END): ids a=6, b=7; vocabulary of 8 ids, 6 of them predictable.
    model = ngram.KneserNey(2, 8).fit([[2, 6, 7, 3], [2, 6, 6, 3]])
    # Bigrams: (START a) twice, (a b), (b END), (a a), (a END) once: D2 = n1 / (n1 + 2 n2) = 4 / (4 + 2).
    # After a: a, b and END once each (total 3, 3 kinds).
    d2 = 4 / 6
    # Continuation counts (distinct left neighbours): a {START, a} 2, b {a} 1, END {a, b} 2; total 5, 3 kinds; D1 = 1/(1+2*2) = 0.2.
    d1 = 0.2
    unigram_b = (1 - d1) / 5 + d1 * 3 / 5 / 6
    assert model.probability([6], 7) == pytest.approx((1 - d2) / 3 + d2 * 3 / 3 * unigram_b)
    assert model.discounts[1:] == pytest.approx([d1, d2])


@pytest.mark.backend_independent
def test_duplicates_are_removed_before_the_split():
    poems = data.tiny_corpus(3, count=60)
    repeated = poems[0]
    # The same poem again, under another author's name in the collection: other punctuation and a note.
    variants = [repeated, repeated.replace("，", "、"), repeated[:5] + "（一作春）" + repeated[5:]] * 4
    corpus = data.prepare(poems + variants, min_count=1)
    parts = corpus.train + corpus.validation + corpus.test
    assert corpus.counts["duplicates"] == len(variants)
    assert sum(p == repeated for p in parts) == 1
    assert len(parts) == len(set(parts)) == 60
    assert (len(corpus.train), len(corpus.validation), len(corpus.test)) == (54, 3, 3)
    # Seeded: the same seed gives the same split, another seed another one.
    assert data.prepare(poems, min_count=1).test == data.prepare(poems, min_count=1).test
    assert data.prepare(poems, min_count=1, seed=1).test != data.prepare(poems, min_count=1).test


@pytest.mark.backend_independent
def test_cleaning_normalises_punctuation_recognises_forms_and_counts_what_it_leaves_out():
    assert data.clean_text("白日依山盡,黃河入海流;欲窮千里目!更上一層樓") == "白日依山盡，黃河入海流，欲窮千里目。更上一層樓。"
    assert data.clean_text("[爽]節在重九，物華新雨餘。") == "爽節在重九，物華新雨餘。"
    assert data.clean_text("秦川雄帝□，函谷壯皇居。") is None
    assert data.form_of("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。") == "5-jueju"
    assert data.form_of("一二三四五六七，一二三四五六七。" * 4) == "7-lushi"
    assert data.form_of("白日依山盡，黃河入海。") == "free"
    texts = ["春江花月夜，山水風雲天。"] * 2 + ["春江花月夜，山水風雲□。", "春江花月夜，山水風雲鼇。"]
    counts = data.prepare(texts).counts
    assert (counts["odd_characters"], counts["rare_characters"], counts["duplicates"], counts["kept"]) == (1, 1, 1, 1)
    assert counts["forms"]["free"] == 1
    assert data.prepare(["秦川雄帝宅，函谷壯皇居。"] * 2, script="simplified").train == ["秦川雄帝宅，函谷壮皇居。"]


@pytest.mark.backend_independent
def test_user_corpora_text_and_json_and_their_errors(tmp_path, capsys):
    text_file = tmp_path / "poems.txt"
    text_file.write_bytes("春江花月夜，山水風雲天。\n".encode() + b"\xff\xfe bad\n")
    assert data.read_corpus(text_file)[0] == "春江花月夜，山水風雲天。"
    assert capsys.readouterr().err.count("warning:") == 1
    folder = tmp_path / "json"
    folder.mkdir()
    (folder / "poet.tang.0.json").write_text(json.dumps([{"author": "x", "paragraphs": ["秦川雄帝宅，", "函谷壯皇居。"]}]))
    assert data.read_corpus(folder) == ["秦川雄帝宅，函谷壯皇居。"]
    (folder / "other.json").write_text(json.dumps({"poems": []}))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    for source, fragment in ((folder, "is not a list of poems"), (empty, "holds no poems")):
        result = run_command(POETRY, "train", "--poems", source, "--out", tmp_path / "run")
        assert_one_line_error(result, fragment)
    result = run_command(POETRY, "train", "--data-dir", tmp_path, "--out", tmp_path / "run")
    assert_one_line_error(result, "chinese-poetry-tang.tar.gz", "github.com/chinese-poetry")
    assert not (tmp_path / "run").exists()


@pytest.mark.backend_independent
def test_bad_generate_flags_are_one_line_errors(trained):
    for flags, fragment in (
        (("--temperature", "0"), "--temperature"),
        (("--top-p", "1.5"), "--top-p"),
        (("--n", "0"), "--n"),
        (("--acrostic", "春夏秋"), "4 lines"),
        (("--form", "7-lushi", "--acrostic", "春夏秋冬"), "8 lines"),
        (("--prefix", "山水風雲天月"), "does not fit"),
        (("--prefix", "山水", "--acrostic", "春夏秋冬"), "--prefix and --acrostic"),
        (("--prefix", "山水", "--start", "春"), "leave out --start"),
        (("--start", "我"), "does not know the character 我"),
        (("--form", "free", "--rhyme"), "--rhyme needs a regulated --form"),
        (("--acrostic", "春夏秋我"), "does not know the character 我"),
    ):
        assert_one_line_error(run_command(POETRY, "generate", "--model", trained, *flags), fragment)


class Crash(Exception):
    """A training process dying at a known step, without any of its own clean-up."""


@pytest.mark.backend_independent  # Keras' BackupAndRestore works alike on both backends; JAX trains and reloads above
def test_resume_after_a_crashed_run_continues_it(tmp_path, monkeypatch):
    # Checkpoints: Keras' BackupAndRestore in backup/, every 3 training steps (an epoch has 14) and at each epoch's
    # end. The crash lands right after step 4 of epoch 1 was reported to the callbacks (after any backup of that step).
    # It is raised in this process: the mnist tests kill `model.fit` with SIGKILL, which leaves the same backup.
    run_dir, at = tmp_path / "run", {}
    epoch_begin, batch_end = keras.callbacks.CallbackList.on_epoch_begin, keras.callbacks.CallbackList.on_train_batch_end

    def note_the_epoch(self, epoch, logs=None):
        at["epoch"] = epoch
        epoch_begin(self, epoch, logs)

    def crash_at_step_4_of_epoch_1(self, index, logs=None):
        batch_end(self, index, logs)
        if (at["epoch"], index) == (1, 4):
            raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.CallbackList, "on_epoch_begin", note_the_epoch)
        patch.setattr(keras.callbacks.CallbackList, "on_train_batch_end", crash_at_step_4_of_epoch_1)
        with pytest.raises(Crash):
            run_command(POETRY, "train", "--tiny", "--epochs", "2", "--out", run_dir)
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [0]
    assert not (run_dir / "model.keras").exists() and not (run_dir / "summary.json").exists()
    backup = json.loads((run_dir / "backup" / "training_metadata.json").read_text())
    assert backup["epoch"] == 1 and 0 <= backup["batch"] <= 4
    result = run_command(POETRY, "train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {run_dir}" in result.stdout
    assert list(pd.read_csv(run_dir / "metrics.csv")["epoch"]) == [0, 1]
    # Restored after 14 steps and those of epoch 1 up to the backup, then epoch 1 run whole again. From scratch: 28.
    restored = 14 + backup["batch"] + 1
    assert int(keras.saving.load_model(run_dir / "model.keras").optimizer.iterations) == restored + 14
    assert json.loads((run_dir / "summary.json").read_text())["resumed"] is True
