"""The AnimeGAN training steps and their checkpoint.

Two phases, as in AnimeGANv2. Initialisation: the generator alone learns to give back
its input, measured only by the VGG content loss, so the adversarial phase starts
from a network that already draws the photo instead of noise. Adversarial phase:
each step first updates the discriminator (anime is 1; generated pictures, grey
anime and grey edge-smoothed anime are 0), then the generator (fool the
discriminator, keep the photo's content and colours, take the anime pictures'
Gram style, stay smooth). Each update is a `common.backend.gradient_step`, so the
same code trains on TensorFlow and on JAX. Adam with beta1 0.5, one optimiser per
update kind, each loss-scaled under float16 mixed precision (float16 gradients
underflow without it). The spectral normalisation's power-iteration vectors are state
the steps carry forward.

The generator that is saved and shown once the adversarial phase has begun is the
moving average of its weights over the adversarial steps (`--ema`,
`common.averaging.WeightAverage`): adversarial training swings back and forth, the
average less. `variables_to_save` names the whole training state (both networks, all
three optimisers and the averaged generator) for the training loop's checkpoints.
"""

import keras
from keras import ops

from common import backend, training, vgg
from common.averaging import WeightAverage
from projects.animegan import model


def adam(lr):
    """Adam with beta1 0.5, as AnimeGANv2; loss-scaled under a float16 policy."""
    return training.loss_scaled(keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.999))


class AnimeGAN:
    """Generator, discriminator, perceptual network, optimisers and the three compiled steps."""

    def __init__(self, config):
        self.config = config
        self.generator = model.build_generator()
        self.discriminator = model.build_discriminator()
        # The moving average of the generator's weights over the adversarial steps (none at --ema 0).
        self.averaging = WeightAverage(self.generator, model.build_generator(), config.ema) if config.ema else None
        self.perceptual = model.Perceptual(config.backbone, config.backbone_weights)
        self.optimizers = {"init": adam(config.init_lr), "generator": adam(config.lr), "discriminator": adam(config.d_lr)}
        # `state` names every other variable a step reads or changes (the other network, the spectral
        # normalisation's power-iteration vectors), so that JAX's compiled step reads their current values
        # rather than the ones it was compiled with. Only the VGG is frozen.
        self.init_step = backend.gradient_step(
            self.init_loss, self.generator.trainable_variables, self.optimizers["init"]
        )
        self.generator_step = backend.gradient_step(
            self.generator_loss, self.generator.trainable_variables, self.optimizers["generator"],
            state=self.generator.non_trainable_variables + self.discriminator.variables,
        )
        self.discriminator_step = backend.gradient_step(
            self.discriminator_loss, self.discriminator.trainable_variables, self.optimizers["discriminator"],
            state=self.discriminator.non_trainable_variables + self.generator.variables,
        )

    # The discriminator always runs with training=True: that is when spectral normalisation divides its
    # kernels by their largest singular value (and advances the power iteration).

    def init_loss(self, photos):
        generated = self.generator(photos, training=True)
        content = model.content_loss(self.perceptual(photos), self.perceptual(generated))
        terms = {"content": content}
        total = self.config.content_weight * content
        if self.config.init_color_weight:  # not in AnimeGANv2; it pins colours where the VGG features do not
            terms["color"] = model.color_loss(photos, generated)
            total += self.config.init_color_weight * terms["color"]
        return total, terms

    def generator_loss(self, photos, anime):
        c = self.config
        generated = self.generator(photos, training=True)
        generated_features = self.perceptual(generated)
        terms = {
            "adversarial": model.generator_adversarial_loss(self.discriminator(generated, training=True)),
            "content": model.content_loss(self.perceptual(photos), generated_features),
            "style": model.style_loss(self.perceptual(model.to_grey(anime)), generated_features),
            "color": model.color_loss(photos, generated),
            "tv": vgg.total_variation(generated),
        }
        total = (
            c.adversarial_weight * terms["adversarial"]
            + c.content_weight * terms["content"]
            + c.style_weight * terms["style"]
            + c.color_weight * terms["color"]
            + c.tv_weight * terms["tv"]
        )
        return total, terms

    def discriminator_loss(self, photos, anime, smoothed):
        c = self.config
        generated = ops.stop_gradient(self.generator(photos, training=False))
        score = lambda images: self.discriminator(images, training=True)
        terms = model.discriminator_losses(
            score(anime), score(model.to_grey(anime)), score(generated), score(model.to_grey(smoothed))
        )
        total = c.d_adversarial_weight * (
            c.d_real_weight * terms["real"]
            + c.d_grey_weight * terms["grey"]
            + c.d_fake_weight * terms["fake"]
            + c.d_smooth_weight * terms["smooth"]
        )
        return total, terms

    def start_average(self):
        """The average starts from the generator as the initialisation left it."""
        if self.averaging is not None:
            self.averaging.restart()

    def update_average(self, updates):
        """After the `updates`-th generator update of the adversarial phase."""
        if self.averaging is not None:
            self.averaging.update(updates)

    def result(self, adversarial):
        """The generator to show and save: the averaged one once the adversarial phase has begun, if kept."""
        return self.averaging.average if adversarial and self.averaging is not None else self.generator

    def convert(self, photos, adversarial=False):
        """Generator outputs in [-1, 1] for photos in [-1, 1] whose sides are a multiple of STRIDE.

        A plain call, not `predict_on_batch`: under JAX that hands the network's weight buffers
        to its compiled function, and a freshly restarted average still shares them.
        """
        return ops.convert_to_numpy(self.result(adversarial)(photos, training=False))

    def variables_to_save(self):
        """Everything training needs to go on, by name, for the training loop's checkpoints."""
        groups = {"generator": self.generator.variables, "discriminator": self.discriminator.variables}
        if self.averaging is not None:
            groups["average"] = self.averaging.average.variables
        groups.update({f"{name}_optimizer": optimizer.variables for name, optimizer in self.optimizers.items()})
        return groups
