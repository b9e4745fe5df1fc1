"""A small network trained with `backend.gradient_step`, alone or as one process of a group, for the group tests.

`python -m tests.distributed.custom_steps OUT [--batch-norm]`: 30 steps of Adam on global
batches of 16 regression examples drawn by a seeded generator (the same on every
worker); saves `worker<rank>.npz` in OUT with the final weights, every step's loss and the
batch size the step computed on.
"""

import sys
from pathlib import Path

import keras
import numpy as np

from common import backend


def main(out, batch_norm):
    keras.utils.set_random_seed(0)
    data = np.random.default_rng(0)
    x = data.standard_normal((256, 5)).astype(np.float32)
    y = (x @ data.standard_normal((5, 1)) + 0.1 * data.standard_normal((256, 1))).astype(np.float32)
    layers = [keras.Input((5,)), keras.layers.Dense(8, activation="tanh")]
    layers += [keras.layers.BatchNormalization()] if batch_norm else []
    model = keras.Sequential(layers + [keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(0.01)

    shares = []  # the batch size each compiled step was traced for: this process's share

    def loss_fn(inputs, targets):
        shares.append(inputs.shape[0])
        error = model(inputs, training=True) - targets
        return keras.ops.mean(error ** 2), {"mean_error": keras.ops.mean(keras.ops.abs(error))}

    step = backend.gradient_step(loss_fn, model.trainable_variables, optimizer, state=model.non_trainable_variables)
    order = np.random.default_rng(1)
    losses = []
    for _ in range(30):
        chosen = order.choice(len(x), 16, replace=False)
        loss, _ = step(x[chosen], y[chosen])
        losses.append(loss)
    out.mkdir(parents=True, exist_ok=True)
    weights = [keras.ops.convert_to_numpy(v.value) for v in model.weights]
    np.savez(out / f"worker{backend.group().rank}.npz", losses=np.array(losses), share=np.array(sorted(set(shares))), *weights)
    backend.leave_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--batch-norm" in sys.argv[2:])
