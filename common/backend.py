"""The few things that differ between Keras backends: devices, distribution, precision.

Projects never import TensorFlow or JAX; they ask this module. Distribution uses
the engines made for it: `tf.distribute.MirroredStrategy` (or
`MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers) on TensorFlow,
`keras.distribution.DataParallel` on JAX. Setting `CPU_DEVICES=N` splits the CPU
into N logical devices so that all of this can be tried without a GPU.
"""

import contextlib
import json
import os
import platform
import warnings

import keras


def name():
    return keras.backend.backend()


def _tf():
    import tensorflow as tf  # only ever imported under the TensorFlow backend

    return tf


def split_cpu():
    """Apply `CPU_DEVICES=N` on TensorFlow (JAX reads it from XLA_FLAGS, set in common/__init__)."""
    count = int(os.environ.get("CPU_DEVICES", "0") or 0)
    if count > 1 and name() == "tensorflow":
        tf = _tf()
        cpus = tf.config.list_physical_devices("CPU")
        try:
            tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:  # already initialised: the split from the first call stands
            pass


def gpus():
    if name() == "tensorflow":
        return [d.name for d in _tf().config.list_logical_devices("GPU")]
    if name() == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    return []


def describe_device():
    """A short human-readable description of what the computation runs on."""
    found = gpus()
    if found:
        return f"{len(found)} GPU(s): {', '.join(found)}"
    return f"CPU: {_cpu_model()} ({os.cpu_count()} cores)"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions():
    import numpy

    found = {"python": platform.python_version(), "keras": keras.__version__, "numpy": numpy.__version__}
    if name() == "tensorflow":
        found["tensorflow"] = _tf().__version__
    elif name() == "jax":
        import jax

        found["jax"] = jax.__version__
    return found


def set_mixed_precision(enabled):
    """float16 mixed precision on GPUs; bfloat16 on CPUs, where float16 is emulated and slow."""
    if not enabled:
        keras.mixed_precision.set_global_policy("float32")
        return "float32"
    policy = "mixed_float16" if gpus() else "mixed_bfloat16"
    if not gpus():
        warnings.warn("--mixed-precision is meant for GPUs; on this CPU it uses mixed_bfloat16 and may be slower")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def distribution_scope(enabled):
    """A context to build and compile the model in, replicating it across devices when asked."""
    if not enabled:
        return contextlib.nullcontext(), 1
    if name() == "tensorflow":
        tf = _tf()
        workers = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [])
        if len(workers) > 1:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
                d.name for d in tf.config.list_logical_devices("CPU")
            ]
            strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope(), strategy.num_replicas_in_sync
    if name() == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext(), len(devices)
    raise NotImplementedError(f"--distribute is not supported on the {name()} backend")


def fit_to_replicas(replicas, batch_size, *arrays):
    """Trim arrays so every batch, the last one included, splits evenly across replicas.

    Replicated training and evaluation need equal shares per device; dropping at most
    `replicas - 1` examples is the price. A no-op on a single device.
    """
    if replicas <= 1:
        return arrays
    if batch_size % replicas:
        from common.errors import UserError

        raise UserError(f"--batch-size {batch_size} must be a multiple of the {replicas} replicas")
    return tuple(array[: len(array) - len(array) % replicas] for array in arrays)
