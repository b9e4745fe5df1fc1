"""Test setup: never download, never write into the repository's runs/ folder.

Every test runs on tiny data it generates itself. The suite is run once per Keras
backend (`make test` sets KERAS_BACKEND); commands are exercised as a user runs
them, in a subprocess, so that "one clear line, no traceback" is checked for real.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def scratch(prefix):
    """A temporary folder, removed when this process exits."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


os.environ["DATASETS_OFFLINE"] = "1"
if "RUNS_DIR" not in os.environ:  # pytest-xdist workers share the one their controller made
    os.environ["RUNS_DIR"] = scratch("runs-")
os.environ["DATA_DIR"] = scratch("data-")
os.environ["KERAS_HOME"] = scratch("keras-home-")
sys.path.insert(0, str(ROOT))


def run_python(*args, env=None, timeout=300):
    """Run `python <args>` from the repository root; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_cli(*args, env=None, timeout=300):
    """Run `python -m <args>` from the repository root; returns the CompletedProcess."""
    return run_python("-m", *args, env=env, timeout=timeout)


# Runs a command (`python -m MODULE ARGS`) that kills itself with SIGKILL when the function
# or method TARGET ("package.module:Class.method") is called for the COUNT-th time.
KILLED_AT_CALL = """
import importlib, os, runpy, signal, sys
target, count, module = sys.argv[1], int(sys.argv[2]), sys.argv[3]
owner_name, _, attribute = target.partition(":")
owner = importlib.import_module(owner_name)
*path, name = attribute.split(".")
for part in path:
    owner = getattr(owner, part)
real, calls = getattr(owner, name), []
def killing(*args, **kwargs):
    calls.append(1)
    if len(calls) == count:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(owner, name, killing)
sys.argv = [module, *sys.argv[4:]]
runpy.run_module(module, run_name="__main__")
"""


def run_killed_at_call(target, count, module, *args):
    """`python -m module args`, SIGKILLed at the `count`-th call of `target`; asserts that it was killed."""
    result = run_python("-c", KILLED_AT_CALL, target, count, module, *args)
    assert result.returncode == -9, result.stderr[-3000:]
    return result


def assert_one_line_error(result, *fragments):
    """The command failed with a single `error: ...` line on stderr and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def python():
    return run_python


@pytest.fixture
def killed_at_call():
    return run_killed_at_call


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test, and every fixture set up after it, starts in float32: a training run that chose mixed
    precision leaves Keras' global policy set."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backend_independent: what the test checks does not depend on the Keras backend (files, command-line "
        "errors, reports, Keras' own resume and precision handling); it runs under TensorFlow only",
    )


# The files whose tests take longest, longest first. `make test` hands whole files to its
# pytest-xdist workers in collection order, so these start first and the workers finish
# close together instead of one waiting on a long file it was given last.
LONGEST_FIRST = ("test_mnist_cnn.py", "test_animegan.py", "test_captcha.py", "test_training.py", "test_style_transfer.py")


def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite once per backend; tests that cannot differ between backends run once.

    The JAX run keeps what JAX can get wrong: the math of losses and decoders, the
    custom gradient steps, one end-to-end training run per project and reloading
    what it saved. File handling and command-line behaviour are checked once.
    """
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    skip = pytest.mark.skip(reason="backend-independent: run under the TensorFlow backend")
    for item in items:
        if "backend_independent" in item.keywords:
            item.add_marker(skip)
