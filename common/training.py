"""How a model is optimised: optimizer, learning-rate schedule, weight decay, clipping, compiling.

The course's training techniques as settings every `model.fit` project shares, so a
user can try them from the command line (`--optimizer momentum --lr-schedule
piecewise --weight-decay 1e-4 --clipnorm 1 --early-stopping 3`) and `tune` can
search them. Everything is Keras' own: its optimizers (with their `weight_decay`
and `global_clipnorm`), its schedules (CosineDecay has the warm-up built in) and
its EarlyStopping callback (in `common.callbacks`). The only piece written here is
a linear warm-up in front of the schedules that lack one.
"""

from functools import partial

import keras
from keras import ops

from common import backend
from common.config import ONE_CYCLE_RISE, SCHEDULES, check_choice
from common.errors import UserError

MOMENTUM = 0.9  # for "momentum" and "nesterov"
OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "momentum": partial(keras.optimizers.SGD, momentum=MOMENTUM),
    "nesterov": partial(keras.optimizers.SGD, momentum=MOMENTUM, nesterov=True),
    "adagrad": keras.optimizers.Adagrad,
    "rmsprop": keras.optimizers.RMSprop,
    "adam": keras.optimizers.Adam,
}
PIECEWISE_DROPS = (0.5, 0.75)  # piecewise: x0.1 at half and at three quarters of the steps
EXPONENTIAL_END = 0.01  # exponential: the last step's rate, as a share of --lr
NOT_DECAYED = ("bias", "gamma", "beta")  # weight decay shrinks weights, not biases and normalisation scales


@keras.saving.register_keras_serializable(package="common")
class LinearWarmUp(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to `peak` over `warmup_steps`, then follows `after` (or stays at `peak`)."""

    def __init__(self, peak, warmup_steps, after=None):
        self.peak, self.warmup_steps, self.after = float(peak), int(warmup_steps), after

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rising = self.peak * step / self.warmup_steps
        settled = self.after(step) if self.after is not None else self.peak
        return ops.where(step < self.warmup_steps, rising, ops.cast(settled, "float32"))

    def get_config(self):
        after = keras.optimizers.schedules.serialize(self.after) if self.after is not None else None
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "after": after}

    @classmethod
    def from_config(cls, config):
        after = config["after"] and keras.optimizers.schedules.deserialize(config["after"])
        return cls(config["peak"], config["warmup_steps"], after)


def warmup_steps(fraction, total_steps):
    """`fraction` of the steps, rounded down (at least 1 when there is a warm-up at all)."""
    if fraction <= 0:
        return 0
    return max(1, int(total_steps * fraction + 1e-6))  # the 1e-6: 0.05 * 20 must give 1, not 0.999...


def learning_rate_schedule(config, total_steps):
    """The learning rate per step for `config.lr_schedule`: a float (constant) or a Keras schedule."""
    check_choice("--lr-schedule", config.lr_schedule, SCHEDULES)
    lr, total = config.lr, max(1, int(total_steps))
    schedules = keras.optimizers.schedules
    if config.lr_schedule in ("cosine", "one-cycle"):
        if config.lr_schedule == "one-cycle":
            start, rise = lr / 25, warmup_steps(ONE_CYCLE_RISE, total)
        else:
            start, rise = 0.0, warmup_steps(config.warmup, total)
        if not rise:
            return schedules.CosineDecay(lr, decay_steps=total)
        return schedules.CosineDecay(start, decay_steps=max(1, total - rise), warmup_target=lr, warmup_steps=rise)
    if config.lr_schedule == "piecewise":
        boundaries = [int(total * share) for share in PIECEWISE_DROPS]
        decay = schedules.PiecewiseConstantDecay(boundaries, [lr, lr * 0.1, lr * 0.01])
    elif config.lr_schedule == "exponential":
        decay = schedules.ExponentialDecay(lr, decay_steps=total, decay_rate=EXPONENTIAL_END)
    else:
        decay = None
    rise = warmup_steps(config.warmup, total)
    if rise:
        return LinearWarmUp(lr, rise, decay)
    return decay if decay is not None else lr


def build_optimizer(config, total_steps):
    """The Keras optimizer `config` names, on its schedule, with its weight decay and gradient clipping."""
    check_choice("--optimizer", config.optimizer, OPTIMIZERS)
    if not config.lr > 0:
        raise UserError(f"--lr must be positive, got {config.lr}")
    optimizer = OPTIMIZERS[config.optimizer](
        learning_rate_schedule(config, total_steps),
        weight_decay=config.weight_decay or None,
        global_clipnorm=config.clipnorm or None,
    )
    if config.weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return optimizer


def loss_scaled(optimizer):
    """`optimizer`, wrapped in Keras' LossScaleOptimizer under a float16 policy: float16
    gradients underflow to zero without it. Custom steps need it; `model.fit` does it itself."""
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def compiled(model, **settings):
    """`model.compile(**settings)`, with the optimizer's variables made at once.

    Without a distribution strategy, TensorFlow's Keras leaves them to the first traced
    training step; TensorFlow then traces (and under XLA compiles) that step a second
    time, because variables were created in it. Made here, the step is traced once, and
    the first epoch of a small model starts in half the time. JAX's Keras makes them
    before tracing anyway. Metrics are given as objects for the same reason: Keras makes a
    metric named by a string inside that first step. Under JAX, a model with random image
    transforms is compiled too (`backend.let_jax_compile`).
    """
    named = [metric for metric in settings.get("metrics") or [] if isinstance(metric, str)]
    if named:
        raise TypeError(f"give the metrics {named} as keras.metrics objects, so that their variables exist before tracing")
    backend.let_jax_compile(model)
    model.compile(**settings)
    if keras.backend.backend() == "tensorflow" and model.built and not model.optimizer.built:
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)
    return model

