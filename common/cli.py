"""Shared command-line plumbing: config dataclasses become flags, errors become one line.

Each project describes its recipe as a frozen dataclass derived from one of
`common.config`'s; its defaults *are* the recommended recipe. `add_config_flags`
turns every field into a `--flag` with the field's type, and `config_from_args` applies only the flags the
user typed, so a resumed run keeps its saved settings unless told otherwise.
`--config FILE.json` starts from a saved config (tune's best.json, or another run's
config.json): defaults, then the file, then the typed flags.
`run_commands` dispatches the sub-command and prints any `UserError`, and any flag
argparse refuses, as a single `error: ...` line with exit status 2, never a traceback.
A command names its function as "module:function", imported only when that command
runs: `--help` and argument errors answer without loading Keras or TensorFlow.
"""

import argparse
import dataclasses
import importlib
import sys
import time

from common import runs
from common.config import flag
from common.errors import UserError
from common.launch import current_group


def add_config_flags(parser, config_class):
    """One `--flag` per field of `config_class`; unset flags stay out of the namespace."""
    for item in dataclasses.fields(config_class):
        kwargs = {k: v for k, v in item.metadata.items() if k != "help"}
        kwargs.update(help=item.metadata.get("help"), default=argparse.SUPPRESS, dest=item.name)
        value_type = field_type(item)
        if value_type is bool:
            kwargs.pop("type", None)
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.setdefault("type", value_type)
            kwargs["help"] = f"{kwargs['help']} (default: {item.default})"
        parser.add_argument(flag(item.name), **kwargs)


def typed_flags(config_class, args):
    """The settings the user typed on the command line."""
    known = {f.name for f in dataclasses.fields(config_class)}
    return {k: v for k, v in vars(args).items() if k in known}


def config_from_args(config_class, args, saved=None):
    """Defaults, then a saved config (when resuming, or from --config), then the flags the user typed."""
    known = {f.name for f in dataclasses.fields(config_class)}
    values = {k: v for k, v in (saved or {}).items() if k in known}
    values.update(typed_flags(config_class, args))
    return config_class(**values)


def field_type(item):
    """The Python type of a config field's values (str for fields that default to None)."""
    return item.metadata.get("type") or (type(item.default) if item.default is not None else str)


def read_config_file(path, config_class):
    """The settings in a JSON file: a flat object of settings, or a run's config.json (settings under "config").

    Every name must be a setting of `config_class` and every value of its type (and
    among its choices), so a typo in a hand-written file is an error, not ignored.
    A saved run folder (`out`) is never reused: the new run gets its own.
    """
    saved = runs.read_json(path)
    if isinstance(saved, dict) and isinstance(saved.get("config"), dict):
        saved = saved["config"]
    if not isinstance(saved, dict):
        raise UserError(f"{path} holds no settings; expected a JSON object like {{\"lr\": 0.001}}")
    fields = {item.name: item for item in dataclasses.fields(config_class)}
    unknown = sorted(set(saved) - set(fields))
    if unknown:
        raise UserError(f"{path}: unknown setting {', '.join(unknown)}; the settings are {', '.join(fields)}")
    values = {}
    for name, value in saved.items():
        item, expected = fields[name], field_type(fields[name])
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        items = value if isinstance(value, list) and item.metadata.get("nargs") else [value]
        if value is not None and any(not isinstance(v, expected) or (expected is int and isinstance(v, bool)) for v in items):
            raise UserError(f"{path}: {name} must be {expected.__name__}, got {value!r}")
        choices = item.metadata.get("choices")
        if choices and value not in choices:
            raise UserError(f"{path}: {name} must be one of {', '.join(map(str, choices))}; got {value!r}")
        values[name] = value
    values.pop("out", None)
    return values


def add_overwrite_flag(parser):
    parser.add_argument("--overwrite", action="store_true", help="replace files that exist already (default: refuse)")


def count(text):
    """An argparse type: a whole number of at least 1 (a count of things to make, show or take)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_config_file_flag(parser):
    parser.add_argument(
        "--config", metavar="FILE.json",
        help="start from saved settings (tune's best.json, or a run's config.json); flags typed here override them",
    )


def add_resume_flag(parser):
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint (default: the newest unfinished run)",
    )


def train_flags(config_class):
    """The `train` command's flag adder: one flag per config field, plus --resume."""

    def add(parser):
        add_config_flags(parser, config_class)
        add_config_file_flag(parser)
        add_resume_flag(parser)

    return add


def resolve_config(project, config_class, args, defaults=None):
    """The run's settings: `defaults` (e.g. a per-dataset preset), the --config file and the
    flags, or (with --resume) the saved run's config plus the flags.

    `defaults` may be a function of the settings chosen so far (file and flags), for
    presets that depend on one of them. Returns (config, run folder to resume or None).
    Nothing is written yet, so bad flags or missing data stop the command before any
    run folder exists.
    """
    config_file = getattr(args, "config", None)
    if getattr(args, "resume", None):
        if config_file:
            raise UserError("--config starts a new run from saved settings; --resume continues a run with its own")
        run_dir = runs.find_resumable(project, args.resume)
        saved = runs.read_json(run_dir / "config.json").get("config", {})
        return config_from_args(config_class, args, saved), run_dir
    saved = read_config_file(config_file, config_class) if config_file else {}
    if getattr(args, "out", None) and current_group().is_chief:  # the chief alone creates it
        runs.check_out(args.out)  # before any data is read: a bad --out stops at once
    if callable(defaults):
        defaults = defaults({**saved, **typed_flags(config_class, args)})
    return config_from_args(config_class, args, {**(defaults or {}), **saved}), None


def open_run(project, config, resume_dir=None, resolved=None):
    """Create the run folder (or reopen the resumed one), seed, set precision, save config.json.

    config.json holds the settings asked for ("config") and, apart, what the run
    worked out from them and its data ("resolved": sizes, alphabets, weights found).

    A process started as one of a group (`common.launch`) has joined it when `common.backend`
    was imported. The chief
    (worker 0) alone writes the run folder; every other worker writes the same files into
    a temporary copy of its own, removed when it exits.
    """
    from common import backend

    group = backend.group()
    if not group.is_chief:
        run_dir = runs.scratch_copy(resume_dir, f"worker{group.rank}-")
        if resume_dir is not None:
            print(f"resuming {resume_dir} (worker {group.rank} writes into a temporary copy)")
    elif resume_dir is not None:
        run_dir = resume_dir
        print(f"resuming {run_dir}")
    else:
        run_dir = runs.new_run_dir(project, config.out)
    backend.split_cpu()
    backend.set_random_seed(config.seed)
    precision = backend.set_mixed_precision(getattr(config, "mixed_precision", False))
    runs.save_config(
        run_dir,
        config,
        {"resolved": resolved or {}, "project": project, "backend": backend.name(), "precision": precision,
         "versions": backend.versions()},
    )
    return run_dir


def train_command(project, config_class, train, help, defaults=None):
    """The `train` sub-command: (help, flag adder, function) for `run_commands`.

    `train` names the project's `train(config, resume_dir=None)` as "module:function";
    `defaults` (a dict, or a function of the settings chosen so far) sits under the
    --config file and the flags, e.g. a per-dataset preset.
    """

    def run(args):
        config, resume_dir = resolve_config(project, config_class, args, defaults)
        check_group_member(project, config)  # before `imported` loads the backend, which joins the group
        result = imported(train)(config, resume_dir)
        from common import backend

        backend.leave_group()
        return result

    return help, train_flags(config_class), run


def check_group_member(project, config):
    """A process started as one of a group (TF_CONFIG or KERAS_DISTRIBUTION_* set) must train with --distribute."""
    group = current_group()
    if not group.several:
        return
    member = f"this process is worker {group.rank} of {group.size} (TF_CONFIG or KERAS_DISTRIBUTION_* are set)"
    if not getattr(config, "SEVERAL_PROCESSES", False):
        raise UserError(f"{member}, but {project} trains in one process only")
    if not config.distribute:
        raise UserError(f"{member} but --distribute is not; add it")


def imported(target):
    """The function a "module:function" string names (a function is returned as it is).

    Keras and its backend are loaded first, through `common.backend`, which keeps
    TensorFlow's start-up lines off the terminal.
    """
    if not isinstance(target, str):
        return target
    importlib.import_module("common.backend")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def finish_run(run_dir, config, started, throughput, metrics, **extra):
    """Write summary.json: final metrics, wall time, throughput, backend, device, versions."""
    from common import backend

    summary = {
        "metrics": {k: float(v) for k, v in metrics.items()},
        "wall_seconds": round(time.time() - started, 1),
        "train_samples_per_second": round(throughput.samples_per_second, 1),
        "epoch_seconds": [round(s, 2) for s in throughput.epoch_seconds],
        "epochs": config.epochs,
        "backend": backend.name(),
        "device": backend.describe_device(),
        "versions": backend.versions(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }
    return runs.write_json(run_dir / "summary.json", summary)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with a bad flag (an unknown optimizer, say) reported like any bad input: one `error:` line."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def run_commands(prog, description, commands, argv=None):
    """Parse `prog <command> [flags]` and run it.

    `commands` maps name -> (help, add_flags, function), the function given itself or as
    "module:function"; it gets the parsed arguments, and an int it returns is the exit status.
    """
    parser = OneLineErrorParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_flags, function) in commands.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        add_flags(sub)
        sub.set_defaults(function=function)
    args = parser.parse_args(argv)
    try:
        status = imported(args.function)(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
