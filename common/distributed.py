"""Feeding `model.fit` under `--distribute`: each process reads its own share of every global batch.

One order for everyone: global batch k of epoch e holds the examples
`order_e[k*B:(k+1)*B]`, where `order_e` is a permutation drawn from `(seed, e)`, the
same on every worker. Worker r of W reads the r-th of W equal, consecutive slices of
it, and each of its devices a consecutive part of that slice: the split one process
makes over its own devices. So W processes with one device each take exactly the
steps one process with W devices takes, and a run resumed at epoch e reads what an
uninterrupted one would have.

`fit_input` hands Keras that order in the form each backend distributes without
re-slicing it: on TensorFlow a `distribute_datasets_from_function` dataset of
per-replica batches (no auto-sharding, no re-batching), on JAX a `PyDataset` of
process-local batches, which Keras assembles into global arrays.

`DISTRIBUTED_CHECK_DIR`, when set, makes every worker save there the example indices
it read and its final weights, to check a group (`make bench-distributed`).
"""

import math
import os
from pathlib import Path

import keras
import numpy as np

from common import backend
from common.errors import UserError

CHECK_DIR_VARIABLE = "DISTRIBUTED_CHECK_DIR"


class GlobalBatches(keras.utils.PyDataset):
    """Every epoch's global batches of `arrays` in a seeded order; item i is this worker's share of batch i.

    Items run through all epochs (pass `steps_per_epoch` to `fit`); `first_epoch` is
    the epoch of item 0, set by `FirstEpoch` when `fit` starts (later on a resumed run).
    """

    def __init__(self, arrays, batch_size, epochs, seed, rank=0, group_size=1, shuffle=True):
        super().__init__()  # one loading thread: `PyDataset.workers` is not the group's workers
        self.arrays, self.batch_size, self.epochs, self.seed = list(arrays), batch_size, epochs, seed
        self.rank, self.group_size, self.shuffle = rank, group_size, shuffle
        self.count = len(self.arrays[0])
        if batch_size % group_size:
            raise UserError(f"--batch-size {batch_size} must be a multiple of the {group_size} workers")
        self.steps_per_epoch = math.ceil(self.count / batch_size)
        self.first_epoch = None
        self.read = {}  # item -> the indices handed out for it, when a check was asked for
        self.recording = bool(os.environ.get(CHECK_DIR_VARIABLE))
        self._order = (None, None)

    def __len__(self):
        return self.epochs * self.steps_per_epoch

    def order(self, epoch):
        """The permutation of epoch `epoch` (the identity without shuffling)."""
        if self._order[0] != epoch:
            permutation = np.random.default_rng([self.seed, epoch]).permutation(self.count) if self.shuffle else np.arange(self.count)
            self._order = (epoch, permutation)
        return self._order[1]

    def indices(self, item):
        epoch, step = divmod(item, self.steps_per_epoch)
        batch = self.order((self.first_epoch or 0) + epoch)[step * self.batch_size:(step + 1) * self.batch_size]
        share = len(batch) // self.group_size
        if share * self.group_size != len(batch):
            raise UserError(f"a batch of {len(batch)} examples does not split over {self.group_size} workers; "
                            "trim the data to a multiple of the replicas (backend.fit_to_replicas)")
        return batch[self.rank * share:(self.rank + 1) * share]

    def __getitem__(self, item):
        chosen = self.indices(item)
        if self.recording:
            self.read[item] = chosen
        return tuple(array[chosen] for array in self.arrays)


class FirstEpoch(keras.callbacks.Callback):
    """Tells the batches which epoch `fit` starts at, before it reads any of them (after BackupAndRestore has
    moved a resumed run on); at the end, saves what a check asked for."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        if self.batches.first_epoch is None:
            self.batches.first_epoch = epoch

    def on_train_end(self, logs=None):
        folder = os.environ.get(CHECK_DIR_VARIABLE)
        if folder:
            save_check(Path(folder), self.batches, self.model)


def save_check(folder, batches, model):
    """The example indices this worker read (in the order of the batches) and its final weights, for a group check."""
    folder.mkdir(parents=True, exist_ok=True)
    rank = batches.rank
    reads = np.concatenate([batches.read[item] for item in sorted(batches.read)]) if batches.read else np.zeros(0, np.int64)
    np.save(folder / f"worker{rank}-reads.npy", reads)
    weights = {f"w{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(model.weights)}
    np.savez(folder / f"worker{rank}-weights.npz", **weights)


def fit_input(arrays, batch_size, epochs, seed, model):
    """What to give `model.fit` for `arrays` under `--distribute`: (data, steps_per_epoch, callbacks).

    Call it after the model is built in the distribution scope.
    """
    group = backend.group()
    batches = GlobalBatches(arrays, batch_size, epochs, seed, group.rank, group.size)
    callbacks = [FirstEpoch(batches)]
    if backend.name() == "tensorflow":
        return backend.per_replica_dataset(model.distribute_strategy, batches), batches.steps_per_epoch, callbacks
    return batches, batches.steps_per_epoch, callbacks
