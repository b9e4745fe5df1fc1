"""The DCGAN networks, sized from the image resolution, and their losses.

The recipe of Radford et al. (2016): the generator turns a noise vector into a small
feature map and doubles its size with strided transposed convolutions, halving the
channels each time, batch norm and ReLU after each, tanh at the end; the discriminator
mirrors it with strided convolutions (no pooling), LeakyReLU(0.2) and batch norm on all
but the first. Weights start from N(0, 0.02). A 64 px generator starts from 4x4, MNIST's
28 px from 7x7: the number of doublings is the largest that leaves a whole map of at
least 4x4.

The losses are the non-saturating ones of Goodfellow et al.: the discriminator learns
to give real images high logits and generated ones low; the generator learns to make
the discriminator give its images high logits.
"""

import keras
from keras import layers, ops

from common.errors import UserError

MIN_SIZE, MAX_SIZE = 16, 256


def layout(image_size):
    """(doublings, size of the first map): 28 -> (2, 7), 32 -> (3, 4), 64 -> (4, 4), 96 -> (4, 6)."""
    if not MIN_SIZE <= image_size <= MAX_SIZE or image_size % 4:
        raise UserError(f"--image-size must be a multiple of 4 from {MIN_SIZE} to {MAX_SIZE} (e.g. 28, 32, 64, 96), got {image_size}")
    doublings = 2
    while image_size % 2 ** (doublings + 1) == 0 and image_size // 2 ** (doublings + 1) >= 4:
        doublings += 1
    return doublings, image_size // 2**doublings


def initializer():
    return keras.initializers.RandomNormal(0.0, 0.02)


def batch_norm():
    # Momentum 0.9 rather than Keras' 0.99: the running statistics the saved generator
    # uses follow a generator that keeps changing.
    return layers.BatchNormalization(momentum=0.9)


def build_generator(image_size, channels, width, latent_dim):
    doublings, start = layout(image_size)
    filters = width * 2 ** (doublings - 1)
    stack = [
        keras.Input((latent_dim,)),
        layers.Dense(start * start * filters, use_bias=False, kernel_initializer=initializer()),
        batch_norm(),
        layers.ReLU(),
        layers.Reshape((start, start, filters)),
    ]
    for _ in range(doublings - 1):
        filters //= 2
        stack += [
            layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=False, kernel_initializer=initializer()),
            batch_norm(),
            layers.ReLU(),
        ]
    stack += [
        layers.Conv2DTranspose(channels, 4, strides=2, padding="same", kernel_initializer=initializer()),
        layers.Activation("tanh", dtype="float32"),  # images in [-1, 1], float32 under mixed precision
    ]
    return keras.Sequential(stack, name="generator")


def build_discriminator(image_size, channels, width, normalise=True, dropout=0.0):
    doublings, _ = layout(image_size)
    dropped = [layers.Dropout(dropout)] if dropout else []
    stack = [
        keras.Input((image_size, image_size, channels)),
        layers.Conv2D(width, 4, strides=2, padding="same", kernel_initializer=initializer()),
        layers.LeakyReLU(0.2),
        *dropped,
    ]
    for level in range(1, doublings):
        stack += [
            layers.Conv2D(width * 2**level, 4, strides=2, padding="same", use_bias=not normalise, kernel_initializer=initializer()),
            *([batch_norm()] if normalise else []),
            layers.LeakyReLU(0.2),
            *dropped,
        ]
    stack += [layers.Flatten(), layers.Dense(1, kernel_initializer=initializer(), dtype="float32")]  # a logit
    return keras.Sequential(stack, name="discriminator")


def discriminator_loss(real_logits, fake_logits):
    """Cross-entropy of "real" for real images and "fake" for generated ones, from logits."""
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits):
    """Non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z)))."""
    return ops.mean(ops.softplus(-fake_logits))
