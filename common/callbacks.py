"""The callbacks every training run gets, and a throughput meter.

Keras' own machinery: BackupAndRestore for `--resume` after a crash, CSVLogger
for `metrics.csv`, TensorBoard, TerminateOnNaN, ModelCheckpoint for the best model
on validation data and EarlyStopping for `--early-stopping`. Under JAX the
TensorBoard curves are written by `common.tensorboard_log` instead, since Keras'
callback needs TensorFlow.
`Throughput` adds what the summary reports: seconds per epoch and training
samples per second.
"""

import time
from pathlib import Path

import keras


class BackupEveryFewBatches(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that saves several times per epoch *and* at every epoch end.

    Saving mid-epoch means a run killed halfway through a long epoch loses at most a
    fraction of it; saving at the epoch end means a resumed run never repeats an
    epoch it already finished. Keras' callback does one or the other.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._save_model()


class Throughput(keras.callbacks.Callback):
    """Measures wall time of training epochs and the samples per second they processed."""

    def __init__(self, samples_per_epoch):
        super().__init__()
        self.samples_per_epoch = samples_per_epoch
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._started)
        if logs is not None:
            logs["epoch_seconds"] = self.epoch_seconds[-1]

    @property
    def samples_per_second(self):
        # The first epoch includes compilation; leave it out when there is more than one.
        timed = self.epoch_seconds[1:] or self.epoch_seconds
        return self.samples_per_epoch * len(timed) / max(sum(timed), 1e-9) if timed else 0.0


def tensorboard(folder):
    """Keras' TensorBoard callback on TensorFlow; under JAX the same epoch curves, written without TensorFlow."""
    from common import backend
    from common.tensorboard_log import EpochScalars

    return keras.callbacks.TensorBoard(str(folder)) if backend.name() == "tensorflow" else EpochScalars(folder)


def standard(run_dir, steps_per_epoch, samples_per_epoch, monitor=None, patience=0):
    """Callbacks for a run folder; `monitor` (e.g. "val_accuracy") enables the best-model checkpoint,
    and with `patience` (epochs) early stopping that keeps the best weights."""
    run_dir = Path(run_dir)
    throughput = Throughput(samples_per_epoch)
    callbacks = [
        throughput,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run_dir / "metrics.csv"), append=True),
        tensorboard(run_dir / "tensorboard"),
        BackupEveryFewBatches(
            str(run_dir / "backup"),
            save_freq=max(1, steps_per_epoch // 4),
            double_checkpoint=True,
            delete_checkpoint=True,  # kept when a run dies, removed once it finishes
        ),
    ]
    if monitor:
        mode = "min" if "loss" in monitor else "max"
        callbacks.append(
            keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor=monitor, mode=mode, save_best_only=True)
        )
        if patience:
            callbacks.append(
                keras.callbacks.EarlyStopping(monitor, patience=patience, mode=mode, restore_best_weights=True, verbose=1)
            )
    return callbacks, throughput


def diverged(model, callbacks):
    """Whether `fit` stopped because the loss became NaN (TerminateOnNaN), not because early stopping ended it."""
    stopped_early = any(isinstance(c, keras.callbacks.EarlyStopping) and c.stopped_epoch > 0 for c in callbacks)
    return model.stop_training and not stopped_early
