"""All runs' summaries as one table (`make report`), and the results tables in READMEs.

Reads `runs/<project>/<run>/summary.json` (plus the run's config.json for the
settings that distinguish runs) into a pandas DataFrame, prints it, and saves it as
`runs/report.csv`. For the benchmarks: `markdown_table` writes a DataFrame as the
README's table, `update_readme` replaces the text between two marker comments in a
README, and `train_other_project` trains a model a benchmark needs from another
project.
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from common import runs
from common.errors import UserError


def collect(runs_dir=None):
    rows = []
    for summary_path in sorted(Path(runs_dir or runs.RUNS_DIR).glob("*/*/summary.json")):
        try:
            summary = json.loads(summary_path.read_text())
            config = json.loads((summary_path.parent / "config.json").read_text()).get("config", {})
        except (OSError, json.JSONDecodeError):
            continue  # a run being written or damaged by hand: not worth stopping the report
        rows.append(
            {
                "project": summary_path.parent.parent.name,
                "run": summary_path.parent.name,
                "dataset": config.get("dataset", ""),
                "tiny": config.get("tiny", False),
                "epochs": summary.get("epochs"),
                **summary.get("metrics", {}),
                "wall_s": summary.get("wall_seconds"),
                "samples/s": summary.get("train_samples_per_second"),
                "backend": summary.get("backend"),
                "device": summary.get("device"),
            }
        )
    return pd.DataFrame(rows)


def markdown_table(frame, float_format="{:.4g}".format):
    """A DataFrame as a Markdown table, floats through `float_format`."""
    cell = lambda value: float_format(value) if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def run_columns(run_dir, summary, unit):
    """The columns a benchmark table's row ends with: how long the run took, how fast it
    trained (`unit` per second), on what, and which run folder it was."""
    return {
        "wall time": f"{summary['wall_seconds'] / 60:.1f} min",
        f"train {unit}/s": f"{summary['train_samples_per_second']:.0f}",
        "backend": summary["backend"],
        "hardware": summary["device"],
        "run": f"`{Path(run_dir).name}`",
    }


def update_readme(readme, marker, text):
    """Replace what lies between `<!-- marker:start -->` and `<!-- marker:end -->`."""
    readme = Path(readme)
    content = readme.read_text()
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(content):
        raise ValueError(f"{readme} has no <!-- {marker}:start/end --> markers")
    readme.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), content))


def train_other_project(project, *flags):
    """Train another project's default recipe in its own process (`python -m projects.<project> train`).

    Projects build on each other through files, never imports: a benchmark that needs
    another project's model trains it this way. A failure is one clear error.
    """
    command = [sys.executable, "-m", f"projects.{project}", "train", *flags]
    print(f"training it: {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, cwd=runs.REPOSITORY).returncode != 0:
        raise UserError(f"training the {project} project failed (see above)")


def shown_path(path):
    """A path as a README shows it: relative to the repository when it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(runs.REPOSITORY)) if path.is_relative_to(runs.REPOSITORY) else str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.report", description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default=str(runs.RUNS_DIR), help="folder of runs (default: runs/)")
    parser.add_argument("--include-tiny", action="store_true", help="also list --tiny smoke runs")
    args = parser.parse_args(argv)
    table = collect(args.runs_dir)
    if not table.empty and not args.include_tiny:
        table = table[~table["tiny"].astype(bool)]
    if table.empty:
        print(f"no finished runs under {args.runs_dir}")
        return
    table = table.drop(columns=["tiny"])
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 40):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    out = Path(args.runs_dir) / "report.csv"
    table.to_csv(out, index=False)
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
