"""The adversarial training step, the generator's weight average and the checkpoint.

One training step is two optimisation steps, each written once with `keras.ops` and
made into a compiled per-backend step by `common.backend.gradient_step`: the
discriminator's (real images against generated ones) and then the generator's (fresh
noise, judged by the updated discriminator). Noise comes in as NumPy inputs, so a step
is a pure function of its inputs and a seeded run repeats exactly, resumed or not.

The generator that makes the samples is an exponential moving average of the trained
one's weights (and batch-norm statistics): it averages out the oscillation of
adversarial training, which gives cleaner, steadier samples for free.

The checkpoint holds every variable (generator, discriminator, average, both Adam
states) and the epoch in one .npz file written atomically: a run killed at any moment
resumes from its last finished epoch.
"""

import numpy as np
import keras
from keras import ops

from common import backend, runs
from common.errors import UserError
from projects.dcgan.model import build_discriminator, build_generator, discriminator_loss, generator_loss


def adam(config):
    optimizer = keras.optimizers.Adam(config.lr, beta_1=config.beta1)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow without it
    return optimizer


class GAN:
    def __init__(self, config, channels):
        size, width = config.image_size, config.width
        self.latent_dim = config.latent_dim
        self.generator = build_generator(size, channels, width, config.latent_dim)
        self.discriminator = build_discriminator(
            size, channels, config.discriminator_width or width, config.discriminator_norm, config.dropout
        )
        self.average = build_generator(size, channels, width, config.latent_dim) if config.ema else None
        if self.average is not None:
            for target, source in zip(self.average.variables, self.generator.variables):
                target.assign(source)
        self.ema = config.ema
        self.updates = 0  # generator steps so far, for the average's warm-up
        self.d_optimizer, self.g_optimizer = adam(config), adam(config)
        generator, discriminator = self.generator, self.discriminator

        def d_loss(real, noise):
            fake = generator(noise, training=True)
            real_logits = discriminator(real, training=True)
            fake_logits = discriminator(fake, training=True)
            loss = discriminator_loss(real_logits, fake_logits)
            return loss, {"real_score": ops.mean(ops.sigmoid(real_logits)), "fake_score": ops.mean(ops.sigmoid(fake_logits))}

        def g_loss(noise):
            loss = generator_loss(discriminator(generator(noise, training=True), training=True))
            return loss, {}

        # `state` names every other variable a step reads or changes, so that JAX's
        # stateless step sees their current values (and keeps the batch-norm updates).
        self.d_step = backend.gradient_step(
            d_loss, discriminator.trainable_variables, self.d_optimizer,
            state=discriminator.non_trainable_variables + generator.variables,
        )
        self.g_step = backend.gradient_step(
            g_loss, generator.trainable_variables, self.g_optimizer,
            state=generator.non_trainable_variables + discriminator.variables,
        )

    @property
    def sampler(self):
        """The generator that makes samples: the average when there is one."""
        return self.average if self.average is not None else self.generator

    def noise(self, rng, count):
        return rng.standard_normal((count, self.latent_dim)).astype(np.float32)

    def train_step(self, real, rng):
        """One discriminator step and one generator step on a batch of real images in [-1, 1]."""
        count = len(real)
        d_loss, scores = self.d_step(real, self.noise(rng, count))
        g_loss, _ = self.g_step(self.noise(rng, count))
        self.update_average()
        return {"d_loss": d_loss, "g_loss": g_loss, **scores}

    def update_average(self):
        self.updates += 1
        if self.average is None:
            return
        # Early on the average would mostly remember the random start, so it spans at most
        # the last half of the steps so far until that reaches the decay's own horizon.
        decay = min(self.ema, self.updates / (self.updates + 2))
        for target, source in zip(self.average.variables, self.generator.variables):
            target.assign(decay * target + (1 - decay) * ops.cast(source, target.dtype))

    def sample(self, noise, batch_size=256):
        """Images in [-1, 1] from the sampling generator, in inference mode."""
        return np.concatenate(
            [ops.convert_to_numpy(self.sampler(noise[i : i + batch_size], training=False)) for i in range(0, len(noise), batch_size)]
        )

    # --- checkpoint ---------------------------------------------------------------------

    def _groups(self):
        groups = {
            "generator": self.generator.variables,
            "discriminator": self.discriminator.variables,
            "g_optimizer": self.g_optimizer.variables,
            "d_optimizer": self.d_optimizer.variables,
        }
        if self.average is not None:
            groups["average"] = self.average.variables
        return groups

    def save(self, path, epoch):
        arrays = {"epoch": np.array(epoch), "updates": np.array(self.updates)}
        for group, variables in self._groups().items():
            for index, variable in enumerate(variables):
                arrays[f"{group}/{index}"] = variable.numpy()
        with runs.atomic_path(path) as temporary:
            np.savez(temporary, **arrays)

    def restore(self, path):
        """Load a checkpoint written by `save`; returns the number of finished epochs."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                arrays = dict(saved)
        except (OSError, ValueError, EOFError) as error:
            raise UserError(f"{path} is not a readable checkpoint ({error})") from None
        for group, variables in self._groups().items():
            for index, variable in enumerate(variables):
                value = arrays.get(f"{group}/{index}")
                if value is None or tuple(value.shape) != tuple(variable.shape):
                    raise UserError(f"{path} does not match this model ({group} variable {index}); was it written by another version?")
                variable.assign(value)
        self.updates = int(arrays["updates"])
        return int(arrays["epoch"])
