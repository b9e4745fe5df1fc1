"""Run directories: one folder per training run, never overwritten, resumable.

A run lives in `runs/<project>/<timestamp>/` and holds `config.json` (every setting,
backend and versions), `metrics.csv`, `tensorboard/`, `backup/` (the training state
Keras' BackupAndRestore needs to resume), the final `model.keras`, `samples/` and,
once training has finished, `summary.json`. `--resume` reopens the latest unfinished
run (or a named one) with the configuration it was started with.
"""

import contextlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from common.errors import UserError

REPOSITORY = Path(__file__).resolve().parent.parent
RUNS_DIR = Path(os.environ.get("RUNS_DIR") or REPOSITORY / "runs")


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path` to write to, renamed onto `path` once the writing succeeded.

    A crash mid-write leaves the previous file (or none), never half of one. The
    temporary name keeps the suffix, for writers that pick the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path, data):
    """Write JSON atomically so that a crash never leaves half a file."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error})") from None


def new_run_dir(project, out=None, prefix=""):
    """Create a fresh run folder (`prefix` before its time stamp); an existing, non-empty `out` is refused, never reused."""
    if out is not None:
        run_dir = Path(out)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UserError(f"{run_dir} already holds a run; choose another --out, or --resume {run_dir} to continue it")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    base = RUNS_DIR / project
    base.mkdir(parents=True, exist_ok=True)
    stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
    for suffix in [""] + [f"-{n}" for n in range(2, 1000)]:
        try:
            (base / (stamp + suffix)).mkdir()
            return base / (stamp + suffix)
        except FileExistsError:
            continue
    raise UserError(f"could not create a new run folder under {base}")


def find_resumable(project, resume):
    """The run to resume: `resume` names a run folder, or "latest" picks the newest unfinished one."""
    if resume != "latest":
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir} is not a run folder (no config.json)")
    else:
        candidates = sorted((RUNS_DIR / project).glob("*/config.json"), key=lambda p: p.stat().st_mtime)
        unfinished = [p.parent for p in candidates if not (p.parent / "summary.json").exists()]
        if not unfinished:
            raise UserError(f"no unfinished {project} run to resume under {RUNS_DIR / project}")
        run_dir = unfinished[-1]
    if (run_dir / "summary.json").exists():
        raise UserError(f"{run_dir} already finished (summary.json exists); start a new run instead")
    return run_dir


def save_config(run_dir, config, extra):
    return write_json(Path(run_dir) / "config.json", {"config": asdict(config), **extra})


def latest_model(project, filename="model.keras", flag="--model"):
    """The newest finished model (or other product) of a project, for commands run without `flag`."""
    found = sorted((RUNS_DIR / project).glob(f"*/{filename}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"no trained {project} model under {RUNS_DIR / project}; train one first or pass {flag}")
    return found[-1]


def model_path(project, model, filename="model.keras", flag="--model"):
    """Resolve --model (or `flag`): a run folder, a model file, or (when absent) the newest run's model."""
    if model is None:
        return latest_model(project, filename, flag)
    path = Path(model)
    if path.is_dir():
        path = path / filename
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a run folder or a {filename} file")
    return path


def save_model(model, path):
    """Save a Keras model atomically: a crash mid-save leaves the previous file (or none), never half of one."""
    with atomic_path(path) as temporary:
        model.save(temporary)
    return Path(path)


def load_model(path):
    """Load a .keras file for inference, in safe mode (no arbitrary code), or say why not."""
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a bad file; each means "not a model"
        raise UserError(f"{path} is not a loadable Keras model ({str(error).splitlines()[0]})") from None


def run_config(model_path, part="config"):
    """The settings a model was trained with ("config"), or what its run resolved ("resolved"),
    when it sits in its run folder (else {})."""
    config_file = Path(model_path).parent / "config.json"
    return read_json(config_file).get(part, {}) if config_file.is_file() else {}


def record_resolved(run_dir, **values):
    """Add what the run worked out after it started (an image size, say) to config.json's "resolved"."""
    saved = read_json(Path(run_dir) / "config.json")
    saved["resolved"] = {**saved.get("resolved", {}), **values}
    return write_json(Path(run_dir) / "config.json", saved)
