"""What every experiment shares: its common settings, its run folder, and how it reports.

An experiment prints its tables, saves them (CSV) and its pictures in its run folder,
`runs/foundations/<experiment>-<timestamp>/`. With `--readme` (the bench always sets
it) it also copies the pictures into assets/ as `<experiment>_<picture>.png` and
writes its tables, pictures and notes into this project's README, between the
`<!-- <experiment>:start -->` and `<!-- <experiment>:end -->` markers.
"""

import shutil
import time
from dataclasses import asdict, dataclass

from common import runs
from common.config import option
from projects.foundations import FOLDER, PROJECT


@dataclass(frozen=True)
class ExperimentConfig:
    """The settings every experiment has; each experiment's Config adds its own."""

    out: str = option(None, "folder for the tables and pictures (default: runs/foundations/<experiment>-<timestamp>)")
    seed: int = option(0, "random seed for subsets, splits, folds and initial weights")
    tiny: bool = option(False, "a tiny generated data set, to try the experiment in seconds")
    readme: bool = option(False, "write the tables and pictures into this project's README (the bench always does)")


class Report:
    """One experiment's run folder and what it reports: tables, pictures and notes, in order."""

    def __init__(self, experiment, config):
        from common import backend

        self.experiment, self.config, self.started = experiment, config, time.time()
        self.folder = runs.new_run_dir(PROJECT, config.out, prefix=f"{experiment}-")
        runs.write_json(self.folder / "config.json",
                        {"config": asdict(config), "backend": backend.name(), "versions": backend.versions()})
        self.parts, self.pictures = [], []

    def table(self, name, frame, caption, float_format="{:.4g}".format):
        """Print `frame`, save it as `<name>.csv` and add it, under `caption`, to the README section."""
        import pandas as pd

        from common.report import markdown_table

        frame.to_csv(self.folder / f"{name}.csv", index=False)
        with pd.option_context("display.width", 200, "display.max_columns", None):
            print(f"\n{caption}\n{frame.to_string(index=False, float_format=lambda v: float_format(v))}", flush=True)
        self.parts.append(f"{caption}\n\n{markdown_table(frame, float_format)}")

    def picture_path(self, name):
        return self.folder / f"{name}.png"

    def picture(self, path, caption):
        """Add a picture drawn into the run folder to the README section."""
        self.pictures.append(path)
        self.parts.append(f"![{caption}](assets/{self.asset_name(path)})")

    def note(self, text):
        print(f"\n{text}", flush=True)
        self.parts.append(text)

    def asset_name(self, path):
        return f"{self.experiment.replace('-', '_')}_{path.name}"

    def finish(self, what):
        """Say where everything is; with --readme, write the section. `what` says what was measured on which data."""
        from common import backend
        from common.report import update_readme

        minutes = (time.time() - self.started) / 60
        print(f"\n{self.experiment}: {minutes:.1f} min; tables and pictures in {self.folder}")
        if self.config.readme and self.config.tiny:
            print("the README keeps its figures: a --tiny run is no measurement")
        if not self.config.readme or self.config.tiny:
            return self.folder
        (FOLDER / "assets").mkdir(exist_ok=True)
        for path in self.pictures:
            shutil.copy(path, FOLDER / "assets" / self.asset_name(path))
        measured = (f"Measured by `make {self.experiment}` in {minutes:.1f} min on {backend.describe_device()} "
                    f"({backend.name()}); {what}.")
        update_readme(FOLDER / "README.md", self.experiment, "\n\n".join([*self.parts, measured]))
        return self.folder
