"""Random hyperparameter search that narrows its ranges round by round, judged on validation data.

A project hands over its `train` command, its config class, a search space (setting
-> `Range` or `Choice`) and the validation metric to maximise. Every trial is a
short run of that same `train` (a few epochs, the final test-set evaluation
switched off) in its own folder inside the tune folder, scored by its best epoch's
validation metric. Random search rather than a grid, because a few settings matter
far more than others and random points try more of their values (Bergstra &
Bengio, 2012). After each round every range narrows around the best trials so far
(in log space for learning rates and the like), and a choice keeps only the options
the best trials took: coarse first, then finer.

The project's default recipe is scored first, at the same short budget: a
reference, not a candidate, so "the search beat the defaults" is a measurement
that can come out either way. The test set is never looked at: `evaluate` does
that, once, for the model trained with the winner. Every trial goes into
`trials.csv`; the winner's settings, at the full recipe's length, into `best.json`,
which `train --config best.json` takes.
"""

import argparse
import dataclasses
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from common import cli, runs
from common.errors import UserError
from common.report import markdown_table, update_readme

SPEC_FORMS = "NAME=log:LOW:HIGH (log-uniform), NAME=float:LOW:HIGH, NAME=int:LOW:HIGH or NAME=A,B,C (choices)"
MARGIN = 0.25  # a narrowed range reaches this share of the old range beyond the best trials' values


@dataclass(frozen=True)
class Range:
    """Numbers from `low` to `high`: uniform, or uniform in log space (`log`), or whole numbers (`integer`)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def check(self, name):
        if self.log and self.low <= 0:
            raise UserError(f"--space {name}: a log range needs positive bounds, got {self.low}")
        if self.low > self.high:
            raise UserError(f"--space {name}: the range {self.low}..{self.high} is empty (low > high)")

    def _scale(self, value):
        return math.log(value) if self.log else value

    def _unscale(self, value):
        return math.exp(value) if self.log else value

    def _typed(self, value):
        return int(round(value)) if self.integer else float(value)

    def extremes(self):
        return self._typed(self.low), self._typed(self.high)

    def sample(self, rng):
        value = self._unscale(rng.uniform(self._scale(self.low), self._scale(self.high)))
        return self._typed(min(max(value, self.low), self.high))

    def narrow(self, best_values):
        low, high = self._scale(self.low), self._scale(self.high)
        margin = MARGIN * (high - low)
        scaled = [self._scale(v) for v in best_values]
        new_low = self._unscale(max(low, min(scaled) - margin))
        new_high = self._unscale(min(high, max(scaled) + margin))
        if self.integer:
            new_low, new_high = math.floor(new_low), math.ceil(new_high)
        return Range(max(self.low, new_low), min(self.high, new_high), self.log, self.integer)

    def __str__(self):
        kind = "log" if self.log else "int" if self.integer else "float"
        return f"{kind}:{self.low:.4g}:{self.high:.4g}"


@dataclass(frozen=True)
class Choice:
    """One of a few options (an optimizer's name, a batch size, on or off)."""

    options: tuple

    def check(self, name):
        if not self.options:
            raise UserError(f"--space {name}: no options to choose from; give them as {name}=A,B,C")

    def extremes(self):
        return self.options

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def narrow(self, best_values):
        return Choice(tuple(option for option in self.options if option in best_values))

    def __str__(self):
        return ",".join(map(str, self.options))


def parse_value(text, kind, where):
    """`text` as a value of type `kind` (bool, int, float or str)."""
    text = text.strip()
    if kind is bool:
        words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
        if text.lower() in words:
            return words[text.lower()]
    else:
        try:
            return kind(text)
        except ValueError:
            pass
    raise UserError(f"{where}: {text!r} is not {'a whole number' if kind is int else 'a number' if kind is float else kind.__name__}")


def parse_space(texts, config_class):
    """`--space` arguments (see SPEC_FORMS) as a search space for `config_class`'s settings."""
    fields = {item.name: item for item in dataclasses.fields(config_class)}
    space = {}
    for text in texts:
        name, given, spec = text.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not given:
            raise UserError(f"--space {text!r}: expected {SPEC_FORMS}")
        if name not in fields:
            raise UserError(f"--space: {name!r} is not a setting; the settings are {', '.join(fields)}")
        kind, _, bounds = spec.partition(":")
        if kind in ("log", "float", "int") and bounds.count(":") == 1:
            number = int if kind == "int" else float
            low, high = (parse_value(bound, number, f"--space {name}") for bound in bounds.split(":"))
            space[name] = Range(low, high, log=kind == "log", integer=kind == "int")
        else:
            kind = cli.field_type(fields[name])
            space[name] = Choice(tuple(parse_value(option, kind, f"--space {name}") for option in spec.split(",") if option.strip()))
    return space


def check_space(space, config_class, base):
    """Stop, with one line, on an empty space or range, or on values the config itself refuses."""
    fields = {item.name: item for item in dataclasses.fields(config_class)}
    if not space:
        raise UserError(f"the search space is empty: nothing to tune; give --space {SPEC_FORMS}")
    for name, spec in space.items():
        if name not in fields:
            raise UserError(f"--space: {name!r} is not a setting; the settings are {', '.join(fields)}")
        if isinstance(spec, Range) and cli.field_type(fields[name]) not in (int, float):
            raise UserError(f"--space {name}: not a number, so it takes choices ({name}=A,B,C), not a range")
        spec.check(name)
        for value in spec.extremes():
            try:
                config_class(**{**base, name: value})
            except UserError as error:
                raise UserError(f"--space {name}={spec}: {error}") from None


def run_trial(train, values, run_dir, metric):
    """Train with `values` into `run_dir`; (best validation `metric` of its epochs, or NaN, and what went wrong)."""
    import keras

    keras.backend.clear_session()  # the previous trial's models, layer names and graphs go
    try:
        train(argparse.Namespace(**{**values, "out": str(run_dir)}))
    except UserError as error:  # the loss became NaN at too high a learning rate, say: a result, not a crash
        return math.nan, str(error)
    epochs = pd.read_csv(run_dir / "metrics.csv")
    if metric not in epochs:
        return math.nan, f"no {metric} in metrics.csv (is there a validation split?)"
    return float(epochs[metric].max()), ""


@dataclass
class Search:
    """What one tune run searches, and how long each trial trains."""

    config_class: type
    train: object  # the project's train(args) command
    space: dict
    metric: str  # a column of metrics.csv to maximise, e.g. "val_accuracy"
    base: dict  # the recipe the search starts from (defaults, --config, flags)
    budget: dict  # settings every trial overrides: fewer epochs, no final test, ...


def top_values(table, space, keep):
    """The values each setting took in the `keep` best scored trials."""
    scored = table[(table["round"] > 0) & table["score"].notna()].sort_values("score", ascending=False, kind="stable")
    best = scored.head(keep)
    return {name: list(best[name]) for name in space}


def search(plan, tune_dir, trials, rounds, minutes=0.0):
    """Run the reference and `rounds` x `trials` trials; returns the table of all of them."""
    rng = np.random.default_rng(plan.base.get("seed", 0))
    rows, space, started = [], dict(plan.space), time.time()

    def record(round_number, name, settings):
        run_dir = tune_dir / name
        trial_started = time.time()
        score, problem = run_trial(plan.train, {**plan.base, **settings, **plan.budget}, run_dir, plan.metric)
        rows.append({"round": round_number, "trial": name, **{k: settings.get(k, plan.base[k]) for k in plan.space},
                     "score": score, "minutes": (time.time() - trial_started) / 60, "problem": problem})
        table = pd.DataFrame(rows)
        table.to_csv(tune_dir / "trials.csv", index=False)
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())
        print(f"== {name}: {shown or 'the default recipe'} -> {plan.metric} {score:.4f} {problem}".rstrip(), flush=True)
        return table

    table = record(0, "default", {})
    if math.isnan(table["score"].iloc[0]):
        raise UserError(f"the recipe to start from does not train: {table['problem'].iloc[0] or 'no score'}")
    for round_number in range(1, rounds + 1):
        if round_number > 1:
            best = top_values(table, space, keep=max(2, len(table[table["round"] > 0]) // 4))
            space = {name: spec.narrow(best[name]) for name, spec in space.items()}
            print("== narrowed: " + ", ".join(f"{name} {spec}" for name, spec in space.items()), flush=True)
        for number in range(1, trials + 1):
            elapsed = time.time() - started
            if minutes and elapsed + table["minutes"].mean() * 60 > minutes * 60:
                print(f"== the next trial would end after the {minutes:g}-minute limit: stopping here", flush=True)
                return table
            table = record(round_number, f"r{round_number}-t{number}", {k: spec.sample(rng) for k, spec in space.items()})
    return table


def best_config(plan, table):
    """The best trial's settings on top of the recipe, at the recipe's full length."""
    candidates = table[(table["round"] > 0) & table["score"].notna()]
    if candidates.empty:
        raise UserError("no trial finished; see trials.csv for what went wrong")
    best = candidates.loc[candidates["score"].idxmax()]
    fields = {item.name: item for item in dataclasses.fields(plan.config_class)}
    settings = {name: cli.field_type(fields[name])(best[name]) for name in plan.space}  # numpy values to JSON's
    config = plan.config_class(**{**plan.base, **settings})
    return {k: v for k, v in asdict(config).items() if k != "out"}, best


def results_text(plan, table, best, wall_minutes, trials_per_round):
    """The README's account of a tune run: what was searched, the default against the best, the top trials."""
    from common import backend

    reference = table[table["round"] == 0].iloc[0]
    verdict = "at least as good as" if best["score"] >= reference["score"] else "worse than"
    shown = table.sort_values("score", ascending=False, kind="stable")
    shown = pd.concat([shown[shown["round"] > 0].head(5), shown[shown["round"] == 0]])
    budget = ", ".join(f"{k} {v}" for k, v in plan.budget.items() if k != "final_test")
    lines = [
        f"{len(table) - 1} trials ({trials_per_round} per round, {table['round'].max()} rounds; {budget} each) "
        f"and the default recipe at the same budget, in {wall_minutes:.1f} min on {backend.describe_device()} "
        f"({backend.name()}). Best trial `{best['trial']}`: {plan.metric} {best['score']:.4f}, "
        f"{verdict} the default recipe's {reference['score']:.4f}.",
        "",
        markdown_table(shown.drop(columns=["problem"]).rename(columns={"score": plan.metric})),
    ]
    return "\n".join(lines)


def command(project, config_class, train, space, metric, defaults=None, budget=None, trial_epochs=2, readme=None):
    """The `tune` sub-command for a project: (help, flag adder, function) for `cli.run_commands`."""

    def add_flags(parser):
        cli.add_config_flags(parser, config_class)
        cli.add_config_file_flag(parser)
        parser.add_argument("--trials", type=int, default=4, help="trials per round (default: 4)")
        parser.add_argument("--rounds", type=int, default=3, help="rounds; each narrows the ranges around the best trials (default: 3)")
        parser.add_argument("--trial-epochs", type=int, default=trial_epochs, help=f"epochs of each trial (default: {trial_epochs})")
        parser.add_argument("--space", nargs="+", metavar="NAME=SPEC", help=f"what to search instead of the project's space: {SPEC_FORMS}")
        parser.add_argument("--minutes", type=float, default=0, help="start no trial that would end after this many minutes (default: no limit)")
        if readme:
            parser.add_argument("--readme", action="store_true", help="write the results into the project's README")

    def run(args):
        started = time.time()
        for flag in ("trials", "rounds", "trial_epochs"):
            if getattr(args, flag) < 1:
                raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
        config, _ = cli.resolve_config(project, config_class, args, defaults)
        base = asdict(config)
        searched = parse_space(args.space, config_class) if args.space is not None else space
        check_space(searched, config_class, base)
        plan = Search(config_class, train, searched, metric, base, {**(budget or {}), "epochs": args.trial_epochs, "final_test": False})
        for name in searched:
            if name in plan.budget:
                raise UserError(f"--space {name}: every trial sets it to {plan.budget[name]}, so it cannot be searched")
        tune_dir = runs.new_run_dir(project, config.out, prefix="tune-")
        print(f"tuning {', '.join(f'{k} ({v})' for k, v in searched.items())} on {metric}; results in {tune_dir}")

        table = search(plan, tune_dir, args.trials, args.rounds, args.minutes)
        best, best_row = best_config(plan, table)
        runs.write_json(tune_dir / "best.json", best)
        text = results_text(plan, table, best_row, (time.time() - started) / 60, args.trials)
        runs.write_json(tune_dir / "tune.json", {"space": {k: str(v) for k, v in searched.items()}, "budget": plan.budget,
                                                 "base": base, "best": best, "summary": text.splitlines()[0]})
        with pd.option_context("display.width", 200, "display.max_columns", None):
            print(table.sort_values("score", ascending=False).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(text.splitlines()[0])
        print(f"best settings: {tune_dir / 'best.json'} (train --config {tune_dir / 'best.json'})")
        if getattr(args, "readme", False) and config.tiny:
            print("the README keeps its figures: a --tiny run is no measurement")
        elif getattr(args, "readme", False):
            folder = f"runs/{project}/{tune_dir.name}" if tune_dir.parent == runs.RUNS_DIR / project else tune_dir
            update_readme(readme, "tune", text + f"\n\nAll trials: `{folder}/trials.csv`; the winner's settings: `{folder}/best.json`.")
        return tune_dir

    description = ("random search of the training settings around the recipe the flags describe, scored on validation "
                   "data (the test set is never used); trials train --trial-epochs epochs, best.json keeps --epochs")
    return description, add_flags, run
