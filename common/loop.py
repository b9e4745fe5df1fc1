"""The one training loop for custom steps: GANs, style networks, AnimeGAN, agents.

A project whose training is not one model's `fit` writes its updates as
`common.backend.gradient_step`s and describes its training as a list of `Phase`s
(AnimeGAN: initialisation, discriminator warm-up, adversarial; a GAN or a style
network: one). `TrainingLoop.run` steps through them and gives every such run what
`model.fit` runs get, through a `keras.callbacks.CallbackList` of Keras callbacks:

- a progress bar of running means (Keras' own bar would end an epoch on the last
  step's value) and images (or frames) per second;
- a stop on a loss that is NaN or infinite, whichever loss it is, with one `error:`
  line and the run kept;
- `metrics.csv`, one row per epoch, whose columns may change from phase to phase;
- TensorBoard scalars and sample pictures, written with the `tensorboard` package
  alone, so that JAX runs on machines without TensorFlow get them too;
- atomic checkpoints every `checkpoint_steps` steps or `checkpoint_seconds`,
  whichever comes first, and at every epoch's end. A checkpoint holds every variable
  the next step depends on (all networks, all optimisers, weight averages) and the
  loop's own state: the step, the epoch's running sums and its random generator.
  `resume=True` continues from it and drops the metrics rows written after it, so a
  killed and resumed run takes exactly the steps an uninterrupted one would have.

In a group of processes (`common.launch`), every process runs the same loop with the
same random generators; each step computes on this process's share of the batch and
the group averages the gradients (`common.group_steps`). Every worker saves the same
files; `common.cli` sends all but the chief's to a temporary folder.

Randomness: each epoch draws from `numpy.random.default_rng(phase.rng_key(epoch))`
(by default `(seed, epoch)`); the checkpoint keeps that generator's state, so a run
resumed mid-epoch draws what it would have drawn. A step that needs no data at all
(an agent acting in its environment) is a phase like any other.

Why not `keras.Model.train_step` and `fit`: under JAX `fit` carries the state of one
optimizer (`model.optimizer`) through its compiled step, where a GAN has two and
AnimeGAN three; keras-io's GAN example overrides `train_step` with TensorFlow's
`GradientTape`, so it runs on TensorFlow only; and `BackupAndRestore` restarts an
interrupted epoch from its first batch, writes its files in place and restores
`model.optimizer` alone.
"""

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import pandas as pd

from common import images, runs
from common.errors import UserError
from common.tensorboard_log import TensorBoardWriter

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"


@dataclass
class Phase:
    """A stretch of training with one kind of step.

    `step(at)` makes one update and returns its losses by name; `at` is the `Position`.
    `begin_epoch(rng, epoch)` draws what a whole epoch uses (a data order) from the
    epoch's generator before its first step; the `Position` hands it to every step.
    `end_epoch(epoch, logs)` runs after an epoch's last step: it may add figures to
    `logs` (validation scores) and save sample pictures with `TrainingLoop.save_sample`.
    `on_start()` runs when the phase starts (not when a resumed run re-enters it) and
    `on_end()` after its last step, before the checkpoint that closes it.
    A phase that does not `count_epochs` (a warm-up between epochs) is recorded under
    the number of the epoch that follows it.
    """

    name: str
    step: Callable[["Position"], dict]
    steps_per_epoch: int
    epochs: int = 1
    samples_per_step: int = 1
    count_epochs: bool = True
    title: str = ""
    begin_epoch: Callable = None
    end_epoch: Callable = None
    on_start: Callable = None
    on_end: Callable = None
    rng_key: Callable = None

    @property
    def steps(self):
        return self.epochs * self.steps_per_epoch


@dataclass
class Position:
    """Where a step stands: its epoch, its index in the epoch, how many steps came before it in the run."""

    phase: str
    epoch: int
    index: int
    step: int
    rng: np.random.Generator
    epoch_data: Any = None


@dataclass
class EpochState:
    """What an epoch in progress has gathered; a mid-epoch checkpoint keeps it."""

    totals: dict = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0

    def add(self, losses):
        for key, value in losses.items():
            self.totals[key] = self.totals.get(key, 0.0) + value
        self.steps += 1

    def means(self):
        return {key: value / max(self.steps, 1) for key, value in self.totals.items()}


class TrainingLoop:
    """Runs phases of custom steps in a run folder, with progress, metrics, TensorBoard and checkpoints.

    `variables` maps a name to the variables saved under it (a network's `variables`,
    an optimizer's `variables`): everything training needs to go on. `checkpoint_steps`
    None writes no checkpoints (work that is not worth resuming, such as a few hundred
    steps of optimising one picture). `callbacks`: more Keras callbacks, called before
    the standard ones; `self.params["loop"]` is the loop. `before_checkpoint(step)` runs
    before each checkpoint is written: to update the variables it saves, or to write what
    does not fit in them beside it (an agent's replay buffer).
    """

    def __init__(self, run_dir, variables, seed, resume=False, unit="images", shown=None,
                 checkpoint_steps=200, checkpoint_seconds=120.0, callbacks=(), verbose=None, before_checkpoint=None):
        self.run_dir = Path(run_dir)
        self.variables = {name: list(group) for name, group in variables.items()}
        self.seed = seed
        self.unit = unit
        self.checkpoint_steps = checkpoint_steps
        self.checkpoint_seconds = checkpoint_seconds
        self.before_checkpoint = before_checkpoint
        self.step = 0  # steps finished in this run, all phases together
        self.epoch_rows = []  # (seconds, samples) of each counted epoch this process timed
        self.phase, self.rng, self.epoch_state = None, None, EpochState()
        self._resumed = None  # the loop state of the checkpoint resumed from
        if resume:
            self._restore()
        self.tensorboard = TensorBoardWriter.open(self.run_dir / "tensorboard", purge_step=self.step if resume else None)
        self.metrics = MetricsFile(self.run_dir / METRICS, self.step if resume else None)
        standard = [ProgressBar(shown, unit, verbose), self.metrics]
        if self.tensorboard is not None:
            standard.append(TensorBoardScalars(self.tensorboard))
        self.callbacks = keras.callbacks.CallbackList(list(callbacks) + standard, loop=self)
        self._saved_at = time.monotonic()

    # --- the loop ---------------------------------------------------------------------------

    def run(self, phases):
        """Every step of `phases` not yet taken; returns the last row of metrics.csv (the last epoch's logs)."""
        phases = [phase for phase in phases if phase.steps > 0]
        self.total_epochs = sum(phase.epochs for phase in phases if phase.count_epochs)
        self.several_phases = len({phase.name for phase in phases}) > 1
        start, step, epoch_base = self.step, 0, 0
        self.callbacks.on_train_begin()
        try:
            for phase in phases:
                if step + phase.steps <= start:  # finished before the checkpoint
                    step += phase.steps
                    epoch_base += phase.epochs if phase.count_epochs else 0
                    continue
                if step >= start and phase.on_start:
                    phase.on_start()
                for number in range(phase.epochs):
                    epoch = epoch_base + (number if phase.count_epochs else 0)
                    if step + phase.steps_per_epoch > start:
                        self._run_epoch(phase, epoch, first=max(0, start - step), steps_before=step)
                        last = number == phase.epochs - 1
                        if last and phase.on_end:
                            phase.on_end()
                        self.save_checkpoint()
                    step += phase.steps_per_epoch
                epoch_base += phase.epochs if phase.count_epochs else 0
        finally:
            self.callbacks.on_train_end()
            if self.tensorboard is not None:
                self.tensorboard.close()
        from common import distributed  # loads the backend, which this module leaves to its callers

        distributed.save_loop_check(self.variables)
        return self.metrics.rows[-1] if self.metrics.rows else {}

    def discard_checkpoint(self):
        """Once the run's final products are saved, the checkpoint has served its purpose."""
        (self.run_dir / CHECKPOINT).unlink(missing_ok=True)

    def _run_epoch(self, phase, epoch, first, steps_before):
        rng = np.random.default_rng(phase.rng_key(epoch) if phase.rng_key else [self.seed, epoch])
        epoch_data = phase.begin_epoch(rng, epoch) if phase.begin_epoch else None
        state = EpochState()
        if first:  # resumed inside this epoch: its generator and sums as the checkpoint left them
            rng.bit_generator.state = self._resumed["rng"]
            state = EpochState(**self._resumed["epoch"])
        self.phase, self.epoch_state, self.rng = phase, state, rng
        self.callbacks.on_epoch_begin(epoch, {"phase": phase.name})
        started = time.perf_counter()
        for index in range(first, phase.steps_per_epoch):
            losses = phase.step(Position(phase.name, epoch, index, steps_before + index, rng, epoch_data))
            bad = [key for key, value in losses.items() if not math.isfinite(value)]
            if bad:
                raise UserError(
                    f"training diverged: {bad[0]} became {losses[bad[0]]} at step {self.step + 1} "
                    f"(epoch {epoch + 1}, {phase.name}); try a lower learning rate. Run kept in {self.run_dir}"
                )
            state.add(losses)
            self.step += 1
            state.seconds += time.perf_counter() - started
            started = time.perf_counter()
            self.callbacks.on_train_batch_end(index, losses)
            if index < phase.steps_per_epoch - 1 and self._checkpoint_due():
                self.save_checkpoint()
                started = time.perf_counter()  # the writing is not training time
        samples = (phase.steps_per_epoch - first) * phase.samples_per_step
        seconds_here = state.seconds - (self._resumed["epoch"]["seconds"] if first else 0.0)
        if phase.count_epochs:
            self.epoch_rows.append((seconds_here, samples))
        logs = {"phase": phase.name, "epoch": epoch, "step": self.step, **state.means(), "seconds": state.seconds,
                f"{self.unit}_per_second": samples / max(seconds_here, 1e-9)}
        if phase.end_epoch:
            phase.end_epoch(epoch, logs)
        self.callbacks.on_epoch_end(epoch, logs)
        self.epoch_state = EpochState()

    # --- samples ----------------------------------------------------------------------------

    def save_sample(self, picture, filename, tag="samples"):
        """Save a PIL picture under samples/ and show it in TensorBoard at the current step."""
        path = images.save_image(picture, self.run_dir / "samples" / filename)
        if self.tensorboard is not None:
            self.tensorboard.image(tag, path, self.step)
        return path

    # --- throughput, for the run's summary ----------------------------------------------------

    @property
    def epoch_seconds(self):
        return [seconds for seconds, _ in self.epoch_rows]

    @property
    def samples_per_second(self):
        """Over the epochs this process timed, the first (which compiles the steps) left out when there are more."""
        timed = self.epoch_rows[1:] or self.epoch_rows
        return sum(samples for _, samples in timed) / max(sum(seconds for seconds, _ in timed), 1e-9) if timed else 0.0

    # --- checkpoints ------------------------------------------------------------------------

    def _checkpoint_due(self):
        if self.checkpoint_steps is None:
            return False
        return self.step % self.checkpoint_steps == 0 or time.monotonic() - self._saved_at >= self.checkpoint_seconds

    def save_checkpoint(self):
        """Every variable and the loop's state, in one .npz written atomically (no pickles)."""
        if self.checkpoint_steps is None:
            return
        if self.before_checkpoint:
            self.before_checkpoint(self.step)
        state = {"step": self.step, "epoch": vars(self.epoch_state) if self.epoch_state.steps else None,
                 "rng": self.rng.bit_generator.state if self.epoch_state.steps else None}
        arrays = {"loop_state": np.array(json.dumps(state))}
        for name, group in self.variables.items():
            for index, variable in enumerate(group):
                arrays[f"{name}/{index}"] = keras.ops.convert_to_numpy(variable.value)
        with runs.atomic_path(self.run_dir / CHECKPOINT) as temporary:
            np.savez(temporary, **arrays)
        self._saved_at = time.monotonic()

    def _restore(self):
        path = self.run_dir / CHECKPOINT
        if not path.is_file():
            return  # stopped before its first checkpoint: it starts over
        try:
            with np.load(path, allow_pickle=False) as saved:
                state = json.loads(str(saved["loop_state"]))
                for name, group in self.variables.items():
                    for index, variable in enumerate(group):
                        key = f"{name}/{index}"
                        if key not in saved.files or tuple(saved[key].shape) != tuple(variable.shape):
                            raise ValueError(f"its {name} variable {index} does not fit this model")
                        variable.assign(saved[key])
                expected = sum(len(group) for group in self.variables.values()) + 1
                if len(saved.files) != expected:
                    raise ValueError(f"it holds {len(saved.files) - 1} variables, this model has {expected - 1}")
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise UserError(f"{path} is not a checkpoint of this run's model ({error}); start a new run") from None
        self.step, self._resumed = state["step"], state
        print(f"continuing after step {self.step}", flush=True)


# --- the callbacks every run gets --------------------------------------------------------------


class ProgressBar(keras.callbacks.Callback):
    """A Keras progress bar of each loss's running mean over the epoch, and the samples per second."""

    def __init__(self, shown=None, unit="images", verbose=None):
        super().__init__()
        self.shown, self.unit = shown, unit
        self.verbose = verbose if verbose is not None else (1 if sys.stdout.isatty() else 2)

    def on_epoch_begin(self, epoch, logs=None):
        loop = self.params["loop"]
        phase = loop.phase
        title = phase.title or f"epoch {epoch + 1}/{loop.total_epochs}" + (f" ({phase.name})" if loop.several_phases else "")
        print(title, flush=True)
        self.bar = keras.utils.Progbar(phase.steps_per_epoch, verbose=self.verbose)

    def on_train_batch_end(self, batch, logs=None):
        loop = self.params["loop"]
        state = loop.epoch_state
        means = state.means()
        shown = [(key, means[key]) for key in (self.shown or means) if key in means]
        shown.append((f"{self.unit}/s", state.steps * loop.phase.samples_per_step / max(state.seconds, 1e-9)))
        self.bar.stateful_metrics = {key for key, _ in shown}  # running means already: shown as they are
        self.bar.update(batch + 1, shown)


class MetricsFile(keras.callbacks.Callback):
    """metrics.csv, a row per epoch, rewritten atomically; a resumed run first drops the rows after its checkpoint."""

    def __init__(self, path, resumed_step=None):
        super().__init__()
        self.path = Path(path)
        self.rows = []
        if resumed_step is not None and self.path.is_file():
            rows = pd.read_csv(self.path)
            self.rows = rows[rows["step"] <= resumed_step].to_dict("records") if "step" in rows else []

    def on_epoch_end(self, epoch, logs=None):
        # Keras hands callbacks the logs sorted by name: where, then the figures, then the timing.
        first = {"phase": logs["phase"], "epoch": int(logs["epoch"]), "step": int(logs["step"])}
        timing = [key for key in logs if key == "seconds" or key.endswith("_per_second")]
        figures = {key: value for key, value in logs.items() if key not in first and key not in timing}
        self.rows.append({**first, **figures, **{key: logs[key] for key in timing}})
        with runs.atomic_path(self.path) as temporary:
            pd.DataFrame(self.rows).to_csv(temporary, index=False)


class TensorBoardScalars(keras.callbacks.Callback):
    """Each loss at every `every`-th step, and the epoch's means and throughput, against the run's step."""

    def __init__(self, writer, every=10):
        super().__init__()
        self.writer, self.every = writer, every

    def on_train_batch_end(self, batch, logs=None):
        step = self.params["loop"].step
        if step % self.every == 0:
            self.writer.scalars({f"step/{key}": value for key, value in logs.items()}, step)

    def on_epoch_end(self, epoch, logs=None):
        numbers = {key: value for key, value in logs.items() if isinstance(value, (int, float)) and key not in ("epoch", "step")}
        self.writer.scalars({f"epoch/{key}": value for key, value in numbers.items()}, int(logs["step"]))
        self.writer.flush()
