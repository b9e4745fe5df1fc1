"""Custom training steps (`backend.gradient_step`) in a group of processes, one device each.

Every process draws the same global batch (the loop's random generator is seeded
alike everywhere) and passes all of it to the step; the step keeps this process's
consecutive share of every input, computes the loss and its gradients on it, and the
group averages the gradients, the losses and the state the step changed (batch-norm
statistics). Every process then applies the same averaged gradients, so the workers'
variables stay identical, step after step.

With equal shares, the average of the shares' gradients is the gradient of the whole
batch's mean loss, for layers that treat each example on its own. Batch normalisation
normalises each share by its own statistics (as data-parallel GPUs do without
synchronized batch norm), and the moving statistics are the shares' average.

The averaging goes through each backend's collectives: TensorFlow's
`MultiWorkerMirroredStrategy` all-reduce (gRPC between processes), JAX's
`process_allgather` (its distributed runtime).
"""

import numpy as np

from common import backend
from common.distributed import share


def group_step(loss_fn, trainable, optimizer, state, jit_compile, shared_inputs=None):
    """As `backend.gradient_step`, for a process of a group: `step(*inputs)` -> the group's (loss, metrics), where
    the first `shared_inputs` inputs (all, when None) are global batches and the rest the same for every example."""
    group = backend.group()
    if backend.name() == "tensorflow":
        gradients_of, average, apply = _tensorflow_parts(loss_fn, trainable, optimizer, state, jit_compile)
    else:
        gradients_of, average, apply = _jax_parts(loss_fn, trainable, optimizer, state, jit_compile)

    def step(*inputs):
        shared = len(inputs) if shared_inputs is None else shared_inputs
        inputs = [*share(inputs[:shared], group.rank, group.size), *inputs[shared:]]
        loss, metrics, gradients, new_state = gradients_of(*inputs)
        loss, metrics, gradients, new_state = average((loss, metrics, gradients, new_state))
        apply(gradients)
        backend.assign_all(state, new_state)
        return float(loss), {key: float(value) for key, value in metrics.items()}

    return step


def _tensorflow_parts(loss_fn, trainable, optimizer, state, jit_compile):
    import tensorflow as tf  # only ever imported under the TensorFlow backend

    strategy = backend.group_strategy()

    @tf.function(jit_compile=bool(jit_compile), reduce_retracing=True)
    def tape_step(*inputs):
        with tf.GradientTape() as tape:
            loss, metrics = loss_fn(*inputs)
            scaled = optimizer.scale_loss(loss)
        gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                     for g, v in zip(tape.gradient(scaled, trainable), trainable)]
        return loss, metrics, gradients

    def gradients_of(*inputs):
        loss, metrics, gradients = tape_step(*inputs)
        return loss, metrics, gradients, [v.value for v in state]

    @tf.function(autograph=False)
    def all_reduce_mean(values):
        flat = tf.nest.flatten(values)  # sent as one vector: one exchange per step
        vector = tf.concat([tf.reshape(tf.cast(tensor, "float32"), [-1]) for tensor in flat], axis=0)
        mean = strategy.reduce("MEAN", strategy.run(tf.identity, args=(vector,)), axis=None)
        parts = tf.split(mean, [tf.size(tensor) for tensor in flat])
        return tf.nest.pack_sequence_as(values, [tf.cast(tf.reshape(part, tf.shape(tensor)), tensor.dtype)
                                                 for part, tensor in zip(parts, flat)])

    apply = tf.function(lambda gradients: optimizer.apply(gradients, trainable), autograph=False)

    return gradients_of, all_reduce_mean, apply


def _jax_parts(loss_fn, trainable, optimizer, state, jit_compile):
    import jax
    from jax.experimental import multihost_utils

    pure_gradients = backend.jax_gradients(loss_fn, trainable, optimizer, state)
    gradients_step = jax.jit(pure_gradients) if jit_compile else pure_gradients
    apply_step = jax.jit(optimizer.stateless_apply) if jit_compile else optimizer.stateless_apply

    def gradients_of(*inputs):
        return gradients_step([v.value for v in trainable], [v.value for v in state], [v.value for v in optimizer.variables], inputs)

    def average(values):
        gathered = multihost_utils.process_allgather(values)  # each leaf with the group's axis in front
        return jax.tree_util.tree_map(lambda leaf: np.mean(leaf, axis=0, dtype=leaf.dtype), gathered)

    def apply(gradients):
        new_trainable, new_optimizer = apply_step([v.value for v in optimizer.variables], gradients, [v.value for v in trainable])
        backend.assign_all(trainable, new_trainable)
        backend.assign_all(optimizer.variables, new_optimizer)

    return gradients_of, average, apply
