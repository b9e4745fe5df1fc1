"""The captcha reader's benchmark: train the default recipe, which ends by reading 10,000
freshly generated held-out captchas, and write the measured table and the picture of
what was read into this project's README."""

import shutil

import pandas as pd

from common import report, runs
from projects.captcha import FOLDER
from projects.captcha.train import Config, train


def bench(args):
    run_dir = train(Config())
    summary = runs.read_json(run_dir / "summary.json")
    metrics = summary["metrics"]
    (FOLDER / "assets").mkdir(exist_ok=True)
    shutil.copy(run_dir / "samples" / "test_predictions.png", FOLDER / "assets" / "test_predictions.png")
    row = {
        "held-out captchas": f"{summary['test_captchas']:,}",
        "full-sequence accuracy": f"{metrics['test_sequence_accuracy'] * 100:.2f}%",
        "character accuracy": f"{metrics['test_character_accuracy'] * 100:.2f}%",
        "training captchas": f"{summary['training_captchas']:,}",
        "inference captchas/s": f"{summary['inference_captchas_per_second']:.0f}",
        **report.run_columns(run_dir, summary, "captchas"),
    }
    table = report.markdown_table(pd.DataFrame([row]))
    report.update_readme(FOLDER / "README.md", "bench", table)
    print(table)
