"""Hyperparameter search with Optuna, judged on validation data only.

A project hands over its `train` function, its config class, a search space
(setting -> `Range` or `Choice`) and the validation metric to maximise. Every
trial is a short run of that same `train` (a few epochs, the final test-set
evaluation switched off) in its own folder inside the tune folder, scored by its
best epoch's validation metric. Optuna's TPE sampler picks the trials: a few at
random first, then ever more where the good trials so far lie (in log space for
learning rates and the like), which is the coarse-to-fine search one would do by
hand, done by density estimation.

The project's default recipe is trained first, at the same short budget: a
reference, not a candidate, so "the search beat the defaults" is a measurement
that can come out either way. The test set is never looked at: `evaluate` does
that, once, for the model trained with the winner. Every trial goes into
`trials.csv`; the winner's settings, at the full recipe's length, into `best.json`,
which `train --config best.json` takes.
"""

import dataclasses
import math
import time
from dataclasses import asdict, dataclass

from common import cli, runs
from common.errors import UserError

SPEC_FORMS = "NAME=log:LOW:HIGH (log-uniform), NAME=float:LOW:HIGH, NAME=int:LOW:HIGH or NAME=A,B,C (choices)"
RANDOM_SHARE = 1 / 3  # of the trials drawn at random before TPE models the results


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

    def extremes(self):
        return (int(self.low), int(self.high)) if self.integer else (float(self.low), float(self.high))

    def suggest(self, trial, name):
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

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

    def suggest(self, trial, name):
        return trial.suggest_categorical(name, self.options)

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


@dataclass
class Search:
    """What one tune run searches, and how long each trial trains."""

    config_class: type
    train: object  # the project's train(config), or "module:function" naming it
    space: dict
    metric: str  # a column of metrics.csv to maximise, e.g. "val_accuracy"
    base: dict  # the recipe the search starts from (defaults, --config, flags)
    budget: dict  # settings every trial overrides: fewer epochs, no final test, ...

    def run_trial(self, settings, run_dir):
        """Train with `settings` into `run_dir`: (best validation metric of its epochs, or NaN, and what went wrong)."""
        import keras
        import pandas as pd

        keras.backend.clear_session()  # the previous trial's models, layer names and graphs go
        try:
            cli.imported(self.train)(self.config_class(**{**self.base, **settings, **self.budget, "out": str(run_dir)}))
        except UserError as error:  # the loss became NaN at too high a learning rate, say: a result, not a crash
            return math.nan, str(error)
        epochs = pd.read_csv(run_dir / "metrics.csv")
        if self.metric not in epochs:
            return math.nan, f"no {self.metric} in metrics.csv (is there a validation split?)"
        return float(epochs[self.metric].max()), ""


def search(plan, tune_dir, trials, minutes=0.0):
    """Train the reference, then `trials` trials Optuna picks; returns the table of all of them."""
    import optuna
    import pandas as pd

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial is reported below, in one line
    rows, started = [], time.time()

    def record(name, settings):
        trial_started = time.time()
        score, problem = plan.run_trial(settings, tune_dir / name)
        rows.append({"trial": name, **{k: settings.get(k, plan.base[k]) for k in plan.space},
                     "score": score, "minutes": (time.time() - trial_started) / 60, "problem": problem})
        pd.DataFrame(rows).to_csv(tune_dir / "trials.csv", index=False)
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())
        print(f"== {name}: {shown or 'the default recipe'} -> {plan.metric} {score:.4f} {problem}".rstrip(), flush=True)
        return score

    if math.isnan(record("default", {})):
        raise UserError(f"the recipe to start from does not train: {rows[0]['problem'] or 'no score'}")

    def objective(trial):
        score = record(f"t{trial.number + 1}", {name: spec.suggest(trial, name) for name, spec in plan.space.items()})
        if math.isnan(score):
            raise optuna.TrialPruned(rows[-1]["problem"])  # no score: Optuna learns nothing from it, and goes on
        return score

    def stop_before_the_limit(study, _):
        trial_minutes = sum(row["minutes"] for row in rows) / len(rows)
        if minutes and (time.time() - started) / 60 + trial_minutes > minutes:
            print(f"== the next trial would end after the {minutes:g}-minute limit: stopping here", flush=True)
            study.stop()

    sampler = optuna.samplers.TPESampler(seed=plan.base.get("seed", 0), n_startup_trials=max(1, round(trials * RANDOM_SHARE)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=trials, callbacks=[stop_before_the_limit])
    return pd.DataFrame(rows)


def best_config(plan, table):
    """The best trial's settings on top of the recipe, at the recipe's full length."""
    candidates = table[(table["trial"] != "default") & table["score"].notna()]
    if candidates.empty:
        raise UserError("no trial finished; see trials.csv for what went wrong")
    best = candidates.loc[candidates["score"].idxmax()]
    fields = {item.name: item for item in dataclasses.fields(plan.config_class)}
    settings = {name: cli.field_type(fields[name])(best[name]) for name in plan.space}  # numpy values to JSON's
    config = plan.config_class(**{**plan.base, **settings})
    return {k: v for k, v in asdict(config).items() if k != "out"}, best


def results_text(plan, table, best, wall_minutes):
    """The README's account of a tune run: what was searched, the default against the best, the top trials."""
    import pandas as pd

    from common import backend
    from common.report import markdown_table

    reference = table[table["trial"] == "default"].iloc[0]
    verdict = "at least as good as" if best["score"] >= reference["score"] else "worse than"
    shown = table.sort_values("score", ascending=False, kind="stable")
    shown = pd.concat([shown[shown["trial"] != "default"].head(5), shown[shown["trial"] == "default"]])
    budget = ", ".join(f"{k} {v}" for k, v in plan.budget.items() if k != "final_test")
    lines = [
        f"{len(table) - 1} trials picked by Optuna's TPE sampler ({budget} each) and the default recipe at the same "
        f"budget, in {wall_minutes:.1f} min on {backend.describe_device()} ({backend.name()}). Best trial "
        f"`{best['trial']}`: {plan.metric} {best['score']:.4f}, {verdict} the default recipe's {reference['score']:.4f}.",
        "",
        markdown_table(shown.drop(columns=["problem"]).rename(columns={"score": plan.metric})),
    ]
    return "\n".join(lines)


def command(project, config_class, train, space, metric, defaults=None, budget=None, trial_epochs=2, readme=None):
    """The `tune` sub-command for a project: (help, flag adder, function) for `cli.run_commands`.

    `train` is the project's `train(config)` as "module:function", imported when tune runs.
    """

    def add_flags(parser):
        cli.add_config_flags(parser, config_class)
        cli.add_config_file_flag(parser)
        parser.add_argument("--trials", type=int, default=12, help="trials after the default recipe (default: 12)")
        parser.add_argument("--trial-epochs", type=int, default=trial_epochs, help=f"epochs of each trial (default: {trial_epochs})")
        parser.add_argument("--space", nargs="+", metavar="NAME=SPEC", help=f"what to search instead of the project's space: {SPEC_FORMS}")
        parser.add_argument("--minutes", type=float, default=0, help="start no trial that would end after this many minutes (default: no limit)")
        if readme:
            parser.add_argument("--readme", action="store_true", help="write the results into the project's README")

    def run(args):
        started = time.time()
        for flag in ("trials", "trial_epochs"):
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

        table = search(plan, tune_dir, args.trials, args.minutes)
        best, best_row = best_config(plan, table)
        runs.write_json(tune_dir / "best.json", best)
        text = results_text(plan, table, best_row, (time.time() - started) / 60)
        runs.write_json(tune_dir / "tune.json", {"space": {k: str(v) for k, v in searched.items()}, "budget": plan.budget,
                                                 "base": base, "best": best, "summary": text.splitlines()[0]})
        print(table.sort_values("score", ascending=False).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(text.splitlines()[0])
        print(f"best settings: {tune_dir / 'best.json'} (train --config {tune_dir / 'best.json'})")
        if getattr(args, "readme", False) and config.tiny:
            print("the README keeps its figures: a --tiny run is no measurement")
        elif getattr(args, "readme", False):
            folder = f"runs/{project}/{tune_dir.name}" if tune_dir.parent == runs.RUNS_DIR / project else tune_dir
            update_text = text + f"\n\nAll trials: `{folder}/trials.csv`; the winner's settings: `{folder}/best.json`."
            from common.report import update_readme

            update_readme(readme, "tune", update_text)
        return 0

    description = ("Optuna search of the training settings around the recipe the flags describe, scored on validation "
                   "data (the test set is never used); trials train --trial-epochs epochs, best.json keeps --epochs")
    return description, add_flags, run
