"""Command line of the course's foundations: `python -m projects.foundations <experiment> [flags]`.

One command per experiment of bench.EXPERIMENTS, with the flags of that module's
Config (its first docstring line is the command's help); `bench` runs them all on
the real data and rewrites the README's sections.
"""

import importlib

from common import cli
from projects.foundations.bench import EXPERIMENTS


def add_bench_flags(parser):
    parser.add_argument("--data-dir", help="folder with the dataset files")
    parser.add_argument("--experiments", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS),
                        help="experiments to (re)measure (default: all)")


def experiment_command(module_name):
    """The command of one experiment: its Config's flags, then `run(config)`."""
    module = importlib.import_module(f"projects.foundations.{module_name}")

    def run(args):
        tiny = getattr(module, "TINY", {}) if getattr(args, "tiny", False) else {}  # what --tiny's small data set needs, under the flags
        config = cli.config_from_args(module.Config, args, tiny)  # bad settings answer before Keras loads
        return cli.imported(f"{module.__name__}:run")(config)

    return module.__doc__.splitlines()[0], lambda parser: cli.add_config_flags(parser, module.Config), run


COMMANDS = {
    **{name: experiment_command(module_name) for name, module_name in EXPERIMENTS.items()},
    "bench": ("run every experiment on the real data and rewrite the README's sections", add_bench_flags,
              "projects.foundations.bench:bench"),
}

if __name__ == "__main__":
    cli.run_commands("python -m projects.foundations", __doc__.splitlines()[0], COMMANDS)
