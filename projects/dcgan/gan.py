"""The adversarial training step, the generator's weight average and the checkpoint.

One training step is two optimisation steps, each written once with `keras.ops` and
made into a compiled per-backend step by `common.backend.gradient_step`: the
discriminator's (real images against generated ones) and then the generator's (fresh
noise, judged by the updated discriminator). Noise comes in as NumPy inputs, so a step
is a pure function of its inputs and a seeded run repeats exactly, resumed or not.

The generator that makes the samples is an exponential moving average of the trained
one's weights (and batch-norm statistics, `common.averaging.WeightAverage`): it
averages out the oscillation of adversarial training, which gives cleaner, steadier
samples for free.

A conditional GAN (`classes` > 0) passes integer labels (batch, 1) beside the images
and the noise: real images with their own labels, generated ones with labels drawn
uniformly at random.

`variables_to_save` names every variable (generator, discriminator, average, both
Adam states) for the training loop's checkpoints.
"""

import numpy as np
import keras
from keras import ops

from common import backend, training
from common.averaging import WeightAverage
from projects.dcgan.model import build_discriminator, build_generator, discriminator_loss, generator_loss


def adam(config):
    """Adam with the DCGAN paper's beta1; loss-scaled under a float16 policy."""
    return training.loss_scaled(keras.optimizers.Adam(config.lr, beta_1=config.beta1))


def with_labels(x, labels):
    """A network's input: `x` alone, or [x, labels] for a conditional one."""
    return x if labels is None else [x, labels]


class GAN:
    """The two networks of `config` for square images of `size` pixels and `channels`, their optimisers and steps."""

    def __init__(self, config, size, channels, classes=0):
        width = config.width
        self.latent_dim, self.classes = config.latent_dim, classes
        self.generator = build_generator(size, channels, width, config.latent_dim, classes)
        self.discriminator = build_discriminator(
            size, channels, config.discriminator_width or width, config.discriminator_norm, config.dropout, classes
        )
        self.averaging = None
        if config.ema:
            average = build_generator(size, channels, width, config.latent_dim, classes)
            self.averaging = WeightAverage(self.generator, average, config.ema)
        self.d_optimizer, self.g_optimizer = adam(config), adam(config)
        generator, discriminator = self.generator, self.discriminator

        def d_loss(real, noise, *labels):
            real_labels, fake_labels = labels or (None, None)
            fake = generator(with_labels(noise, fake_labels), training=True)
            real_logits = discriminator(with_labels(real, real_labels), training=True)
            fake_logits = discriminator(with_labels(fake, fake_labels), training=True)
            loss = discriminator_loss(real_logits, fake_logits)
            return loss, {"real_score": ops.mean(ops.sigmoid(real_logits)), "fake_score": ops.mean(ops.sigmoid(fake_logits))}

        def g_loss(noise, *labels):
            labels = labels[0] if labels else None
            fake = generator(with_labels(noise, labels), training=True)
            return generator_loss(discriminator(with_labels(fake, labels), training=True)), {}

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
        return self.averaging.average if self.averaging is not None else self.generator

    def noise(self, rng, count):
        return rng.standard_normal((count, self.latent_dim)).astype(np.float32)

    def random_labels(self, rng, count):
        return rng.integers(0, self.classes, (count, 1)).astype(np.int32)

    def train_step(self, real, rng, labels=None, updates=1):
        """One discriminator step and one generator step on a batch of real images in [-1, 1] (and their labels);
        `updates` counts the generator steps so far, this one included."""
        count = len(real)
        d_inputs = [real, self.noise(rng, count)]
        if self.classes:
            d_inputs += [np.asarray(labels, np.int32).reshape(count, 1), self.random_labels(rng, count)]
        d_loss, scores = self.d_step(*d_inputs)
        g_inputs = [self.noise(rng, count)] + ([self.random_labels(rng, count)] if self.classes else [])
        g_loss, _ = self.g_step(*g_inputs)
        if self.averaging is not None:
            self.averaging.update(updates)
        return {"d_loss": d_loss, "g_loss": g_loss, **scores}

    def sample(self, noise, labels=None, batch_size=256):
        """Images in [-1, 1] from the sampling generator, in inference mode (labels (N, 1) for a conditional one)."""
        batches = []
        for start in range(0, len(noise), batch_size):
            part = slice(start, start + batch_size)
            inputs = with_labels(noise[part], None if labels is None else labels[part])
            batches.append(ops.convert_to_numpy(self.sampler(inputs, training=False)))
        return np.concatenate(batches)

    def variables_to_save(self):
        """Everything the next step depends on, by name, for the training loop's checkpoints."""
        groups = {
            "generator": self.generator.variables,
            "discriminator": self.discriminator.variables,
            "g_optimizer": self.g_optimizer.variables,
            "d_optimizer": self.d_optimizer.variables,
        }
        if self.averaging is not None:
            groups["average"] = self.averaging.average.variables
        return groups
