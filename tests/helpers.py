"""What several test files need: running commands (in this process or another), checking errors, fake data.

Commands run in this process by default (`run_command`): a test then costs its
command's work and nothing more, and under JAX it reuses what earlier tests
compiled. A few things only another process can show, and those keep one:
that a command's whole output is one `error:` line with no traceback
(`run_subprocess`), and a training run killed with SIGKILL (`run_killed_at`).
"""

import contextlib
import gzip
import io
import runpy
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from common.runs import REPOSITORY


@dataclass
class Result:
    """What a command did: its exit status and everything it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_command(module, *args, env=None, stdin=None):
    """`python -m module args`, run in this process; returns a `Result`.

    An exception other than the `SystemExit` a command ends with reaches the test
    as it is, with its traceback: that is a crash, the test fails and shows where.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        for name, value in (env or {}).items():
            patch.setenv(name, str(value))
        patch.setattr(sys, "argv", [module, *map(str, args)])
        if stdin is not None:
            raw = stdin if isinstance(stdin, bytes) else stdin.encode()
            patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
        try:
            runpy.run_module(module, run_name="__main__")
            status = 0
        except SystemExit as exit:
            status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    return Result(status, stdout.getvalue(), stderr.getvalue())


def run_subprocess(*args, env=None, stdin=None, timeout=300):
    """`python args` in a new process from the repository root; returns the CompletedProcess."""
    import os

    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPOSITORY, env={**os.environ, **(env or {})},
        input=stdin, capture_output=True, text=True, timeout=timeout,
    )


# `python -m MODULE ARGS` that kills itself with SIGKILL once the training step `batch` of epoch
# `epoch` (both counted from 0, as Keras' callbacks number them; `phase` too when several phases
# share an epoch number) has been reported to the callbacks: a crash at a known place in training.
KILLED_AT = """
import os, runpy, signal, sys
from common import backend
import keras
epoch, batch, phase, module = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
callbacks, where = keras.callbacks.CallbackList, {}
epoch_begin, batch_end = callbacks.on_epoch_begin, callbacks.on_train_batch_end
def on_epoch_begin(self, number, logs=None):
    where.update(epoch=number, phase=(logs or {}).get("phase", ""))
    epoch_begin(self, number, logs)
def on_train_batch_end(self, index, logs=None):
    batch_end(self, index, logs)
    if (where.get("epoch"), index) == (epoch, batch) and phase in ("", where.get("phase")):
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
callbacks.on_epoch_begin, callbacks.on_train_batch_end = on_epoch_begin, on_train_batch_end
sys.argv = [module, *sys.argv[5:]]
runpy.run_module(module, run_name="__main__")
"""


def run_killed_at(module, *args, epoch, batch, phase=""):
    """`python -m module args`, SIGKILLed after training step `batch` of `epoch`; asserts that it was killed there."""
    result = run_subprocess("-c", KILLED_AT, epoch, batch, phase, module, *args)
    assert result.returncode == -9, result.stderr[-3000:]
    return result


def assert_one_line_error(result, *fragments):
    """The command failed with a single `error: ...` line on stderr and no traceback; returns the line."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def file_bytes(folder):
    """Every file under `folder` and its bytes, to show that a command changed none of them."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def write_idx(path, array, compress=True):
    """`array` in the IDX format MNIST ships in (gzipped unless told not to)."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    raw = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def fake_mnist(folder, train=12, test=5):
    """Random images and labels in MNIST's four files under `folder`."""
    rng = np.random.default_rng(0)
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count).astype(np.uint8))


# A prelude for a program run with `run_subprocess("-c", ...)`: as on a machine where TensorFlow is not
# installed, any import of it fails, and its name is noted in `tried`.
WITHOUT_TENSORFLOW = """
import importlib.abc, sys
tried = []
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            tried.append(name)
            raise ImportError("TensorFlow is not installed here")
sys.meta_path.insert(0, NoTensorFlow())
"""


def read_events(folder):
    """Every TensorBoard event in the event files directly in `folder`, file by file in name order."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        events += list(LegacyEventFileLoader(str(path)).Load())
    return events
