"""The few things that differ between Keras backends: devices, distribution, precision.

Projects never import TensorFlow or JAX; they ask this module. Distribution uses
the engines made for it: `tf.distribute.MirroredStrategy` (or
`MultiWorkerMirroredStrategy` when `TF_CONFIG` names several workers) on TensorFlow,
`keras.distribution.DataParallel` on JAX. Setting `CPU_DEVICES=N` splits the CPU
into N logical devices so that all of this can be tried without a GPU.

Importing this module imports Keras, and with it TensorFlow, and starts TensorFlow's
runtime (after `CPU_DEVICES`' split), without TensorFlow's start-up lines (see
`start_up_lines_dropped`); `cli.run_commands` imports it first.
"""

import contextlib
import os
import platform
import signal
import sys
import tempfile

# What TensorFlow prints on stderr while its libraries load, whatever TF_CPP_MIN_LOG_LEVEL
# says: these come from static initialisers that run before its logging is set up, once
# in each of two libraries that carry their own copy of that code (the core, and the
# profiler plugin, which `import tensorflow` loads too): hence each line twice.
START_UP_LINES = (
    "All log messages before absl::InitializeLog() is called",
    "port.cc:153] oneDNN custom operations are on",
    "cudart_stub.cc:31] Could not find cuda drivers",
    "cpu_feature_guard.cc:",
    "To enable the following instructions:",
)
# Its CUDA build also reports, as an error, that it found no GPU driver when its runtime
# starts: expected, and so dropped too, where the machine has no NVIDIA device at all.
NO_DRIVER_LINES = () if os.path.exists("/dev/nvidiactl") else ("cuda_platform.cc:52] failed call to cuInit",)


_real_stderr = None  # the process's stderr while start_up_lines_dropped holds it


@contextlib.contextmanager
def start_up_lines_dropped(dropped=START_UP_LINES):
    """Route the process's stderr (file descriptor 2) to a file meanwhile; then replay it without the `dropped` lines.

    Everything else written meanwhile (a real error, a warning from the loader) still
    reaches stderr, only later.
    """
    global _real_stderr
    sys.stderr.flush()
    saved = _real_stderr = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            _real_stderr = None
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not any(noise in line for noise in dropped)))
            sys.stderr.flush()


with start_up_lines_dropped():
    import keras

from common.errors import warn  # noqa: E402
from common.launch import current_group  # noqa: E402


def name():
    return keras.backend.backend()


def set_random_seed(seed):
    """Keras' `set_random_seed`: Python's, NumPy's and Keras' own random numbers, and TensorFlow's.

    Keras imports TensorFlow to seed it whenever it is installed, even under JAX, which
    costs seconds at every start; nothing here uses TensorFlow under JAX, so it is seeded
    there only when something has imported it already.
    """
    if name() == "tensorflow" or "tensorflow" in sys.modules:
        with start_up_lines_dropped():
            keras.utils.set_random_seed(seed)
        return
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    # What keras.utils.set_random_seed does, less TensorFlow (Keras 3.15's rng_utils).
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


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


def cpu_has_bfloat16():
    """Whether the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX), so that mixed_bfloat16 pays off."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def half_precision_policy():
    """float16 mixed precision on GPUs; bfloat16 on CPUs, where float16 is emulated and slow."""
    return "mixed_float16" if gpus() else "mixed_bfloat16"


def has_fast_half_precision():
    """Whether `half_precision_policy` computes faster than float32 here: on a GPU, or a CPU with native bfloat16."""
    return bool(gpus()) or cpu_has_bfloat16()


def set_mixed_precision(enabled):
    """Sets Keras' global policy: `half_precision_policy` when enabled, else float32; returns its name.

    `enabled` None decides by the hardware: on where it computes faster (`has_fast_half_precision`).
    """
    fast = has_fast_half_precision()
    if enabled is None:
        enabled = fast
    if not enabled:
        keras.mixed_precision.set_global_policy("float32")
        return "float32"
    policy = half_precision_policy()
    if not fast:
        warn("this CPU has no native bfloat16 arithmetic: mixed precision (mixed_bfloat16) may be slower here")
    keras.mixed_precision.set_global_policy(policy)
    return policy


CONNECT_SECONDS_VARIABLE = "WORKER_CONNECT_SECONDS"
CONNECT_SECONDS = 50.0  # how long a worker waits for the whole group before it gives up
_strategy = None  # TensorFlow's MultiWorkerMirroredStrategy, once this process has joined its group


def group():
    """The group of processes this one trains in (`common.launch.Group`; alone: worker 0 of 1), joined at import."""
    return _group


def group_strategy():
    """TensorFlow's `MultiWorkerMirroredStrategy` of this process's group (None alone, or under JAX)."""
    return _strategy


def join_group(group):
    """Join the group of processes `group` describes (`common.launch.current_group`), before any computation.

    TensorFlow connects through `MultiWorkerMirroredStrategy` (which reads `TF_CONFIG`),
    JAX through `jax.distributed.initialize`. A worker that cannot reach the others within
    `WORKER_CONNECT_SECONDS` (50 s by default) stops with one line naming the coordinator,
    instead of waiting for ever; a port that is taken is named at once.
    """
    global _strategy
    if not group.several or _strategy is not None:
        return
    _check_port_free(group.own_address if name() == "tensorflow" else (group.coordinator if group.is_chief else ""))
    seconds = float(os.environ.get(CONNECT_SECONDS_VARIABLE) or CONNECT_SECONDS)
    with _deadline(seconds, f"worker {group.rank} of {group.size} could not form its group with the coordinator at "
                            f"{group.coordinator} within {seconds:.0f} s; check the address and that every worker is running"):
        if name() == "tensorflow":
            tf = _tf()
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            _all_reduce_once(strategy)  # the group exists once a collective has gone round
            gpus()  # the runtime, started with the group in it
            _mend_keras_for_several_workers()
            _strategy = strategy
        elif name() == "jax":
            import jax

            jax.distributed.initialize(group.coordinator, group.size, group.rank, initialization_timeout=int(seconds) + 60)  # the watchdog speaks first
            jax.numpy.zeros(()).block_until_ready()  # the CPU client (and its collectives) starts here
        else:
            raise NotImplementedError(f"several processes are not supported on the {name()} backend")
    # TensorFlow's coordination service takes SIGTERM over to note a preemption, and trains on: a worker
    # that the launcher, Slurm or Kubernetes asks to stop would go on until it is killed.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def leave_group():
    """Wait for every worker of the group to finish its command: TensorFlow's coordination service takes a
    worker that leaves while others still work for a crashed one. A no-op for one process."""
    if not _group.several:
        return
    if name() == "tensorflow":
        _all_reduce_once(_strategy)
    else:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("the command is done")


def _all_reduce_once(strategy):
    tf = _tf()
    tf.function(lambda: strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None), autograph=False)()


def _check_port_free(address):
    """Stop at once, naming it, when the port this process must listen on is taken."""
    if not address:
        return
    import socket

    host, _, port = address.rpartition(":")
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError as error:
            from common.errors import UserError

            raise UserError(f"cannot listen on {address}: {error.strerror or error}; choose a free port") from None


# A watchdog process: it waits for its standard input to close (the block finished, or the
# process it guards died) and, should `seconds` pass first, prints the message and kills that process.
WATCHDOG = """
import os, select, signal, sys
pid, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([sys.stdin], [], [], seconds)[0]:
    print("error: " + message, file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGKILL)
"""


@contextlib.contextmanager
def _deadline(seconds, message):
    """Within the block, a process still inside it after `seconds` is stopped, with `error: message` printed.

    Joining a group blocks in the engines' C++ code, where neither a Python timer nor a
    signal handler gets to run; a small watchdog process does the stopping instead.
    """
    import subprocess

    reader, writer = os.pipe()
    watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(seconds), message], stdin=reader,
                                stderr=_real_stderr)  # where the user sees it, even while start-up lines are held
    os.close(reader)
    try:
        yield
    finally:
        os.close(writer)
        watchdog.wait()


def distribution_scope(enabled):
    """A context to build and compile the model in, replicating it across devices (and processes) when asked.

    Returns (context, replicas): the replicas of the whole group, over every process.
    """
    if not enabled:
        return contextlib.nullcontext(), 1
    if name() == "tensorflow":
        strategy = _strategy
        if strategy is None:
            tf = _tf()
            devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
                d.name for d in tf.config.list_logical_devices("CPU")
            ]
            strategy = tf.distribute.MirroredStrategy(devices)
        return strategy.scope(), strategy.num_replicas_in_sync
    if name() == "jax":
        devices = keras.distribution.list_devices()  # every process's, once it has joined its group
        _one_step_in_flight_on_cpu_devices()
        # Each process hands Keras its own share of every batch (common.distributed): nothing to shard.
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
        return contextlib.nullcontext(), len(devices)
    raise NotImplementedError(f"--distribute is not supported on the {name()} backend")


def _one_step_in_flight_on_cpu_devices():
    """Under JAX on several CPU devices of one process, let Keras dispatch a step only once the last has ended.

    Keras reads each evaluation and prediction step's results in background threads, so
    it dispatches the next step at once. XLA's CPU client then may start the next step's
    program on one device before the last step's program there, and the two programs'
    all-reduces wait on each other for good: evaluating on two logical CPU devices stalled
    within seconds. Keras keeps to one step at a time for a backend it is told is not
    thread-safe, as it does for TensorFlow. Training steps are read in turn already.
    """
    import jax
    import keras.src.backend

    if jax.local_device_count() > 1 and jax.default_backend() == "cpu":
        keras.src.backend.IS_THREAD_SAFE = False


def _mend_keras_for_several_workers():
    """Two mends that let Keras' `fit` and `evaluate` run under `MultiWorkerMirroredStrategy`.

    Keras 3.15's TensorFlow trainer was written for one worker (tensorflow/tensorflow#72388):
    - it averages each step's scalar losses and metrics over the replicas with `axis=0`,
      which across workers fails ("Invalid reduction dimension 0 for input with 0
      dimensions"): scalars are averaged here with `axis=None`;
    - before the first step it averages one batch over the replicas to build the metrics
      (`_maybe_symbolic_build`), which across workers fails for a batch of several
      tensors: one replica's part of the batch has the same shapes and serves as well.
    Both replace private functions of Keras, once, in a process that has joined a group.
    """
    from keras import tree
    from keras.src.backend.tensorflow import trainer

    tf = _tf()
    reduce_per_replica = trainer.reduce_per_replica

    def local_part(value):
        return value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value

    def reduce_over_workers(values, strategy, reduction="auto"):
        if reduction not in ("auto", "mean"):
            return reduce_per_replica(values, strategy, reduction)
        return tree.map_structure(
            lambda value: strategy.reduce("MEAN", value, axis=0 if local_part(value).shape.rank else None), values)

    def build_from_local_batch(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local_part, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_over_workers
    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_local_batch


def localize(model):
    """After training across processes on JAX: each process keeps its own copy of the variables.

    (And on any backend, batch normalisation synchronized across replicas for training is
    saved plain: the setting matters only under a strategy.)

    The variables are replicated over every process's devices, so what follows training
    (scoring, predicting, saving, which each process does on its own) cannot fetch them
    as they are; each takes its local replica and lays the variables out on its own
    device. TensorFlow's replicas read theirs locally already, but `predict_on_batch` would
    still hand the whole batch to each replica and return their outputs end to end (one
    process or several): the model leaves its strategy. A no-op for an undistributed model.
    """
    for layer in model._flatten_layers():
        if getattr(layer, "synchronized", False):  # a training setting, which JAX's Keras refuses to load
            layer.synchronized = False
    if name() == "tensorflow" and getattr(model, "_distribute_strategy", None) is not None:
        model._distribute_strategy = None  # Keras' own attribute; then the default strategy, this process alone
        model.train_function = model.test_function = model.predict_function = None
        return model
    if name() != "jax" or not _group.several:
        return model
    import jax
    import numpy as np

    keras.distribution.set_distribution(None)
    optimizer = getattr(model, "optimizer", None)
    variables = {id(v): v for v in [*model.variables, *(optimizer.variables if optimizer else []), *model.metrics_variables]}
    for variable in variables.values():
        value = variable.value
        local = np.asarray(value.addressable_data(0)) if isinstance(value, jax.Array) else value
        variable._layout = None  # Keras would lay any new value out over the group again
        variable.assign(local)
    model.train_function = model.test_function = model.predict_function = None  # compiled for the group
    return model


def per_replica_dataset(strategy, batches):
    """TensorFlow: `batches` (`common.distributed.GlobalBatches`, `Shares` or `StreamShares`) as a distributed
    dataset that hands each local replica, in order, a consecutive part of this worker's share of every batch, and
    re-slices nothing."""
    tf = _tf()

    def spec(entry):  # (shape, dtype), or a dict of them
        if isinstance(entry, dict):
            return {key: spec(value) for key, value in entry.items()}
        return tf.TensorSpec(entry[0], tf.as_dtype(entry[1]))

    signature = tuple(spec(entry) for entry in batches.signature())

    def dataset(context):
        local = max(1, context.num_replicas_in_sync // context.num_input_pipelines)

        def per_replica_parts():
            for item in range(len(batches)):
                share = batches[item]
                size = len(keras.tree.flatten(share)[0]) // local
                for part in range(local):
                    yield keras.tree.map_structure(lambda array: array[part * size:(part + 1) * size], tuple(share))

        return tf.data.Dataset.from_generator(per_replica_parts, output_signature=signature).prefetch(2)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(dataset, options)


def export_saved_model(model, folder, sample):
    """Export `model` as a TensorFlow SavedModel (TensorFlow backend only); returns what the reloaded export
    computes for `sample`, to check it against the model."""
    tf = _tf()
    model.export(str(folder), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(folder))  # kept in a name: its variables must outlive the call
    return served.serve(tf.constant(sample)).numpy()


def let_jax_compile(model):
    """Under JAX, let `model.fit` compile the training step of a model with Keras' random image transforms.

    Keras marks RandomRotation, RandomTranslation and RandomZoom as unfit for XLA, for
    TensorFlow's sake (its image-transform kernel has no XLA version), and one such layer
    makes Keras run every step of every layer op by op. Under JAX they are array code
    like any other and compile: a step is then one program, which on several devices of
    one process also holds the replicas' all-reduce (op by op, each of hundreds of small
    exchanges can stall XLA's CPU devices for good). Call before `model.compile`.
    """
    if name() != "jax":
        return
    transforms = (keras.layers.RandomRotation, keras.layers.RandomTranslation, keras.layers.RandomZoom)
    for layer in model._flatten_layers():
        if isinstance(layer, transforms):
            layer.supports_jit = True


def scaled_for_replicas(loss):
    """A loss computed by a model's own `compute_loss`, divided by the replicas of TensorFlow's strategy in use, as
    Keras' losses are: the strategy sums the replicas' gradients. JAX's Keras averages them itself: unchanged there."""
    if name() != "tensorflow":
        return loss
    replicas = _tf().distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


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


def gradient_step(loss_fn, trainable, optimizer, state=(), jit_compile=None, shared_inputs=None):
    """One compiled optimisation step for custom training loops (GANs, style transfer).

    `loss_fn(*inputs)` computes `(loss, metrics)` (a scalar and a dict of scalars) with
    `keras.ops` on the current values of the variables; the returned `step(*inputs)`
    updates `trainable` with `optimizer` along the gradient of `loss` and returns
    `(loss, metrics)` as floats. `state` lists the other variables that `loss_fn` may
    change, such as batch-norm statistics. Randomness (noise, crops) should come in
    through `inputs`, so the step stays a pure function of them.

    TensorFlow takes gradients with a `GradientTape` inside a `tf.function`; JAX with
    `jax.value_and_grad` of a stateless call, compiled with `jax.jit`, whose new values
    are written back into the variables after each step. In a group of processes
    (`common.launch`), the step is `common.group_steps`': each process takes its share of
    the first `shared_inputs` inputs (all of them by default), batches of examples, and
    the rest as they are.
    """
    trainable, state = list(trainable), list(state)
    optimizer.build(trainable)
    if jit_compile is None:
        jit_compile = name() == "jax"
    if _group.several:  # each process on its share of the batch, the gradients averaged over the group
        from common.group_steps import group_step

        return group_step(loss_fn, trainable, optimizer, state, jit_compile, shared_inputs)
    if name() == "tensorflow":
        return _tensorflow_step(loss_fn, trainable, optimizer, jit_compile)
    if name() == "jax":
        return _jax_step(loss_fn, trainable, optimizer, state, jit_compile)
    raise NotImplementedError(f"custom training steps are not supported on the {name()} backend")


def _floats(loss, metrics):
    return float(loss), {key: float(value) for key, value in metrics.items()}


def _tensorflow_step(loss_fn, trainable, optimizer, jit_compile):
    tf = _tf()

    @tf.function(jit_compile=bool(jit_compile), reduce_retracing=True)
    def step(*inputs):
        with tf.GradientTape() as tape:
            loss, metrics = loss_fn(*inputs)
            scaled = optimizer.scale_loss(loss)
        optimizer.apply(tape.gradient(scaled, trainable), trainable)
        return loss, metrics

    return lambda *inputs: _floats(*step(*inputs))


def jax_gradients(loss_fn, trainable, optimizer, state):
    """The pure function (trainable, state and optimizer values, inputs) -> (loss, metrics, gradients, new state values)."""
    import jax

    def values_after(scope, variables, values):
        found = (scope.get_current_value(v) for v in variables)
        return [value if new is None else new for new, value in zip(found, values)]

    def pure_gradients(trainable_values, state_values, optimizer_values, inputs):
        def loss_of(values):
            # The optimiser's variables too: a loss-scaled optimiser's scale is read here, and must be
            # this step's, not the one it had when the step was compiled.
            mapping = list(zip(trainable, values)) + list(zip(state, state_values)) + list(zip(optimizer.variables, optimizer_values))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                loss, metrics = loss_fn(*inputs)
                scaled = optimizer.scale_loss(loss)
            return scaled, (loss, metrics, values_after(scope, state, state_values))

        gradients, (loss, metrics, new_state) = jax.grad(loss_of, has_aux=True)(trainable_values)
        return loss, metrics, gradients, new_state

    return pure_gradients


def _jax_step(loss_fn, trainable, optimizer, state, jit_compile):
    import jax

    pure_gradients = jax_gradients(loss_fn, trainable, optimizer, state)

    def pure_step(trainable_values, state_values, optimizer_values, inputs):
        loss, metrics, gradients, new_state = pure_gradients(trainable_values, state_values, optimizer_values, inputs)
        new_trainable, new_optimizer = optimizer.stateless_apply(optimizer_values, gradients, trainable_values)
        return loss, metrics, new_trainable, new_state, new_optimizer

    compiled = jax.jit(pure_step) if jit_compile else pure_step

    def step(*inputs):
        loss, metrics, *updates = compiled(
            [v.value for v in trainable], [v.value for v in state], [v.value for v in optimizer.variables], inputs
        )
        for variables, values in zip((trainable, state, optimizer.variables), updates):
            assign_all(variables, values)
        return _floats(loss, metrics)

    return step


def assign_all(variables, values):
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


@contextlib.contextmanager
def float64_enabled():
    """Within the block, float64 arrays and variables stay float64: JAX makes them float32 unless its
    64-bit types are switched on; TensorFlow keeps them as they are."""
    if name() != "jax":
        yield
        return
    import jax

    with jax.enable_x64(True):
        yield


# A process started as one of a group joins it now: TensorFlow's collectives must be configured
# before its runtime starts, and JAX's processes must meet before its first computation.
_group = current_group(name())
if name() == "tensorflow":  # start the runtime now, while its start-up lines are dropped
    with start_up_lines_dropped(START_UP_LINES + NO_DRIVER_LINES):
        join_group(_group)
        split_cpu()
        gpus()
else:
    join_group(_group)
