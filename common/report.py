"""All runs' summaries as one table (`make report`), and the results tables in READMEs.

Reads `runs/<project>/<run>/summary.json` (plus the run's config.json for the
settings that distinguish runs) into a pandas DataFrame, prints it, and saves it as
`runs/report.csv`. `update_readme` replaces the text between two marker comments
in a README, so benchmarks can rewrite their measured table (`markdown_table`) in place.
"""

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from common import runs


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


def update_readme(readme, marker, text):
    """Replace what lies between `<!-- marker:start -->` and `<!-- marker:end -->`."""
    readme = Path(readme)
    content = readme.read_text()
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.S)
    if not pattern.search(content):
        raise ValueError(f"{readme} has no <!-- {marker}:start/end --> markers")
    readme.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), content))


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
