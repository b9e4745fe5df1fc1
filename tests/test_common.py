"""Shared plumbing: config flags, run folders, images in every mode, the report table."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from common import cli, datasets, images, report, runs
from common.config import TrainConfig
from common.errors import UserError

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
    runs.write_json(finished / "config.json", {"config": {}})
    runs.write_json(finished / "summary.json", {})
    with pytest.raises(UserError, match="no unfinished"):
        runs.find_resumable("resume-demo", "latest")
    unfinished = runs.new_run_dir("resume-demo")
    runs.write_json(unfinished / "config.json", {"config": {}})
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
    assert err.startswith("warning: skipped 1 of 2 files that are not readable images") and err.count("\n") == 1


def test_another_projects_failed_training_is_one_clear_error(capfd):
    with pytest.raises(UserError, match="training the no_such_project project failed"):
        report.train_other_project("no_such_project", "--tiny")
