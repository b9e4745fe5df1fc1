"""Shared plumbing: config flags, run folders, images in every mode, the report table."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import cli, datasets, images, report, runs
from common.config import TrainConfig
from common.errors import UserError
from conftest import assert_one_line_error, run_cli

pytestmark = pytest.mark.backend_independent


def parse(config_class, argv):
    parser = argparse.ArgumentParser()
    cli.add_config_flags(parser, config_class)
    cli.add_resume_flag(parser)
    return parser.parse_args(argv)


def test_flags_override_only_what_was_typed():
    args = parse(TrainConfig, ["--epochs", "3", "--tiny", "--lr", "0.01"])
    config = cli.config_from_args(TrainConfig, args, saved={"epochs": 7, "batch_size": 32})
    assert (config.epochs, config.batch_size, config.lr, config.tiny) == (3, 32, 0.01, True)
    assert parse(TrainConfig, ["--resume"]).resume == "latest"


@pytest.mark.parametrize("argv, message", [(["--lr", "-1"], "--lr must be positive"), (["--epochs", "0"], "--epochs")])
def test_bad_values_are_user_errors(argv, message):
    with pytest.raises(UserError, match=message):
        cli.config_from_args(TrainConfig, parse(TrainConfig, argv))


def test_run_folders_are_never_reused(tmp_path):
    first = runs.new_run_dir("demo", tmp_path / "run")
    (first / "config.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a run"):
        runs.new_run_dir("demo", tmp_path / "run")
    assert (first / "config.json").read_text() == "{}"
    a, b = runs.new_run_dir("demo-project"), runs.new_run_dir("demo-project")
    assert a != b and a.parent == b.parent


def test_resume_finds_the_newest_unfinished_run(tmp_path):
    finished = runs.new_run_dir("resume-demo")
    runs.write_json(finished / "config.json", {"config": {}, "project": "resume-demo"})
    runs.write_json(finished / "summary.json", {})
    with pytest.raises(UserError, match="no unfinished"):
        runs.find_resumable("resume-demo", "latest")
    unfinished = runs.new_run_dir("resume-demo")
    runs.write_json(unfinished / "config.json", {"config": {}, "project": "resume-demo"})
    assert runs.find_resumable("resume-demo", "latest") == unfinished
    with pytest.raises(UserError, match="already finished"):
        runs.find_resumable("resume-demo", str(finished))


def save(tmp_path, name, image):
    path = tmp_path / name
    image.save(path)
    return path


def test_open_image_handles_every_mode(tmp_path):
    rgba = Image.new("RGBA", (8, 6), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 0, 255))
    grey16 = Image.fromarray(np.full((6, 8), 40000, np.uint16))
    palette = Image.new("P", (8, 6), 3)
    cmyk = Image.new("CMYK", (8, 6), (0, 255, 0, 0))
    paths = {
        "rgba.png": rgba, "grey16.png": grey16, "palette.png": palette, "cmyk.jpg": cmyk, "grey.png": Image.new("L", (8, 6), 9),
    }
    for name, image in paths.items():
        loaded = images.open_image(save(tmp_path, name, image), "RGB")
        assert loaded.mode == "RGB" and loaded.size == (8, 6), name
    transparent = np.asarray(images.open_image(tmp_path / "rgba.png", "L"))
    assert transparent[0, 0] == 255 and transparent[1, 1] == 0  # transparency becomes white paper
    assert np.asarray(images.open_image(tmp_path / "grey16.png", "L"))[0, 0] == round(40000 / 65535 * 255)


def test_non_images_are_clear_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not really a picture")
    with pytest.raises(UserError, match="notes.png: not a readable image"):
        images.open_image(tmp_path / "notes.png")
    with pytest.raises(UserError, match="no such file"):
        images.open_image(tmp_path / "missing.png")
    with pytest.raises(UserError, match="holds no images"):
        images.list_images(tmp_path / "..")


def test_grid_layout(tmp_path):
    tiles = np.zeros((12, 28, 28), np.uint8)
    picture = images.grid(tiles, columns=5, captions=[str(i) for i in range(12)], marked=[i % 2 == 0 for i in range(12)])
    assert picture.size[0] == 5 * (28 * 2 + 4)
    assert picture.size[1] == 3 * (28 * 2 + 4 + 12)
    images.save_image(picture, tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").size == picture.size


def test_report_table_and_readme_markers(tmp_path):
    run = tmp_path / "demo" / "20260101-000000"
    runs.write_json(run / "config.json", {"config": {"dataset": "mnist", "tiny": False}})
    runs.write_json(run / "summary.json", {"metrics": {"test_accuracy": 0.99}, "wall_seconds": 3.0, "epochs": 2})
    table = report.collect(tmp_path)
    assert table.loc[0, "test_accuracy"] == 0.99 and table.loc[0, "project"] == "demo"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\noutro\n")
    report.update_readme(readme, "bench", "| new |")
    assert readme.read_text() == "intro\n<!-- bench:start -->\n| new |\n<!-- bench:end -->\noutro\n"
    frame = report.collect(tmp_path)[["project", "test_accuracy"]]
    assert report.markdown_table(frame) == "| project | test_accuracy |\n|---|---|\n| demo | 0.99 |"


def test_configs_are_frozen_and_resolved_settings_are_kept_apart(tmp_path):
    config = TrainConfig(epochs=2)
    with pytest.raises(AttributeError):
        config.epochs = 3
    run = tmp_path / "run"
    runs.save_config(run, config, {"resolved": {"classes": 10}})
    runs.record_resolved(run, image_size=28)
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["epochs"] == 2 and "image_size" not in saved["config"]
    assert runs.run_config(run / "model.keras", "resolved") == {"classes": 10, "image_size": 28}
    assert runs.run_config(run / "model.keras")["epochs"] == 2


def test_holdout_is_seeded_and_keeps_both_sides():
    kept, held = datasets.holdout(100, 0.1, seed=3)
    assert len(held) == 10 and sorted([*kept, *held]) == list(range(100))
    assert (datasets.holdout(100, 0.1, seed=3)[1] == held).all() and not (datasets.holdout(100, 0.1, seed=4)[1] == held).all()
    assert len(datasets.holdout(5, 0.01, seed=0)[1]) == 1 and len(datasets.holdout(2, 0.9, seed=0)[0]) == 1
    assert len(datasets.holdout(5, 0.0, seed=0)[1]) == 0


def test_data_dir_prefers_the_flag_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert datasets.data_dir() == tmp_path
    assert datasets.data_dir(tmp_path / "..") == tmp_path / ".."
    with pytest.raises(UserError, match="--data-dir=.*missing is not a folder"):
        datasets.data_dir(tmp_path / "missing")


def test_shrink_keeps_the_aspect_ratio():
    image = Image.new("RGB", (400, 100))
    assert images.shrink_to(image, 200).size == (200, 50)
    assert images.shrink_to(image, 800) is image and images.shrink_to(image, None) is image


def test_skipped_images_are_one_warning_line(tmp_path, capsys):
    save(tmp_path, "good.png", Image.new("RGB", (4, 4)))
    (tmp_path / "bad.png").write_text("not a picture")
    opened = images.open_all(images.list_images(tmp_path))
    assert [path.name for path, _ in opened] == ["good.png"]
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {tmp_path / 'bad.png'}: not a readable image") and err.endswith("; skipped\n")
    assert err.count("\n") == 1


def test_another_projects_failed_training_is_one_clear_error(capfd):
    with pytest.raises(UserError, match="training the no_such_project project failed"):
        report.train_other_project("no_such_project", "--tiny")


# --- Bad input: one line, and nothing the user has is changed ------------------------------


def snapshot(folder):
    """Every file under `folder`, with its bytes."""
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_a_huge_image_is_one_line_and_the_rest_of_the_folder_is_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that 100x100 stands for 15000x15000
    for name in ("a.png", "b.png"):
        save(tmp_path, name, Image.new("L", (20, 20)))
    save(tmp_path, "huge.png", Image.new("L", (100, 100)))
    opened = images.open_all(images.list_images(tmp_path), "L")
    assert [path.name for path, _ in opened] == ["a.png", "b.png"]
    err = capsys.readouterr().err
    assert err == f"warning: {tmp_path / 'huge.png'}: more than 2,000 pixels, too many to open safely; shrink it first; skipped\n"
    with pytest.raises(UserError, match="more than 2,000 pixels"):
        images.open_within(tmp_path / "huge.png", 64)


def test_an_input_folder_without_images_is_skipped_when_others_remain(tmp_path, capsys):
    save(tmp_path, "digit.png", Image.new("L", (20, 20)))
    (tmp_path / "empty").mkdir()
    assert images.expand_inputs([tmp_path / "empty", tmp_path / "digit.png"]) == [tmp_path / "digit.png"]
    assert capsys.readouterr().err.startswith(f"warning: {tmp_path / 'empty'} holds no images")
    with pytest.raises(UserError, match="no image files in"):
        images.expand_inputs([tmp_path / "empty"])


def test_out_must_be_a_new_or_empty_folder_and_is_never_touched_otherwise(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpeg")
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match="--out .*notes.txt is a file; name a folder for the run"):
        runs.new_run_dir("demo", tmp_path / "notes.txt")
    with pytest.raises(UserError, match="--out .*photos is a folder with other files in it; name a new or empty folder"):
        runs.new_run_dir("demo", tmp_path / "photos")
    assert snapshot(tmp_path) == before
    (tmp_path / "empty").mkdir()
    assert runs.new_run_dir("demo", tmp_path / "empty") == tmp_path / "empty"


def test_config_naming_a_folder_is_one_line(tmp_path):
    with pytest.raises(UserError, match="is a folder, not a JSON file"):
        cli.read_config_file(tmp_path, TrainConfig)


def test_resuming_another_projects_run_is_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "captcha-run"
    runs.write_json(run / "config.json", {"config": {"epochs": 3}, "project": "captcha"})
    (run / "metrics.csv").write_text("epoch,loss\n0,1.0\n")
    before = snapshot(run)
    result = run_cli("projects.mnist_cnn", "train", "--resume", run)
    assert_one_line_error(result, f"{run} is a captcha run, not a mnist_cnn one; continue it with "
                                  f"python -m projects.captcha train --resume {run}")
    assert snapshot(run) == before


def tiny_model(*layers):
    import keras

    return keras.Sequential([keras.Input((2,)), *layers, keras.layers.Dense(1)])


def test_a_model_is_loaded_only_by_its_own_project(tmp_path):
    import keras

    saved = runs.save_model(tiny_model(), tmp_path / "generator.keras", "dcgan")
    assert runs.load_model(saved, "dcgan").output_shape == (None, 1)
    with pytest.raises(UserError, match="generator.keras is a dcgan model, not a mnist_cnn one; use it with python -m projects.dcgan"):
        runs.load_model(saved, "mnist_cnn")
    run = tmp_path / "run"  # a file Keras saved (no project inside), in another project's run folder
    runs.write_json(run / "config.json", {"project": "captcha"})
    tiny_model().save(run / "model.keras")
    for given in (run, run / "model.keras"):
        with pytest.raises(UserError, match="is a captcha model, not a mnist_cnn one"):
            runs.load_model(runs.model_path("mnist_cnn", str(given)), "mnist_cnn")
    save(tmp_path, "photo.jpg", Image.new("RGB", (8, 8)))
    with pytest.raises(UserError, match="photo.jpg is not a Keras model file"):
        runs.load_model(tmp_path / "photo.jpg", "mnist_cnn")
    tiny_model(keras.layers.Lambda(lambda x: x * 2)).save(tmp_path / "code.keras")
    with pytest.raises(UserError, match="code.keras holds Python code \\(a Lambda layer\\); refused"):
        runs.load_model(tmp_path / "code.keras", "mnist_cnn")


def test_existing_files_are_replaced_only_when_asked(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"mine")
    with pytest.raises(UserError, match="model.keras exists; pass --overwrite to replace it"):
        runs.check_new_file(tmp_path / "model.keras")
    assert runs.check_new_file(tmp_path / "model.keras", overwrite=True) == tmp_path / "model.keras"
    assert (tmp_path / "model.keras").read_bytes() == b"mine"
    with pytest.raises(UserError, match="is a folder; name a file"):
        runs.check_new_file(tmp_path)


@pytest.mark.parametrize("text, message", [("0", "must be at least 1, got 0"), ("-5", "must be at least 1"), ("x", "'x' is not a whole number")])
def test_count_flags_refuse_what_counts_nothing(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        cli.count(text)
    assert cli.count("3") == 3


def test_a_path_traversal_archive_says_so(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(UserError, match="holds a member it is not safe to extract .*refusing to extract"):
        datasets.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "out").exists()


def test_a_word2vec_text_file_with_a_bad_number_is_called_a_text_file(tmp_path):
    from common import word2vec_format

    (tmp_path / "vectors.txt").write_text("2 3\ngood 0.1 0.2 0.3\nbad 0.1 zero 0.3\n")
    with pytest.raises(UserError, match="is not a valid word2vec text file"):
        word2vec_format.load(tmp_path / "vectors.txt")
