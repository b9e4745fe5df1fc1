"""Test setup: never download, never write into the repository's runs/ folder or the user's data.

Every test runs on tiny data it generates itself. The suite runs once per Keras
backend (`make test` sets KERAS_BACKEND, which is fixed once Keras is imported);
under JAX the tests marked `backend_independent` are deselected, as the
TensorFlow run has checked them already.
"""

import os

import pytest

from common import runs


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Runs, datasets and Keras' cache in temporary folders, and nothing downloaded, for this process
    and the commands it starts."""
    folders = {name: tmp_path_factory.mktemp(name.lower()) for name in ("RUNS_DIR", "DATA_DIR", "KERAS_HOME")}
    with pytest.MonkeyPatch.context() as patch:
        for name, folder in folders.items():
            patch.setenv(name, str(folder))
        patch.setenv("DATASETS_OFFLINE", "1")
        patch.setattr(runs, "RUNS_DIR", folders["RUNS_DIR"])
        yield folders


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test, and every fixture set up after it, starts in float32: a training run that chose mixed
    precision leaves Keras' global policy set."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def pytest_collection_modifyitems(config, items):
    """Under JAX, leave out what cannot differ between backends (files, command-line errors, reports).

    The JAX run keeps what JAX can get wrong: the math of losses and decoders, the
    custom gradient steps, one end-to-end training run per project and reloading
    what it saved.
    """
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        return
    independent = [item for item in items if item.get_closest_marker("backend_independent")]
    if independent:
        config.hook.pytest_deselected(items=independent)
        items[:] = [item for item in items if not item.get_closest_marker("backend_independent")]
