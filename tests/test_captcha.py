"""The captcha reader end to end on tiny generated captchas, as a user runs it.

One tiny run is trained for the whole module, on a task it can learn in seconds:
captchas of one character, "1" or "W". Reading them right (where an untrained
reader reads nothing, and a guess half of them) shows that it learned; the
commands that evaluate, export and predict with it are then checked against the
true texts, not only against each other.
"""

import json
import random

import keras
import numpy as np
import pandas as pd
import pytest
from captcha.image import ImageCaptcha
from PIL import Image

from common import runs
from common.errors import UserError
from helpers import assert_one_line_error, file_bytes, run_command, run_subprocess
from projects.captcha import data, labels
from projects.captcha import train as captcha
from projects.captcha.model import CTCDecoder, build_model, check_fits, decode, sequence_accuracy

ALPHABET = "1W"
EPOCHS = 4
TRAINING = [
    "--tiny", "--alphabet", ALPHABET, "--length", "1", "--input-height", "16", "--rnn-units", "16", "--dropout", "0",
    "--batch-size", "16", "--lr", "0.01", "--epochs", EPOCHS, "--no-mixed-precision",
]
INPUT_SIZE = [43, 16]  # 160x60 captchas scaled to 16 pixels high


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny run the tests that need a trained reader share: (run folder, what training printed)."""
    run_dir = tmp_path_factory.mktemp("captcha") / "run"
    result = run_command("projects.captcha", "train", *TRAINING, "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result.stdout


def captcha_files(folder, texts, size=(160, 60)):
    """Generated captchas saved as a user would have them, named by their text."""
    folder.mkdir(exist_ok=True)
    generator = ImageCaptcha(*size)
    paths = []
    for index, text in enumerate(texts):
        paths.append(folder / f"{text}_{index:04d}.png")
        data.render(generator, text, random.Random(index)).save(paths[-1])
    return paths


def pixels(path):
    return np.asarray(Image.open(path))


def test_train_writes_a_complete_run_and_learns_to_read(trained):
    run_dir, printed = trained
    for name in ("config.json", "metrics.csv", "model.keras", "best.keras", "summary.json", "samples/test_predictions.png"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    assert not (run_dir / "backup").exists()  # removed once the run finished
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["alphabet"] == ALPHABET and saved["config"]["length"] == "1"  # as asked
    assert saved["resolved"] == {"alphabet": ALPHABET, "input_size": INPUT_SIZE, "fonts": []}  # as found
    assert saved["backend"] == keras.backend.backend()

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == keras.backend.backend()
    assert summary["test_captchas"] == data.TINY["test"]
    assert summary["training_captchas"] == EPOCHS * data.TINY["train"]
    # Always reading the same character would score one half; reading nothing, as untrained, none.
    accuracy = summary["metrics"]["test_sequence_accuracy"]
    assert accuracy >= 0.9
    assert summary["metrics"]["test_character_accuracy"] >= accuracy
    assert f"held-out {data.TINY['test']} captchas: full-sequence accuracy {accuracy:.4f}" in printed
    # Throughput leaves out the first epoch, which compiles.
    later = summary["epoch_seconds"][1:]
    assert summary["train_samples_per_second"] == pytest.approx(data.TINY["train"] * len(later) / sum(later), rel=0.01)

    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(EPOCHS))
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0] / 2
    assert metrics["val_sequence_accuracy"].iloc[-1] >= 0.9


def test_each_character_of_a_greedy_reading_gets_the_confidence_of_its_surest_frame():
    from projects.captcha.predict import greedy_characters, softmax

    # Frames: a, a, blank, b, blank, a (classes 1, 1, 0, 2, 0, 1): "aba", the first "a" as sure as the surer of its frames.
    probabilities = np.array([[0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.7, 0.2, 0.1], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05], [0.3, 0.5, 0.2]])
    classes, confidences = greedy_characters(probabilities)
    assert classes == [1, 2, 1] and confidences == pytest.approx([0.8, 0.7, 0.5])
    # On random logits, the same characters as the model's own CTC decoding.
    logits = np.random.default_rng(0).normal(size=(8, 12, 5)).astype(np.float32) * 3
    decoded = np.asarray(keras.ops.convert_to_numpy(decode(logits)[0]))
    for row, probabilities in zip(decoded, softmax(logits)):
        assert greedy_characters(probabilities)[0] == [int(c) for c in row if c > 0]


@pytest.mark.backend_independent
def test_evaluate_reads_the_runs_held_out_set_again(trained, tmp_path):
    run_dir, _ = trained
    model = tmp_path / "model.keras"  # a copy: evaluate writes beside the model, not into the shared run
    model.write_bytes((run_dir / "model.keras").read_bytes())
    (tmp_path / "config.json").write_bytes((run_dir / "config.json").read_bytes())
    result = run_command("projects.captcha", "evaluate", "--model", model)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert evaluation["captchas"] == data.TINY["test"]
    assert evaluation["sequence_accuracy"] == summary["metrics"]["test_sequence_accuracy"]
    assert evaluation["character_accuracy"] == summary["metrics"]["test_character_accuracy"]
    assert f"full-sequence accuracy {evaluation['sequence_accuracy']:.4f}" in result.stdout
    assert f"character accuracy {evaluation['character_accuracy']:.4f}" in result.stdout
    assert "least accurate characters" in result.stdout and "most confused characters" in result.stdout
    # The same captchas, read the same: the picture of the readings is training's, pixel for pixel.
    assert np.array_equal(pixels(tmp_path / "samples" / "evaluation.png"), pixels(run_dir / "samples" / "test_predictions.png"))


@pytest.mark.backend_independent
def test_evaluate_reads_run_folders_saved_before_resolved_settings(trained, tmp_path):
    """An older config.json has no "resolved" part (its alphabet sat among the settings): the same held-out set."""
    run_dir, _ = trained
    saved = json.loads((run_dir / "config.json").read_text())
    older = {key: value for key, value in saved.items() if key != "resolved"}
    (tmp_path / "config.json").write_text(json.dumps(older))
    size = tuple(INPUT_SIZE)
    x_older, texts_older, _ = captcha.held_out_again(tmp_path / "model.keras", ALPHABET, size, count=8)
    x, texts, _ = captcha.held_out_again(run_dir / "model.keras", ALPHABET, size, count=8)
    spec = data.CaptchaSpec(alphabet=ALPHABET, min_length=1, max_length=1, input_size=size)
    x_test, _, texts_test = data.generate(spec, 8, saved["config"]["seed"], data.TEST_STREAM)
    assert texts_older == texts == texts_test
    assert np.array_equal(x_older, x) and np.array_equal(x, x_test)


def test_export_and_predict_read_as_the_trained_model(trained, tmp_path):
    run_dir, _ = trained
    exported = tmp_path / "reader.keras"
    exported.write_bytes(b"an older export")  # replaced: --overwrite says so
    result = run_command("projects.captcha", "export", "--model", run_dir, "--out", exported, "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reads 64 test captchas exactly" in result.stdout
    assert runs.model_owner(exported) == "captcha"

    texts = ["1", "W", "W", "1"]
    paths = captcha_files(tmp_path / "mine", texts)
    (tmp_path / "mine" / "notes.png").write_text("not a picture")
    result = run_command("projects.captcha", "predict", "--model", exported, tmp_path / "mine")
    assert result.returncode == 1  # one file could not be read; the others were
    assert_one_line_error(result, "notes.png", "not a readable image")
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert {path: text for path, text, _ in lines} == {str(path): text for path, text in zip(paths, texts)}
    assert all(float(line[2]) > 0.5 for line in lines)

    # The trained model, from its run folder, reads the same files to the same texts and confidences.
    trained_reads = run_command("projects.captcha", "predict", "--model", run_dir, *(path for path, _, _ in lines))
    assert trained_reads.returncode == 0, trained_reads.stderr[-3000:]
    assert trained_reads.stdout == "".join(f"{path}\t{text}\t{confidence}\n" for path, text, confidence in lines)


@pytest.mark.backend_independent
def test_export_never_replaces_an_existing_file(trained, tmp_path):
    run_dir, _ = trained
    mine = tmp_path / "reader.keras"
    mine.write_bytes(b"my own model")
    result = run_command("projects.captcha", "export", "--model", run_dir, "--out", mine)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {mine} exists; pass --overwrite to replace it"]
    assert mine.read_bytes() == b"my own model"


@pytest.mark.backend_independent
def test_commands_refuse_another_projects_model(tmp_path):
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    digits = runs.save_model(classifier, tmp_path / "digits.keras", "mnist_cnn")
    unmarked = tmp_path / "unmarked.keras"
    classifier.save(unmarked)  # saved by Keras alone: it does not say whose it is
    captchas = captcha_files(tmp_path / "mine", ["1"])
    before = file_bytes(tmp_path)
    for command, *flags in (("predict", captchas[0]), ("evaluate", "--data-dir", tmp_path / "mine"),
                            ("export", "--out", tmp_path / "reader.keras")):
        result = run_command("projects.captcha", command, "--model", digits, *flags)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"error: {digits} is a mnist_cnn model, not a captcha one; use it with python -m projects.mnist_cnn"
        ]
    result = run_command("projects.captcha", "predict", "--model", unmarked, captchas[0])
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {unmarked} is not a captcha reader (it has no 'characters' layer)"]
    assert file_bytes(tmp_path) == before  # no export written, no evaluation.json


@pytest.mark.backend_independent
def test_evaluate_scores_a_folder_without_its_huge_image(trained, tmp_path, monkeypatch):
    run_dir, _ = trained
    model = tmp_path / "model.keras"  # a copy: evaluation.json is written beside it, not into the shared run
    model.write_bytes((run_dir / "model.keras").read_bytes())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15000)  # so that 200x200 stands for 15000x15000
    captcha_files(tmp_path / "mine", ["1", "W", "W"])
    Image.new("L", (200, 200), 255).save(tmp_path / "mine" / "W_huge.png")
    result = run_command("projects.captcha", "evaluate", "--model", model, "--data-dir", tmp_path / "mine")
    assert result.returncode == 1  # the rest scored, one skipped
    assert result.stderr.splitlines() == [
        f"warning: {tmp_path / 'mine' / 'W_huge.png'}: more than 30,000 pixels, too many to open safely; shrink it first; skipped"
    ]
    assert "3 captchas (1 of its files skipped)" in result.stdout
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert evaluation["captchas"] == 3 and evaluation["sequence_accuracy"] == 1.0
    assert evaluation["per_character_accuracy"] == {"1": 1.0, "W": 1.0}


@pytest.mark.backend_independent
def test_count_flag_is_a_whole_number_of_at_least_one():
    for given, reason in (("0", "must be at least 1, got 0"), ("-3", "must be at least 1, got -3"), ("2.5", "'2.5' is not a whole number")):
        result = run_command("projects.captcha", "evaluate", "--count", given)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [f"error: argument --count: {reason} (see python -m projects.captcha evaluate --help)"]
    # As a user sees it, from the command line: that line and nothing else.
    result = run_subprocess("-m", "projects.captcha", "evaluate", "--count", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["error: argument --count: must be at least 1, got 0 (see python -m projects.captcha evaluate --help)"]


# Decoding is checked on one batch of logits (captchas, steps, classes) for alphabet "AB7": class 0 is the
# blank, 1 "A", 2 "B", 3 "7". Its first rows follow a path by a clear margin at every step.
PATHS = {
    "AAB": [1, 1, 0, 1, 2, 2, 0, 0],  # a blank between two A's keeps both; repeats merge
    "B7": [0, 2, 2, 2, 3, 3, 0, 0],
    "": [0] * 8,
    "7A7A": [3, 0, 1, 3, 0, 1, 1, 0],
}
# Its last row: blank is the likeliest class at every step, but over the first three steps "A" is likelier than
# nothing, summed over its paths A--, -A-, --A, AA-, -AA, AAA; the other steps are blank for certain.
UNLIKELY = 1e-9
SPREAD = [0.4, 0.35, 0.25, UNLIKELY]
PROBABILITY_OF_A = 3 * 0.35 * 0.4**2 + 2 * 0.35**2 * 0.4 + 0.35**3
# Labels as training sees them, class indices 0-padded to the longest: "AAB", "B77", "", "7A7A", "A".
LABELS = np.array([[1, 1, 2, 0], [2, 3, 3, 0], [0, 0, 0, 0], [3, 1, 3, 1], [1, 0, 0, 0]], np.int32)


def decoding_batch():
    """The batch's logits and its class probabilities, (captchas, steps, classes) each."""
    probabilities = np.full((len(PATHS) + 1, 8, 4), 1.0)
    probabilities[np.arange(len(PATHS))[:, None], np.arange(8), list(PATHS.values())] = np.exp(3.0)  # logit margin 3
    probabilities[-1] = [SPREAD] * 3 + [[1 - 3 * UNLIKELY, UNLIKELY, UNLIKELY, UNLIKELY]] * 5
    probabilities /= probabilities.sum(axis=-1, keepdims=True)
    return np.log(probabilities).astype(np.float32), probabilities


def label_probability(probabilities, text, alphabet="AB7"):
    """CTC's probability of `text` from per-step class probabilities (steps, classes): the sum over every
    path that collapses to it (the forward algorithm)."""
    extended = [0]  # the label with a blank before, between and after its characters
    for character in text:
        extended += [alphabet.index(character) + 1, 0]
    alpha = np.zeros(len(extended))
    alpha[:2] = probabilities[0, extended[:2]]
    for step in probabilities[1:]:
        before = alpha.copy()
        for s, code in enumerate(extended):
            reached = before[s] + (before[s - 1] if s else 0)
            if s >= 2 and code != 0 and code != extended[s - 2]:  # the blank between two different characters may be skipped
                reached += before[s - 2]
            alpha[s] = reached * step[code]
    return alpha[-1] + (alpha[-2] if text else 0)


class SequenceAccuracy(keras.layers.Layer):
    """Training's accuracy metric as a layer, to compute it compiled, as training does."""

    def call(self, y_true, logits):
        return sequence_accuracy(y_true, logits)


@pytest.fixture(scope="module")
def decodings():
    """The batch decoded greedily and by a beam of 4, in the layer an inference model ends with, and scored
    against LABELS by training's accuracy: {"greedy": (class indices, confidences), "beam": (...), "accuracy": ...}."""
    logits, _ = decoding_batch()
    scores, truth = keras.Input(logits.shape[1:]), keras.Input(LABELS.shape[1:], dtype="int32")
    outputs = {"greedy": CTCDecoder(0)(scores), "beam": CTCDecoder(4)(scores), "accuracy": SequenceAccuracy()(truth, scores)}
    return keras.Model([scores, truth], outputs).predict([logits, LABELS], verbose=0)


def test_greedy_decoding_merges_repeats_and_drops_blanks(decodings):
    codes, confidence = decodings["greedy"]
    _, probabilities = decoding_batch()
    assert codes.shape == probabilities.shape[:2]
    assert labels.decode(codes, "AB7") == [*PATHS, ""]
    for row, text in zip(codes, [*PATHS, ""]):
        assert row[len(text):].max(initial=-1) == -1  # -1 after the end
    assert confidence == pytest.approx(probabilities.max(axis=-1).prod(axis=-1), rel=1e-5)  # the best path's


def test_beam_search_sums_the_paths_of_a_reading_and_finds_what_greedy_misses(decodings):
    codes, confidence = decodings["beam"]
    _, probabilities = decoding_batch()
    best_path = probabilities.max(axis=-1).prod(axis=-1)
    assert labels.decode(codes, "AB7") == [*PATHS, "A"]
    assert codes[-1].tolist() == [1] + [-1] * 7
    # Each reading's confidence sums the paths the beam kept: more than the best one alone, at most all of them.
    every_path = [label_probability(p, text) for p, text in zip(probabilities, PATHS)]
    assert np.all(confidence[:-1] >= best_path[:-1] * (1 - 1e-5)) and np.all(confidence[:-1] <= np.array(every_path) * (1 + 1e-5))
    assert confidence[0] > best_path[0] * 1.2  # "AAB" has many likely paths
    assert label_probability(probabilities[-1], "A") == pytest.approx(PROBABILITY_OF_A, rel=1e-6)
    assert confidence[-1] == pytest.approx(PROBABILITY_OF_A, rel=1e-5)


def test_sequence_accuracy_counts_only_exact_readings(decodings):
    # The batch reads "AAB", "B7", "", "7A7A", "" greedily; its labels are "AAB", "B77", "", "7A7A", "A".
    assert decodings["accuracy"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]


@pytest.mark.backend_independent
def test_score_counts_characters_along_a_minimal_edit_path():
    result = captcha.score(["AB12", "CDE", "77"], ["AB2", "CXE", "77"])
    assert result["sequence_accuracy"] == pytest.approx(1 / 3)
    assert result["character_accuracy"] == pytest.approx(1 - 2 / 9)  # one character missing, one misread, of nine
    assert result["per_character"] == {"1": 0.0, "2": 1.0, "7": 1.0, "A": 1.0, "B": 1.0, "C": 1.0, "D": 0.0, "E": 1.0}
    assert dict(result["confusions"]) == {("1", ""): 1, ("D", "X"): 1}
    assert captcha.align("AB", "ABC") == [("A", "A"), ("B", "B"), ("", "C")]


@pytest.mark.backend_independent
def test_labels_encode_and_decode_with_padding():
    codes = labels.encode(["AB", "BA7B"], "AB7", 6)
    assert codes.tolist() == [[1, 2, 0, 0, 0, 0], [2, 1, 3, 2, 0, 0]]
    assert labels.decode(codes, "AB7") == ["AB", "BA7B"]


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "name, label, problem",
    [
        ("7Z8Y.png", "7Z8Y", None),
        ("7Z8Y_0042.jpg", "7Z8Y", None),
        ("abc12_x_y.PNG", "abc12", None),
        ("_0042.png", "", "an empty label"),
        ("7Z-8Y.png", "7Z-8Y", "characters other than letters and digits"),
        ("7z8y.png", "7z8y", "characters outside the alphabet"),  # case matters once the alphabet is known
    ],
)
def test_labels_come_from_file_names(name, label, problem):
    assert labels.label_from_name(f"some/folder/{name}") == label
    alphabet = labels.DEFAULT_ALPHABET if "outside" in str(problem) else None
    assert labels.label_problem(label, alphabet) == problem


@pytest.mark.backend_independent
def test_lengths_and_settings_are_checked(tmp_path):
    assert labels.parse_length("4") == (4, 4) and labels.parse_length("4-6") == (4, 6)
    for bad in ("x", "6-4", "0", "4-", "4-x"):
        with pytest.raises(UserError, match="--length"):
            captcha.Config(length=bad)
    with pytest.raises(UserError, match="more than once"):
        captcha.Config(alphabet="ABA")
    check_fits((88, 24), 6)  # 11 time steps: 6 characters and a blank between each two
    with pytest.raises(UserError, match="raise --input-height"):
        check_fits((87, 24), 6)
    # Fonts are files: a config only names them, training finds (or refuses) them before any run folder exists.
    config = captcha.Config(fonts="/nowhere/font.ttf", tiny=True, epochs=1, out=str(tmp_path / "run"))
    with pytest.raises(UserError, match="not a readable"):
        captcha.train(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.backend_independent
def test_folder_with_bad_files_is_read_without_them_and_split_for_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15000)  # so that 200x200 stands for 15000x15000
    folder = tmp_path / "mine"
    rng = random.Random(0)
    texts = ["".join(rng.choices("ABC123", k=rng.randint(4, 6))) for _ in range(30)]
    captcha_files(folder, texts)
    captcha_files(folder, ["AB12"], size=(200, 60))  # another size: scaled, with a warning
    Image.new("RGB", (160, 60), "white").save(folder / "AB-12.png")  # not a label
    Image.new("RGB", (160, 60), "white").save(folder / "_0001.png")  # empty label
    (folder / "C123_9999.png").write_bytes(b"\x89PNG truncated")  # unreadable
    Image.new("RGB", (200, 200), "white").save(folder / "CA12_0100.png")  # too many pixels

    found = data.read_folder(folder)
    warnings = capsys.readouterr().err
    assert "skipped 1 of 35 files" in warnings and "characters other than letters and digits" in warnings
    assert "empty label" in warnings
    assert f"warning: {folder / 'C123_9999.png'}: not a readable image" in warnings  # one line per file, with its reason
    assert f"warning: {folder / 'CA12_0100.png'}: more than 30,000 pixels, too many to open safely" in warnings
    assert "1 of the images" in warnings and "are not 160x60 like the others (1 of 200x60)" in warnings
    assert sorted(found.texts) == sorted(texts + ["AB12"]) and found.alphabet == "123ABC" and found.skipped == 4
    assert found.x.shape == (31, 60, 160, 1) and found.x.dtype == np.uint8

    # What training reads: a seeded tenth held out, for validation and the final score.
    config = captcha.Config(data_dir=str(folder), batch_size=14)
    captchas = data.load(config)
    (x_train, y_train), (x_validation, y_validation) = captchas.train, captchas.validation
    x_held_out, texts_held_out = captchas.held_out()
    assert len(x_train) == len(y_train) == 28 and len(x_validation) == len(y_validation) == 3
    assert np.array_equal(x_held_out, x_validation) and texts_held_out == labels.decode(y_validation, "123ABC")
    assert sorted(labels.decode(y_train, "123ABC") + texts_held_out) == sorted(found.texts)
    assert y_train.shape[1] == 6  # padded to the longest label
    assert captchas.resolved() == {"alphabet": "123ABC", "input_size": [160, 60]}  # no fonts: nothing generated
    fit_data, steps, samples = captcha.fit_inputs(captchas.train, config.batch_size, 1)
    assert (steps, samples, fit_data["batch_size"]) == (2, 28, 14) and fit_data["x"] is x_train
    # 20 time steps for up to 6 characters; 6 characters and the blank.
    assert build_model(config, (60, 160, 1), captchas.alphabet).output_shape == (None, 20, 7)


@pytest.mark.backend_independent
def test_folder_without_usable_captchas_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_command("projects.captcha", "train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run")
    assert_one_line_error(result, "holds no images")
    assert not (tmp_path / "run").exists()  # no run folder for a run that never started
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("L", (160, 60), 255).save(bad / "_.png")
    (bad / "ABCD.png").write_text("not a picture")
    with pytest.raises(UserError, match="no usable labelled captchas"):
        data.read_folder(bad)
