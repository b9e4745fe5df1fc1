"""The shared training loop for custom steps: resume, NaN stop, metrics by phase, TensorBoard, checkpoints."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import backend
from common.errors import UserError
from common.loop import CHECKPOINT, Phase, TrainingLoop


class Stop(Exception):
    """Stands for the process dying between two steps."""


def regression(seed=0):
    """A two-weight linear model fitted by Adam to noisy targets drawn from the step's generator, in two phases."""
    weights = keras.Variable(np.zeros(2, np.float32))
    optimizer = keras.optimizers.Adam(0.05)

    def loss_fn(x, y):
        error = keras.ops.sum(x * weights.value, axis=1) - y
        return keras.ops.mean(error**2), {"mean_error": keras.ops.mean(error)}

    update = backend.gradient_step(loss_fn, [weights], optimizer)

    def first(at):
        x = at.rng.standard_normal((8, 2)).astype(np.float32)[at.epoch_data]
        loss, terms = update(x, x @ np.array([2.0, -1.0], np.float32) + at.rng.normal(0, 0.1, 8).astype(np.float32))
        return {"loss": loss, **terms}

    def second(at):
        x = at.rng.standard_normal((8, 2)).astype(np.float32)
        loss, _ = update(x, x @ np.array([2.0, -1.0], np.float32))
        return {"loss": loss, "scale": float(np.abs(x).mean())}

    phases = [Phase("first", first, steps_per_epoch=5, epochs=2, samples_per_step=8,
                    begin_epoch=lambda rng, epoch: rng.permutation(8)),
              Phase("second", second, steps_per_epoch=4, epochs=1, samples_per_step=8)]
    return {"weights": [weights], "optimizer": optimizer.variables}, phases, weights


def stop_at(phases, step):
    """The same phases, with the run dying before its `step`-th step (counted from 1)."""
    taken = []

    def wrap(function):
        def step_function(at):
            taken.append(at.step)
            if len(taken) == step:
                raise Stop
            return function(at)

        return step_function

    return [Phase(**{**vars(phase), "step": wrap(phase.step)}) for phase in phases]


def numbers(frame):
    return frame.drop(columns=["seconds", "images_per_second"])


def test_a_run_killed_mid_epoch_resumes_to_exactly_the_uninterrupted_run(tmp_path):
    variables, phases, weights = regression()
    TrainingLoop(tmp_path / "straight", variables, seed=3, verbose=0).run(phases)
    straight_weights = keras.ops.convert_to_numpy(weights.value)
    straight = pd.read_csv(tmp_path / "straight" / "metrics.csv")
    assert list(straight["phase"]) == ["first", "first", "second"] and list(straight["step"]) == [5, 10, 14]
    assert np.isnan(straight.loc[0, "scale"]) and np.isfinite(straight.loc[2, "scale"])  # columns differ by phase

    variables, phases, _ = regression()
    loop = TrainingLoop(tmp_path / "killed", variables, seed=3, checkpoint_steps=3, verbose=0)
    with pytest.raises(Stop):
        loop.run(stop_at(phases, 9))  # 8 steps taken; checkpoints after steps 3, 5 (epoch end) and 6
    assert len(pd.read_csv(tmp_path / "killed" / "metrics.csv")) == 1
    state = json.loads(str(np.load(tmp_path / "killed" / CHECKPOINT)["loop_state"]))
    assert state["step"] == 6 and state["epoch"]["steps"] == 1  # mid-epoch: its sums and generator are kept

    variables, phases, weights = regression()
    TrainingLoop(tmp_path / "killed", variables, seed=3, resume=True, verbose=0).run(phases)
    resumed = pd.read_csv(tmp_path / "killed" / "metrics.csv")
    pd.testing.assert_frame_equal(numbers(resumed), numbers(straight), rtol=1e-6)
    assert np.allclose(keras.ops.convert_to_numpy(weights.value), straight_weights, rtol=1e-6)


def test_rows_written_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    variables, phases, _ = regression()
    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=1000, verbose=0)
    loop.run(phases[:1])  # two epochs, each closed by a checkpoint
    loop.step = 5  # as if the process had died before the second epoch's checkpoint
    loop.epoch_state.steps = 0
    loop.save_checkpoint()
    variables, phases, _ = regression()
    resumed = TrainingLoop(tmp_path, variables, seed=0, resume=True, verbose=0)
    assert resumed.step == 5 and [row["step"] for row in resumed.metrics.rows] == [5]


def test_a_loss_that_is_not_finite_stops_the_run_and_keeps_it(tmp_path):
    variables, phases, _ = regression()

    def diverging(at):
        return {"loss": 1.0, "d_real": float("nan") if at.step == 6 else 0.5}

    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=1000, verbose=0)
    with pytest.raises(UserError, match=r"d_real became nan at step 7 \(epoch 2, first\).*Run kept in"):
        loop.run([Phase("first", diverging, steps_per_epoch=5, epochs=2)])
    assert (tmp_path / CHECKPOINT).is_file() and len(pd.read_csv(tmp_path / "metrics.csv")) == 1


def test_checkpoints_follow_the_clock_as_well_as_the_step_count(tmp_path):
    variables, phases, _ = regression()
    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=1000, checkpoint_seconds=0, verbose=0)
    with pytest.raises(Stop):
        loop.run(stop_at(phases, 4))
    assert json.loads(str(np.load(tmp_path / CHECKPOINT)["loop_state"]))["step"] == 3  # every step, by the clock


def read_events(folder):
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        events += list(LegacyEventFileLoader(str(path)).Load())
    return events


def test_tensorboard_gets_scalars_and_pictures_and_a_resume_purges_what_came_after(tmp_path):
    variables, phases, _ = regression()
    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=4, verbose=0)
    phases[0].end_epoch = lambda epoch, logs: loop.save_sample(Image.new("RGB", (6, 4), "red"), f"epoch_{epoch + 1:03d}.png")
    with pytest.raises(Stop):
        loop.run(stop_at(phases, 13))
    assert (tmp_path / "samples" / "epoch_002.png").is_file()
    events = read_events(tmp_path / "tensorboard")
    tags = {(value.tag, event.step) for event in events for value in event.summary.value}
    assert {("step/loss", 10), ("step/mean_error", 10), ("epoch/loss", 5), ("epoch/images_per_second", 10)} <= tags
    picture = next(value.image for event in events for value in event.summary.value if value.tag == "samples")
    assert (picture.width, picture.height) == (6, 4)

    variables, _, _ = regression()
    TrainingLoop(tmp_path, variables, seed=0, resume=True, verbose=0)
    purges = [event.step for event in read_events(tmp_path / "tensorboard") if event.HasField("session_log")]
    assert purges == [12]


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    variables, phases, _ = regression()
    TrainingLoop(tmp_path, variables, seed=0, verbose=0).run(phases[:1])
    other = {"weights": [keras.Variable(np.zeros(3, np.float32))]}
    with pytest.raises(UserError, match="not a checkpoint of this run's model"):
        TrainingLoop(tmp_path, other, seed=0, resume=True, verbose=0)


@pytest.mark.backend_independent  # it runs JAX itself, in processes of its own
def test_under_jax_tensorboard_logs_need_no_tensorflow(tmp_path, python):
    writer_alone = (
        "import sys; from pathlib import Path; from common.loop import TensorBoardWriter\n"
        "writer = TensorBoardWriter(Path(sys.argv[1])); writer.scalars({'loss': 1.0}, 3); writer.close()\n"
        "print('tensorflow imported' if 'tensorflow' in sys.modules else 'tensorflow not imported')\n"
    )
    result = python("-c", writer_alone, tmp_path / "alone", env={"KERAS_BACKEND": "jax"})
    assert result.stdout.strip() == "tensorflow not imported", result.stderr[-3000:]

    blocked = (  # as on a machine where TensorFlow is not installed
        "import importlib.abc, runpy, sys\n"
        "class NoTensorFlow(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tensorflow':\n"
        "            raise ImportError('TensorFlow is not installed here')\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n"
        "sys.argv = ['dcgan'] + sys.argv[1:]\n"
        "runpy.run_module('projects.dcgan', run_name='__main__')\n"
    )
    run_dir = tmp_path / "run"
    result = python("-c", blocked, "train", "--tiny", "--epochs", "3", "--width", "8", "--out", run_dir, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    tags = {value.tag for event in read_events(run_dir / "tensorboard") for value in event.summary.value}
    assert {"step/d_loss", "epoch/g_loss", "samples"} <= tags
