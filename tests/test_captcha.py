"""The captcha reader end to end on tiny generated captchas, as a user runs it."""

import json
import os
import random

import keras
import numpy as np
import pandas as pd
import pytest
from captcha.image import ImageCaptcha
from PIL import Image

from common import runs
from common.cli import run_commands
from common.errors import UserError
from conftest import assert_one_line_error
from projects.captcha import __main__ as captcha_cli
from projects.captcha import data, labels, predict
from projects.captcha import train as captcha
from projects.captcha.model import alphabet_of, check_fits, decode, model_input_size, reader

# Variable length (4 to 6 characters) throughout: the fixed-length default is the special case.
TINY = ["--tiny", "--batch-size", "32", "--length", "4-6"]


def run_captcha(*argv):
    """`python -m projects.captcha ...` in this process (no second start-up); returns the exit status."""
    with pytest.raises(SystemExit) as exit:
        run_commands("python -m projects.captcha", "", captcha_cli.COMMANDS, [str(a) for a in argv])
    return exit.value.code


def file_bytes(folder):
    """Every file under `folder` and its bytes, to show that a command changed none of them."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the tests that need a trained model."""
    from conftest import run_cli

    run_dir = tmp_path_factory.mktemp("captcha") / "run"
    result = run_cli("projects.captcha", "train", *TINY, "--epochs", "3", "--out", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def captcha_files(folder, texts, size=(160, 60), suffix=".png"):
    """Generated captchas saved as a user would have them, named by their text."""
    folder.mkdir(exist_ok=True)
    generator = ImageCaptcha(*size)
    paths = []
    for index, text in enumerate(texts):
        paths.append(folder / f"{text}_{index:04d}{suffix}")
        data.render(generator, text, random.Random(index)).save(paths[-1])
    return paths


def read_files(model, paths):
    """What a model reads from image files, in this process."""
    size = model_input_size(model)
    x = np.stack([data.prepare(Image.open(path), size) for path in paths])
    return predict.read(reader(model), x, alphabet_of(model))


def test_train_writes_a_complete_run_and_learns(trained):
    run_dir, result = trained
    for name in ("config.json", "metrics.csv", "model.keras", "best.keras", "summary.json", "samples/test_predictions.png"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
    assert summary["test_captchas"] == data.TINY["test"]
    assert 0 <= summary["metrics"]["test_sequence_accuracy"] <= summary["metrics"]["test_character_accuracy"] + 1e-9
    assert summary["inference_captchas_per_second"] > 0 and summary["train_samples_per_second"] > 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["alphabet"] is None and saved["config"]["length"] == "4-6"  # as asked
    assert saved["resolved"] == {"alphabet": labels.DEFAULT_ALPHABET, "input_size": [160, 60], "fonts": []}  # as found
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [0, 1, 2]
    assert metrics["loss"].iloc[-1] < metrics["loss"].iloc[0]
    assert "val_sequence_accuracy" in metrics
    assert not (run_dir / "backup").exists()  # removed once the run finished


@pytest.mark.backend_independent
def test_evaluate_scores_the_held_out_set_again(trained, cli):
    run_dir, _ = trained
    result = cli("projects.captcha", "evaluate", "--model", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    for fragment in ("full-sequence accuracy", "character accuracy", "least accurate characters", "most confused characters"):
        assert fragment in result.stdout
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert evaluation["captchas"] == data.TINY["test"]
    assert evaluation["sequence_accuracy"] == pytest.approx(summary["metrics"]["test_sequence_accuracy"], abs=1e-9)
    assert evaluation["character_accuracy"] == pytest.approx(summary["metrics"]["test_character_accuracy"], abs=1e-9)
    assert (run_dir / "samples" / "evaluation.png").exists()


@pytest.mark.backend_independent
def test_evaluate_reads_run_folders_saved_before_resolved_settings(trained, tmp_path):
    """An older config.json has no "resolved" part (its alphabet sat among the settings): the same held-out set."""
    run_dir, _ = trained
    saved = json.loads((run_dir / "config.json").read_text())
    older = {key: value for key, value in saved.items() if key != "resolved"}
    older["config"] = {**saved["config"], "alphabet": labels.DEFAULT_ALPHABET}
    (tmp_path / "config.json").write_text(json.dumps(older))
    x_older, texts_older, _ = captcha.held_out_again(tmp_path / "model.keras", labels.DEFAULT_ALPHABET, (160, 60))
    x, texts, _ = captcha.held_out_again(run_dir / "model.keras", labels.DEFAULT_ALPHABET, (160, 60))
    assert texts_older == texts and len(texts) == data.TINY["test"]
    assert np.array_equal(x_older, x)


def test_export_and_predict_read_exactly_as_the_trained_model(trained, cli, tmp_path):
    run_dir, _ = trained
    exported = tmp_path / "reader.keras"
    exported.write_bytes(b"an older export")  # replaced: --overwrite says so
    result = cli("projects.captcha", "export", "--model", run_dir, "--out", exported, "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reads 64 test captchas exactly" in result.stdout

    paths = captcha_files(tmp_path / "mine", ["7Z8Y", "AB12C", "Q0O0W1"])
    (tmp_path / "mine" / "notes.png").write_text("not a picture")
    result = cli("projects.captcha", "predict", "--model", exported, tmp_path / "mine")
    assert result.returncode == 1  # one file could not be read; the others were
    assert_one_line_error(result, "notes.png", "not a readable image")
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [os.path.basename(line[0]) for line in lines] == [p.name for p in paths]

    # The exported file, reloaded in another process, reads what the trained model reads here.
    texts, confidence = read_files(runs.load_model(run_dir / "model.keras", "captcha"), paths)
    assert [line[1] for line in lines] == texts
    assert np.allclose([float(line[2]) for line in lines], confidence, atol=1e-4)


@pytest.mark.backend_independent
def test_export_never_replaces_an_existing_file(trained, tmp_path, capsys):
    run_dir, _ = trained
    mine = tmp_path / "reader.keras"
    mine.write_bytes(b"my own model")
    assert run_captcha("export", "--model", run_dir, "--out", mine) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {mine} exists; pass --overwrite to replace it"]
    assert mine.read_bytes() == b"my own model"


@pytest.mark.backend_independent
def test_commands_refuse_another_projects_model(tmp_path, capsys):
    classifier = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    digits = runs.save_model(classifier, tmp_path / "digits.keras", "mnist_cnn")
    unmarked = tmp_path / "unmarked.keras"
    classifier.save(unmarked)  # saved by Keras alone: it does not say whose it is
    captchas = captcha_files(tmp_path / "mine", ["7Z8Y"])
    before = file_bytes(tmp_path)
    for command, *flags in (("predict", captchas[0]), ("evaluate", "--data-dir", tmp_path / "mine"),
                            ("export", "--out", tmp_path / "reader.keras")):
        assert run_captcha(command, "--model", digits, *flags) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: {digits} is a mnist_cnn model, not a captcha one; use it with python -m projects.mnist_cnn"
        ]
    assert run_captcha("predict", "--model", unmarked, captchas[0]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {unmarked} is not a captcha reader (it has no 'characters' layer)"]
    assert file_bytes(tmp_path) == before  # no export written, no evaluation.json


@pytest.mark.backend_independent
def test_evaluate_scores_a_folder_without_its_huge_image(trained, tmp_path, monkeypatch, capsys):
    run_dir, _ = trained
    model = tmp_path / "model.keras"  # a copy: evaluation.json is written beside it, not into the shared run
    model.write_bytes((run_dir / "model.keras").read_bytes())
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15000)  # so that 200x200 stands for 15000x15000
    captcha_files(tmp_path / "mine", ["7Z8Y", "AB12"])
    Image.new("L", (200, 200), 255).save(tmp_path / "mine" / "HUGE.png")
    assert run_captcha("evaluate", "--model", model, "--data-dir", tmp_path / "mine") == 1  # the rest scored, one skipped
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"warning: {tmp_path / 'mine' / 'HUGE.png'}: more than 30,000 pixels, too many to open safely; shrink it first; skipped"
    ]
    assert "2 captchas (1 of its files skipped)" in out and "full-sequence accuracy" in out
    assert json.loads((tmp_path / "evaluation.json").read_text())["captchas"] == 2


@pytest.mark.backend_independent
def test_count_flag_is_a_whole_number_of_at_least_one(capsys):
    for given, reason in (("0", "must be at least 1, got 0"), ("-3", "must be at least 1, got -3"), ("2.5", "'2.5' is not a whole number")):
        assert run_captcha("evaluate", "--count", given) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: argument --count: {reason} (see python -m projects.captcha evaluate --help)"
        ]


def one_hot_logits(path, classes):
    """Logits whose best class at each step follows `path`, by a wide margin."""
    logits = np.full((1, len(path), classes), -10.0, np.float32)
    logits[0, np.arange(len(path)), path] = 10.0
    return logits


@pytest.mark.parametrize("beam_width", [0, 4])
def test_ctc_decoding_merges_repeats_and_drops_blanks(beam_width):
    alphabet = "AB7"  # classes: 0 blank, 1 "A", 2 "B", 3 "7"
    paths = {
        "AAB": [1, 1, 0, 1, 2, 2, 0, 0],  # a blank between two A's keeps both; repeats merge
        "B7": [0, 2, 2, 2, 3, 3, 0, 0],
        "": [0] * 8,
        "7A7A": [3, 0, 1, 3, 0, 1, 1, 0],
    }
    for expected, path in paths.items():
        codes, confidence = decode(one_hot_logits(path, len(alphabet) + 1), beam_width)
        codes = keras.ops.convert_to_numpy(codes)
        assert codes.shape == (1, len(path))
        assert labels.decode(codes, alphabet) == [expected]
        assert codes[0, len(expected):].max(initial=-1) == -1  # -1 after the end
        assert 0.99 < float(keras.ops.convert_to_numpy(confidence)[0]) <= 1.0


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
    with pytest.raises(UserError, match="raise --input-height"):
        check_fits((64, 24), 6)
    # Fonts are files: a config only names them, training finds (or refuses) them before any run folder exists.
    config = captcha.Config(fonts="/nowhere/font.ttf", tiny=True, epochs=1, out=str(tmp_path / "run"))
    with pytest.raises(UserError, match="not a readable"):
        captcha.train(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.backend_independent
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own, when it backs up TensorFlow variables
def test_folder_with_bad_files_trains_on_the_rest(tmp_path, monkeypatch, capsys):
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
    assert len(found.texts) == 31 and found.alphabet == "123ABC" and found.skipped == 4
    assert found.x.shape == (31, 60, 160, 1) and found.x.dtype == np.uint8

    config = captcha.Config(data_dir=str(folder), epochs=2, batch_size=14, workers=0, out=str(tmp_path / "run"))
    run_dir = captcha.train(config)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test_captchas"] == 3  # the held-out tenth of the folder
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["resolved"] == {"alphabet": "123ABC", "input_size": [160, 60]}
    assert saved["config"]["alphabet"] is None
    model = runs.load_model(run_dir / "model.keras", "captcha")
    assert alphabet_of(model) == "123ABC" and model.input_shape == (None, 60, 160, 1)
    assert model.output_shape == (None, 20, 7)  # 20 time steps for up to 6 characters; 6 characters + blank


@pytest.mark.backend_independent
def test_folder_without_usable_captchas_is_one_line(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("projects.captcha", "train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run")
    assert_one_line_error(result, "holds no images")
    assert not (tmp_path / "run").exists()  # no run folder for a run that never started
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.new("L", (160, 60), 255).save(bad / "_.png")
    (bad / "ABCD.png").write_text("not a picture")
    with pytest.raises(UserError, match="no usable labelled captchas"):
        data.read_folder(bad)
