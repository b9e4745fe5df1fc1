"""Feeding `model.fit` under `--distribute`: each process reads its own share of every global batch.

One order for everyone: global batch k of epoch e holds the examples
`order_e[k*B:(k+1)*B]`, where `order_e` is a permutation drawn from `(seed, e)`, the
same on every worker. Worker r of W reads the r-th of W equal, consecutive slices of
it, and each of its devices a consecutive part of that slice: the split one process
makes over its own devices. So W processes with one device each take exactly the
steps one process with W devices takes, and a run resumed at epoch e reads what an
uninterrupted one would have.

Projects whose batches come from a `PyDataset` of their own (padded to each batch's
longest review, say) use `Shares`: every worker makes the same global batch, seeded by
its place, and keeps its part of it.

`fit_input` and `fit_shares` hand Keras these shares in the form each backend
distributes without re-slicing them: on TensorFlow a `distribute_datasets_from_function` dataset of
per-replica batches (no auto-sharding, no re-batching), on JAX a `PyDataset` of
process-local batches, which Keras assembles into global arrays.

`DISTRIBUTED_CHECK_DIR`, when set, makes every worker save there the example indices
it read and its final weights, to check a group (`make bench-distributed`).
"""

import concurrent.futures
import math
import os
from pathlib import Path

import keras
import numpy as np

from common import backend
from common.errors import UserError

CHECK_DIR_VARIABLE = "DISTRIBUTED_CHECK_DIR"


def share(batch, rank, group_size):
    """Part `rank` of `group_size` equal, consecutive parts of every array of `batch` (a tuple of arrays, or of
    dicts of them), each split along its first axis."""
    def part(array):
        size, left = divmod(len(array), group_size)
        if left:
            raise UserError(f"a batch of {len(array)} examples does not split over {group_size} workers; "
                            f"make --batch-size (and the data) a multiple of {group_size}")
        return array[rank * size:(rank + 1) * size]

    return keras.tree.map_structure(part, tuple(batch))


def described(array):
    """The shape of an array with its first axis (the batch) left open, and its dtype: a batch's signature."""
    return (None, *array.shape[1:]), array.dtype


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
        return share((batch,), self.rank, self.group_size)[0]

    def __getitem__(self, item):
        chosen = self.indices(item)
        if self.recording:
            self.read[item] = chosen
        return tuple(array[chosen] for array in self.arrays)

    def signature(self):
        """The shape (None where it varies) and dtype of each array of an item."""
        return [described(array) for array in self.arrays]


class Shares(keras.utils.PyDataset):
    """This worker's share of every batch of `dataset`, a `PyDataset` of global batches that every worker makes
    alike (in an order drawn from its seed and `on_epoch_end` calls); items run through all epochs, like
    `GlobalBatches`'. Each worker makes the whole batch and keeps its part: no worker needs another's data.

    Keras reads it on one thread, in order (its own loading threads may hand items over out of
    turn); when `dataset` asks for loading threads (`workers`), as many of its next batches
    are made ahead here, on that many threads, and taken in order.
    """

    def __init__(self, dataset, epochs, rank=0, group_size=1):
        super().__init__()
        self.dataset, self.epochs, self.rank, self.group_size = dataset, epochs, rank, group_size
        self.steps_per_epoch = len(dataset)
        self.first_epoch = None
        self.dataset_epoch = 0
        self.read, self.recording = {}, False  # which examples a batch holds is the dataset's own business
        self.ahead = dataset.workers if dataset.workers > 1 else 0
        self._threads = concurrent.futures.ThreadPoolExecutor(self.ahead) if self.ahead else None
        self._coming = {}  # step of the dataset's current epoch -> its batch being made

    def __len__(self):
        return self.epochs * self.steps_per_epoch

    def __getitem__(self, item):
        epoch, step = divmod(item, self.steps_per_epoch)
        epoch += self.first_epoch or 0
        if self.dataset_epoch < epoch:
            for batch in self._coming.values():  # made for the epoch that ends: wait, then drop
                batch.exception()
            self._coming.clear()
        while self.dataset_epoch < epoch:
            self.dataset.on_epoch_end()
            self.dataset_epoch += 1
        batch = self._batch(step)
        return share(batch if isinstance(batch, tuple) else (batch,), self.rank, self.group_size)

    def _batch(self, step):
        if not self._threads:
            return self.dataset[step]
        for coming in range(step, min(step + self.ahead + 1, self.steps_per_epoch)):
            if coming not in self._coming:
                self._coming[coming] = self._threads.submit(self.dataset.__getitem__, coming)
        return self._coming.pop(step).result()

    def signature(self):
        """As `GlobalBatches.signature`, from the dataset's first two batches (reading them moves no epoch on)."""
        first, second = (self.dataset[index] for index in (0, min(1, len(self.dataset) - 1)))
        return [(tuple(None if i == 0 or a.shape[i] != b.shape[i] else a.shape[i] for i in range(a.ndim)), a.dtype)
                for a, b in zip(first, second)]


class StreamShares(keras.utils.PyDataset):
    """This worker's share of every batch of `stream`, an endless iterator of global batches (tuples whose items
    may be dicts of arrays) that every worker draws alike from the same seed; items run through all epochs,
    like `GlobalBatches'`. Item i is the stream's i-th batch: the last `kept` batches are kept, so that a reader
    that starts over (TensorFlow builds the model from a first batch, then trains from item 0) reads them again.
    """

    def __init__(self, stream, steps_per_epoch, epochs, rank=0, group_size=1, kept=32):
        super().__init__()
        self.stream, self.steps_per_epoch, self.epochs = stream, steps_per_epoch, epochs
        self.rank, self.group_size, self.kept = rank, group_size, kept
        self.first_epoch = None
        self.read, self.recording = {}, False  # which examples a batch holds is the stream's own business
        self._batches, self._made = {}, 0

    def __len__(self):
        return self.epochs * self.steps_per_epoch

    def __getitem__(self, item):
        while self._made <= item:
            self._batches[self._made] = next(self.stream)
            self._batches.pop(self._made - self.kept, None)
            self._made += 1
        if item not in self._batches:
            raise RuntimeError(f"batch {item} of the stream is gone: only the last {self.kept} are kept")
        return share(self._batches[item], self.rank, self.group_size)

    def signature(self):
        """As `GlobalBatches.signature`, with a dict of them for an item that is a dict of arrays."""
        return [{key: described(array) for key, array in part.items()} if isinstance(part, dict) else described(part)
                for part in self[0]]


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
    save_variables(folder, rank, model.weights)


def save_variables(folder, rank, variables):
    """`variables` as `worker<rank>-weights.npz` in `folder`, keys w0, w1, ... in their order."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"worker{rank}-weights.npz", **{f"w{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(variables)})


def save_loop_check(variables_by_name):
    """At the end of a custom-step run, when a check asked for it: every variable the loop checkpoints."""
    folder = os.environ.get(CHECK_DIR_VARIABLE)
    if folder:
        save_variables(Path(folder), backend.group().rank, [v for group in variables_by_name.values() for v in group])


def fit_input(arrays, batch_size, epochs, seed, model):
    """What to give `model.fit` for `arrays` under `--distribute`: (data, steps_per_epoch, callbacks).

    Call it after the model is built in the distribution scope.
    """
    group = backend.group()
    return feeding(GlobalBatches(arrays, batch_size, epochs, seed, group.rank, group.size), model)


def fit_stream(stream, steps_per_epoch, epochs, model):
    """As `fit_input`, for an endless iterator of global batches that every worker draws alike (`StreamShares`)."""
    group = backend.group()
    return feeding(StreamShares(stream, steps_per_epoch, epochs, group.rank, group.size), model)


def fit_shares(dataset, epochs, model):
    """As `fit_input`, for a `PyDataset` of global batches (`Shares`); fit without `shuffle`, which would
    reorder each worker's items on its own."""
    group = backend.group()
    return feeding(Shares(dataset, epochs, group.rank, group.size), model)


def feeding(batches, model):
    """`batches` (`GlobalBatches`, `Shares` or `StreamShares`) as each backend's `model.fit` takes them: (data, steps_per_epoch, callbacks)."""
    callbacks = [FirstEpoch(batches)]
    if backend.name() == "tensorflow":
        return backend.per_replica_dataset(model.distribute_strategy, batches), batches.steps_per_epoch, callbacks
    return batches, batches.steps_per_epoch, callbacks
