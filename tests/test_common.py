"""Shared plumbing: config flags, run folders, model files, images in every mode, grids, the report table."""

import argparse
import json
import os

import numpy as np
import pytest
from PIL import Image

from common import cli, images, report, runs
from common.config import TrainConfig
from common.errors import UserError
from helpers import assert_one_line_error, file_bytes, run_command

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


@pytest.mark.parametrize("text, message", [("0", "must be at least 1, got 0"), ("-5", "must be at least 1"), ("x", "'x' is not a whole number")])
def test_count_flags_refuse_what_counts_nothing(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        cli.count(text)
    assert cli.count("3") == 3


def test_config_naming_a_folder_is_one_line(tmp_path):
    with pytest.raises(UserError, match="is a folder, not a JSON file"):
        cli.read_config_file(tmp_path, TrainConfig)


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


# --- Run folders --------------------------------------------------------------------------


def test_run_folders_are_never_reused(tmp_path):
    first = runs.new_run_dir("demo", tmp_path / "run")
    (first / "config.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a run"):
        runs.new_run_dir("demo", tmp_path / "run")
    assert (first / "config.json").read_text() == "{}"
    a, b = runs.new_run_dir("demo-project"), runs.new_run_dir("demo-project")
    assert a != b and a.parent == b.parent == runs.RUNS_DIR / "demo-project" and a.is_dir() and b.is_dir()


def test_out_must_be_a_new_or_empty_folder_and_is_never_touched_otherwise(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpeg")
    before = file_bytes(tmp_path)
    with pytest.raises(UserError, match="--out .*notes.txt is a file; name a folder for the run"):
        runs.new_run_dir("demo", tmp_path / "notes.txt")
    with pytest.raises(UserError, match="--out .*photos is a folder with other files in it; name a new or empty folder"):
        runs.new_run_dir("demo", tmp_path / "photos")
    assert file_bytes(tmp_path) == before
    (tmp_path / "empty").mkdir()
    assert runs.new_run_dir("demo", tmp_path / "empty") == tmp_path / "empty"


def unfinished_run(project, age):
    """A run folder of `project` with a config but no summary, last written `age` seconds ago."""
    run = runs.new_run_dir(project)
    config = runs.write_json(run / "config.json", {"config": {}, "project": project})
    os.utime(config, (config.stat().st_atime, config.stat().st_mtime - age))
    return run


def test_resume_finds_the_newest_unfinished_run():
    with pytest.raises(UserError, match="no unfinished resume-demo run"):
        runs.find_resumable("resume-demo", "latest")
    newest, older = unfinished_run("resume-demo", age=10), unfinished_run("resume-demo", age=20)
    finished = unfinished_run("resume-demo", age=0)
    runs.write_json(finished / "summary.json", {})
    assert runs.find_resumable("resume-demo", "latest") == newest
    assert runs.find_resumable("resume-demo", str(older)) == older
    with pytest.raises(UserError, match="already finished"):
        runs.find_resumable("resume-demo", str(finished))


def test_resuming_another_projects_run_is_refused_before_anything_is_written(tmp_path):
    run = tmp_path / "captcha-run"
    runs.write_json(run / "config.json", {"config": {"epochs": 3}, "project": "captcha"})
    (run / "metrics.csv").write_text("epoch,loss\n0,1.0\n")
    before = file_bytes(tmp_path)
    result = run_command("projects.mnist_cnn", "train", "--resume", run)
    assert_one_line_error(result, f"{run} is a captcha run, not a mnist_cnn one; continue it with "
                                  f"python -m projects.captcha train --resume {run}")
    assert file_bytes(tmp_path) == before


def test_existing_files_are_replaced_only_when_asked(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"mine")
    with pytest.raises(UserError, match="model.keras exists; pass --overwrite to replace it"):
        runs.check_new_file(tmp_path / "model.keras")
    assert runs.check_new_file(tmp_path / "model.keras", overwrite=True) == tmp_path / "model.keras"
    assert (tmp_path / "model.keras").read_bytes() == b"mine"
    with pytest.raises(UserError, match="is a folder; name a file"):
        runs.check_new_file(tmp_path)


def tiny_model(*layers):
    import keras

    return keras.Sequential([keras.Input((2,)), *layers, keras.layers.Dense(1)])


def test_a_model_is_loaded_only_by_its_own_project(tmp_path):
    import keras

    model = tiny_model()
    saved = runs.save_model(model, tmp_path / "generator.keras", "dcgan")
    x = np.array([[1.0, 2.0], [-3.0, 0.5]], "float32")
    np.testing.assert_allclose(runs.load_model(saved, "dcgan").predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    with pytest.raises(UserError, match="generator.keras is a dcgan model, not a mnist_cnn one; use it with python -m projects.dcgan"):
        runs.load_model(saved, "mnist_cnn")
    run = tmp_path / "run"  # a file Keras saved (no project inside), in another project's run folder
    runs.write_json(run / "config.json", {"project": "captcha"})
    tiny_model().save(run / "model.keras")
    for given in (run, run / "model.keras"):
        with pytest.raises(UserError, match="is a captcha model, not a mnist_cnn one"):
            runs.load_model(runs.model_path("mnist_cnn", str(given)), "mnist_cnn")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    with pytest.raises(UserError, match="photo.jpg is not a Keras model file"):
        runs.load_model(tmp_path / "photo.jpg", "mnist_cnn")
    tiny_model(keras.layers.Lambda(lambda x: x * 2)).save(tmp_path / "code.keras")
    with pytest.raises(UserError, match="code.keras holds Python code \\(a Lambda layer\\); refused"):
        runs.load_model(tmp_path / "code.keras", "mnist_cnn")


# --- Images -------------------------------------------------------------------------------


def test_open_image_turns_every_mode_into_8_bit_rgb_or_grey(tmp_path):
    rgba = Image.new("RGBA", (8, 6), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (0, 0, 0, 255))
    palette = Image.new("P", (8, 6), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    expected = {  # file: (image, its first pixel in RGB)
        "rgba.png": (rgba, (255, 255, 255)),  # transparency becomes white paper
        "grey16.png": (Image.fromarray(np.full((6, 8), 40000, np.uint16)), (156,) * 3),  # 40000 / 65535 * 255
        "palette.png": (palette, (10, 20, 30)),
        "cmyk.jpg": (Image.new("CMYK", (8, 6), (0, 255, 0, 0)), (255, 0, 255)),
        "grey.png": (Image.new("L", (8, 6), 9), (9, 9, 9)),
    }
    for name, (image, pixel) in expected.items():
        image.save(tmp_path / name)
        loaded = images.open_image(tmp_path / name, "RGB")
        assert loaded.mode == "RGB" and loaded.size == (8, 6), name
        np.testing.assert_allclose(loaded.getpixel((0, 0)), pixel, atol=3 if name.endswith(".jpg") else 0, err_msg=name)
    grey = np.asarray(images.open_image(tmp_path / "rgba.png", "L"))
    assert grey.shape == (6, 8) and grey[0, 0] == 255 and grey[1, 1] == 0


def test_open_image_turns_a_photo_upright(tmp_path):
    photo = Image.new("L", (8, 6), 0)
    photo.paste(255, (0, 0, 4, 3))  # the top left quarter white
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show it rotated 90 degrees clockwise
    photo.save(tmp_path / "turned.jpg", exif=exif)
    upright = np.asarray(images.open_image(tmp_path / "turned.jpg", "L"))
    assert upright.shape == (8, 6)
    assert upright[1, 4] > 200 and upright[1, 1] < 50  # the white quarter is now top right


def test_non_images_are_clear_errors(tmp_path):
    (tmp_path / "notes.png").write_text("not really a picture")
    with pytest.raises(UserError, match="notes.png: not a readable image"):
        images.open_image(tmp_path / "notes.png")
    with pytest.raises(UserError, match="missing.png: no such file"):
        images.open_image(tmp_path / "missing.png")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match="nothing holds no images"):
        images.list_images(tmp_path / "nothing")


def test_skipped_images_are_one_warning_line(tmp_path, capsys):
    Image.new("RGB", (4, 4)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_text("not a picture")
    opened = images.open_all(images.list_images(tmp_path))
    assert [path.name for path, _ in opened] == ["good.png"]
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {tmp_path / 'bad.png'}: not a readable image") and err.endswith("; skipped\n")
    assert err.count("\n") == 1


def test_a_huge_image_is_one_line_and_the_rest_of_the_folder_is_read(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that 100x100 stands for 15000x15000
    for name in ("a.png", "b.png"):
        Image.new("L", (20, 20)).save(tmp_path / name)
    Image.new("L", (100, 100)).save(tmp_path / "huge.png")
    opened = images.open_all(images.list_images(tmp_path), "L")
    assert [path.name for path, _ in opened] == ["a.png", "b.png"]
    err = capsys.readouterr().err
    assert err == f"warning: {tmp_path / 'huge.png'}: more than 2,000 pixels, too many to open safely; shrink it first; skipped\n"
    with pytest.raises(UserError, match="more than 2,000 pixels"):
        images.open_within(tmp_path / "huge.png", 64)


def test_an_input_folder_without_images_is_skipped_when_others_remain(tmp_path, capsys):
    Image.new("L", (20, 20)).save(tmp_path / "digit.png")
    (tmp_path / "empty").mkdir()
    assert images.expand_inputs([tmp_path / "empty", tmp_path / "digit.png"]) == [tmp_path / "digit.png"]
    assert capsys.readouterr().err.startswith(f"warning: {tmp_path / 'empty'} holds no images")
    with pytest.raises(UserError, match="no image files in"):
        images.expand_inputs([tmp_path / "empty"])


def test_shrink_keeps_the_aspect_ratio():
    image = Image.new("RGB", (400, 100))
    assert images.shrink_to(image, 200).size == (200, 50)
    assert images.shrink_to(image, 800) is image and images.shrink_to(image, None) is image


def test_grid_puts_each_tile_in_its_cell_and_frames_the_marked_ones(tmp_path):
    tiles = np.stack([np.full((28, 28), 20 * i, np.uint8) for i in range(12)])
    marked = [i % 2 == 0 for i in range(12)]
    picture = images.grid(tiles, columns=5, captions=[str(i) for i in range(12)], marked=marked)
    cell_width, cell_height = 28 * 2 + 4, 28 * 2 + 4 + 12  # twice the size, 2 pixels around, a caption line
    assert picture.size == (5 * cell_width, 3 * cell_height)
    for i in range(12):
        left, top = (i % 5) * cell_width, (i // 5) * cell_height
        tile = np.asarray(picture.crop((left + 2, top + 2, left + 58, top + 58)))
        assert (tile == 20 * i).all(), i
        frame = (255, 0, 0) if marked[i] else (255, 255, 255)
        assert [picture.getpixel(xy) for xy in ((left, top), (left + 1, top + 30), (left + 58, top + 30))] == [frame] * 3, i
        caption = np.asarray(picture.crop((left, top + 59, left + cell_width, top + cell_height)))
        assert (caption != 255).any(), f"tile {i} has no caption"
    images.save_image(picture, tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").size == picture.size


def test_float_images_become_bytes():
    assert images.to_uint8(np.array([0.0, 0.2, 0.5, 1.0, 1.5, -0.1])).tolist() == [0, 51, 128, 255, 255, 0]
    assert images.to_uint8(np.array([7], np.uint8)).tolist() == [7]


# --- Reports and other files --------------------------------------------------------------


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


def test_another_projects_failed_training_is_one_clear_error(capfd):
    with pytest.raises(UserError, match="training the no_such_project project failed"):
        report.train_other_project("no_such_project", "--tiny")
    assert "training it: -m projects.no_such_project train --tiny\n" in capfd.readouterr().out


def test_a_word2vec_text_file_with_a_bad_number_is_called_a_text_file(tmp_path):
    from common import word2vec_format

    (tmp_path / "vectors.txt").write_text("2 3\ngood 0.1 0.2 0.3\nbad 0.1 zero 0.3\n")
    with pytest.raises(UserError, match="is not a valid word2vec text file"):
        word2vec_format.load(tmp_path / "vectors.txt")
