"""The shared training loop for custom steps: resume, NaN stop, metrics by phase, TensorBoard, checkpoints.

A crash is a `Stop` raised by a callback right after a given step, where `run_killed_at` kills a
process: the step has been taken, its checkpoint (when one is due) not yet written.
"""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import backend
from common.errors import UserError
from common.loop import CHECKPOINT, Phase, TrainingLoop
from helpers import WITHOUT_TENSORFLOW, read_events, run_subprocess


class Stop(Exception):
    """Stands for the process dying."""


def regression():
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


class DiesAfter(keras.callbacks.Callback):
    """Stops the run right after training step `batch` of `epoch` (both from 0), before its checkpoint."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise Stop


def checkpoint_state(folder):
    with np.load(folder / CHECKPOINT) as saved:
        return json.loads(str(saved["loop_state"]))


def numbers(frame):
    return frame.drop(columns=["seconds", "images_per_second"])


def test_a_run_killed_mid_epoch_resumes_to_exactly_the_uninterrupted_run(tmp_path):
    variables, phases, weights = regression()
    TrainingLoop(tmp_path / "straight", variables, seed=3, verbose=0).run(phases)
    straight_weights = keras.ops.convert_to_numpy(weights.value)
    straight = pd.read_csv(tmp_path / "straight" / "metrics.csv")
    assert list(straight["phase"]) == ["first", "first", "second"] and list(straight["step"]) == [5, 10, 14]
    assert np.isnan(straight.loc[0, "scale"]) and straight.loc[2, "scale"] > 0  # columns differ by phase

    variables, phases, _ = regression()
    # Checkpoints every 3 steps and at each epoch's end: after steps 3, 5 and 6; killed after step 8
    # (epoch 1, batch 2), so the resumed run takes steps 7 and 8 again.
    loop = TrainingLoop(tmp_path / "killed", variables, seed=3, checkpoint_steps=3, callbacks=[DiesAfter(1, 2)], verbose=0)
    with pytest.raises(Stop):
        loop.run(phases)
    assert len(pd.read_csv(tmp_path / "killed" / "metrics.csv")) == 1
    state = checkpoint_state(tmp_path / "killed")
    assert state["step"] == 6 and state["epoch"]["steps"] == 1  # mid-epoch: its sums and generator are kept

    variables, phases, weights = regression()
    TrainingLoop(tmp_path / "killed", variables, seed=3, resume=True, verbose=0).run(phases)
    resumed = pd.read_csv(tmp_path / "killed" / "metrics.csv")
    pd.testing.assert_frame_equal(numbers(resumed), numbers(straight), rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights.value), straight_weights, rtol=1e-6)


@pytest.mark.backend_independent
def test_rows_written_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    variables, phases, _ = regression()

    def dies():  # between the second epoch's metrics row and the checkpoint that closes the phase
        raise Stop

    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=1000, verbose=0)
    with pytest.raises(Stop):
        loop.run([Phase(**{**vars(phases[0]), "on_end": dies})])
    assert list(pd.read_csv(tmp_path / "metrics.csv")["step"]) == [5, 10] and checkpoint_state(tmp_path)["step"] == 5
    variables, phases, _ = regression()
    resumed = TrainingLoop(tmp_path, variables, seed=0, resume=True, verbose=0)
    assert resumed.step == 5 and [row["step"] for row in resumed.metrics.rows] == [5]


@pytest.mark.backend_independent
def test_a_loss_that_is_not_finite_stops_the_run_and_keeps_it(tmp_path):
    variables, _, _ = regression()

    def diverging(at):
        return {"loss": 1.0, "d_real": float("nan") if at.step == 6 else 0.5}

    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=1000, verbose=0)
    with pytest.raises(UserError, match=r"d_real became nan at step 7 \(epoch 2, first\).*Run kept in"):
        loop.run([Phase("first", diverging, steps_per_epoch=5, epochs=2)])
    assert checkpoint_state(tmp_path)["step"] == 5 and list(pd.read_csv(tmp_path / "metrics.csv")["step"]) == [5]


@pytest.mark.backend_independent
def test_checkpoints_follow_the_clock_as_well_as_the_step_count(tmp_path):
    variables, phases, _ = regression()
    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=1000, checkpoint_seconds=0, callbacks=[DiesAfter(0, 3)],
                        verbose=0)
    with pytest.raises(Stop):
        loop.run(phases)
    assert checkpoint_state(tmp_path)["step"] == 3  # every step, by the clock


@pytest.mark.backend_independent
def test_tensorboard_gets_scalars_and_pictures_and_a_resume_purges_what_came_after(tmp_path):
    variables, phases, _ = regression()
    # Checkpoints after steps 4, 5, 8, 10 and 12; killed after step 13 (the second phase's epoch 2, batch 2).
    loop = TrainingLoop(tmp_path, variables, seed=0, checkpoint_steps=4, callbacks=[DiesAfter(2, 2)], verbose=0)
    phases[0].end_epoch = lambda epoch, logs: loop.save_sample(Image.new("RGB", (6, 4), "red"), f"epoch_{epoch + 1:03d}.png")
    with pytest.raises(Stop):
        loop.run(phases)
    assert (tmp_path / "samples" / "epoch_002.png").is_file()
    events = read_events(tmp_path / "tensorboard")
    scalars = {(value.tag, event.step): value.simple_value for event in events for value in event.summary.value if value.tag != "samples"}
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert {("step/loss", 10), ("step/mean_error", 10), ("epoch/images_per_second", 10)} <= scalars.keys()
    assert scalars["epoch/loss", 5] == pytest.approx(metrics.loc[0, "loss"]) and scalars["epoch/loss", 10] == pytest.approx(metrics.loc[1, "loss"])
    pictures = [(event.step, value.image) for event in events for value in event.summary.value if value.tag == "samples"]
    assert [step for step, _ in pictures] == [5, 10] and (pictures[0][1].width, pictures[0][1].height) == (6, 4)
    assert pictures[1][1].encoded_image_string == (tmp_path / "samples" / "epoch_002.png").read_bytes()

    variables, _, _ = regression()
    TrainingLoop(tmp_path, variables, seed=0, resume=True, verbose=0)
    purges = [event.step for event in read_events(tmp_path / "tensorboard") if event.HasField("session_log")]
    assert purges == [12]


@pytest.mark.backend_independent
def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    variables, phases, _ = regression()
    TrainingLoop(tmp_path, variables, seed=0, verbose=0).run(phases[:1])
    for other in ({"weights": [keras.Variable(np.zeros(3, np.float32))]}, {"weights": variables["weights"]}):
        with pytest.raises(UserError, match="not a checkpoint of this run's model"):
            TrainingLoop(tmp_path, other, seed=0, resume=True, verbose=0)


LOOP_WITHOUT_TENSORFLOW = WITHOUT_TENSORFLOW + """
from pathlib import Path
from PIL import Image
from common.loop import Phase, TrainingLoop
loop = TrainingLoop(Path(sys.argv[1]), {}, seed=0, verbose=0)
picture = lambda epoch, logs: loop.save_sample(Image.new("RGB", (6, 4), "red"), f"epoch_{epoch + 1}.png")
loop.run([Phase("train", lambda at: {"loss": 1.0 / (at.step + 1)}, steps_per_epoch=10, epochs=2, end_epoch=picture)])
print("tried to import", sorted(set(tried)))
"""


@pytest.mark.backend_independent  # it runs JAX itself, in a process of its own
def test_under_jax_tensorboard_logs_need_no_tensorflow(tmp_path):
    result = run_subprocess("-c", LOOP_WITHOUT_TENSORFLOW, tmp_path, env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "tried to import []"
    events = read_events(tmp_path / "tensorboard")
    tags = {(value.tag, event.step) for event in events for value in event.summary.value}
    assert {("step/loss", 10), ("epoch/loss", 10), ("samples", 10), ("step/loss", 20), ("samples", 20)} <= tags
