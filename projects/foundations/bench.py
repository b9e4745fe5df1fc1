"""The benchmark: every experiment with its defaults on the real data, each rewriting its README section.

`make bench-foundations` runs them one after the other (`--experiments` picks some).
An experiment is a module with a `Config` (an `experiment.ExperimentConfig`) and
`run(config)`; registering it below gives it its command and its place in the bench.
"""

import importlib
from dataclasses import fields

# Command name -> module of this project.
EXPERIMENTS = {
    "regression": "regression",
    "knn": "knn",
    "linear-classifier": "linear_classifier",
    "classic-ml": "classic_ml",
    "scratch": "scratch",
    "regularization": "regularization",
    "finetune": "finetune",
}


def bench(args):
    for name in args.experiments:
        module = importlib.import_module(f"projects.foundations.{EXPERIMENTS[name]}")
        settings = {"readme": True}
        if args.data_dir and "data_dir" in {item.name for item in fields(module.Config)}:
            settings["data_dir"] = args.data_dir
        print(f"=== {name}", flush=True)
        module.run(module.Config(**settings))
