"""Test setup: never download, never write into the repository's runs/ folder.

Every test runs on tiny data it generates itself. The suite is run once per Keras
backend (`make test` sets KERAS_BACKEND); commands are exercised as a user runs
them, in a subprocess, so that "one clear line, no traceback" is checked for real.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ["DATASETS_OFFLINE"] = "1"
os.environ.setdefault("RUNS_DIR", tempfile.mkdtemp(prefix="runs-"))
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="data-")
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="keras-home-")
sys.path.insert(0, str(ROOT))


def run_cli(*args, env=None, timeout=300):
    """Run `python -m <args>` from the repository root; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
