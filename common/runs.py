"""Run directories: one folder per training run, never overwritten, resumable.

A run lives in `runs/<project>/<timestamp>/` and holds `config.json` (every setting,
backend and versions), `metrics.csv`, `tensorboard/`, `backup/` (the training state
Keras' BackupAndRestore needs to resume), the final `model.keras`, `samples/` and,
once training has finished, `summary.json`. `--resume` reopens the latest unfinished
run (or a named one) with the configuration it was started with.
"""

import atexit
import contextlib
import json
import os
import shutil
import tempfile
import time
import zipfile
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


def check_new_file(path, overwrite=False):
    """Stop before writing `path` when a file is there already, unless the user said --overwrite."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; name a file to write")
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise UserError(f"cannot write {path}: {blocking} is a file, not a folder")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; pass --overwrite to replace it")
    return path


def export_file(model_path, out, default_name, overwrite=False):
    """Where an exported model goes: `out` (a .keras file, not the model itself, and new unless
    --overwrite), or `default_name` beside the model."""
    out = Path(out) if out else Path(model_path).parent / default_name
    if out.suffix != ".keras":
        raise UserError(f"--out must name a .keras file, got {out}")
    if out.resolve() == Path(model_path).resolve():
        raise UserError(f"--out {out} is the model being exported; choose another file")
    return check_new_file(out, overwrite)


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
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a JSON file") from None
    except PermissionError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error})") from None


def new_run_dir(project, out=None, prefix=""):
    """Create a fresh run folder (`prefix` before its time stamp); an existing, non-empty `out` is refused, never reused."""
    if out is not None:
        run_dir = check_out(out)
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


def scratch_copy(run_dir=None, prefix="scratch-"):
    """A temporary folder of this process's own, holding a copy of `run_dir` (if any); removed at exit.

    A group's workers other than the chief write their run's files here: they resume
    from the chief's state and leave the chief's folder to the chief.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    if run_dir is not None:
        shutil.copytree(run_dir, folder, dirs_exist_ok=True)
    return folder


def check_out(out):
    """`--out` as a folder for a new run: new, or empty; never a file or a folder of other things."""
    run_dir = Path(out)
    blocking = next((path for path in [run_dir, *run_dir.parents] if path.exists() and not path.is_dir()), None)
    if blocking == run_dir:
        raise UserError(f"--out {run_dir} is a file; name a folder for the run")
    if blocking is not None:
        raise UserError(f"--out {run_dir}: {blocking} is a file, not a folder")
    if run_dir.is_dir() and (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} already holds a run; choose another --out, or --resume {run_dir} to continue it")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise UserError(f"--out {run_dir} is a folder with other files in it; name a new or empty folder")
    return run_dir


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
    owner = read_json(run_dir / "config.json").get("project")
    owner = RENAMED.get(owner, owner)
    if owner != project:
        raise UserError(f"{run_dir} is {_a(owner)} run, not {_a(project)} one; "
                        + (f"continue it with python -m projects.{owner} train --resume {run_dir}" if owner else "it cannot be resumed here"))
    if (run_dir / "summary.json").exists():
        raise UserError(f"{run_dir} already finished (summary.json exists); start a new run instead")
    return run_dir


def _a(project):
    """ "a captcha", "an imdb_lstm": the article a project's name takes in a sentence."""
    if not project:
        return "an unknown project's"
    return f"{'an' if project[0] in 'aeiou' else 'a'} {project}"


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
        check_owner(project, path / "config.json", path)
        path = path / filename
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a run folder or a {filename} file")
    return path


# --- Model files ------------------------------------------------------------------------
# A .keras file is a zip archive; save_model adds one entry naming the project that made it,
# so that load_model can refuse another project's model with a sentence instead of a
# traceback from deep inside Keras.
OWNER_ENTRY = "project.json"


def save_model(model, path, project):
    """Save a Keras model atomically, marked as `project`'s: a crash mid-save leaves the previous file (or none)."""
    with atomic_path(path) as temporary:
        model.save(temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            archive.writestr(OWNER_ENTRY, json.dumps({"project": project}))
    return Path(path)


def load_model(path, project):
    """Load `project`'s .keras file for inference, in safe mode (no code runs), or say in one line why not:
    unreadable, not a Keras model, another project's model, or one holding code."""
    import keras

    path = Path(path)
    check_owner(project, path, path)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a bad file; each means "not a model"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "Lambda" in reason or "safe_mode" in reason:
            raise UserError(f"{path} holds Python code (a Lambda layer); refused: models are loaded without running code") from None
        if "Could not locate class" in reason:
            raise UserError(f"{path} holds layers this project does not know ({reason}): it is not a {project} model") from None
        raise UserError(f"{path} is not a loadable Keras model ({reason})") from None


# Projects renamed since they saved models: a model saved under the old name is the renamed project's.
RENAMED = {"imdb_lstm": "imdb_sentiment"}


def check_owner(project, path, shown):
    """Stop when `path` (a .keras file, or a run's config.json) belongs to another project than `project`."""
    owner = model_owner(path)
    owner = RENAMED.get(owner, owner)
    if owner is not None and owner != project:
        raise UserError(f"{shown} is {_a(owner)} model, not {_a(project)} one; use it with python -m projects.{owner}")


def model_owner(path):
    """The project a .keras file (or the run folder holding it, or a run's config.json) belongs to; None when unsaid."""
    path = Path(path)
    if path.suffix == ".json":
        return read_json(path).get("project") if path.is_file() else None
    try:
        with zipfile.ZipFile(path) as archive:
            if OWNER_ENTRY in archive.namelist():
                return json.loads(archive.read(OWNER_ENTRY)).get("project")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except PermissionError as error:
        raise UserError(f"{path}: cannot read it ({error.strerror})") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; pass a run folder or a .keras file") from None
    except (zipfile.BadZipFile, OSError, ValueError):
        raise UserError(f"{path} is not a Keras model file (a .keras zip archive)") from None
    return model_owner(path.parent / "config.json")


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
